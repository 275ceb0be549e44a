"""The paper's combined network: one learned weight per (network, parameter) over trained networks.

Hezaveh et al. 2017 (Methods, "Combining networks") combine their four networks with a final
trainable layer: each parameter k of the combination is

    y_k = sum_m w_{m,k} mu_{m,k} + b_k,

with one weight per (network m, parameter k) and a bias, learned on held-out simulations; when the
networks' errors are not fully correlated the combination is more precise than the best of them
(the paper's Table 1, last row). lensnet's (e1, e2) are unambiguous, so the members need none of the
sign alignment the paper's ellipticity needed. The weights are fitted in closed form by
:func:`lensnet.training.combine.fit_combined_network`; this module only applies them.

Uncertainty: the combination's 1-sigma error is s_k = c_k sqrt(sum_m w_{m,k}^2 sigma_{m,k}^2) when
every member predicts sigma, else s_k = c_k, with the scale c_k fitted on the same held-out set.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from lensnet.errors import LensnetShapeError

__all__ = ["CombinedNetwork", "as_mean_std"]


class CombinedNetwork(nn.Module):
    """Several trained networks and their learned combination (see the module docstring).

    Parameters
    ----------
    members : sequence of nn.Module
        Networks mapping images (B, C, H, W) to (mean, std) or mean, each (B, K), physical units.
    weights : Tensor, shape (M, K)
        Weight of each member for each parameter.
    bias : Tensor, shape (K,)
        Bias per parameter.
    scale : Tensor, shape (K,)
        Calibration c_k of the combined uncertainty [ones].
    """

    def __init__(self, members: Sequence[nn.Module], weights: torch.Tensor, bias: torch.Tensor,
                 scale: torch.Tensor | None = None):
        super().__init__()
        m, k = len(members), bias.shape[-1]
        if weights.shape != (m, k):
            raise LensnetShapeError("weights", weights.shape, f"({m}, {k}): one per (member, parameter)")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", weights.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.register_buffer("scale", torch.ones(k) if scale is None else scale.detach().clone())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Combined mean and 1-sigma error, each (B, K), for images (B, C, H, W)."""
        outputs = [as_mean_std(member(images)) for member in self.members]
        means = torch.stack([m for m, _ in outputs])
        stds = None if any(s is None for _, s in outputs) else torch.stack([s for _, s in outputs])
        return self.combine(means, stds)

    def predict(self, images: torch.Tensor, normalized: bool = False, batch_size: int = 64,
                symmetrize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Combined (mean, std), each (B, K), of images (B, C, H, W), as LensPredictor.predict gives them.

        Every member must have ``predict`` (a :class:`~lensnet.inference.predictor.LensPredictor`);
        each one checks and, unless ``normalized``, normalises the images itself, and with
        ``symmetrize`` averages its estimates over the eight views of each image.
        """
        outputs = [member.predict(images, normalized=normalized, batch_size=batch_size, symmetrize=symmetrize)
                   for member in self.members]
        means = torch.stack([m for m, _ in outputs])
        with torch.inference_mode():
            return self.combine(means.to(self.weights.dtype), torch.stack([s for _, s in outputs]).to(self.weights.dtype))

    def combine(self, means: torch.Tensor, stds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Combine aligned member means (M, B, K) and sigmas (M, B, K) or None into (mean, std) (B, K)."""
        mean = torch.einsum("mbk,mk->bk", means, self.weights) + self.bias
        if stds is None or not torch.isfinite(stds).all():
            return mean, self.scale.expand_as(mean)
        spread = torch.einsum("mbk,mk->bk", stds**2, self.weights**2).sqrt()
        return mean, self.scale * spread


def as_mean_std(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A network's output as (mean, std): ``(mean, std)`` as it is, a bare mean as (mean, None)."""
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None
