"""Lens light removed from two filters by independent component analysis (Hezaveh et al. 2017, Methods).

The lens galaxy (red, old stars) and the lensed source (blue, star-forming) have different colours, so
each band is, pixel by pixel, a different mix of two images: b_k = sum_j A_kj s_j + mean_k. scikit-learn's
:class:`~sklearn.decomposition.FastICA` recovers the two components s_j and the mixing matrix A from the
pixels of the two bands. Before it:

- optional PSF matching: each band is convolved with the other band's PSF, so that both have the same
  effective PSF and the mix is the same at every pixel;
- registration: band 2 is shifted onto band 1 by the offset of the lens's core between them, the peak of
  their cross-correlation (to 1/100 pixel: scikit-image's ``phase_cross_correlation`` without normalisation;
  scipy's cubic-spline ``shift``) in windows about the lens centre of the radii :data:`REGISTER_RADII`. Cutouts
  of two filters drizzled apart are often offset by a fraction of a pixel or more (SL2S J0219-0829's F600LP by
  1.2 pixels), and an offset leaves a dipole of the lens's bright core in the arcs, which the network reads as
  arcs. Arcs near the core pull the correlation's peak too, by an amount that depends on the window and is
  mostly under half a pixel: the offset is applied only where the two windows agree on it within
  :data:`REGISTER_AGREEMENT` pixels and it exceeds :data:`MIN_SHIFT` pixels (of 100 two-band simulations, whose
  bands need no shift, 1 was shifted, by 0.89 pixels: ``benchmarks/bench_deblend.py``). The small window sees
  offsets up to its radius: bands farther apart must be co-registered first (with their WCS);
- masks, as the paper: a disc of ``mask_radius`` (0.2") on the lens centre, where the lens core's colour
  gradient breaks the two-component model, and discs on cosmic rays (L.A.Cosmic, van Dokkum 2001, by
  astroscrappy, in either band).

FastICA is fitted on the unmasked pixels above 2 sigma in either band (where there is signal to separate),
then applied to every pixel, each component's zero level set to its median on the sky (the pixels without
signal). The rule that names the components, documented and automatic: band 2 must be the redder filter
(as F600LP is to F475X); the **lens-light** component is the redder one, the larger band-2/band-1 ratio
A_2j / A_1j of its mixing column, since a lens galaxy's old stars are redder than a star-forming source;
the other is the **arcs**. (A rule on where the light is fails for small Einstein radii, whose arcs
crowd the lens's centre.) Their images are given in the units of a band: the arcs in
band k are A_k,arc s_arc, which fixes both the sign and the flux scale; ``band`` picks k, by default the
band in which the arcs have the higher signal-to-noise (|A_k,arc| / noise_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import astroscrappy
import numpy as np
from astropy.stats import sigma_clipped_stats
from scipy.ndimage import shift as shift_image
from scipy.signal import fftconvolve
from skimage.registration import phase_cross_correlation
from sklearn.decomposition import FastICA

from lensnet.errors import LensnetShapeError, LensnetValueError

__all__ = ["MIN_SHIFT", "REGISTER_AGREEMENT", "REGISTER_RADII", "IcaResult", "ica_deblend", "lens_center"]

#: arcsec: radii of the windows about the lens centre in which the bands' offset is measured...
REGISTER_RADII = (0.15, 0.5)
#: ...which must agree within this many pixels...
REGISTER_AGREEMENT = 0.15
#: ...for an offset of more than this many pixels to be applied.
MIN_SHIFT = 0.5


@dataclass
class IcaResult:
    """The separated images of an ICA deblend, in the units of band ``band``, and what produced them.

    Attributes
    ----------
    arcs, lens : ndarray, (H, W)
        The arc component (zero on the sky) and the rest of the band, the lens light, in band ``band``.
    components : ndarray, (2, H, W)
        The raw independent components, arcs first, signed so that the arcs are positive.
    mixing : ndarray, (2, 2)
        Mixing matrix A (bands x components, arcs first).
    mask : ndarray of bool, (H, W)
        Pixels left out of the fit (centre disc, cosmic rays, NaN).
    band : int
        The band (0 or 1) the images are in.
    colour : (float, float)
        The naming rule's band-2/band-1 flux ratios of the arcs and the lens components.
    offset : (float, float)
        Pixels (x, y) by which band 2 was shifted onto band 1 (0, 0 without registration).
    """

    arcs: np.ndarray
    lens: np.ndarray
    components: np.ndarray
    mixing: np.ndarray
    mask: np.ndarray
    band: int
    colour: tuple[float, float]
    offset: tuple[float, float] = (0.0, 0.0)


def lens_center(image: np.ndarray, smooth_pixels: float = 2.0) -> tuple[float, float]:
    """(x, y) pixel of the brightest point of the smoothed image: the lens galaxy's centre where its light dominates."""
    size = int(4 * smooth_pixels) | 1
    t = np.arange(size) - size // 2
    kernel = np.exp(-0.5 * (t[:, None] ** 2 + t[None] ** 2) / smooth_pixels**2)
    smoothed = fftconvolve(np.nan_to_num(image), kernel / kernel.sum(), mode="same")
    iy, ix = np.unravel_index(np.argmax(smoothed), smoothed.shape)
    return float(ix), float(iy)


