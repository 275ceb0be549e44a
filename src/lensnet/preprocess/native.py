"""A real image on its own pixels, with the noise and PSF its archive file carries, for fitting a lens model.

:func:`read_native` cuts a square around the lens out of a FITS image without resampling it, and finds
what a likelihood needs alongside: a 1-sigma noise map, a mask and a PSF on the image's pixel scale.

**Image HDU**: ``hdu`` if given, else the first 2-D image HDU named ``SCI`` or ``FLUX`` or ending in
``_SCI`` or ``_FLUX``, else the first 2-D image HDU that is not a noise, weight, PSF, mask, DQ, context or
exposure map (:func:`lensnet.io.fits.image_hdu_index`). Axes of length 1 are dropped; ``plane`` picks a plane of
a cube.

**Cutout**: N = ceil(side / pixel scale) pixels, made odd, centred on the pixel nearest the requested
centre; ``offset`` records that rounding. Pixels beyond the image are masked (image 0, sigma 1).

**Noise**, the first that applies:

1. ``noise`` (a 1-sigma map), then ``weight`` (an inverse-variance map, sigma = 1/sqrt(w)): an HDU of the
   image's file (name or index), ``FILE`` (its first image HDU) or ``FILE:HDU``;
2. an HDU of the image's file named ``ERR``, ``RMS``, ``NOISE``, ``SIGMA`` or ending in ``_ERR``, ``_RMS``,
   ``_NOISE`` (1-sigma), or ``WHT``, ``IVAR``, ``WEIGHT`` or ending in ``_WHT``, ``_IVAR``, ``_WEIGHT``
   (inverse variance). An image HDU with a band prefix (``VIS_FLUX``) takes the maps of its own band first,
   then unprefixed ones, never another band's; within a band 1-sigma maps come before weights, then
   the file's order; maps with another EXTVER (the other chip of an HST FLT file) are not used;
3. the sigma-clipped sky rms of the cutout (:func:`~lensnet.preprocess.real.sky_stats`) plus the Poisson
   variance max(image - sky, 0) / g of the sources, with g the counts per data unit: ``gain`` if given,
   else ``EXPTIME`` of the image's or the primary header (data in counts per second), else no Poisson
   term.

Pixels with a non-positive or non-finite weight, or a non-finite, non-positive or absurd rms (>= 1e10, the
archives' "no data" value, or > 1e4 times the cutout's median rms) are masked.

**PSF**, the first that applies: ``psf`` (``FILE`` or ``FILE:HDU``, or an HDU of the image's file); an HDU
of the image's file named ``PSF`` or ending in ``_PSF`` (band and EXTVER as for the noise); a Gaussian of
FWHM ``psf_fwhm`` arcsec. A pixel PSF is centred on its peak, found to a fraction of a pixel by a parabola
through the logarithms of the three pixels about the maximum along each axis. It is resampled when its
pixel scale (from its header, else assumed the image's) differs from the image's by more than 1%, or when
its peak lies more than a quarter of a pixel off a pixel centre: sampled by cubic spline at the image's
pixel spacing about the peak, after, where its pixels are finer, a Gaussian smoothing that adds the larger
pixels' response (variance (r^2 - 1) / 12 of its pixels^2, r image pixels per PSF pixel), so that the
kernel is what the image's pixels record. Otherwise it is only shifted by whole pixels. It is then cropped
to the smallest centred odd square holding 99.5% of its flux, at most 41 x 41, negative values set to 0,
and normalised to sum 1.

**Mask**: non-finite pixels, the user's ``mask``, a ``MASK`` HDU's non-zero pixels, a ``DQ`` HDU's non-zero
pixels (``dq``), the noise rules above, and optionally cosmic rays found by L.A.Cosmic
(:func:`~lensnet.preprocess.real.cosmic_ray_mask`). Masked pixels are 0 in ``image`` and 1 in ``sigma``.

Axes are the file's: x along columns, y along rows, FITS row order (:mod:`lensnet.conventions`).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import gaussian_filter, map_coordinates

from lensnet.errors import LensnetError, LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.io.fits import (DQ_NAMES, EXPOSURE_NAMES, IMAGE_NAMES, MASK_NAMES, PSF_NAMES, SIGMA_NAMES, WEIGHT_NAMES,
                             hdu_index, hdu_label, hdu_role, image_hdu_index, image_plane, is_plane, pixel_scale_from_header)
from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.neighbours import neighbour_mask
from lensnet.preprocess.real import celestial_wcs, cosmic_ray_mask, header_pixel_scale, holds_cosmic_rays, sky_stats

__all__ = ["MAX_PSF_SIZE", "NativeCutout", "read_native"]

#: Largest PSF kernel side, in pixels.
MAX_PSF_SIZE = 41
#: Fraction of a pixel PSF's flux its cropped kernel keeps.
PSF_FLUX_FRACTION = 0.995
#: Noise maps mark pixels without data by huge values (Euclid: 1e16): an rms this large is no rms.
ABSURD_RMS = 1e10
#: An rms this many times the cutout's median marks a pixel without data too.
ABSURD_RMS_RATIO = 1e4

# What astropy raises on unreadable, truncated or malformed files.
_READ_ERRORS = (OSError, ValueError, TypeError, IndexError, KeyError, EOFError)


@dataclass
class NativeCutout:
    """A cutout of a FITS image on its own pixels, with its noise, mask and PSF (see the module docstring).

    Attributes
    ----------
    image : ndarray, (N, N), float64
        The file's pixels around the centre, in the file's unit, background not subtracted; 0 where masked.
    sigma : ndarray, (N, N), float64
        1-sigma noise per pixel, the unit of ``image``; finite and > 0, 1 where masked.
    mask : ndarray of bool, (N, N)
        True where a pixel must be ignored.
    psf : ndarray, (K, K), float64
        K odd, centred on the central pixel, on the image's pixel scale, sum 1.
    pixel_scale : float
        arcsec/pixel of the file.
    offset : (float, float)
        (x, y) arcsec of the centre of the cutout's central pixel from the requested centre.
    noise_source, psf_source : str
        Where the noise and the PSF came from, for logs and catalogues.
    where : str
        "file[hdu]" of the image.
    center_pixel : (int, int)
        (x, y) 0-based pixel of the file at the cutout's centre.
    wcs : astropy.wcs.WCS or None
        The file's celestial WCS, to put positions on the sky.
    unit : str
        The image's unit (its header's ``BUNIT``), "" where not given.
    """

    image: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray
    psf: np.ndarray
    pixel_scale: float
    offset: tuple[float, float]
    noise_source: str
    psf_source: str
    where: str
    center_pixel: tuple[int, int] = (0, 0)
    wcs: WCS | None = None
    unit: str = ""


def read_native(path: str | os.PathLike, *, hdu: int | str | None = None, side_arcsec: float,
                center: tuple[float, float] | None = None, sky_center=None,
                noise: int | str | os.PathLike | None = None, weight: int | str | os.PathLike | None = None,
                psf: int | str | os.PathLike | None = None, psf_fwhm: float | None = None,
                gain: float | None = None, mask: np.ndarray | str | os.PathLike | None = None, dq: bool = True,
                cosmic_rays: bool | None = None, neighbours: bool = False, pixel_scale: float | None = None,
                plane: int | None = None) -> NativeCutout:
    """Cut a lens out of a FITS image on its own pixels, with its noise, mask and PSF (module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        FITS file.
    hdu : int or str, optional
        Image HDU, index or EXTNAME [the SCI or ``*_FLUX`` HDU, else the first 2-D image].
    side_arcsec : float
        Side of the square cutout in arcsec.
    center : (float, float), optional
        Centre (x, y) in 0-based pixels [the image centre].
    sky_center : astropy.coordinates.SkyCoord, optional
        Centre on the sky instead (overrides ``center``); needs a celestial WCS.
    noise, weight : int, str or os.PathLike, optional
        A 1-sigma map or an inverse-variance map: an HDU of the image's file, ``FILE`` or ``FILE:HDU``.
    psf : int, str or os.PathLike, optional
        The PSF: ``FILE``, ``FILE:HDU`` or an HDU of the image's file.
    psf_fwhm : float, optional
        FWHM in arcsec of a Gaussian PSF, used when neither ``psf`` nor a PSF HDU is there.
    gain : float, optional
        Counts per data unit, for the Poisson noise of a file without a noise map [EXPTIME].
    mask : ndarray of bool, str or os.PathLike, optional
        True (in a FITS image: non-zero) where pixels must be ignored, of the image's shape; a FITS image is
        named as ``noise`` is.
    dq : bool
        Mask the non-zero pixels of a DQ HDU [True].
    cosmic_rays : bool or None
        Mask cosmic rays found by L.A.Cosmic [None: where neither the header nor an exposure map says it combines
        several exposures, :func:`~lensnet.preprocess.real.holds_cosmic_rays`].
    neighbours : bool
        Mask the objects that are not part of the lens system (:mod:`lensnet.preprocess.neighbours`) [False].
    pixel_scale : float, optional
        arcsec/pixel of the image, overriding its header [from the WCS, else a pixel-scale keyword].
    plane : int, optional
        The plane of an image cube (N, H, W) to fit [a 2-D image, or a cube with one plane].

    Returns
    -------
    NativeCutout

    Raises
    ------
    LensnetIOError
        If a file is missing or unreadable, or an HDU is missing, a table or empty.
    LensnetShapeError
        If an image is not 2-D, or a noise, weight or mask map is not of the image's shape.
    LensnetValueError
        If an option is not positive, the centre is off the image, the cutout holds no valid pixel, the sky
        noise cannot be measured, a PSF holds NaN, or no PSF is given or found.
    """
    path = Path(path)
    for name, value in (("side_arcsec", side_arcsec), ("psf_fwhm", psf_fwhm), ("gain", gain),
                        ("pixel_scale", pixel_scale)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise LensnetValueError(f"{path}: {name} = {value!r} must be positive and finite")
    with _open(path) as hdul:
        index = image_hdu_index(hdul, hdu, path, cube=plane is not None)
        where = f"{path}[{hdu_label(hdul, index)}" + ("]" if plane is None else f", plane {plane}]")
        full = image_plane(hdul[index], where, plane)
        wcs = celestial_wcs(hdul[index].header)
        unit = str(hdul[index].header.get("BUNIT", hdul[0].header.get("BUNIT", ""))).strip()
        scale = pixel_scale or header_pixel_scale(hdul[index].header, where, wcs)
        ix, iy, offset = _centre_pixel(full.shape, center, sky_center, wcs, scale, where)
        n = math.ceil(side_arcsec / scale - 1e-9)  # rounding error must not add a pixel: 3.05" / 0.05" is 61
        n += 1 - n % 2  # odd: a pixel on the centre
        cut = _Cutter(full.shape, ix, iy, n, where)
        data = cut(full)
        bad = ~np.isfinite(data)  # beyond the image too
        if isinstance(mask, (str, os.PathLike)):
            values, _, label, _ = _read_map(mask, hdul, path, "mask")
            bad |= cut(values, f"mask {label}") != 0
        elif mask is not None:
            bad |= cut(np.asarray(mask, dtype=float), "mask") != 0
        for i in _role_hdus(hdul, index, (MASK_NAMES, DQ_NAMES) if dq else (MASK_NAMES,)):
            bad |= cut(image_plane(hdul[i], f"{path}[{i}]"), f"{hdul[i].name} HDU of {path}") != 0  # NaN != 0 too
        if cosmic_rays is None:
            exposure = next(iter(_role_hdus(hdul, index, (EXPOSURE_NAMES,))), None)
            exposure = None if exposure is None else image_plane(hdul[exposure], f"{path}[{exposure}]")
            cosmic_rays = holds_cosmic_rays(hdul[index].header, exposure)
        if cosmic_rays and not bad.all():
            bad |= cosmic_ray_mask(data, ~bad)
        kernel, psf_source = _psf(hdul, index, path, psf, psf_fwhm, scale, where)
        if neighbours and not bad.all():
            middle = (n - 1) / 2
            bad |= neighbour_mask(data, ~bad, (middle - offset[0] / scale, middle - offset[1] / scale), scale,
                                  psf=kernel)[0]
        sigma, noise_source = _noise(hdul, index, path, cut, data, bad, noise, weight, gain, where)
    bad |= ~(np.isfinite(sigma) & (sigma > 0) & (sigma < ABSURD_RMS))
    if not bad.all():
        bad |= sigma > ABSURD_RMS_RATIO * np.median(sigma[~bad])
    if bad.all():
        raise LensnetValueError(f"{where}: the {n}x{n}-pixel cutout holds no valid pixel (all masked or without data)")
    return NativeCutout(np.where(bad, 0.0, data), np.where(bad, 1.0, sigma), bad, kernel, float(scale), offset,
                        noise_source, psf_source, where, (ix, iy), wcs, unit)


@contextmanager
def _open(path: Path):
    """An open FITS file; astropy's errors become :class:`LensnetIOError` naming the file."""
    if not path.is_file():
        raise LensnetIOError(f"FITS file {path} does not exist")
    try:
        with fits.open(path, memmap=True) as hdul:  # memmap: only the cutout of a large mosaic is read
            yield hdul
    except LensnetError:
        raise
    except _READ_ERRORS as exc:
        raise LensnetIOError(f"cannot read FITS file {path}: {exc}") from exc


def _centre_pixel(shape, center, sky_center, wcs, scale: float, where: str):
    """The pixel (ix, iy) nearest the requested centre, and the offset (x, y) in arcsec of that pixel from it."""
    h, w = shape
    if sky_center is not None:
        if wcs is None:
            raise LensnetValueError(f"{where}: a sky centre needs a celestial WCS in the header")
        try:
            center = tuple(float(v) for v in wcs.world_to_pixel(sky_center))
        except Exception as exc:  # astropy raises many types for coordinates it cannot convert
            raise LensnetValueError(f"{where}: cannot place {sky_center} on the image: {exc}") from None
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if center is None else (float(center[0]), float(center[1]))
    if not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
        raise LensnetValueError(f"{where}: the centre ({cx:.1f}, {cy:.1f}) is off the {w}x{h}-pixel image")
    # Half-pixel centres round up, not to even, so that the rule does not depend on the pixel's parity.
    ix, iy = min(math.floor(cx + 0.5), w - 1), min(math.floor(cy + 0.5), h - 1)
    return ix, iy, ((ix - cx) * scale, (iy - cy) * scale)


class _Cutter:
    """Cuts the (N, N) float64 square about one pixel out of maps of the image's shape; NaN beyond the image."""

    def __init__(self, shape, ix: int, iy: int, n: int, where: str):
        self.shape, self.n, self.where = tuple(shape), n, where
        half = n // 2
        self.rows = slice(max(iy - half, 0), min(iy + half + 1, shape[0]))
        self.cols = slice(max(ix - half, 0), min(ix + half + 1, shape[1]))
        self.at = (slice(self.rows.start - (iy - half), self.rows.stop - (iy - half)),
                   slice(self.cols.start - (ix - half), self.cols.stop - (ix - half)))

    def __call__(self, array: np.ndarray, name: str = "image") -> np.ndarray:
        if tuple(array.shape) != self.shape:
            raise LensnetShapeError(name, array.shape, f"{self.shape}, the shape of the image {self.where}")
        out = np.full((self.n, self.n), np.nan)
        out[self.at] = array[self.rows, self.cols]
        return out


def _role_hdus(hdul: fits.HDUList, index: int, groups) -> list[int]:
    """The 2-D HDUs of the image's band and EXTVER whose names are in one of ``groups`` (tuples of roles),
    best first: the image's band before unprefixed names, then the order of ``groups``, then the file's."""
    band = hdu_role(hdul[index].name, IMAGE_NAMES)
    ranked = []
    for i, h in enumerate(hdul):
        if i == index or h.ver != hdul[index].ver or not is_plane(h):
            continue
        for rank, roles in enumerate(groups):
            prefix = hdu_role(h.name, roles)
            if prefix is not None and (not band or prefix in ("", band)):  # never another band's map
                ranked.append((prefix != band, rank, i))
                break
    return [i for *_, i in sorted(ranked)]


def _read_map(spec, hdul: fits.HDUList, path: Path, option: str) -> tuple[np.ndarray, fits.Header, str, bool]:
    """The 2-D data and header of what an option names (an HDU of the image's file, FILE or FILE:HDU), a label
    (the EXTNAME or index in the image's file, else "FILE[HDU]") and whether it is in the image's file."""
    file, key = None, spec
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and Path(spec).is_file()):
        file, key = Path(spec), None
    elif isinstance(spec, str):
        head, sep, tail = spec.rpartition(":")
        if sep and head and Path(head).is_file():
            file, key = Path(head), tail
    if file is None:
        i = hdu_index(hdul, key)
        if i is None:
            raise LensnetIOError(f"{option}={spec!r} is neither a file nor an HDU of {path}")
        i = image_hdu_index(hdul, i, path)
        return image_plane(hdul[i], f"{path}[{key}]"), hdul[i].header, hdul[i].name or str(key), True
    with _open(file) as other:
        i = image_hdu_index(other, key, file)
        label = f"{file}[{i if key is None else key}]"
        return np.array(image_plane(other[i], label), dtype=np.float64), other[i].header.copy(), label, False


