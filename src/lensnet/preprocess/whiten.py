"""Correlated noise brought to a spectrum the networks were trained on, by adding noise (noise whitening).

Drizzling, resampling to the model's grid and the PSF matching of two-band deblending correlate the noise of
neighbouring pixels. The networks were trained on white noise and on coloured noise of adjacent-pixel correlation
:data:`TRAINING_CORRELATION` (:class:`lensnet.observe.GaussianNoiseConfig`); noise correlated over several pixels
looks to them like structure (the Euclid VIS lens of ``../shared/realdata/lenses/``, 0.1" pixels resampled to
0.04", adjacent-pixel correlation 0.80: θE 52% high and flagged out of distribution; matched, 29% and not
flagged). Correlations cannot be
removed without deconvolving, but noise of the complementary spectrum can be added, as GalSim's ``whitenImage``
does (Rowe et al. 2015, Astron. Comput. 10, 121):

    P_added(k) = c T(k) - P(k) >= 0,    c = max_k P(k) / T(k),

P the noise power spectrum (per-pixel variance per mode, mean over k = the variance) measured on the sky pixels
(:func:`noise_power`: a Blackman-Tukey estimate, the autocorrelation up to :data:`MAX_LAG` pixels under a Hann lag
window, Fourier transformed; without the window the estimate's scatter, ~10% per mode on a 128 x 128 sky, made
white noise look coloured, max P 30% above its mean). T is the
target spectrum of unit variance, seen through the same lag window: white (T = 1) or the training's coloured noise
(the taps (a, b, a) of :func:`~lensnet.observe.gaussian_noise.colored_noise_taps` along each axis: autocorrelation
1, 2ab, a^2 at lags 0, 1, 2); of the two, the one that needs the smaller added variance mean(c T - P). Nothing is
added where that variance is below :data:`TOLERANCE` of the noise's own (the noise already is like the training's,
within the estimate's scatter), nor where fewer than :data:`MIN_SKY_PIXELS` sky pixels measure it. The spectrum
after adding is measured again: it gives the rms reported and the spectrum of the noise that pads the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats

from lensnet.observe.gaussian_noise import GaussianNoiseConfig, colored_noise_taps

__all__ = ["MAX_LAG", "MIN_SKY_PIXELS", "TOLERANCE", "TRAINING_CORRELATION", "NoiseMatch", "match_noise",
           "noise_power"]

#: Adjacent-pixel correlation of the training's coloured noise.
TRAINING_CORRELATION = GaussianNoiseConfig().neighbour_correlation
#: Largest lag (pixels, along each axis) of the measured autocorrelation.
MAX_LAG = 4
#: Added variance, as a fraction of the noise's, below which nothing is added: white noise's estimated spectrum
#: peaks 5-15% above its mean on a sky of 100-160 pixels square (the estimate's scatter, not colour).
TOLERANCE = 0.25
#: Fewest sky pixels that measure a spectrum.
MIN_SKY_PIXELS = 2000


@dataclass
class NoiseMatch:
    """What :func:`match_noise` did.

    Attributes
    ----------
    added : ndarray, (H, W) or None
        Noise to add to the image (None: nothing to add).
    pad : ndarray, (H, W) or None
        Noise of the matched spectrum, for pixels beyond the image (None: white noise of ``rms`` will do).
    rms : float
        The noise rms per pixel after matching.
    correlation : float
        The measured adjacent-pixel correlation before matching (mean of the two axes; NaN if not measured).
    target : str
        ``'white'``, ``'coloured'`` or ``''`` where nothing was added.
    """

    added: np.ndarray | None
    pad: np.ndarray | None
    rms: float
    correlation: float
    target: str


def noise_power(image: np.ndarray, sky: np.ndarray, max_lag: int = MAX_LAG) -> tuple[np.ndarray, float]:
    """The noise power spectrum P (H, W) of ``image`` measured on the ``sky`` pixels, and its sky level.

    The autocorrelation of the sky pixels (their sigma-clipped median subtracted, 4-sigma outliers left out) is
    averaged over the pairs of valid pixels at each lag up to ``max_lag`` along each axis (zero-padded FFTs, so
    no pair wraps around), weighted by the Hann lag window (1 + cos(pi l / (max_lag + 1))) / 2 along each axis
    (0 beyond), and Fourier transformed on the image's grid; negative values are set to 0. ``P.mean()`` is the
    variance.
    """
    h, w = image.shape
    _, level, rms = sigma_clipped_stats(image[sky], sigma=3.0, maxiters=10)
    if not rms > 0:
        return np.zeros((h, w)), float(level)
    use = sky & (np.abs(image - level) < 4 * max(rms, 1e-30))
    values = np.where(use, image - level, 0.0)
    shape = (2 * h, 2 * w)

    def autocorrelation(a: np.ndarray) -> np.ndarray:
        f = np.fft.rfft2(a, shape)
        return np.fft.irfft2(f * f.conj(), shape)

    pairs = np.rint(autocorrelation(use.astype(float)))
    acf = autocorrelation(values) / np.maximum(pairs, 1.0)
    lag_y = np.minimum(np.arange(2 * h), 2 * h - np.arange(2 * h))[:, None]
    lag_x = np.minimum(np.arange(2 * w), 2 * w - np.arange(2 * w))[None, :]
    window = _hann(lag_y, max_lag) * _hann(lag_x, max_lag)
    kernel = np.zeros((h, w))
    for dy, dx in zip(*np.nonzero((window > 0) & (pairs > 0))):
        sy, sx = (dy if dy < h else dy - 2 * h), (dx if dx < w else dx - 2 * w)
        kernel[sy % h, sx % w] = acf[dy, dx] * window[dy, dx]
    return np.clip(np.fft.fft2(kernel).real, 0.0, None), float(level)


def _hann(lag: np.ndarray, max_lag: int) -> np.ndarray:
    return np.where(lag <= max_lag, 0.5 * (1 + np.cos(np.pi * lag / (max_lag + 1))), 0.0)


def _target_spectra(shape: tuple[int, int], max_lag: int = MAX_LAG) -> dict[str, np.ndarray]:
    """The training's unit-variance noise spectra as :func:`noise_power` would estimate them."""
    a, b, _ = colored_noise_taps(TRAINING_CORRELATION)
    acf = {0: 2 * a**2 + b**2, 1: 2 * a * b, 2: a**2}

    def axis(n: int) -> np.ndarray:
        k = 2 * np.pi * np.fft.fftfreq(n)
        return acf[0] + sum(2 * _hann(np.array(lag), max_lag) * value * np.cos(lag * k)
                            for lag, value in acf.items() if lag > 0)

    return {"white": np.ones(shape), "coloured": axis(shape[0])[:, None] * axis(shape[1])[None, :]}


