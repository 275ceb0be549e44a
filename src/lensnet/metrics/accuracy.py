"""Accuracy and calibration metrics of parameter estimates, in lensnet's and the paper's convention.

The paper's metric (Hezaveh et al. 2017, Table 1) is the "68% error": "the interval that contains
68% of the predicted parameters", the central interval of the residuals shown as the inner band of
its Fig. 1. lensnet reports its half-width, :func:`error68` = (q84 - q16) / 2 of the residuals (the
same function the training module logs), everywhere. :func:`error68_abs`, the 68th percentile of
|residual|, is the half-width of the narrowest interval centred on zero holding 68% of them; the two
agree for unbiased, symmetric residuals and differ when the estimates are biased.

The paper's ellipticity components are (eps_x, eps_y) = (1 - q)(cos a, sin a) with a = phi + 90 degrees,
the minor axis's direction over a full turn (:func:`lensnet.conventions.e1e2_to_paper`), so that eps and
-eps are the same lens: the released code's loss and evaluation took, per lens, the better of the two
signs of the true (eps_x, eps_y). :func:`paper_residuals` does the same (the sign minimising the squared
distance of the two components together), so our numbers compare with Table 1; lensnet's own (e1, e2)
have no such ambiguity, and the lensnet-convention residuals use no sign choice.
"""

from __future__ import annotations

import math

import torch

from lensnet.conventions import PARAM_NAMES, LensParams, e1e2_to_paper
from lensnet.errors import LensnetShapeError, LensnetValueError, check_finite

__all__ = ["PAPER_PARAM_NAMES", "SNR_BINS", "THETA_E_BINS", "binned_coverage", "compute_metrics", "error68", "error68_abs", "rms", "residual_std", "coverage", "to_paper_convention",
           "paper_residuals"]

#: Column names of parameters in the paper's convention (Table 1): theta_E, eps_x, eps_y, x, y.
PAPER_PARAM_NAMES: tuple[str, ...] = ("theta_E", "eps_x", "eps_y", "x", "y")
#: Edges (arcsec) of the true-Einstein-radius bins in which coverage is reported.
THETA_E_BINS = (0.1, 0.5, 1.0, 2.0, 3.0)
#: Edges of the bins of the arc peak's signal-to-noise in which coverage is reported.
SNR_BINS = (1.0, 8.0, 12.0, 20.0, 1000.0)
#: The paper-convention ellipticity columns, whose sign the paper's metric chooses per lens.
_ELLIPTICITY = slice(PAPER_PARAM_NAMES.index("eps_x"), PAPER_PARAM_NAMES.index("eps_y") + 1)


def error68(residuals: torch.Tensor) -> torch.Tensor:
    """Half-width of the central 68% interval of the residuals, per column (the paper's metric).

    Parameters
    ----------
    residuals : Tensor, shape (N, K)
        Prediction minus truth.

    Returns
    -------
    Tensor, shape (K,)
        (q84 - q16) / 2 of each column, in the unit of the residuals.
    """
    q = torch.quantile(residuals.double(), torch.tensor([0.16, 0.84], dtype=torch.float64,
                                                        device=residuals.device), dim=0)
    return ((q[1] - q[0]) / 2).to(residuals.dtype)


def error68_abs(residuals: torch.Tensor) -> torch.Tensor:
    """68th percentile of ``|residual|`` per column (the half-width of the 68% interval centred on 0).

    Parameters
    ----------
    residuals : Tensor, (N, K)
        Estimate minus truth.

    Returns
    -------
    Tensor, (K,)
        In the unit of the residuals.
    """
    _check_residuals(residuals)
    return torch.quantile(residuals.double().abs(), 0.68, dim=0).to(residuals.dtype)


def rms(residuals: torch.Tensor) -> torch.Tensor:
    """Root mean square of each column of ``residuals`` (N, K); returns (K,)."""
    _check_residuals(residuals)
    return residuals.double().pow(2).mean(0).sqrt().to(residuals.dtype)


def residual_std(residuals: torch.Tensor) -> torch.Tensor:
    """Standard deviation (1/N normalisation) of each column of ``residuals`` (N, K); returns (K,).

    The metric of the released code of Hezaveh et al. (``numpy.std`` of the test residuals).
    """
    _check_residuals(residuals)
    return residuals.double().std(0, unbiased=False).to(residuals.dtype)


