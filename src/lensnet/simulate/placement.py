r"""Source placement where strong lensing occurs, and the acceptance cuts (Hezaveh et al. 2017, Methods).

Placement (Hezaveh et al. 2017, Methods; released code): half of the source centres are drawn uniformly in area inside the
tangential caustic *grown* by ``growth`` arcsec, half inside the radial cut *shrunk* by the
factor ``shrink``. Both SIE curves are star-shaped about the lens centre c (every ray from c
crosses them once; checked for 0.001 <= q <= 1 in ``tests/simulate/test_placement.py``), so the
two operations are defined in polar form about c: a curve r(omega) becomes

.. math::  r_\mathrm{caustic}(\omega) + \mathrm{growth} \qquad\text{and}\qquad
           \mathrm{shrink}\cdot r_\mathrm{cut}(\omega),

applied to each vertex of the polygons of :func:`lensnet.lensing.sie.sie_caustic` and
:func:`~lensnet.lensing.sie.sie_cut` (radial scaling keeps the vertex angles, so the results stay
star-shaped). The caustic of a round lens (q = 1) is a point with no direction of its own; it
grows into the disc of radius ``growth`` (a regular polygon of ``n_vertices`` sides). For q
below about 0.4 the cusps of the tangential caustic poke outside the cut ("naked cusps"): the two
regions are sampled independently and never assumed nested, so such sources (three images, no
counter-image) are drawn like any other. Geometry is computed in float64, as in float32 the
caustic of a nearly round lens is rounding noise.

Sampling is exact and needs no rejection: a star-shaped polygon is the union of the triangles
(c, v_k, v_k+1); a triangle is picked with probability proportional to its area and a point drawn
uniformly inside it (two uniforms, reflected when their sum exceeds 1).

Acceptance (the released code of Hezaveh et al. 2017): a lens is kept if at least 99% of its lensed flux falls inside the field
and its total magnification (lensed over unlensed flux) is at least 2; see :func:`acceptance`.
:func:`draw_accepted` first screens every candidate on a cheap wide, coarse render and renders at full
resolution only the candidates that can pass, so rejected lenses cost a quarter of a render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.lensing.base import LensProfile
from lensnet.lensing.grid import PixelGrid
from lensnet.lensing.sie import SIE, sie_caustic, sie_cut
from lensnet.simulate.config import PlacementConfig
from lensnet.simulate.prior import LensPrior
from lensnet.simulate.render import render, render_unlensed
from lensnet.sources.base import Source

__all__ = [
    "REGION_CAUSTIC",
    "REGION_CUT",
    "SourcePlacement",
    "placement_regions",
    "place_sources",
    "points_in_polygons",
    "Acceptance",
    "acceptance",
    "AcceptedLenses",
    "draw_accepted",
    "render_lenses",
]

#: Codes of the placement region of each source.
REGION_CAUSTIC, REGION_CUT = 0, 1
# A caustic whose vertices all lie this close (arcsec) to the lens centre is a point (q = 1 up to
# float64 rounding, ~1e-16 arcsec); a real caustic at q = 1 - 1e-8 still spans ~1e-9 theta_E.
_POINT_CAUSTIC = 1e-12


class SourcePlacement(NamedTuple):
    """Source centres of B lenses: ``x``, ``y`` (B,) arcsec, ``region`` (B,) int64
    (:data:`REGION_CAUSTIC` or :data:`REGION_CUT`)."""

    x: torch.Tensor
    y: torch.Tensor
    region: torch.Tensor


class Acceptance(NamedTuple):
    """Acceptance statistics of B lenses.

    Attributes
    ----------
    images : Tensor, (B, H, W)
        Lensed noiseless images on the field grid, flux per pixel.
    flux_fraction : Tensor, (B,)
        Fraction of the lensed flux inside the field.
    magnification : Tensor, (B,)
        Total lensed flux over unlensed flux.
    """

    images: torch.Tensor
    flux_fraction: torch.Tensor
    magnification: torch.Tensor

    def accepted(self, min_flux_fraction: float = 0.99, min_magnification: float = 2.0) -> torch.Tensor:
        """(B,) bool: the lenses passing both cuts [0.99 and 2, as in the released code of Hezaveh et al. 2017]."""
        return (self.flux_fraction >= min_flux_fraction) & (self.magnification >= min_magnification)


@dataclass(frozen=True)
class AcceptedLenses:
    """B lenses that passed the acceptance cuts, with their sources' placement and statistics.

    Attributes
    ----------
    params : LensParams
        SIE parameters, each (B,).
    source_x, source_y : Tensor, (B,), arcsec
        Source centres in the source plane.
    region : Tensor of int64, (B,)
        :data:`REGION_CAUSTIC` or :data:`REGION_CUT`.
    images : Tensor, (B, H, W)
        Lensed noiseless images, flux per pixel.
    flux_fraction, magnification : Tensor, (B,)
        As in :class:`Acceptance`.
    rounds : int
        Rounds of drawing it took.
    source_record : dict of (B,) tensors
        The accepted entries of the sources' ``record`` (e.g. the source type of a mixture).
    """

    params: LensParams
    source_x: torch.Tensor
    source_y: torch.Tensor
    region: torch.Tensor
    images: torch.Tensor
    flux_fraction: torch.Tensor
    magnification: torch.Tensor
    rounds: int
    source_record: dict = None


def placement_regions(params: LensParams, growth: float = 0.15, shrink: float = 0.7, n_vertices: int = 128):
    """Polygons of the grown tangential caustic and of the shrunk radial cut.

    Parameters
    ----------
    params : LensParams
        B lenses.
    growth : float
        Arcsec added to the caustic's distance from the lens centre, >= 0 [0.15].
    shrink : float
        Factor applied to the cut's distance from the lens centre, in (0, 1] [0.7].
    n_vertices : int
        Vertices per polygon, >= 8 [128; a multiple of 4 puts a vertex on every cusp].

    Returns
    -------
    caustic_x, caustic_y, cut_x, cut_y : Tensor, (B, n_vertices), arcsec
        Vertices in the source plane, in the dtype of ``params``.

    Raises
    ------
    LensnetRangeError
        If ``growth``, ``shrink`` or ``n_vertices`` is out of range.
    """
    dtype = params.theta_E.dtype
    return tuple(v.to(dtype) for v in _regions(params, growth, shrink, n_vertices))


def place_sources(params: LensParams, generator: torch.Generator, growth: float = 0.15, shrink: float = 0.7,
                  n_vertices: int = 128) -> SourcePlacement:
    """Source centres uniform in area inside the grown caustic (half) or the shrunk cut (half).

    Parameters
    ----------
    params : LensParams
        B lenses.
    generator : torch.Generator
        Source of randomness, on the parameters' device.
    growth, shrink, n_vertices
        As in :func:`placement_regions`.

    Returns
    -------
    SourcePlacement
        ``x``, ``y`` (B,) arcsec in the dtype of ``params``, ``region`` (B,) int64; each region is
        chosen with probability 1/2, independently per lens.

    Examples
    --------
    >>> import torch
    >>> from lensnet.simulate.prior import LensPrior
    >>> gen = torch.Generator().manual_seed(0)
    >>> x, y, region = place_sources(LensPrior().sample(3, gen), gen)
    >>> x.shape, region.dtype
    (torch.Size([3]), torch.int64)
    """
    kx, ky, ux, uy = _regions(params, growth, shrink, n_vertices)
    region = (torch.rand(params.batch_size, generator=generator, device=kx.device) < 0.5).long()
    use_cut = (region == REGION_CUT)[:, None]
    x, y = _sample_star_polygons(torch.where(use_cut, ux, kx), torch.where(use_cut, uy, ky),
                                 params.center_x.to(kx.dtype), params.center_y.to(kx.dtype), generator)
    dtype = params.theta_E.dtype
    return SourcePlacement(x.to(dtype), y.to(dtype), region)


def points_in_polygons(px: torch.Tensor, py: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor) -> torch.Tensor:
    """Even-odd (crossing-number) test of points against closed polygons, one polygon per lens.

    Parameters
    ----------
    px, py : Tensor, (B, M)
        Points.
    vx, vy : Tensor, (B, K)
        Polygon vertices in order; the last connects to the first.

    Returns
    -------
    Tensor of bool, (B, M)
        True inside.
    """
    x0, y0 = vx[:, None, :], vy[:, None, :]
    x1, y1 = torch.roll(vx, -1, dims=1)[:, None, :], torch.roll(vy, -1, dims=1)[:, None, :]
    px, py = px[:, :, None], py[:, :, None]
    straddles = (y0 > py) != (y1 > py)
    # Where y1 == y0 the edge never straddles; the guard only avoids a 0/0.
    x_cross = x0 + (py - y0) * (x1 - x0) / torch.where(y1 == y0, torch.ones_like(y1), y1 - y0)
    return ((straddles & (px < x_cross)).sum(-1) % 2) == 1


def acceptance(lens: LensProfile, source: Source, grid: PixelGrid, supersample: int = 2, *,
               source_center: tuple[torch.Tensor, torch.Tensor] | None = None) -> Acceptance:
    """Render B lenses and measure their flux fraction inside the field and total magnification.

    Parameters
    ----------
    lens : LensProfile
        B lenses.
    source : Source
        B sources.
    grid : PixelGrid
        The field.
    supersample : int
        Sub-pixels per pixel side of the field image, >= 1 [2].
    source_center : (Tensor, Tensor), optional
        Source centres (B,) arcsec, used only for sources without an analytic ``total_flux``: their
        unlensed flux is then rendered on the field grid re-centred on each source.

    Returns
    -------
    Acceptance
        Field images and the two statistics; ``.accepted(min_flux_fraction, min_magnification)``
        gives the (B,) bool of the lenses kept.

    Notes
    -----
    F_in is the flux of the field image. The flux outside, F_out, is measured on a grid twice as
    wide (n_pix pixels of twice the size, one ray per pixel); each wide pixel counts by its area
    outside the field, which is exact for any n_pix. Then flux_fraction = F_in / (F_in + F_out) and
    magnification = (F_in + F_out) / F_unlensed, with F_unlensed the source's analytic total flux.
    The coarse sampling touches only F_out, at most 1% of the total for a kept lens. Arcs beyond the
    wide grid (a field width from the centre) are missed.
    """
    wide = _WideScreen(lens, source, grid)
    images = render(lens, source, grid, supersample)
    flux_in = images.sum((1, 2))
    total = flux_in + wide.flux_out
    unlensed = _unlensed_flux(source, grid, supersample, source_center)
    tiny = torch.finfo(images.dtype).tiny
    return Acceptance(images, flux_in / total.clamp_min(tiny), total / unlensed.clamp_min(tiny))


class _WideScreen:
    """Flux outside the field and a coarse estimate of the total, from one wide render at 1 ray/pixel."""

    def __init__(self, lens: LensProfile | LensParams, source: Source, grid: PixelGrid):
        wide = PixelGrid(grid.n_pix, 2 * grid.pixel_scale)
        image = render_lenses(lens, source, wide, 1)
        outside = 1 - _field_overlap(grid, wide, image.device, image.dtype)
        self.flux_out = (image * outside).sum((1, 2))
        self.flux_total = image.sum((1, 2))


def render_lenses(lens: LensProfile | LensParams, source: Source, grid: PixelGrid, supersample: int,
                  threshold: float = 0.0) -> torch.Tensor:
    """:func:`~lensnet.simulate.render.render` for SIE parameters or a lens; a source with ``parts``
    (a list of (lens indices, source)) is rendered part by part, each with its own lenses, which avoids
    gathering every tile of the batch by source type."""
    if not isinstance(lens, LensParams):
        return render(lens, source, grid, supersample, threshold=threshold)
    parts = getattr(source, "parts", None)
    if parts is None:
        return render(SIE(lens), source, grid, supersample, threshold=threshold)
    table = lens.to_tensor()
    out = table.new_zeros(lens.batch_size, grid.n_pix, grid.n_pix)
    for idx, part in parts:
        if idx.numel():
            out[idx] = render(SIE(LensParams.from_tensor(table[idx])), part, grid, supersample, threshold=threshold)
    return out


def _unlensed_flux(source: Source, grid: PixelGrid, supersample: int, source_center=None) -> torch.Tensor:
    try:
        return source.total_flux()
    except NotImplementedError:
        if source_center is not None:
            source = _Recentred(source_center[0], source_center[1], source)
        return render_unlensed(source, grid, supersample).sum((1, 2))


def draw_accepted(batch_size: int, prior: LensPrior, make_source: Callable[..., Source], grid: PixelGrid,
                  generator: torch.Generator, *, supersample: int = 2, supersample_threshold: float = 0.0,
                  cuts: PlacementConfig | None = None,
                  dtype: torch.dtype = torch.float32) -> AcceptedLenses:
    """Draw lenses and sources until ``batch_size`` pass the acceptance cuts, redrawing only the rejected.

    Each round is fully batched over the lenses still pending: parameters from ``prior``, source
    centres from :func:`place_sources`, sources from ``make_source``. A wide coarse render screens out
    the candidates that cannot pass (coarse flux fraction below the cut minus 0.02, or coarse
    magnification below 0.8 of the cut); the others are rendered at full resolution and judged
    exactly as :func:`acceptance` does.

    Parameters
    ----------
    batch_size : int
        Number of lenses B, >= 1.
    prior : LensPrior
        Lens parameter prior.
    make_source : callable
        ``make_source(x, y, generator) -> Source``: n sources centred on (x, y), each (n,) arcsec. If
        the source has a ``record`` dict of (n,) tensors, the accepted entries are returned in
        :attr:`AcceptedLenses.source_record`.
    grid : PixelGrid
        The field.
    generator : torch.Generator
        Source of randomness; its device is where everything is drawn and rendered.
    supersample : int
        Sub-pixels per pixel side, >= 1 [2].
    supersample_threshold : float
        Adaptive supersampling of the full-resolution renders (:func:`~lensnet.simulate.render.render`'s
        ``threshold``) [0: every pixel].
    cuts : PlacementConfig, optional
        Caustic growth, cut shrink factor, the two thresholds and the maximum number of rounds
        [``PlacementConfig()``: the paper's 0.15", 0.7, 0.99, 2 and 50 rounds].
    dtype : torch.dtype
        Floating-point dtype of parameters and images [float32].

    Returns
    -------
    AcceptedLenses

    Raises
    ------
    LensnetRangeError
        If ``batch_size`` is not a positive integer.
    LensnetValueError
        If some lenses are still rejected after ``cuts.max_rounds`` rounds.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise LensnetRangeError("batch_size", batch_size, 1, None, "the number of lenses must be a positive integer")
    cuts = cuts if cuts is not None else PlacementConfig()
    device = generator.device
    n_pix = grid.n_pix
    params = torch.zeros(batch_size, 5, device=device, dtype=dtype)
    stats = torch.zeros(batch_size, 5, device=device, dtype=dtype)  # x, y, region, flux fraction, mu
    images = torch.zeros(batch_size, n_pix, n_pix, device=device, dtype=dtype)
    source_record: dict[str, torch.Tensor] = {}
    pending = torch.arange(batch_size, device=device)
    for rounds in range(1, cuts.max_rounds + 1):
        lens = prior.sample(pending.numel(), generator, device=device, dtype=dtype)
        x, y, region = place_sources(lens, generator, cuts.caustic_growth_arcsec, cuts.cut_shrink)
        source = make_source(x, y, generator)
        screen = _WideScreen(lens, source, grid)
        unlensed = _unlensed_flux(source, grid, supersample, (x, y)).clamp_min(torch.finfo(dtype).tiny)
        candidate = ((1 - screen.flux_out / screen.flux_total.clamp_min(torch.finfo(dtype).tiny)
                      >= cuts.min_flux_fraction - 0.02)
                     & (screen.flux_total / unlensed >= 0.8 * cuts.min_magnification)).nonzero().flatten()
        sub = LensParams.from_tensor(lens.to_tensor()[candidate])
        field = render_lenses(sub, source.take(candidate), grid, supersample, supersample_threshold)
        flux_in = field.sum((1, 2))
        total = flux_in + screen.flux_out[candidate]
        fraction, mu = flux_in / total.clamp_min(torch.finfo(dtype).tiny), total / unlensed[candidate]
        ok = (fraction >= cuts.min_flux_fraction) & (mu >= cuts.min_magnification)
        kept = candidate[ok]
        done = pending[kept]
        params[done] = lens.to_tensor()[kept]
        stats[done] = torch.stack([x[kept], y[kept], region[kept].to(dtype), fraction[ok], mu[ok]], 1)
        images[done] = field[ok]
        for key, value in getattr(source, "record", {}).items():
            source_record.setdefault(key, torch.zeros(batch_size, dtype=value.dtype, device=device))[done] = value[kept]
        remaining = torch.ones(pending.numel(), dtype=torch.bool, device=device)
        remaining[kept] = False
        pending = pending[remaining]
        if pending.numel() == 0:
            return AcceptedLenses(LensParams.from_tensor(params), stats[:, 0], stats[:, 1], stats[:, 2].long(),
                                  images, stats[:, 3], stats[:, 4], rounds, source_record)
    raise LensnetValueError(
        f"{pending.numel()} of {batch_size} lenses still failed the acceptance cuts (flux fraction >= "
        f"{cuts.min_flux_fraction}, magnification >= {cuts.min_magnification}) after {cuts.max_rounds} rounds; "
        "loosen the cuts, raise max_rounds or enlarge the field")


@dataclass(frozen=True)
class _Recentred(Source):
    """``source`` seen from its centre (dx, dy): brightness at (x, y) is the source's at (x + dx, y + dy)."""

    dx: torch.Tensor
    dy: torch.Tensor
    source: Source

    @property
    def batch_size(self) -> int:
        return self.dx.shape[0]

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # (B, 1, 1) broadcasts against shared (H, W) and per-lens (B, H, W) coordinates alike.
        return self.source.surface_brightness(x + self.dx[:, None, None], y + self.dy[:, None, None])


def _check_geometry(growth, shrink, n_vertices) -> None:
    if not (math.isfinite(growth) and growth >= 0):
        raise LensnetRangeError("growth", growth, 0, None, "the caustic growth is a distance in arcsec")
    if not 0 < shrink <= 1:
        raise LensnetRangeError("shrink", shrink, 0, 1, "the cut shrink factor must be in (0, 1]")
    if isinstance(n_vertices, bool) or int(n_vertices) != n_vertices or n_vertices < 8:
        raise LensnetRangeError("n_vertices", n_vertices, 8, None, "polygons need at least 8 vertices")


def _regions(params: LensParams, growth, shrink, n_vertices):
    """Grown caustic and shrunk cut polygons (B, K) in float64 (float32 on Apple's MPS, which has no float64)."""
    _check_geometry(growth, shrink, n_vertices)
    p = params.to(dtype=torch.float32 if params.theta_E.device.type == "mps" else torch.float64)
    kx, ky = _radial(*sie_caustic(p, n_vertices), p.center_x, p.center_y, growth=growth)
    ux, uy = _radial(*sie_cut(p, n_vertices), p.center_x, p.center_y, scale=shrink)
    return kx, ky, ux, uy


def _radial(vx, vy, cx, cy, growth=0.0, scale=1.0):
    """Move polygon vertices (B, K) along their rays from the centres (B,): r -> scale * r + growth.

    A polygon collapsed onto its centre (the caustic at q = 1) takes the directions of K evenly
    spaced angles, so it grows into a regular K-gon of radius ``growth``.
    """
    dx, dy = vx - cx[:, None], vy - cy[:, None]
    r = torch.sqrt(dx**2 + dy**2)
    point = r.amax(1, keepdim=True) <= _POINT_CAUSTIC
    k = vx.shape[1]
    angle = torch.arange(k, device=vx.device, dtype=vx.dtype) * (2 * math.pi / k)
    ux = torch.where(point, torch.cos(angle), dx / r.clamp_min(_POINT_CAUSTIC))
    uy = torch.where(point, torch.sin(angle), dy / r.clamp_min(_POINT_CAUSTIC))
    new_r = scale * torch.where(point, torch.zeros_like(r), r) + growth
    return cx[:, None] + new_r * ux, cy[:, None] + new_r * uy


def _sample_star_polygons(vx, vy, cx, cy, generator):
    """One point (B,) uniform in area in each polygon (B, K) star-shaped about its centre (B,)."""
    dx, dy = vx - cx[:, None], vy - cy[:, None]
    ex, ey = torch.roll(dx, -1, dims=1), torch.roll(dy, -1, dims=1)
    area = (dx * ey - dy * ex).abs()  # twice the area of triangle (c, v_k, v_k+1)
    # The floor keeps a zero-area region (a point caustic with growth 0) drawable: it returns c.
    k = torch.multinomial(area.clamp_min(torch.finfo(area.dtype).tiny), 1, generator=generator)
    u = torch.rand(vx.shape[0], 2, generator=generator, device=vx.device, dtype=vx.dtype)
    u = torch.where(u.sum(1, keepdim=True) > 1, 1 - u, u)  # reflect into the lower-left triangle
    a, b = u[:, 0], u[:, 1]
    x = cx + a * dx.gather(1, k)[:, 0] + b * ex.gather(1, k)[:, 0]
    y = cy + a * dy.gather(1, k)[:, 0] + b * ey.gather(1, k)[:, 0]
    return x, y


def _field_overlap(field: PixelGrid, wide: PixelGrid, device, dtype) -> torch.Tensor:
    """(n, n) fraction of the area of each pixel of ``wide`` inside ``field`` (both centred on 0)."""
    half, w = field.fov / 2, wide.pixel_scale
    centre = (torch.arange(wide.n_pix, device=device, dtype=dtype) - (wide.n_pix - 1) / 2) * w
    overlap = ((centre + w / 2).clamp(max=half) - (centre - w / 2).clamp(min=-half)).clamp(min=0) / w
    return overlap[:, None] * overlap[None, :]