def ica_deblend(band1: np.ndarray, band2: np.ndarray, pixel_scale: float, *, psf1: np.ndarray | None = None,
                psf2: np.ndarray | None = None, center: tuple[float, float] | None = None, mask_radius: float = 0.2,
                mask_cosmic_rays: bool = True, band: int | None = None, register: bool = True,
                seed: int = 0) -> IcaResult:
    """Separate lens light and arcs in two co-registered filters (see the module docstring).

    Parameters
    ----------
    band1, band2 : ndarray, (H, W)
        The two images, same grid, any flux units.
    pixel_scale : float
        arcsec/pixel.
    psf1, psf2 : ndarray, optional
        PSFs of the bands, for PSF matching (both or neither) [no matching].
    center : (float, float), optional
        Lens centre (x, y) in pixels [the brightest smoothed pixel of the sum of the bands].
    mask_radius : float
        Radius of the masked discs on the centre and on cosmic rays, arcsec [0.2, the paper's].
    mask_cosmic_rays : bool
        Mask discs on bright cosmic rays [True].
    band : int, optional
        Band (0 or 1) of the output images [the one with the arcs' higher signal-to-noise].
    register : bool
        Shift band 2 onto band 1 by the lens core's offset between them [True].
    seed : int
        Seed of FastICA [0].

    Raises
    ------
    LensnetShapeError
        If the bands (or PSFs) are not 2-D images of one shape.
    LensnetValueError
        If only one PSF is given, the pixel scale is not positive, or too few pixels are left.
    """
    b = [np.asarray(x, dtype=np.float64) for x in (band1, band2)]
    if b[0].ndim != 2 or b[0].shape != b[1].shape:
        raise LensnetShapeError("band2", b[1].shape, f"{b[0].shape}, the shape of band1 (co-registered images)")
    if (psf1 is None) != (psf2 is None):
        raise LensnetValueError("PSF matching needs the PSFs of both bands (psf1 and psf2), or neither")
    if not pixel_scale > 0:
        raise LensnetValueError(f"pixel_scale = {pixel_scale!r}: expected a positive number of arcsec/pixel")
    invalid = ~(np.isfinite(b[0]) & np.isfinite(b[1]))
    b = [np.where(invalid, 0.0, x) for x in b]
    if psf1 is not None:
        psfs = [np.asarray(p, dtype=np.float64) for p in (psf1, psf2)]
        b = [fftconvolve(b[0], psfs[1] / psfs[1].sum(), mode="same"), fftconvolve(b[1], psfs[0] / psfs[0].sum(), mode="same")]
    offset = (0.0, 0.0)
    if register:
        b[1], moved, offset = _register(b[0], b[1], invalid, center, pixel_scale)
        invalid = invalid | moved
    cx, cy = center if center is not None else lens_center(b[0] + b[1])
    h, w = b[0].shape
    y, x = np.mgrid[:h, :w]
    r = np.hypot(x - cx, y - cy) * pixel_scale
    outer = ~invalid & (r > 1.0)
    noise = [sigma_clipped_stats(band_k[outer] if outer.sum() > 100 else band_k[~invalid])[2] for band_k in b]
    mask = invalid | (r < mask_radius)
    if mask_cosmic_rays:
        mask |= _cosmic_ray_discs(b, noise, mask_radius / pixel_scale)
    # The fit uses the pixels with signal (above 2 sigma in either band): where noise dominates, FastICA would
    # spend its two components on the noise.
    signal = ~mask & ((b[0] > 2 * noise[0]) | (b[1] > 2 * noise[1]))
    used = signal if signal.sum() >= 200 else ~mask
    if used.sum() < 50:
        raise LensnetValueError(f"only {used.sum()} pixels are left for ICA after masking")
    pixels = np.stack([x.ravel() for x in b], axis=1)
    ica = FastICA(n_components=2, whiten="unit-variance", random_state=seed, max_iter=2000, tol=1e-5)
    ica.fit(pixels[used.ravel()])
    comps = ica.transform(pixels).T.reshape(2, h, w)
    # FastICA's components have zero mean over the fitted pixels; their zero level is the sky's instead.
    sky = ~mask & ~signal
    if sky.sum() >= 100:
        comps -= np.median(comps[:, sky], axis=1)[:, None, None]
    mixing = ica.mixing_.copy()
    colour = [mixing[1, j] / mixing[0, j] if mixing[0, j] != 0 else np.inf for j in range(2)]
    arc, lens = (1, 0) if colour[0] > colour[1] else (0, 1)
    comps, mixing, colour = comps[[arc, lens]], mixing[:, [arc, lens]], (colour[arc], colour[lens])
    if band is None:
        band = int(np.argmax([abs(mixing[k, 0]) / max(noise[k], 1e-30) for k in range(2)]))
    if mixing[band, 0] < 0:  # sign the components so the arcs are positive in the output band
        comps[0], mixing[:, 0] = -comps[0], -mixing[:, 0]
    arcs = mixing[band, 0] * comps[0]
    lens_light = b[band] - arcs
    return IcaResult(arcs, lens_light, comps, mixing, mask, band, colour, offset)


