"""Calibrated uncertainties: a per-parameter temperature that makes the stated 1-sigma mean what it says.

A network's predicted sigma is trained by the Gaussian likelihood, but nothing forces the central interval
mean +- z sigma to hold the truth with probability p on new data. The temperature T_k of parameter k is
fitted on held-out lenses so that it does, at p = 68%:

    T_k = quantile_68(|residual_k / sigma_k|) / z_68,    z_68 = sqrt(2) erfinv(0.68) = 0.9945,

and the calibrated uncertainty is T_k sigma_k. The temperatures are stored in the model card
(``calibration``) and applied by :class:`lensnet.inference.predictor.LensPredictor`. A temperature is
monotone and keeps the ordering of the uncertainties: a bright, sharp lens keeps a smaller error bar than a
faint, blurred one.
"""

from __future__ import annotations

import math

import torch

from lensnet.errors import LensnetShapeError, LensnetValueError

__all__ = ["CALIBRATION_PROBABILITY", "calibration_curve", "fit_temperature", "z_value"]

#: The probability whose central interval the temperature makes exact.
CALIBRATION_PROBABILITY = 0.68


def z_value(probability: float) -> float:
    """Half-width, in sigma, of the central Gaussian interval of ``probability``: sqrt(2) erfinv(p)."""
    if not 0 < probability < 1:
        raise LensnetValueError(f"probability = {probability}: expected a number in (0, 1)")
    return math.sqrt(2) * torch.erfinv(torch.tensor(float(probability), dtype=torch.float64)).item()


def fit_temperature(residuals: torch.Tensor, sigmas: torch.Tensor,
                    probability: float = CALIBRATION_PROBABILITY) -> torch.Tensor:
    """Per-column temperature (K,) that makes the ``probability`` interval cover exactly on these lenses.

    Parameters
    ----------
    residuals, sigmas : Tensor, (N, K)
        Estimate minus truth, and the predicted 1-sigma, of N held-out lenses.

    Raises
    ------
    LensnetShapeError, LensnetValueError
        If the shapes differ, fewer than 10 lenses are given, or a sigma is not positive and finite.
    """
    if residuals.ndim != 2 or sigmas.shape != residuals.shape:
        raise LensnetShapeError("sigmas", sigmas.shape, f"{tuple(residuals.shape)}, the residuals' (N, K)")
    if residuals.shape[0] < 10:
        raise LensnetValueError(f"a temperature needs at least 10 held-out lenses, got {residuals.shape[0]}")
    if not (torch.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise LensnetValueError("every predicted sigma must be positive and finite to calibrate it")
    z = (residuals.double() / sigmas.double()).abs()
    return (torch.quantile(z, probability, dim=0) / z_value(probability)).to(residuals.dtype)


def calibration_curve(residuals: torch.Tensor, sigmas: torch.Tensor, probabilities) -> torch.Tensor:
    """Empirical coverage (K, P) of the central intervals of each nominal probability (calibration curve)."""
    z = (residuals.double() / sigmas.double()).abs()
    limits = torch.tensor([z_value(p) for p in probabilities], dtype=torch.float64)
    return (z[:, :, None] <= limits).double().mean(0)
