"""The combined network: one learned weight per (network, parameter) over several trained networks.

Hezaveh et al. 2017 combine their four networks with a final trainable layer: after aligning
every network's ellipticity to one convention, each parameter k of the combination is

    y_k = sum_m w_{m,k} mu_{m,k} + b_k,

with one weight per (network m, parameter k) and a bias, learned on held-out simulations. When the
networks' errors are not fully correlated the combination is more precise than the best of them
(the paper's Table 1, last row). Here the weights are fitted in closed form by ridge-regularised
least squares (the optimum of that linear layer under the squared error), per parameter.

Alignment: the paper's ellipticity (eps_x, eps_y) and its negative describe the same lens, so each
network's sign had to be aligned with a reference network (:func:`align_signs_to_reference`).
lensnet's e1, e2 have no such ambiguity and need no alignment (:func:`identity_align`, the default);
the ``align`` hook is kept for networks trained in another convention.

Uncertainty: the combination's 1-sigma error is s_k = c_k sqrt(sum_m w_{m,k}^2 sigma_{m,k}^2) when
every member predicts sigma, else s_k = c_k; the scale c_k is fitted on the same held-out set so that
the residuals have unit variance in units of s_k.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from lensnet.errors import LensnetShapeError, LensnetValueError

__all__ = ["CombinedNetwork", "fit_combination", "fit_combined_network", "identity_align",
           "align_signs_to_reference", "member_predictions"]

Align = Callable[[torch.Tensor], torch.Tensor]


def identity_align(means: torch.Tensor) -> torch.Tensor:
    """No alignment: lensnet's (e1, e2) convention is unambiguous. ``means`` is (M, B, K)."""
    return means


def align_signs_to_reference(means: torch.Tensor, reference: int = 0, columns: Sequence[int] = (1, 2)) -> torch.Tensor:
    """The paper's alignment: flip a network's ellipticity where its negative is closer to the reference's.

    Parameters
    ----------
    means : Tensor, shape (M, B, K)
        Predictions of M networks for B lenses.
    reference : int
        Index of the reference network.
    columns : sequence of int
        The two ellipticity columns [(1, 2), i.e. e1, e2 in :data:`lensnet.PARAM_NAMES` order].

    Returns
    -------
    Tensor, shape (M, B, K)
    """
    cols = list(columns)
    ell, ref = means[:, :, cols], means[reference, :, cols]
    flip = ((ell + ref) ** 2).sum(-1, keepdim=True) < ((ell - ref) ** 2).sum(-1, keepdim=True)
    aligned = means.clone()
    aligned[:, :, cols] = torch.where(flip, -ell, ell)
    return aligned


