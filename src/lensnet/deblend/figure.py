"""The deblending figure, as the paper's Extended Data Fig. 2: the inputs, the separated images, the arcs left."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lensnet.plotting import new_figure, save_png

__all__ = ["deblend_figure"]


def deblend_figure(panels: Sequence[tuple[str, np.ndarray]], pixel_scale: float, output: str | Path,
                   title: str = "", mask: np.ndarray | None = None, residuals: Sequence[str] = ()) -> Path:
    """One panel per (label, image), arcsec axes centred on the image, each on its own 1-99.5% stretch.

    ``mask`` (True where masked) is outlined in cyan on every panel. Panels whose label is in ``residuals``
    are drawn on a diverging colour map from -5 to 5 (a residual in units of sigma), as ``lensnet refine``'s
    figure of data, model and residual. A panel given as (label, image, extent) is drawn on its own axes
    (x0, x1, y0, y1) in arcsec, without the mask: a source plane.
    """
    fig = new_figure(3.3 * len(panels), 3.7, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (label, image, *own) in zip(axes, panels):
        h, w = image.shape
        extent = own[0] if own else (-w / 2 * pixel_scale, w / 2 * pixel_scale, -h / 2 * pixel_scale, h / 2 * pixel_scale)
        finite = image[np.isfinite(image)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        cmap = "magma"
        if label in residuals:
            lo, hi, cmap = -5.0, 5.0, "RdBu_r"
        ax.imshow(image, origin="lower", extent=extent, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if mask is not None and mask.any() and not own:
            ax.contour(mask.astype(float), levels=[0.5], colors="cyan", linewidths=0.6, origin="lower",
                       extent=extent)
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("x [arcsec]", fontsize=10)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("y [arcsec]", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    return save_png(fig, output)
