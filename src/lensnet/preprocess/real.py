"""Real images on a model's grid: FITS in, a background-subtracted cutout of the model's size and pixel scale out.

A network sees ``n_pix`` x ``n_pix`` pixels of ``pixel_scale`` arcsec (the card's ``input``). A real
image has its own pixel scale, size and centre, a sky background, noise, bad pixels and cosmic rays.
:func:`prepare_image` brings it to the model's grid, in this order:

1. **cutout** around ``center`` (pixels) or ``sky_center`` (needs a celestial WCS), default the image
   centre (astropy's :class:`~astropy.nddata.Cutout2D`, padded with NaN where it leaves the image);
2. **background and noise**: sigma-clipped median and standard deviation
   (:func:`astropy.stats.sigma_clipped_stats`) of the valid pixels away from the centre, where the lens is;
   the background subtracted;
3. **masks**: NaN or infinite pixels, a user mask, and optionally cosmic rays found by L.A.Cosmic
   (:func:`astroscrappy.detect_cosmics`) and objects that are not part of the lens system
   (:mod:`lensnet.preprocess.neighbours`), set to 0 and masked, as the networks were trained; invalid
   pixels connected to the image's edge count as outside the image instead (step 5);
4. **resampling** to the model's pixel scale, flux-conserving: the anti-aliased adaptive resampling of
   DeForest (2004) (:func:`reproject.reproject_adaptive` with ``conserve_flux``) between two linear
   grids sharing the image's axes; skipped when the scales agree to 1e-6 and the centre is on a pixel.
   Its kernel is reproject's Gaussian where the input is finer than the model's grid (the anti-aliasing
   a reduction needs) and DeForest's Hann window where it is as coarse or coarser (an enlargement has no
   aliasing to suppress, and the Hann window keeps arcs sharper at under half the cost);
5. **noise matching**: noise correlated between pixels (drizzling, resampling, PSF matching) is brought to the
   nearest spectrum the networks were trained on by adding noise of the complementary spectrum
   (:mod:`lensnet.preprocess.whiten`; seeded, reproducible; nothing is added to noise already like the training's);
6. **padding**: where the field extends past the image, pixels are filled with Gaussian noise of the
   measured (or matched) rms and spectrum (seeded, reproducible), so the network sees the noise it was trained on.

Axes stay those of the input image: x along columns, y along rows, FITS row order, offsets relative to the
requested centre (:mod:`lensnet.conventions`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import astroscrappy
import numpy as np
import torch
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales
from reproject import reproject_adaptive
from scipy.ndimage import label, median_filter

from lensnet.conventions import position_angle
from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.io.fits import pixel_scale_from_header, read_image_hdu
from lensnet.preprocess.neighbours import neighbour_mask
from lensnet.preprocess.whiten import NoiseMatch, match_noise

__all__ = ["COMBINED_EXPOSURE_RATIO", "MIN_FIELD_COVERAGE", "SKY_RADIUS", "ModelGrid", "PreparedImage", "cosmic_ray_mask", "holds_cosmic_rays",
           "pixel_to_sky", "prepare_image", "read_fits_image", "sky_stats"]

#: Smallest fraction of the model's field side that an image must cover after resampling: less would be
#: mostly padding, far from the images the network was trained on.
MIN_FIELD_COVERAGE = 0.5
#: Radius of the central disc, as a fraction of the side, outside which pixels measure the sky.
SKY_RADIUS = 0.35


@dataclass(frozen=True)
class ModelGrid:
    """The pixel grid a model takes: ``n_pix`` x ``n_pix`` pixels of ``pixel_scale`` arcsec."""

    n_pix: int
    pixel_scale: float

    @classmethod
    def from_card(cls, card: dict) -> "ModelGrid":
        """The grid of a model card's ``input`` (``image_shape`` (C, H, W), ``pixel_scale_arcsec``)."""
        inp = card.get("input") or {}
        shape, scale = inp.get("image_shape"), inp.get("pixel_scale_arcsec")
        if not shape or not scale or shape[1] != shape[2]:
            raise LensnetValueError(f"the model card of {card.get('name', '?')!r} records no square input grid "
                                    "(input.image_shape and input.pixel_scale_arcsec)")
        return cls(int(shape[1]), float(scale))


