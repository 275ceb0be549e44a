"""Calibrated uncertainties: a per-parameter temperature that makes the stated 1-sigma mean what it says.

A network's predicted sigma is trained by the Gaussian likelihood, but nothing forces the central interval
mean +- z sigma to hold the truth with probability p on new data. The temperature T_k of parameter k is
fitted on held-out lenses so that it does, at p = 68%:

    T_k = quantile_68(|residual_k / sigma_k|) / z_68,    z_68 = sqrt(2) erfinv(0.68) = 0.9945,

and the calibrated uncertainty is T_k sigma_k. A temperature is monotone and keeps the ordering of the
uncertainties: a bright, sharp lens keeps a smaller error bar than a faint, blurred one.

One scale cannot make two levels exact when the residuals have heavier tails than a Gaussian (more lenses
far out than the 68% width predicts). The 95% interval therefore gets its own half-width, measured on the
same held-out lenses in calibrated sigma (a two-point monotone recalibration of the interval levels, in the
spirit of Kuleshov et al. 2018, ICML, arXiv:1807.00263):

    z95_k = quantile_95(|residual_k / (T_k sigma_k)|)    (1.96 for Gaussian residuals).

Both are stored in the model card (``calibration``: ``temperature``, ``z95``) and applied by
:class:`lensnet.inference.predictor.LensPredictor`; catalogues and evaluations use ``z95``.
"""

from __future__ import annotations

import math

import torch

from lensnet.errors import LensnetShapeError, LensnetValueError

__all__ = ["CALIBRATION_PROBABILITY", "calibration_curve", "fit_interval_width", "fit_temperature", "z_value"]

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
    z = _abs_z(residuals, sigmas, "a temperature")
    return (torch.quantile(z, probability, dim=0) / z_value(probability)).to(residuals.dtype)


def fit_interval_width(residuals: torch.Tensor, sigmas: torch.Tensor, probability: float = 0.95) -> torch.Tensor:
    """Per-column half-width (K,), in sigma, of the central interval that holds ``probability`` of these lenses.

    Give the calibrated sigmas (after :func:`fit_temperature`): the result is then ``z95`` of the module
    docstring, 1.96 for Gaussian residuals and larger for heavier tails.

    Raises
    ------
    LensnetShapeError, LensnetValueError
        As :func:`fit_temperature`, or if ``probability`` is not in (0, 1).
    """
    z_value(probability)  # checks the probability
    return torch.quantile(_abs_z(residuals, sigmas, "an interval width"), probability, dim=0).to(residuals.dtype)


def _abs_z(residuals: torch.Tensor, sigmas: torch.Tensor, what: str) -> torch.Tensor:
    if residuals.ndim != 2 or sigmas.shape != residuals.shape:
        raise LensnetShapeError("sigmas", sigmas.shape, f"{tuple(residuals.shape)}, the residuals' (N, K)")
    if residuals.shape[0] < 10:
        raise LensnetValueError(f"{what} needs at least 10 held-out lenses, got {residuals.shape[0]}")
    if not (torch.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise LensnetValueError("every predicted sigma must be positive and finite to calibrate it")
    return (residuals.double() / sigmas.double()).abs()


def calibration_curve(residuals: torch.Tensor, sigmas: torch.Tensor, probabilities) -> torch.Tensor:
    """Empirical coverage (K, P) of the central intervals of each nominal probability (calibration curve)."""
    z = (residuals.double() / sigmas.double()).abs()
    limits = torch.tensor([z_value(p) for p in probabilities], dtype=torch.float64)
    return (z[:, :, None] <= limits).double().mean(0)