def member_predictions(members: Sequence[nn.Module], images: torch.Tensor,
                       batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Means (M, N, K) and sigmas (M, N, K) of every member, or None for sigma if any member has none.

    A member returns ``(mean, std)`` (as :class:`~lensnet.training.module.LensRegressor` does) or a
    mean (B, K) alone. Runs without gradients, in chunks of ``batch_size`` images.
    """
    means, stds = [], []
    with torch.no_grad():
        for member in members:
            out = [_as_mean_std(member(chunk)) for chunk in images.split(batch_size)]
            means.append(torch.cat([m for m, _ in out]))
            stds.append(None if any(s is None for _, s in out) else torch.cat([s for _, s in out]))
    std = None if any(s is None or not torch.isfinite(s).all() for s in stds) else torch.stack(stds)
    return torch.stack(means), std


def fit_combination(means: torch.Tensor, targets: torch.Tensor,
                    ridge: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares weight per (member, parameter) and bias per parameter.

    Parameters
    ----------
    means : Tensor, shape (M, N, K)
        Aligned predictions of M members for N held-out lenses.
    targets : Tensor, shape (N, K)
        True parameters.
    ridge : float
        Tikhonov regularisation, relative to the mean variance of the predictions [1e-6].

    Returns
    -------
    weights : Tensor, shape (M, K)
    bias : Tensor, shape (K,)
    """
    if means.ndim != 3 or targets.shape != means.shape[1:]:
        raise LensnetShapeError("means", means.shape, f"(M, N, K) with (N, K) = {tuple(targets.shape)}")
    if means.shape[1] <= means.shape[0]:
        raise LensnetValueError(f"fitting {means.shape[0]} weights per parameter needs more than "
                                f"{means.shape[0]} held-out lenses, got {means.shape[1]}")
    x = means.double().permute(2, 1, 0)  # (K, N, M)
    y = targets.double().T  # (K, N)
    x_mean, y_mean = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.transpose(1, 2) @ xc / x.shape[1]
    lam = ridge * gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-30)
    gram = gram + lam[:, None, None] * torch.eye(x.shape[2], dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(gram, (xc.transpose(1, 2) @ yc[..., None]) / x.shape[1])[..., 0]  # (K, M)
    bias = y_mean[:, 0] - (x_mean[:, 0, :] * w).sum(1)
    return w.T.to(means.dtype), bias.to(means.dtype)


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
    align : callable
        Maps the members' means (M, B, K) to one convention [:func:`identity_align`].
    """

    def __init__(self, members: Sequence[nn.Module], weights: torch.Tensor, bias: torch.Tensor,
                 scale: torch.Tensor | None = None, align: Align = identity_align):
        super().__init__()
        m, k = len(members), bias.shape[-1]
        if weights.shape != (m, k):
            raise LensnetShapeError("weights", weights.shape, f"({m}, {k}): one per (member, parameter)")
        self.members = nn.ModuleList(members)
        self.align = align
        self.register_buffer("weights", weights.detach().clone())
        self.register_buffer("bias", bias.detach().clone())
        self.register_buffer("scale", torch.ones(k) if scale is None else scale.detach().clone())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Combined mean and 1-sigma error, each (B, K), for images (B, C, H, W)."""
        outputs = [_as_mean_std(member(images)) for member in self.members]
        means = self.align(torch.stack([m for m, _ in outputs]))
        stds = None if any(s is None for _, s in outputs) else torch.stack([s for _, s in outputs])
        return self.combine(means, stds)

    def predict(self, images: torch.Tensor, normalized: bool = False, batch_size: int = 64,
                symmetrize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Combined (mean, std), each (B, K), of images (B, C, H, W), as LensPredictor.predict gives them.

        Every member must have ``predict`` (a :class:`~lensnet.networks.pretrained.LensPredictor`);
        each one checks and, unless ``normalized``, normalises the images itself, and with
        ``symmetrize`` averages its estimates over the eight views of each image.
        """
        outputs = [member.predict(images, normalized=normalized, batch_size=batch_size, symmetrize=symmetrize)
                   for member in self.members]
        means = self.align(torch.stack([m for m, _ in outputs]))
        with torch.inference_mode():
            return self.combine(means.to(self.weights.dtype), torch.stack([s for _, s in outputs]).to(self.weights.dtype))

    def combine(self, means: torch.Tensor, stds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Combine aligned member means (M, B, K) and sigmas (M, B, K) or None into (mean, std) (B, K)."""
        mean = torch.einsum("mbk,mk->bk", means, self.weights) + self.bias
        if stds is None or not torch.isfinite(stds).all():
            return mean, self.scale.expand_as(mean)
        spread = torch.einsum("mbk,mk->bk", stds**2, self.weights**2).sqrt()
        return mean, self.scale * spread


def fit_combined_network(members: Sequence[nn.Module], images: torch.Tensor, targets: torch.Tensor,
                         align: Align = identity_align, ridge: float = 1e-6, batch_size: int = 256) -> CombinedNetwork:
    """Fit the combination of ``members`` on held-out simulated lenses and return the combined network.

    Parameters
    ----------
    members : sequence of nn.Module
        Trained networks, in eval mode (e.g. from :func:`lensnet.training.train.load_regressor`).
    images : Tensor, shape (N, C, H, W)
        Held-out images, never used to train the members.
    targets : Tensor, shape (N, K)
        Their true parameters.
    align, ridge, batch_size
        See :class:`CombinedNetwork`, :func:`fit_combination`, :func:`member_predictions`.
    """
    means, stds = member_predictions(members, images, batch_size)
    means = align(means)
    weights, bias = fit_combination(means, targets, ridge)
    combined = CombinedNetwork(members, weights, bias, align=align).to(images.device)
    mean, std = combined.combine(means, stds)
    combined.scale.copy_(((mean - targets) / std).pow(2).mean(0).sqrt())
    return combined


def _as_mean_std(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None