def match_noise(image: np.ndarray, sky: np.ndarray, rng: np.random.Generator) -> NoiseMatch:
    """The noise that brings ``image``'s noise to the nearest training spectrum (module docstring).

    Parameters
    ----------
    image : ndarray, (H, W)
        The image on the model's grid (background subtracted or not).
    sky : ndarray of bool, (H, W)
        Pixels that hold noise only (or mostly: sources are clipped): valid, inside the image, off the lens.
    rng : numpy.random.Generator
        Source of the added noise (seeded by the caller: reproducible).
    """
    image = np.asarray(image, dtype=np.float64)
    if sky.sum() < MIN_SKY_PIXELS:
        return NoiseMatch(None, None, float("nan"), float("nan"), "")
    power, _ = noise_power(image, sky)
    variance = float(power.mean())
    if not variance > 0:
        return NoiseMatch(None, None, 0.0, float("nan"), "")
    spectra = _target_spectra(image.shape)
    scale = {name: float((power / t).max()) for name, t in spectra.items()}
    cost = {name: scale[name] * spectra[name].mean() - variance for name in spectra}
    target = min(cost, key=cost.get)
    correlation = _adjacent_correlation(power)
    if cost[target] < TOLERANCE * variance:
        return NoiseMatch(None, None, float(np.sqrt(variance)), correlation, "")
    added = _noise(np.clip(scale[target] * spectra[target] - power, 0.0, None), rng)
    after, _ = noise_power(image + added, sky)
    return NoiseMatch(added, _noise(after, rng), float(np.sqrt(after.mean())), correlation, target)


def _noise(spectrum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of power spectrum ``spectrum`` (variance = its mean; real: the spectrum is symmetric)."""
    white = rng.standard_normal(spectrum.shape)
    return np.fft.ifft2(np.fft.fft2(white) * np.sqrt(spectrum)).real


def _adjacent_correlation(power: np.ndarray) -> float:
    acf = np.fft.ifft2(power).real
    return float(0.5 * (acf[0, 1] + acf[1, 0]) / acf[0, 0])