def coverage(residuals: torch.Tensor, std: torch.Tensor, probability: float = 0.68,
             z: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of lenses whose truth lies in the central interval of ``probability``.

    The interval is the estimate +- z sigma, by default the Gaussian z = sqrt(2) erfinv(p) (0.994 for
    68%, 1.960 for 95%); calibrated uncertainties give a fraction equal to ``probability``.

    Parameters
    ----------
    residuals : Tensor, (N, K)
        Estimate minus truth.
    std : Tensor, (N, K)
        Predicted 1-sigma uncertainties, same unit.
    probability : float
        Nominal probability of the interval, in (0, 1) [0.68].
    z : Tensor, (K,), optional
        Half-width of each parameter's interval in sigma, where a calibration sets it
        (:func:`lensnet.inference.calibration.fit_interval_width`) [Gaussian].

    Returns
    -------
    Tensor, (K,)
        Fractions in [0, 1] (0 where ``std`` is NaN).
    """
    _check_residuals(residuals)
    if std.shape != residuals.shape:
        raise LensnetShapeError("std", std.shape, f"{tuple(residuals.shape)}, the shape of residuals")
    if not 0 < probability < 1:
        raise LensnetValueError(f"probability = {probability}: expected a number in (0, 1)")
    if z is None:
        z = math.sqrt(2) * torch.erfinv(torch.tensor(float(probability), dtype=torch.float64)).item()
    else:
        z = torch.as_tensor(z, dtype=std.dtype, device=std.device)
    return (residuals.abs() <= z * std).to(residuals.dtype).mean(0)


def to_paper_convention(params: torch.Tensor) -> torch.Tensor:
    """(N, 5) parameters in :data:`lensnet.PARAM_NAMES` order to the paper's (theta_E, eps_x, eps_y, x, y)."""
    _check_params("params", params)
    lens = LensParams.from_tensor(params)
    eps_x, eps_y = e1e2_to_paper(lens.e1, lens.e2)
    return torch.stack([lens.theta_E, eps_x, eps_y, lens.center_x, lens.center_y], dim=1)


def paper_residuals(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Residuals in the paper's convention, with the better sign of the true ellipticity per lens.

    Parameters
    ----------
    estimate, truth : Tensor, (N, 5)
        Parameters in :data:`lensnet.PARAM_NAMES` order.

    Returns
    -------
    Tensor, (N, 5)
        Columns :data:`PAPER_PARAM_NAMES`: estimate minus truth, where the ellipticity columns use
        whichever of (eps_x, eps_y) and (-eps_x, -eps_y) of the truth is nearer to the estimate. A network's
        estimate with \|e\| >= 1 (no axis ratio; it happens off the training distribution) counts as \|e\| just
        below 1 (q -> 0).
    """
    _check_params("truth", truth)
    _check_params("estimate", estimate)
    if estimate.shape != truth.shape:
        raise LensnetShapeError("estimate", estimate.shape, f"{tuple(truth.shape)}, the shape of truth")
    est, tru = to_paper_convention(_physical(estimate)), to_paper_convention(truth)
    same, flipped = est[:, _ELLIPTICITY] - tru[:, _ELLIPTICITY], est[:, _ELLIPTICITY] + tru[:, _ELLIPTICITY]
    flip = (flipped.pow(2).sum(1) < same.pow(2).sum(1))[:, None]
    residuals = est - tru
    residuals[:, _ELLIPTICITY] = torch.where(flip, flipped, same)
    return residuals


def _physical(params: torch.Tensor) -> torch.Tensor:
    """``params`` with \|e\| clamped below 1."""
    e = params[:, 1:3].norm(dim=1, keepdim=True)
    out = params.clone()
    out[:, 1:3] = params[:, 1:3] * (e.clamp(max=1 - 1e-6) / e.clamp_min(1e-30))
    return out


def compute_metrics(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, snr: torch.Tensor | None = None,
                    z95: torch.Tensor | None = None) -> dict:
    """Per-parameter metrics of estimates ``mean`` +- ``std`` of ``truth``, each (N, 5).

    Returns
    -------
    dict
        ``{"lensnet": {metric: {param: value}}, "paper": {...}}``; lensnet-convention metrics are
        err68, err68_abs, rms, std, bias (median residual), cover68, cover95 and prior_err68 (the
        constant predictor equal to the mean truth); paper-convention ones (:data:`PAPER_PARAM_NAMES`)
        are err68, err68_abs, rms, std, bias and prior_err68. ``theta_E_bins`` and, given ``snr`` (the
        arc peak's signal-to-noise, (N,)), ``snr_bins`` hold the coverage in bins (:data:`THETA_E_BINS`,
        :data:`SNR_BINS`). ``z95`` (K,) is the half-width of the 95% interval in sigma where a calibration
        sets it [Gaussian, 1.96].
    """
    if mean.shape != truth.shape or std.shape != truth.shape:
        raise LensnetShapeError("mean" if mean.shape != truth.shape else "std",
                                mean.shape if mean.shape != truth.shape else std.shape, f"{tuple(truth.shape)}")
    truth, mean, std = truth.double(), mean.double(), std.double()
    prior = truth.mean(0, keepdim=True).expand_as(truth)
    res, res_paper = mean - truth, paper_residuals(mean, truth)
    named = lambda names, values: {n: float(v) for n, v in zip(names, values.tolist())}  # noqa: E731
    out = {"lensnet": {}, "paper": {}}
    median = lambda r: r.median(0).values  # noqa: E731
    for key, fn in (("err68", error68), ("err68_abs", error68_abs), ("rms", rms), ("std", residual_std),
                    ("bias", median)):
        out["lensnet"][key] = named(PARAM_NAMES, fn(res))
        out["paper"][key] = named(PAPER_PARAM_NAMES, fn(res_paper))
    out["lensnet"]["cover68"] = named(PARAM_NAMES, coverage(res, std, 0.68))
    out["lensnet"]["cover95"] = named(PARAM_NAMES, coverage(res, std, 0.95, z95))
    out["lensnet"]["prior_err68"] = named(PARAM_NAMES, error68(prior - truth))
    out["paper"]["prior_err68"] = named(PAPER_PARAM_NAMES, error68(paper_residuals(prior, truth)))
    out["theta_E_bins"] = _coverage_bins(res, std, truth[:, PARAM_NAMES.index("theta_E")], THETA_E_BINS, z95)
    if snr is not None:
        out["snr_bins"] = _coverage_bins(res, std, torch.as_tensor(snr, dtype=torch.float64), SNR_BINS, z95)
    return out


def _coverage_bins(res: torch.Tensor, std: torch.Tensor, values: torch.Tensor, edges, z95=None) -> dict:
    """Coverage of the 68% and 95% intervals in bins of ``values`` (JSON: empty bins null) and the counts."""
    named = lambda values_: {n: (None if math.isnan(v) else float(v)) for n, v in zip(PARAM_NAMES, values_.tolist())}  # noqa: E731
    out = {"edges": list(edges), "count": binned_coverage(res, std, values, edges, 0.68)[1].tolist()}
    for key, p, z in (("cover68", 0.68, None), ("cover95", 0.95, z95)):
        out[key] = [named(c) for c in binned_coverage(res, std, values, edges, p, z)[0]]
    return out


def binned_coverage(residuals: torch.Tensor, std: torch.Tensor, values: torch.Tensor, edges, probability: float,
                    z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`coverage` in bins of ``values`` (N,): bin b holds edges[b] <= value < edges[b+1] (the last bin
    closed). Returns coverage (nbins, K), NaN for empty bins, and the lens count (nbins,)."""
    edges = torch.as_tensor(edges, dtype=torch.float64)
    index = torch.bucketize(values.double().contiguous(), edges, right=True) - 1
    index = torch.where(values.double() == edges[-1], len(edges) - 2, index)
    covers, counts = [], []
    for b in range(len(edges) - 1):
        inside = index == b
        counts.append(int(inside.sum()))
        covers.append(coverage(residuals[inside], std[inside], probability, z) if inside.any()
                      else torch.full((residuals.shape[1],), math.nan, dtype=residuals.dtype))
    return torch.stack(covers), torch.tensor(counts)


def _check_residuals(residuals: torch.Tensor) -> None:
    if residuals.ndim != 2 or residuals.shape[0] < 1:
        raise LensnetShapeError("residuals", residuals.shape, "(N, K) with N >= 1")
    if not residuals.is_floating_point():
        raise LensnetValueError(f"residuals must be floating point, got dtype {residuals.dtype}")


def _check_params(name: str, params: torch.Tensor) -> None:
    k = len(PARAM_NAMES)
    if params.ndim != 2 or params.shape[1] != k or params.shape[0] < 1:
        raise LensnetShapeError(name, params.shape, f"(N, {k}) with columns {PARAM_NAMES}")
    check_finite(name, params)