def _register(band1: np.ndarray, band2: np.ndarray, invalid: np.ndarray, center: tuple[float, float] | None,
              pixel_scale: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """``band2`` shifted onto ``band1`` by the lens core's offset (module docstring), the pixels that the shift
    brings from invalid ones, and the shift (x, y) in pixels; ``band2`` as it is where the offset is not told."""
    cx, cy = center if center is not None else lens_center(band1 + band2)
    h, w = band1.shape
    offsets = []
    for radius in REGISTER_RADII:
        half = max(2, int(round(radius / pixel_scale)))
        ix, iy = int(round(min(max(cx, half), w - 1 - half))), int(round(min(max(cy, half), h - 1 - half)))
        window = (slice(max(iy - half, 0), iy + half + 1), slice(max(ix - half, 0), ix + half + 1))
        offsets.append(phase_cross_correlation(band1[window], band2[window], upsample_factor=100,
                                               normalization=None)[0])
    dy, dx = offsets[-1]
    if np.hypot(*(offsets[0] - offsets[-1])) > REGISTER_AGREEMENT or np.hypot(dx, dy) <= MIN_SHIFT:
        return band2, np.zeros_like(invalid), (0.0, 0.0)
    moved = shift_image(invalid.astype(np.float64), (dy, dx), order=1, mode="constant", cval=1.0) > 0.01
    return shift_image(band2, (dy, dx), order=3, mode="nearest"), moved, (float(dx), float(dy))


def _cosmic_ray_discs(bands: list[np.ndarray], noise: list[float], radius_pixels: float) -> np.ndarray:
    """Discs on the cosmic rays that L.A.Cosmic (astroscrappy) finds in either band: features sharper than
    the PSF, which no astrophysical source has (a colour cut would take blue arcs for cosmic rays)."""
    hits = np.zeros(bands[0].shape, bool)
    for band, rms in zip(bands, noise):
        found, _ = astroscrappy.detect_cosmics(band.astype(np.float32),
                                               invar=np.full(band.shape, max(rms, 1e-12) ** 2, dtype=np.float32),
                                               sigclip=5.0, objlim=5.0, verbose=False)
        hits |= found
    if not hits.any():
        return hits
    size = 2 * int(np.ceil(radius_pixels)) + 1
    t = np.arange(size) - size // 2
    disc = (t[:, None] ** 2 + t[None] ** 2 <= radius_pixels**2).astype(float)
    return fftconvolve(hits.astype(float), disc, mode="same") > 0.5
