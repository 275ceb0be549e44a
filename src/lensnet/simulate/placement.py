"""Source placement where strong lensing occurs, and the acceptance cuts (REFERENCE.md).

Half of the sources are drawn uniformly in area inside the tangential caustic *grown* by
``growth`` arcsec, half inside the radial cut *shrunk* by the factor ``shrink``. Both curves are
star-shaped about the lens centre, so "grown" and "shrunk" are defined in polar form about it:
a vertex at distance r moves to r + growth, or to shrink * r. Sampling is batched rejection
sampling: M candidates per lens in the bounding box of its polygon, the first candidate inside (by
the even-odd crossing test) is kept; with M = 64 and polygons filling at least ~30% of their box,
a miss has probability below 1e-9, and then the lens centre (always inside) is used.

A lens is kept if at least ``min_flux_fraction`` of its lensed flux falls inside the field and its
total magnification (lensed over unlensed flux) is at least ``min_magnification``.
"""

from __future__ import annotations

import torch

from lensnet.conventions import LensParams
from lensnet.lensing.grid import PixelGrid
from lensnet.lensing.sie import SIE, sie_caustic, sie_cut
from lensnet.simulate.render import render, render_unlensed

__all__ = ["place_sources", "points_in_polygons", "acceptance", "REGION_CAUSTIC", "REGION_CUT"]

REGION_CAUSTIC, REGION_CUT = 0, 1


def points_in_polygons(px: torch.Tensor, py: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor) -> torch.Tensor:
    """Even-odd test of points (B, M) against closed polygons with vertices (B, K); returns (B, M) bool."""
    x0, y0 = vx[:, None, :], vy[:, None, :]
    x1, y1 = torch.roll(vx, -1, dims=1)[:, None, :], torch.roll(vy, -1, dims=1)[:, None, :]
    px, py = px[:, :, None], py[:, :, None]
    straddles = (y0 > py) != (y1 > py)
    x_cross = x0 + (py - y0) * (x1 - x0) / torch.where(y1 == y0, torch.ones_like(y1), y1 - y0)
    return ((straddles & (px < x_cross)).sum(-1) % 2) == 1


def _radial(vx, vy, cx, cy, growth=0.0, scale=1.0):
    dx, dy = vx - cx[:, None], vy - cy[:, None]
    r = torch.sqrt(dx**2 + dy**2).clamp_min(1e-12)
    factor = scale * (r + growth) / r
    return cx[:, None] + dx * factor, cy[:, None] + dy * factor


def place_sources(params: LensParams, generator: torch.Generator, growth: float = 0.15, shrink: float = 0.7,
                  n_vertices: int = 128, n_candidates: int = 64):
    """Source centres inside the grown caustic or the shrunk cut, half each.

    Parameters
    ----------
    params : LensParams
        B lenses.
    generator : torch.Generator
        On the parameters' device.
    growth : float
        Arcsec added to the tangential caustic's distance from the lens centre [0.15].
    shrink : float
        Factor applied to the radial cut about the lens centre [0.7].

    Returns
    -------
    x, y : Tensor, (B,), arcsec
        Source centres.
    region : Tensor of int64, (B,)
        :data:`REGION_CAUSTIC` or :data:`REGION_CUT`.
    """
    b, dev, dt = params.batch_size, params.theta_E.device, params.theta_E.dtype
    cx, cy = params.center_x, params.center_y
    kx, ky = _radial(*sie_caustic(params, n_vertices), cx, cy, growth=growth)
    ux, uy = _radial(*sie_cut(params, n_vertices), cx, cy, scale=shrink)
    region = (torch.rand(b, generator=generator, device=dev) < 0.5).long()
    use_cut = (region == REGION_CUT)[:, None]
    vx, vy = torch.where(use_cut, ux, kx), torch.where(use_cut, uy, ky)
    lo_x, hi_x = vx.amin(1, keepdim=True), vx.amax(1, keepdim=True)
    lo_y, hi_y = vy.amin(1, keepdim=True), vy.amax(1, keepdim=True)
    u = torch.rand(b, n_candidates, 2, generator=generator, device=dev, dtype=dt)
    px, py = lo_x + (hi_x - lo_x) * u[..., 0], lo_y + (hi_y - lo_y) * u[..., 1]
    inside = points_in_polygons(px, py, vx, vy)
    first = torch.argmax(inside.int(), dim=1)  # index of the first candidate inside (0 if none)
    found = inside.any(1)
    x = torch.where(found, px.gather(1, first[:, None])[:, 0], cx)
    y = torch.where(found, py.gather(1, first[:, None])[:, 0], cy)
    return x, y, region


def acceptance(lens: SIE, source, grid: PixelGrid, supersample: int = 2):
    """Render the lenses and measure the acceptance statistics.

    The field image is rendered at full resolution (it is the simulator's noiseless image); the flux
    outside the field is measured on a grid twice as wide at twice the pixel size, and the unlensed
    flux on the field grid.

    Returns
    -------
    images : Tensor, (B, H, W)
        Lensed noiseless images on ``grid``, flux per pixel.
    flux_fraction : Tensor, (B,)
        Fraction of the lensed flux inside the field.
    magnification : Tensor, (B,)
        Total lensed flux over unlensed flux.
    """
    images = render(lens, source, grid, supersample)
    wide = PixelGrid(grid.n_pix, 2 * grid.pixel_scale)
    wide_image = render(lens, source, wide, 1)
    quarter = grid.n_pix // 4
    inner = wide_image[:, quarter:grid.n_pix - quarter, quarter:grid.n_pix - quarter].sum((1, 2))
    total_wide = wide_image.sum((1, 2)).clamp_min(torch.finfo(images.dtype).tiny)
    flux_fraction = (inner / total_wide).clamp(max=1.0)
    unlensed = render_unlensed(source, grid, supersample).sum((1, 2)).clamp_min(torch.finfo(images.dtype).tiny)
    magnification = images.sum((1, 2)) / flux_fraction.clamp_min(1e-6) / unlensed
    return images, flux_fraction, magnification