@dataclass
class PreparedImage:
    """A real image on a model's grid, and how it got there.

    Attributes
    ----------
    image : ndarray, (n_pix, n_pix), float32
        Background-subtracted, resampled, padded; masked pixels 0.
    mask : ndarray of bool, (n_pix, n_pix)
        True where a pixel is masked (bad, user-masked or a cosmic ray).
    background, noise_rms : float
        Sigma-clipped median and standard deviation of the input cutout, in the input's unit per input pixel.
    pixel_scale_in : float
        The input's arcsec/pixel.
    center_pixel : (float, float)
        The requested centre (x, y) in 0-based input pixels; estimates are offsets from it.
    coverage : float
        Fraction of the model's field side covered by the image.
    wcs : astropy.wcs.WCS or None
        The input's celestial WCS, to put estimated centres on the sky.
    grid_noise_rms : float
        The noise rms per pixel on the model's grid (resampling averages the input's), the unit of ``image``.
    n_neighbours : int
        Objects masked as not part of the lens system (:mod:`lensnet.preprocess.neighbours`).
    noise_correlation : float
        Adjacent-pixel correlation of the noise on the model's grid before matching (NaN: not measured).
    noise_match : str
        The training spectrum the noise was brought to by added noise (``'white'``, ``'coloured'``), or ``''``.
    """

    image: np.ndarray
    mask: np.ndarray
    background: float
    noise_rms: float
    pixel_scale_in: float
    center_pixel: tuple[float, float]
    coverage: float
    wcs: WCS | None = None
    grid_noise_rms: float = math.nan
    n_neighbours: int = 0
    noise_correlation: float = math.nan
    noise_match: str = ""

    def sky_position(self, dx_arcsec: float, dy_arcsec: float):
        """RA, Dec (degrees) of the point (dx, dy) arcsec from the centre along the image axes, or None."""
        if self.wcs is None:
            return None
        x = self.center_pixel[0] + dx_arcsec / self.pixel_scale_in
        y = self.center_pixel[1] + dy_arcsec / self.pixel_scale_in
        sky = self.wcs.pixel_to_world(x, y)
        return float(sky.ra.deg), float(sky.dec.deg)

    def position_angle(self, phi_deg: float) -> float:
        """Position angle east of north (degrees, 0-180) of an axis at ``phi_deg`` counter-clockwise from the
        image's +x (:func:`lensnet.conventions.position_angle`), or NaN without a WCS."""
        if self.wcs is None or not math.isfinite(phi_deg):
            return math.nan
        return float(position_angle(torch.tensor(math.radians(phi_deg), dtype=torch.float64),
                                    torch.from_numpy(pixel_to_sky(self.wcs))))


def pixel_to_sky(wcs: WCS | None) -> np.ndarray | None:
    """The (2, 2) map from pixel offsets (x, y) to offsets (east, north) on the sky, degrees per pixel, of a
    celestial WCS (its CD matrix, or PC times CDELT, longitude first), or None without one."""
    if wcs is None:
        return None
    matrix = wcs.celestial.pixel_scale_matrix
    return np.ascontiguousarray(matrix[::-1] if wcs.celestial.wcs.lng == 1 else matrix)


def read_fits_image(path: str | Path, hdu: int | str | None = 0) -> tuple[np.ndarray, fits.Header, str]:
    """A 2-D image, its header and a "file[hdu]" label; errors name the file (truncated, no image, a cube)."""
    data, header, where = read_image_hdu(path, hdu)
    if data.ndim != 2:
        raise LensnetShapeError(f"image in {where}", data.shape, "(H, W), a 2-D image (select a plane or HDU)")
    return data, header, where


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The header's celestial WCS, or None when it has none."""
    if not any(str(header.get(f"CTYPE{i}", "")).strip() for i in (1, 2)):
        return None  # no WCS keywords: skip building one (milliseconds per file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except (ValueError, KeyError, MemoryError):
            return None
    return wcs if wcs.has_celestial else None


def header_pixel_scale(header: fits.Header, where: str, wcs: WCS | None = None) -> float:
    """arcsec/pixel from the celestial WCS (``proj_plane_pixel_scales``; ``wcs`` if already built), else a
    pixel-scale keyword.

    Raises
    ------
    LensnetIOError
        If the header says nothing about the pixel scale (the message names the keywords looked for).
    """
    wcs = wcs if wcs is not None else celestial_wcs(header)
    if wcs is not None:
        scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0
        if abs(scales[0] - scales[1]) > 0.01 * scales.mean():
            raise LensnetValueError(f"{where} has non-square pixels ({scales[0]:.4g}\" x {scales[1]:.4g}\"): "
                                    "resample it to square pixels first")
        return float(scales.mean())
    return pixel_scale_from_header(header, where)


