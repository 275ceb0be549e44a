"""Fitting the paper's combined network: one weight per (network, parameter) on held-out lenses.

Hezaveh et al. 2017 train a final linear layer over their four networks on held-out simulations.
Here its weights and bias are fitted in closed form by ridge-regularised least squares (the optimum
of that layer under the squared error), per parameter; the result is a
:class:`lensnet.inference.combined.CombinedNetwork`, which applies them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.inference.combined import CombinedNetwork, as_mean_std

__all__ = ["fit_combination", "fit_combined_network", "member_predictions"]


def member_predictions(members: Sequence[nn.Module], images: torch.Tensor,
                       batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Means (M, N, K) and sigmas (M, N, K) of every member, or None for sigma if any member has none.

    A member returns ``(mean, std)`` (as :class:`~lensnet.inference.predictor.LensPredictor` does) or a
    mean (B, K) alone. Runs without gradients, in chunks of ``batch_size`` images.
    """
    means, stds = [], []
    with torch.no_grad():
        for member in members:
            out = [as_mean_std(member(chunk)) for chunk in images.split(batch_size)]
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
        Predictions of M members for N held-out lenses.
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


def fit_combined_network(members: Sequence[nn.Module], images: torch.Tensor, targets: torch.Tensor,
                         ridge: float = 1e-6, batch_size: int = 256) -> CombinedNetwork:
    """Fit the combination of ``members`` on held-out simulated lenses and return the combined network.

    Parameters
    ----------
    members : sequence of nn.Module
        Trained networks, in eval mode (e.g. :class:`~lensnet.inference.predictor.LensPredictor`).
    images : Tensor, shape (N, C, H, W)
        Held-out images, never used to train the members.
    targets : Tensor, shape (N, K)
        Their true parameters.
    ridge, batch_size
        See :func:`fit_combination` and :func:`member_predictions`.
    """
    means, stds = member_predictions(members, images, batch_size)
    weights, bias = fit_combination(means, targets, ridge)
    combined = CombinedNetwork(members, weights, bias).to(images.device)
    mean, std = combined.combine(means, stds)
    combined.scale.copy_(((mean - targets) / std).pow(2).mean(0).sqrt())
    return combined
