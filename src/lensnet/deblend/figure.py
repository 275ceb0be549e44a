"""The deblending figure, as the paper's Extended Data Fig. 2: the inputs, the separated images, the arcs left."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lensnet.plotting import new_figure, save_png

__all__ = ["deblend_figure"]


def deblend_figure(panels: Sequence[tuple[str, np.ndarray]], pixel_scale: float, output: str | Path,
                   title: str = "", mask: np.ndarray | None = None, residuals: Sequence[str] = (), *,
                   critical: np.ndarray | None = None, pixel_to_sky: np.ndarray | None = None, unit: str = ""
                   ) -> Path:
    """One panel per (label, image), arcsec axes centred on the image, each on its own 1-99.5% stretch with
    its colour bar (in ``unit``).

    ``mask`` (True where masked) is outlined in cyan on every panel. Panels whose label is in ``residuals``
    are drawn on a diverging colour map from -5 to 5 (a residual in units of sigma), as ``lensnet refine``'s
    figure of data, model and residual. A panel given as (label, image, extent) is drawn on its own axes
    (x0, x1, y0, y1) in arcsec, without the mask: a source plane. ``critical``, a map over the image's field
    (any resolution) of det A, the lens mapping's Jacobian, draws the critical curve (det A = 0) in white on the
    image-plane panels; ``pixel_to_sky``, the WCS's (2, 2) map from pixel offsets to (east, north), draws
    north and east arrows on the first panel.
    """
    fig = new_figure(3.6 * len(panels), 3.7, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (label, image, *own) in zip(axes, panels):
        h, w = image.shape
        extent = own[0] if own else (-w / 2 * pixel_scale, w / 2 * pixel_scale, -h / 2 * pixel_scale, h / 2 * pixel_scale)
        finite = image[np.isfinite(image)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        cmap = "magma"
        if label in residuals:
            lo, hi, cmap = -5.0, 5.0, "RdBu_r"
        shown = ax.imshow(image, origin="lower", extent=extent, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8, pad=0.02).set_label("sigma" if label in residuals else unit,
                                                                     fontsize=8)
        if mask is not None and mask.any() and not own:
            ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.6, origin="lower",
                       extent=extent)
        if critical is not None and not own and np.nanmin(critical) < 0 < np.nanmax(critical):
            ax.contour(critical, levels=[0.0], colors="white" if label not in residuals else "black",
                       linewidths=0.8, origin="lower", extent=extent)
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("x [arcsec]", fontsize=10)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("y [arcsec]", fontsize=10)
    if pixel_to_sky is not None:
        _compass(axes[0], np.asarray(pixel_to_sky, dtype=float))
    if title:
        fig.suptitle(title, fontsize=12)
    return save_png(fig, output)


def _compass(ax, pixel_to_sky: np.ndarray) -> None:
    """North and east arrows near the lower left corner of ``ax``: the pixel directions the WCS maps to them."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    size = 0.12 * (x1 - x0)
    base = (x0 + 0.2 * (x1 - x0), y0 + 0.2 * (y1 - y0))  # arrows of any direction stay inside
    inverse = np.linalg.inv(pixel_to_sky)
    for name, sky in (("N", (0.0, 1.0)), ("E", (1.0, 0.0))):
        d = inverse @ np.asarray(sky)
        d = d / np.hypot(*d) * size
        ax.annotate("", xy=(base[0] + d[0], base[1] + d[1]), xytext=base,
                    arrowprops=dict(arrowstyle="->", color="white", lw=1.2))
        ax.text(base[0] + 1.25 * d[0], base[1] + 1.25 * d[1], name, color="white", fontsize=9, ha="center",
                va="center")