def _noise(hdul, index, path, cut: _Cutter, data, bad, noise, weight, gain, where) -> tuple[np.ndarray, str]:
    """The 1-sigma map of the cutout (not finite or <= 0 where there is none) and where it came from."""
    found = [(noise, False), (weight, True)]
    for i in _role_hdus(hdul, index, (SIGMA_NAMES, WEIGHT_NAMES)):
        found.append((i, hdu_role(hdul[i].name, WEIGHT_NAMES) is not None))
    for spec, is_weight in found:
        if spec is None:
            continue
        kind = "weight" if is_weight else "noise"
        values, _, label, own = _read_map(spec, hdul, path, kind)
        values = cut(values, f"{kind} map {label}" + (f" of {path}" if own else ""))
        if is_weight:
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(values > 0, 1.0 / np.sqrt(values), np.nan)
        return values, (f"{label} HDU" if own else label) + (" (inverse variance)" if is_weight else "")
    if bad.all():
        raise LensnetValueError(f"{where}: the cutout holds no valid pixel to measure the sky noise on")
    sky, rms = sky_stats(data, ~bad)
    if not (math.isfinite(rms) and rms > 0):
        raise LensnetValueError(f"{where}: the sky rms of the cutout is {rms}; give a noise or weight map")
    exptime = None if gain is not None else _exptime(hdul, index, cut)
    if gain is None and exptime is None:
        return np.full(data.shape, rms), "sky rms"
    g, label = (gain, f"gain {gain:g}") if gain is not None else exptime
    sources = np.clip(np.nan_to_num(data - sky), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        poisson = np.where(g > 0, sources / g, np.nan)  # no exposure: no data
    return np.sqrt(rms**2 + poisson), f"sky rms + Poisson ({label})"


def _exptime(hdul: fits.HDUList, index: int, cut: "_Cutter") -> tuple[float | np.ndarray, str] | None:
    """The exposure time (s) and its label: an exposure map (an image HDU named EXPTIME, of the image's
    shape, as drizzled stacks and the demo's SL2S lens have), else EXPTIME of the image's header, else of the
    primary's; None when there is none."""
    for i, h in enumerate(hdul):
        if i != index and h.name == "EXPTIME" and is_plane(h) and h.data.shape[-2:] == hdul[index].data.shape[-2:]:
            return cut(image_plane(h, f"{hdul.filename()}[EXPTIME]"), "EXPTIME map"), "EXPTIME map HDU"
    for header in (hdul[index].header, hdul[0].header):
        try:
            value = float(header["EXPTIME"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            return value, f"EXPTIME {value:g} s"
    return None


def _psf(hdul, index, path, spec, fwhm, scale: float, where: str) -> tuple[np.ndarray, str]:
    """The PSF kernel on the image's pixel scale and where it came from (module docstring)."""
    if spec is None:
        spec = next(iter(_role_hdus(hdul, index, (PSF_NAMES,))), None)
    if spec is None and fwhm is None:
        raise LensnetValueError(f"{where}: no PSF: give a PSF image (--psf FILE[:HDU]), a PSF HDU in the file "
                                "(PSF or <BAND>_PSF), or a Gaussian FWHM (--psf-fwhm ARCSEC)")
    if spec is None:
        sigma = fwhm / (2 * math.sqrt(2 * math.log(2))) / scale
        kernel = gaussian_kernels(torch.tensor([sigma], dtype=torch.float64), math.ceil(4 * sigma))[0].numpy()
        return kernel, f'Gaussian FWHM {fwhm:g}"'
    data, header, label, own = _read_map(spec, hdul, path, "psf")
    label = f"{label} HDU" if own else label
    name = f"the PSF {label}" + (f" of {path}" if own else "")
    try:
        own_scale = pixel_scale_from_header(header, name)
    except LensnetIOError:
        own_scale = scale  # without a pixel scale of its own, a PSF is taken to be on the image's pixels
    return _kernel(np.array(data, dtype=np.float64), scale / own_scale, name), label


def _kernel(psf: np.ndarray, ratio: float, name: str) -> np.ndarray:
    """A pixel PSF as a centred, odd, cropped, normalised kernel on pixels ``ratio`` times its own."""
    if not np.isfinite(psf).all():
        raise LensnetValueError(f"{name} holds NaN or infinite values")
    if not (ratio > 0 and math.isfinite(ratio)):
        raise LensnetValueError(f"{name}: its pixel scale is not a positive number")
    psf = np.clip(psf, 0.0, None)
    if psf.sum() <= 0:
        raise LensnetValueError(f"{name} holds no positive value")
    h, w = psf.shape
    py, px = np.unravel_index(np.argmax(psf), psf.shape)
    cy = py + (_vertex(psf[py - 1:py + 2, px]) if 0 < py < h - 1 else 0.0)
    cx = px + (_vertex(psf[py, px - 1:px + 2]) if 0 < px < w - 1 else 0.0)
    if abs(ratio - 1) > 0.01 or max(abs(cx - px), abs(cy - py)) > 0.25:
        if ratio > 1:  # the image's larger pixels integrate over more: add the difference of the pixel boxes
            psf = gaussian_filter(psf, math.sqrt((ratio**2 - 1) / 12), mode="constant")
        half = math.ceil(max(cx, w - 1 - cx, cy, h - 1 - cy) / ratio)
        steps = ratio * np.arange(-half, half + 1)
        kernel = map_coordinates(psf, np.meshgrid(cy + steps, cx + steps, indexing="ij"), order=3, mode="constant")
    else:
        half = max(py, h - 1 - py, px, w - 1 - px)
        kernel = np.pad(psf, half)[py:py + 2 * half + 1, px:px + 2 * half + 1]
    kernel = np.clip(kernel, 0.0, None)  # the spline rings below zero in the wings
    # The flux in each centred square: the pixels binned by their Chebyshev distance from the centre.
    distance = np.abs(np.indices(kernel.shape) - half).max(axis=0)
    enclosed = np.cumsum(np.bincount(distance.ravel(), kernel.ravel())) / kernel.sum()
    keep = min(int(np.searchsorted(enclosed, PSF_FLUX_FRACTION)), MAX_PSF_SIZE // 2)
    kernel = kernel[half - keep:half + keep + 1, half - keep:half + keep + 1]
    return kernel / kernel.sum()


def _vertex(samples: np.ndarray) -> float:
    """Sub-pixel position of a peak from the three samples about it: the vertex of the parabola through their
    logarithms, exact for a Gaussian core (a centre of light over a window is biased when the peak lies
    between pixels: the window cannot be symmetric about it)."""
    if (samples <= 0).any():
        return 0.0
    a, b, c = np.log(samples)
    curvature = a - 2 * b + c
    return float(np.clip((a - c) / (2 * curvature), -0.5, 0.5)) if curvature < 0 else 0.0
