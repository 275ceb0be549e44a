"""Figures: every lensnet plot is a :class:`matplotlib.figure.Figure` written atomically to PNG.

Figures are built on ``Figure`` directly, never through ``pyplot``: a library call must not change
the backend or the open figures of a notebook or script that uses lensnet. :func:`new_figure` and
:func:`save_png` are what the demo, the gallery and the evaluation share; :func:`plot_estimates`
draws estimates against truth as the paper's Fig. 1 (Hezaveh et al. 2017).

Text sizes are chosen for the saved PNG at :data:`DPI`: labels of at least 10 points, ticks and
legends of at least 8, which stay readable when the figure is shown at its pixel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetShapeError
from lensnet.io.atomic import atomic_output

__all__ = ["DPI", "MIN_LENSES_PER_BAND_BIN", "binned_quantiles", "new_figure", "plot_calibration", "plot_estimates",
           "save_png"]

#: Resolution of every saved figure.
DPI = 120
#: Fewest lenses per bin of the true value for the 68% and 95% bands of :func:`plot_estimates`: with
#: fewer, their 2.5th and 97.5th percentiles are not measured but extrapolated.
MIN_LENSES_PER_BAND_BIN = 40
#: Lenses up to which :func:`plot_estimates` draws each one's 1-sigma bar.
MAX_ERROR_BARS = 200


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A figure of ``width`` x ``height`` inches, detached from pyplot (``kwargs`` go to ``Figure``)."""
    return Figure(figsize=(width, height), **kwargs)


def save_png(fig: Figure, output: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to the PNG ``output`` atomically (replacing it) and return the path."""
    with atomic_output(output, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(output)


def plot_estimates(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, output: str | Path,
                   title: str = "") -> Path:
    """Estimates against truth per parameter, like Fig. 1 of Hezaveh et al. 2017.

    Each panel shows the lenses as points (with their predicted 1-sigma bars when there are at most
    :data:`MAX_ERROR_BARS`), the y = x line and, when every bin of the true value holds at least
    :data:`MIN_LENSES_PER_BAND_BIN` lenses, the 68% and 95% intervals of the estimates in those bins
    as shaded bands over the range of the bins' medians.

    Parameters
    ----------
    truth, mean, std : Tensor, (N, 5)
        True parameters, estimates and predicted 1-sigma uncertainties (:data:`lensnet.PARAM_NAMES`).
    output : str or Path
        PNG to write (replaced if it exists).
    title : str
        Figure title [none].

    Returns
    -------
    Path
        The PNG written.
    """
    k = len(PARAM_NAMES)
    if mean.shape != truth.shape or std.shape != truth.shape or truth.ndim != 2 or truth.shape[1] != k:
        raise LensnetShapeError("truth/mean/std", truth.shape, f"three (N, {k}) tensors of one shape")
    t, m, s = (x.detach().double().cpu().numpy() for x in (truth, mean, std))
    n = t.shape[0]
    bins = min(20, n // MIN_LENSES_PER_BAND_BIN)
    fig = new_figure(3.6 * k, 4.2, layout="constrained")
    axes = fig.subplots(1, k)
    for j, (ax, name, unit) in enumerate(zip(axes, PARAM_NAMES, PARAM_UNITS)):
        lo, hi = float(min(t[:, j].min(), m[:, j].min())), float(max(t[:, j].max(), m[:, j].max()))
        pad = 0.05 * (hi - lo or 1.0)
        if bins >= 2:
            centres, bands = binned_quantiles(t[:, j], m[:, j], bins)
            ax.fill_between(centres, bands[0], bands[3], color="tab:blue", alpha=0.2, lw=0, label="95% of estimates")
            ax.fill_between(centres, bands[1], bands[2], color="tab:blue", alpha=0.4, lw=0, label="68% of estimates")
        if n <= MAX_ERROR_BARS and np.isfinite(s[:, j]).all():
            ax.errorbar(t[:, j], m[:, j], yerr=s[:, j], fmt="none", ecolor="0.55", elinewidth=0.7, alpha=0.7,
                        label="predicted 1σ")
        ax.plot(t[:, j], m[:, j], ".", color="0.25", ms=2.5 if n > MAX_ERROR_BARS else 4, label="test lenses")
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="tab:red", lw=1, label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        label = f"{name} [{unit}]" if unit else name
        ax.set_xlabel(f"true {label}", fontsize=11)
        ax.set_ylabel(f"estimated {label}", fontsize=11)
        ax.tick_params(labelsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=12)
    return save_png(fig, output)


def binned_quantiles(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of ``bins`` equal-count bins of ``x`` and the 2.5, 16, 84 and 97.5 percentiles of ``y``
    in each, shape (4, bins): the bands of :func:`plot_estimates`, drawn between the bins' medians."""
    groups = [g for g in np.array_split(np.argsort(x), max(1, min(bins, len(x)))) if len(g)]
    centres = np.array([np.median(x[g]) for g in groups])
    return centres, np.array([np.percentile(y[g], [2.5, 16, 84, 97.5]) for g in groups]).T


def plot_calibration(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, output: str | Path,
                     title: str = "") -> Path:
    """Calibration curve: the empirical coverage of the central intervals mean +- z(p) sigma against their
    nominal probability p, one line per parameter, and the diagonal a calibrated model follows."""
    nominal = np.linspace(0.05, 0.99, 40)
    z = ((mean - truth) / std).abs().detach().double().cpu().numpy()
    limits = np.sqrt(2) * torch.erfinv(torch.tensor(nominal)).numpy()
    fig = new_figure(5.2, 5.0, layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "--", color="0.4", lw=1, label="calibrated")
    for j, name in enumerate(PARAM_NAMES):
        ax.plot(nominal, (z[:, j, None] <= limits).mean(0), lw=1.5, label=name)
    ax.set_xlabel("nominal probability of the central interval", fontsize=11)
    ax.set_ylabel("fraction of test lenses inside", fontsize=11)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title, fontsize=11)
    return save_png(fig, output)