def prepare_image(data: np.ndarray, grid: ModelGrid, pixel_scale: float, *, center: tuple[float, float] | None = None,
                  sky_center=None, wcs: WCS | None = None, mask: np.ndarray | None = None,
                  cosmic_rays: bool = False, neighbours: bool = False, match_noise_spectrum: bool = True, seed: int = 0,
                  where: str = "image") -> PreparedImage:
    """Bring a real image to a model's grid (see the module docstring).

    Parameters
    ----------
    data : ndarray, (H, W)
        The image in FITS row order, any flux unit per pixel.
    grid : ModelGrid
        The model's grid.
    pixel_scale : float
        arcsec/pixel of ``data``.
    center : (float, float), optional
        Centre (x, y) of the cutout in 0-based pixels [the image centre].
    sky_center : astropy.coordinates.SkyCoord, optional
        Centre on the sky instead; needs ``wcs``.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of ``data`` (for ``sky_center`` and for sky positions of the estimates).
    mask : ndarray of bool, (H, W), optional
        True where a pixel must be ignored.
    cosmic_rays : bool
        Also mask cosmic rays found by L.A.Cosmic [False].
    neighbours : bool
        Also mask the objects that are not part of the lens system: companions, stars, foreground galaxies
        (:func:`~lensnet.preprocess.neighbours.neighbour_mask`) [False].
    match_noise_spectrum : bool
        Bring correlated noise to a spectrum of the training's (:func:`~lensnet.preprocess.whiten.match_noise`)
        [True].
    seed : int
        Seed of the noise that pads the field and of the noise added to match the spectrum [0].
    where : str
        Name of the input in error messages.

    Raises
    ------
    LensnetShapeError
        If ``data`` or ``mask`` has the wrong shape.
    LensnetValueError
        If the pixel scale is not positive, the image holds no valid pixel or is constant, the centre is off the image,
        or the image covers less than :data:`MIN_FIELD_COVERAGE` of the model's field.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise LensnetShapeError(where, data.shape, "(H, W), a 2-D image")
    if not (math.isfinite(pixel_scale) and pixel_scale > 0):
        raise LensnetValueError(f"{where}: pixel scale {pixel_scale!r} must be a positive number of arcsec/pixel")
    if mask is not None and np.shape(mask) != data.shape:
        raise LensnetShapeError(f"mask of {where}", np.shape(mask), f"{data.shape}, the image's shape")
    bad = ~np.isfinite(data) | (np.zeros(data.shape, bool) if mask is None else np.asarray(mask, bool))
    if bad.all():
        raise LensnetValueError(f"{where} holds no valid pixel (all NaN or masked)")
    valid_values = data[~bad]
    if valid_values.min() == valid_values.max():
        raise LensnetValueError(f"{where} holds no signal: every valid pixel is {valid_values[0]:g}")
    if sky_center is not None:
        if wcs is None:
            raise LensnetValueError(f"{where}: a sky centre needs a celestial WCS in the header")
        center = tuple(float(v) for v in wcs.world_to_pixel(sky_center))
    h, w = data.shape
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if center is None else (float(center[0]), float(center[1]))
    if not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
        raise LensnetValueError(f"{where}: the centre ({cx:.1f}, {cy:.1f}) is off the {w}x{h}-pixel image")
    # The input pixels that the model's field (plus a margin for the resampling kernel) covers.
    side = int(math.ceil(grid.n_pix * grid.pixel_scale / pixel_scale)) + 4
    filled = np.where(bad, np.nan, data)
    try:
        cutout = Cutout2D(filled, (cx, cy), (side, side), mode="partial", fill_value=np.nan, copy=True)
    except NoOverlapError:
        raise LensnetValueError(f"{where}: the cutout around ({cx:.1f}, {cy:.1f}) does not overlap the image") from None
    # Invalid pixels connected to the image's edge (the zeroed corners of a circular cutout, say) lie outside
    # the data: they are padded with noise like the field beyond the image. Invalid pixels inside are masked.
    beyond = np.zeros(data.shape, bool)
    if bad.any():
        labels, _ = label(bad)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        beyond = np.isin(labels, edge[edge > 0])
    inside = Cutout2D(np.where(beyond, 0.0, 1.0), (cx, cy), (side, side), mode="partial", fill_value=0.0).data > 0
    valid = np.isfinite(cutout.data)
    if cosmic_rays:
        valid &= ~cosmic_ray_mask(cutout.data, valid)
    # Offset of the requested centre from the centre of the cutout array (Cutout2D rounds to whole pixels;
    # in 'partial' mode its origin_original is where the overlap starts, origin_cutout where it lands).
    ox = cx - cutout.origin_original[0] + cutout.origin_cutout[0] - (side - 1) / 2
    oy = cy - cutout.origin_original[1] + cutout.origin_cutout[1] - (side - 1) / 2
    n_neighbours = 0
    if neighbours:
        near, n_neighbours = neighbour_mask(cutout.data, valid, ((side - 1) / 2 + ox, (side - 1) / 2 + oy),
                                            pixel_scale)
        valid &= ~near
    background, noise = sky_stats(cutout.data, valid)
    image = np.where(valid, cutout.data - background, 0.0)
    image, masked, outside = _to_grid(image, ~valid & inside, ~inside, (ox, oy), pixel_scale, grid)
    covered = (~outside).any(axis=0).sum() / grid.n_pix, (~outside).any(axis=1).sum() / grid.n_pix
    coverage = float(min(covered))
    if coverage < MIN_FIELD_COVERAGE:
        raise LensnetValueError(
            f"{where}: the image covers only {coverage:.0%} of the model's {grid.n_pix * grid.pixel_scale:.2f}\" "
            f"field after resampling to {grid.pixel_scale}\"/pixel; at least {MIN_FIELD_COVERAGE:.0%} is needed")
    resampled = abs(pixel_scale / grid.pixel_scale - 1) >= 1e-6
    # Resampling averages (and correlates) the noise: measure it again on the model's grid.
    rms_out = (_clipped_std(image[~outside & ~masked]) if resampled else noise) if noise > 0 else 0.0
    matched = NoiseMatch(None, None, rms_out, math.nan, "")
    if match_noise_spectrum:
        n = grid.n_pix
        off_lens = np.hypot(*np.mgrid[:n, :n] - (n - 1) / 2) > SKY_RADIUS * n
        matched = match_noise(image, ~outside & ~masked & off_lens, np.random.default_rng((seed, 1)))
    if matched.added is not None:
        image, pad, rms_out = image + matched.added, matched.pad, matched.rms
    else:
        pad = np.random.default_rng(seed).normal(0.0, rms_out, image.shape)
    image = np.where(outside, pad, np.where(masked, 0.0, image)).astype(np.float32)
    return PreparedImage(image, masked, float(background), float(noise), float(pixel_scale), (cx, cy), coverage,
                         wcs, float(rms_out), n_neighbours, matched.correlation, matched.target)


def _to_grid(image, bad, outside, offset, pixel_scale, grid: ModelGrid):
    """``image`` (a square cutout) and its masks on the model's grid, centred on the cutout centre + offset."""
    n, side = grid.n_pix, image.shape[0]
    if abs(pixel_scale / grid.pixel_scale - 1) < 1e-6 and offset == (0.0, 0.0):
        lo = (side - n) // 2
        sl = (slice(lo, lo + n), slice(lo, lo + n))
        return image[sl], bad[sl], outside[sl]
    out_wcs = _tangent_plane(n, grid.pixel_scale, ((n + 1) / 2, (n + 1) / 2))
    area = (grid.pixel_scale / pixel_scale) ** 2  # input pixels per output pixel: a full one resamples to this
    # The input grid, shifted so that the requested centre lands on the output's centre.
    in_wcs = _tangent_plane(side, pixel_scale, ((side + 1) / 2 + offset[0], (side + 1) / 2 + offset[1]))
    kernel = "hann" if pixel_scale >= grid.pixel_scale else "gaussian"

    def resample(layer: np.ndarray) -> np.ndarray:
        # Linear grids map one-to-one: the round trip that guards celestial projections is not needed.
        out = reproject_adaptive((layer, in_wcs), out_wcs, shape_out=(n, n), conserve_flux=True, kernel=kernel,
                                 roundtrip_coords=False, return_footprint=False, boundary_mode="constant",
                                 boundary_fill_value=0.0)
        return np.nan_to_num(out, nan=0.0)

    # The masks are resampled only when they mark something (most images have neither).
    masked = resample(bad.astype(float)) > 0.25 * area if bad.any() else np.zeros((n, n), bool)
    beyond = resample(outside.astype(float)) > 0.5 * area if outside.any() else np.zeros((n, n), bool)
    return resample(image), masked, beyond


