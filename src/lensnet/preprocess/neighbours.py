"""Objects in a lens cutout that are not part of the lens system: companions, stars, foreground galaxies.

:func:`neighbour_mask` finds them and returns the pixels to leave out, by this rule:

1. **Sources**: pixels more than :data:`DETECT_SIGMA` times the sky rms above the sky (sigma-clipped median and
   standard deviation of the valid pixels), on the image smoothed by a Gaussian of one pixel, in groups of at
   least :data:`MIN_PIXELS` touching pixels (photutils' ``detect_sources``), split where several peaks blend
   (``deblend_sources``: 32 levels, contrast 0.001), as SExtractor does.
2. **The lens system** is kept: the source under the centre (the lens galaxy and whatever blends with it), every
   source whose centroid lies within ``keep_radius`` arcsec of the centre (the arcs and counter-images of
   Einstein radii up to 3″), and beyond it every source stretched along the tangent as an arc is
   (elongation at least :data:`ARC_ELONGATION`, major axis within :data:`ARC_ANGLE_DEG` of the tangent).
3. Within ``keep_radius``, a source that is not stretched along the tangent is nevertheless a neighbour when it
   lies **beyond the arcs**: farther than :data:`ARC_RADIUS_FACTOR` times the radius of the outermost arc (a
   source stretched along the tangent, its peak at least :data:`ARC_SNR` times the sky rms) and farther than
   :data:`MIN_CUT_RADIUS`. Lensed images outside the Einstein ring are stretched along the tangent (an isothermal
   lens stretches an image at radius r by r / (r - theta_E), 2 or more for every image of a multiply imaged
   source), and lie within twice theta_E; the factor leaves room for ellipticity and shear. Without an arc of
   that brightness, nothing within ``keep_radius`` is masked by this rule.
4. With the image's PSF known, a source within ``keep_radius`` is nevertheless a neighbour when it is
   **unresolved**: its peak at least :data:`POINT_SNR` times the sky rms, and its second-moment FWHM (photutils'
   ``fwhm``, on the segment's pixels) at most :data:`POINT_FWHM_RATIO` times the PSF's measured the same way
   (on the PSF scaled to the source's peak and cut where the source's segment ends). A star, or a quasar's
   image, is the PSF; lensed images of a galaxy are stretched and resolved.
5. Every other source is a **neighbour**: its pixels, grown by :data:`GROW_PIXELS` for its faint wings, are
   masked.

A resolved companion closer than ``keep_radius`` and within the arcs' reach is kept; the joint fit's clipping of pixels its model cannot
describe (:func:`lensnet.refine.refine_lenses`) then takes what it can.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.stats import sigma_clipped_stats
from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources
from scipy.ndimage import binary_dilation

__all__ = ["ARC_ANGLE_DEG", "ARC_ELONGATION", "ARC_RADIUS_FACTOR", "ARC_SNR", "DETECT_SIGMA", "GROW_PIXELS",
           "KEEP_RADIUS", "MIN_CUT_RADIUS", "MIN_PIXELS", "POINT_ELONGATION", "POINT_FWHM_RATIO", "POINT_SNR",
           "neighbour_mask"]

#: Detection threshold, in sky rms above the sky.
DETECT_SIGMA = 2.0
#: Smallest source, in touching pixels.
MIN_PIXELS = 5
#: arcsec: sources whose centroid lies closer to the centre belong to the lens system (the paper's prior reaches
#: Einstein radii of 3").
KEEP_RADIUS = 3.0
#: A source beyond ``keep_radius`` is an arc, and kept, when at least this elongated...
ARC_ELONGATION = 1.25
#: ...along a direction within this many degrees of the tangent.
ARC_ANGLE_DEG = 30.0
#: A source within the keep radius, not stretched along the tangent, is a neighbour beyond this many times the
#: radius of the outermost arc...
ARC_RADIUS_FACTOR = 1.5
#: ...whose peak is at least this many sky rms...
ARC_SNR = 10.0
#: ...and beyond this many arcsec in any case: a bright stretched residual of the lens's core does not set the cut.
MIN_CUT_RADIUS = 2.0
#: Pixels added around a neighbour (its wings below the threshold).
GROW_PIXELS = 2
#: A source near the lens whose peak is at least this many sky rms...
POINT_SNR = 10.0
#: ...whose FWHM is at most this many times the PSF's...
POINT_FWHM_RATIO = 1.5
#: ...and whose elongation (major / minor axis) is at most this is unresolved: a star or a quasar's image.
POINT_ELONGATION = 1.3


def neighbour_mask(data: np.ndarray, valid: np.ndarray, center: tuple[float, float], pixel_scale: float,
                   keep_radius: float = KEEP_RADIUS, psf: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The pixels (H, W) of ``data`` covered by neighbours (module docstring), and how many neighbours.

    Parameters
    ----------
    data : ndarray, (H, W)
        The image, any flux unit, sky included or not.
    valid : ndarray of bool, (H, W)
        False where a pixel holds no data (NaN, masked): ignored.
    center : (float, float)
        The lens centre (x, y) in 0-based pixels.
    pixel_scale : float
        arcsec per pixel.
    keep_radius : float
        arcsec: sources centred closer than this are part of the lens system [:data:`KEEP_RADIUS`].
    psf : ndarray, (K, K), optional
        The PSF on ``data``'s pixels: with it, unresolved sources near the lens are neighbours too.
    """
    mask = np.zeros(data.shape, bool)
    if valid.sum() < 10 * MIN_PIXELS:
        return mask, 0
    _, sky, rms = sigma_clipped_stats(data[valid], sigma=3.0, maxiters=10)
    if not rms > 0:
        return mask, 0
    smooth = convolve(np.where(valid, data - sky, 0.0), Gaussian2DKernel(1.0), mask=~valid,
                      nan_treatment="fill", fill_value=0.0)
    segments = detect_sources(smooth, DETECT_SIGMA * rms, MIN_PIXELS, mask=~valid)
    if segments is None:
        return mask, 0
    segments = deblend_sources(smooth, segments, MIN_PIXELS, n_levels=32, contrast=0.001, progress_bar=False)
    cx, cy = center
    row, col = int(round(min(max(cy, 0), data.shape[0] - 1))), int(round(min(max(cx, 0), data.shape[1] - 1)))
    central = int(segments.data[row, col])
    sources = []  # (label, distance in arcsec, stretched along the tangent, the source)
    for source in SourceCatalog(data - sky, segments, mask=~valid):
        x, y = float(source.x_centroid), float(source.y_centroid)
        if source.label == central or not (math.isfinite(x) and math.isfinite(y)):
            continue
        tangent = math.degrees(math.atan2(y - cy, x - cx)) + 90.0
        off = abs((float(source.orientation.value) - tangent + 90.0) % 180.0 - 90.0)
        sources.append((source.label, math.hypot(x - cx, y - cy) * pixel_scale,
                        float(source.elongation) >= ARC_ELONGATION and off <= ARC_ANGLE_DEG, source))
    arc_radii = [distance for _, distance, arc, source in sources
                 if arc and distance <= keep_radius and float(source.max_value) >= ARC_SNR * rms]
    cut = max(MIN_CUT_RADIUS, ARC_RADIUS_FACTOR * max(arc_radii)) if arc_radii else math.inf
    neighbours = []
    for label, distance, arc, source in sources:
        if distance <= keep_radius:
            if (not arc and distance > cut) or (
                    psf is not None and _unresolved(source, smooth[segments.data == label].max(), rms, psf)):
                neighbours.append(label)
        elif not arc:  # an arc beyond the keep radius is kept
            neighbours.append(label)
    if neighbours:
        mask = binary_dilation(np.isin(segments.data, neighbours), iterations=GROW_PIXELS) & valid
    return mask, len(neighbours)


def _unresolved(source, smooth_peak: float, rms: float, psf: np.ndarray) -> bool:
    """Whether ``source`` (a photutils catalogue entry) is bright enough to tell and no wider than ``psf`` would
    look in its place: the PSF smoothed as the detection image was, scaled to the source's smoothed peak
    ``smooth_peak``, and cut at the detection threshold, gives the pixels whose second moments are the PSF's."""
    if not (float(source.max_value) >= POINT_SNR * rms and smooth_peak > 0
            and float(source.elongation) <= POINT_ELONGATION):
        return False
    kernel = np.asarray(psf, dtype=np.float64)
    smoothed = convolve(kernel, Gaussian2DKernel(1.0))
    inside = smoothed * (smooth_peak / smoothed.max()) > DETECT_SIGMA * rms
    weight = np.where(inside, kernel, 0.0)
    y, x = np.indices(kernel.shape)
    total = weight.sum()
    mx, my = (weight * x).sum() / total, (weight * y).sum() / total
    variance = (weight * ((x - mx) ** 2 + (y - my) ** 2)).sum() / total / 2
    psf_fwhm = 2 * math.sqrt(2 * math.log(2) * variance)
    return float(source.fwhm.value) <= POINT_FWHM_RATIO * psf_fwhm