def _tangent_plane(n: int, scale_arcsec: float, crpix: tuple[float, float]) -> WCS:
    """A linear grid in arcsec offsets along the image's axes, pixel ``crpix`` (1-based) at 0: resampling
    between two of them is pure rescaling and shifting, with none of a celestial frame's conversions."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["OFFSET1", "OFFSET2"]
    w.wcs.cunit = ["arcsec", "arcsec"]
    w.wcs.crval = [0.0, 0.0]
    w.wcs.cdelt = [scale_arcsec, scale_arcsec]
    w.wcs.crpix = list(crpix)
    w.array_shape = (n, n)
    return w


def sky_stats(data: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Sigma-clipped median and standard deviation of the sky: the valid pixels outside the central disc of
    radius :data:`SKY_RADIUS` of the cutout's side (where the lens and its arcs are), or all valid pixels where too
    few are left."""
    n = data.shape[0]
    y, x = np.mgrid[:n, :n]
    outer = valid & ((x - (n - 1) / 2) ** 2 + (y - (n - 1) / 2) ** 2 > (SKY_RADIUS * n) ** 2)
    values = data[outer] if outer.sum() >= 100 else data[valid]
    _, median, std = sigma_clipped_stats(values, sigma=3.0, maxiters=10)
    return float(median), float(std)


def _clipped_std(values: np.ndarray) -> float:
    return float(sigma_clipped_stats(values, sigma=3.0, maxiters=10)[2])


#: An exposure-time map whose largest positive value is this many times its smallest records overlapping
#: exposures: the image is a combination (:func:`holds_cosmic_rays`).
COMBINED_EXPOSURE_RATIO = 1.5


def holds_cosmic_rays(header: fits.Header, exposure: np.ndarray | None = None) -> bool:
    """Whether an image may hold cosmic rays, by its header and exposure-time map: not where it combines two or
    more exposures, whose combination rejected them (``NCOMBINE`` or ``NDRIZIM`` >= 2, a combination method in
    ``COMBINET``, as Euclid's stacks say, or an ``exposure`` map whose positive values differ by more than
    :data:`COMBINED_EXPOSURE_RATIO`: exposures overlap there, as in drizzled HST cutouts); yes for single
    exposures and files that do not say.

    On the SL2S J0219-0829 WFC3/UVIS cutouts (exposure 286-546 s, no header keyword) L.A.Cosmic took the
    brightest knots of the arc, sharp under the UVIS PSF, for hits; the refined fit then lost them."""
    if exposure is not None:
        positive = exposure[np.isfinite(exposure) & (exposure > 0)]
        if positive.size and positive.max() > COMBINED_EXPOSURE_RATIO * positive.min():
            return False
    for key in ("NCOMBINE", "NDRIZIM"):
        try:
            if int(header.get(key, 1)) >= 2:
                return False
        except (TypeError, ValueError):
            pass
    return not str(header.get("COMBINET", "")).strip()


def cosmic_ray_mask(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """L.A.Cosmic (van Dokkum 2001) cosmic-ray mask of ``data``, its noise from the valid pixels' spread.

    L.A.Cosmic runs with ``sigclip`` 5 and ``objlim`` 2 (not 5: the broad tracks of single ACS exposures look
    object-like to it and were half missed), then its candidates on extended emission are dropped: pixels
    where the median of the 5 x 5 neighbourhood, the candidates themselves left out (replaced by the sky), is
    more than 2 sigma above the sky. The sky rms underestimates the noise there (the sources' Poisson noise),
    and L.A.Cosmic takes a bright arc's peak for a hit; a cosmic ray on an arc is left to the likelihood fit's
    clipping. Leaving the candidates out keeps a track, whose own pixels would otherwise raise the median, a
    cosmic ray. On the 8 simulated hst-acs lenses of ``tests/preprocess/test_real.py`` with the simulator's
    cosmic rays, 26 of the 60 pixels hit 8 sigma above the noise are found (12 with objlim 5 and the candidates
    in the median), no arc pixel taken; on the SDSS J1051+4439 cutout a 15-pixel track next to the lens was
    missed before and is masked now.
    """
    _, sky, rms = sigma_clipped_stats(data[valid], sigma=3.0, maxiters=10)
    rms = max(rms, 1e-30)
    filled = np.where(valid, data, sky)
    # In units of the noise: L.A.Cosmic floors its fine-structure image at an absolute 0.01, which made the
    # mask depend on the image's flux unit.
    crmask, _ = astroscrappy.detect_cosmics(((filled - sky) / rms).astype(np.float32), inmask=~valid,
                                            invar=np.ones(data.shape, dtype=np.float32),
                                            sigclip=5.0, objlim=2.0, verbose=False)
    extended = median_filter(np.where(crmask, sky, filled) - sky, 5) > 2 * rms
    return crmask & ~extended
