"""Point-spread function (PSF) convolution of a batch, with one kernel per image.

The paper (Hezaveh et al. 2017, Methods; released code) blurs each training image with probability
0.8 by a Gaussian PSF of width sigma ~ U[0.1, 2.0] pixels. lensnet also offers a Moffat PSF
(FWHM and beta drawn per image) and a user's pixel PSF (one or several kernels from an array or a
FITS file, one drawn per image). All kernels are normalised to unit sum, so convolution conserves
flux away from the image edges.

Convolution is linear (not circular): images are zero-padded by the kernel half-width before the
FFT, so nothing wraps around; flux blurred past the border is lost, as on a real detector cut-out.

Supersampling contract of pixel PSFs: images reaching this module are at the native pixel scale
(lensnet renders supersampled and bins before observing). A pixel PSF is either sampled at that
scale (``supersample=1``) or declared supersampled by an integer factor s, i.e. sampled every 1/s
native pixel, with an odd size and its centre on the central sample. It is then reduced to the
native grid by :meth:`PixelPSF.native`: an optical PSF is integrated over native pixels (convolved
with an s-wide box, then sampled every s samples through the centre); an *effective* PSF, one that
already includes the pixel response (e.g. the HST ePSFs of Anderson & King 2000, such as the WFC3
F814W ePSFs in ``paltas_emp_psf_f814w.fits``, 101 x 101 at s = 4), is only sampled every s samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from lensnet.errors import LensnetConfigError, LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform

__all__ = [
    "PSFConfig",
    "PixelPSF",
    "apply_psf",
    "convolve",
    "gaussian_kernels",
    "moffat_kernels",
]

PSF_KINDS = ("gaussian", "moffat", "pixel")
_MOFFAT_SUBSAMPLE = 5  # sub-samples per pixel side when integrating a Moffat kernel over pixels


@dataclass(frozen=True)
class PSFConfig(Config):
    """Which PSF to apply, how often, and the ranges its parameters are drawn from.

    Parameters
    ----------
    kind : str
        "gaussian" (the paper's), "moffat", or "pixel" (kernels read from ``pixel_psf_file``).
    probability : float
        Chance that an image is convolved [0.8, the paper's].
    sigma_range : (float, float)
        Gaussian width sigma in pixels, drawn uniformly [(0.1, 2.0), the paper's].
    fwhm_range : (float, float)
        Moffat full width at half maximum in pixels [(0.25, 4.7), the FWHM span of the Gaussian].
    beta_range : (float, float)
        Moffat index beta, > 1 [(2.0, 5.0)].
    pixel_psf_file : str or None
        FITS file of one (K, K) or several (N, K, K) kernels, used when ``kind`` is "pixel".
    pixel_psf_hdu : int
        HDU of ``pixel_psf_file`` holding the kernels [0].
    supersample : int
        Samples per native pixel side of the pixel PSF [1]; see the module notes.
    effective : bool
        Whether the pixel PSF already includes the pixel response (an ePSF) [False].
    """

    kind: str = setting("gaussian", choices=PSF_KINDS)
    probability: float = setting(0.8, min=0.0, max=1.0)
    sigma_range: tuple[float, float] = setting((0.1, 2.0), min=0.0, max=50.0, min_open=True)
    fwhm_range: tuple[float, float] = setting((0.25, 4.7), min=0.0, max=100.0, min_open=True)
    beta_range: tuple[float, float] = setting((2.0, 5.0), min=1.0, max=100.0, min_open=True)
    pixel_psf_file: str | None = setting(None)
    pixel_psf_hdu: int = setting(0, min=0)
    supersample: int = setting(1, min=1, max=64)
    effective: bool = setting(False)


@dataclass(frozen=True)
class PixelPSF:
    """One or several pixel PSF kernels, each normalised to unit sum.

    Parameters
    ----------
    kernels : Tensor or array, (K, K) or (N, K, K)
        Kernel samples, K odd, centre on the central sample; row 0 is the bottom (FITS order, as
        the images). Negative samples (noise in empirical wings) are set to zero, then each kernel
        is divided by its sum. Stored as (N, K, K).
    supersample : int
        Samples per native pixel side [1]; see the module notes.
    effective : bool
        True if the kernels already include the pixel response (effective PSFs) [False].

    Examples
    --------
    >>> psf = PixelPSF(torch.ones(3, 3))
    >>> float(psf.kernels.sum())
    1.0
    """

    kernels: torch.Tensor
    supersample: int = 1
    effective: bool = False

    def __post_init__(self):
        k = torch.as_tensor(self.kernels)
        k = k[None] if k.ndim == 2 else k
        if k.ndim != 3 or k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 == 0:
            raise LensnetShapeError("kernels", k.shape, "(K, K) or (N, K, K) with K odd")
        if not k.is_floating_point():
            k = k.double()
        if not torch.isfinite(k).all():
            raise LensnetValueError("kernels contain non-finite values (NaN or inf)")
        k = k.clamp_min(0)
        total = k.sum(dim=(1, 2), keepdim=True)
        if not (total > 0).all():
            raise LensnetValueError("every PSF kernel needs a positive sum after clipping negative samples")
        if isinstance(self.supersample, bool) or int(self.supersample) != self.supersample or self.supersample < 1:
            raise LensnetValueError(f"supersample = {self.supersample!r}: expected a positive integer")
        object.__setattr__(self, "kernels", k / total)
        object.__setattr__(self, "supersample", int(self.supersample))

    @classmethod
    def from_fits(cls, path, hdu: int = 0, supersample: int = 1, effective: bool = False) -> "PixelPSF":
        """Read kernels from a FITS image (K, K) or cube (N, K, K); see the class parameters."""
        from astropy.io import fits

        path = Path(path)
        try:
            with fits.open(path, memmap=False) as hdul:
                data = hdul[hdu].data
        except (OSError, IndexError) as err:
            raise LensnetIOError(f"cannot read a PSF from HDU {hdu} of {path}: {err}") from err
        if data is None:
            raise LensnetIOError(f"HDU {hdu} of {path} holds no image data")
        return cls(torch.as_tensor(np.asarray(data, dtype=np.float64)), supersample, effective)

    def native(self) -> "PixelPSF":
        """The kernels at the native pixel scale (``supersample`` 1); see the module notes."""
        s = self.supersample
        if s == 1:
            return self
        k = self.kernels
        if not self.effective:
            # integrate over a native pixel: an s-sample box; for even s the box ends on samples,
            # which therefore count half
            box = torch.ones(s + 1 - s % 2, dtype=k.dtype)
            if s % 2 == 0:
                box[0] = box[-1] = 0.5
            k = _box_filter(_box_filter(k, box / s).transpose(1, 2), box / s).transpose(1, 2)
        c = k.shape[-1] // 2
        idx = c + s * torch.arange(-(c // s), c // s + 1)
        return PixelPSF(k[:, idx][:, :, idx], 1, False)


def gaussian_kernels(sigma: torch.Tensor, half: int) -> torch.Tensor:
    """Pixel-integrated circular Gaussian kernels, one per image, each of unit sum.

    Parameters
    ----------
    sigma : Tensor, (B,), pixels
        Standard deviations.
    half : int
        Kernel half-width; kernels are (2 half + 1) pixels across.

    Returns
    -------
    Tensor, (B, 2 half + 1, 2 half + 1)
        Outer product of the 1-D kernels erf-integrated over each pixel.
    """
    k = _gaussian_1d(sigma, half)
    return k[:, :, None] * k[:, None, :]


def moffat_kernels(fwhm: torch.Tensor, beta: torch.Tensor, half: int) -> torch.Tensor:
    r"""Circular Moffat kernels, averaged over each pixel, truncated and normalised to unit sum.

    I(r) ∝ (1 + (r/alpha)^2)^(-beta) with alpha = FWHM / (2 sqrt(2^(1/beta) - 1)) (Moffat 1969).

    Parameters
    ----------
    fwhm : Tensor, (B,), pixels
        Full widths at half maximum.
    beta : Tensor, (B,)
        Moffat indices, > 1.
    half : int
        Kernel half-width; flux beyond it is dropped before normalising.

    Returns
    -------
    Tensor, (B, 2 half + 1, 2 half + 1)
    """
    n = _MOFFAT_SUBSAMPLE
    size = 2 * half + 1
    axis = (torch.arange(size * n, device=fwhm.device, dtype=fwhm.dtype) + 0.5) / n - size / 2
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    alpha = fwhm / (2 * torch.sqrt(2 ** (1 / beta) - 1))
    prof = (1 + r2 / alpha[:, None, None] ** 2) ** (-beta[:, None, None])
    k = torch.nn.functional.avg_pool2d(prof[:, None], n)[:, 0]
    return k / k.sum(dim=(1, 2), keepdim=True)


def convolve(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Linear (zero-padded, not circular) convolution by FFT, one kernel per image.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images; every channel of an image gets that image's kernel.
    kernels : Tensor, (K, K) or (B, K, K), K odd
        Kernels centred on their central sample (one shared, or one per image).

    Returns
    -------
    Tensor, (B, C, H, W)
        The convolved images, same size, aligned with the input.
    """
    kernels = kernels[None] if kernels.ndim == 2 else kernels
    if kernels.ndim != 3 or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
        raise LensnetShapeError("kernels", kernels.shape, "(K, K) or (B, K, K) with K odd")
    if kernels.shape[0] not in (1, images.shape[0]):
        raise LensnetShapeError("kernels", kernels.shape, f"(K, K) or ({images.shape[0]}, K, K)")
    size = _padded_size(images, kernels.shape[-1])
    kernel_ft = torch.fft.rfft2(kernels.to(images.dtype), s=size)[:, None]
    return _fft_convolve(images, kernel_ft, kernels.shape[-1], size)


def apply_psf(images: torch.Tensor, config: PSFConfig, generator: torch.Generator,
              psf: PixelPSF | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Blur each image, with probability ``config.probability``, by a PSF drawn for it.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Sky images at the native pixel scale (any flux unit); the channels share a kernel.
    config : PSFConfig
        Kind of PSF, probability and parameter ranges.
    generator : torch.Generator
        Source of randomness, on the images' device.
    psf : PixelPSF, optional
        Kernels for ``kind`` "pixel"; overrides ``config.pixel_psf_file``.

    Returns
    -------
    images : Tensor, (B, C, H, W)
        Convolved where applied, unchanged elsewhere.
    record : dict of (B,) tensors
        ``psf_applied`` (bool) and the drawn parameters: ``psf_sigma_pix`` (gaussian),
        ``psf_fwhm_pix`` and ``psf_moffat_beta`` (moffat), or ``psf_index`` (pixel: which kernel).
        Parameters are drawn for every image; they act only where ``psf_applied``.
    """
    check_images(images, generator)
    applied = draw_bernoulli(config.probability, images, generator)
    record = {"psf_applied": applied}
    chosen = applied.nonzero().flatten()  # only these images are convolved
    if chosen.numel() == 0:  # MKL's FFT rejects empty batches
        chosen = torch.zeros(1, dtype=torch.long, device=images.device)
        applied = torch.zeros_like(applied)
    if config.kind == "gaussian":
        sigma = draw_uniform(*config.sigma_range, images, generator)
        half = math.ceil(4 * config.sigma_range[1])
        k1 = _gaussian_1d(sigma[chosen], half)
        size = _padded_size(images, 2 * half + 1)
        kernel_ft = torch.fft.fft(k1, n=size[0])[:, :, None] * torch.fft.rfft(k1, n=size[1])[:, None, :]
        blurred = _fft_convolve(images[chosen], kernel_ft[:, None], 2 * half + 1, size)
        record["psf_sigma_pix"] = sigma
    elif config.kind == "moffat":
        fwhm = draw_uniform(*config.fwhm_range, images, generator)
        beta = draw_uniform(*config.beta_range, images, generator)
        blurred = convolve(images[chosen], moffat_kernels(fwhm[chosen], beta[chosen], math.ceil(3 * config.fwhm_range[1])))
        record.update(psf_fwhm_pix=fwhm, psf_moffat_beta=beta)
    else:
        if psf is None:
            if config.pixel_psf_file is None:
                raise LensnetConfigError("pixel_psf_file = None: kind 'pixel' needs a FITS file or a psf (PSFConfig)")
            psf = _load_pixel_psf(config.pixel_psf_file, config.pixel_psf_hdu, config.supersample, config.effective)
        kernels = psf.native().kernels.to(device=images.device, dtype=images.dtype)
        index = torch.randint(kernels.shape[0], images.shape[:1], generator=generator, device=images.device)
        blurred = convolve(images[chosen], kernels[index[chosen]])
        record["psf_index"] = index
    out = images.clone()
    out[chosen] = torch.where(applied[chosen, None, None, None], blurred, images[chosen])
    return out, record


@lru_cache(maxsize=8)
def _load_pixel_psf(path: str, hdu: int, supersample: int, effective: bool) -> PixelPSF:
    return PixelPSF.from_fits(path, hdu, supersample, effective).native()


def _gaussian_1d(sigma: torch.Tensor, half: int) -> torch.Tensor:
    # erf differences integrate the Gaussian over each pixel, so sigma << 1 px tends to a delta
    edges = torch.arange(-half - 0.5, half + 1.0, device=sigma.device, dtype=sigma.dtype)
    cdf = torch.special.ndtr(edges[None, :] / sigma[:, None])
    k = cdf[:, 1:] - cdf[:, :-1]
    return k / k.sum(dim=1, keepdim=True)


def _box_filter(k: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Filter the last axis of (N, K, K) with a symmetric odd 1-D ``box``, zero-padded, same size."""
    n, a, b = k.shape
    out = torch.nn.functional.conv1d(k.reshape(n * a, 1, b), box.to(k)[None, None], padding=box.numel() // 2)
    return out.reshape(n, a, b)


def _fast_length(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _padded_size(images: torch.Tensor, k: int) -> tuple[int, int]:
    return _fast_length(images.shape[-2] + k - 1), _fast_length(images.shape[-1] + k - 1)


def _fft_convolve(images: torch.Tensor, kernel_ft: torch.Tensor, k: int, size: tuple[int, int]) -> torch.Tensor:
    """Convolve with kernels given by their rfft2 at the padded ``size``, shaped (B or 1, 1, Hp, Wp//2+1)."""
    h, w = images.shape[-2:]
    out = torch.fft.irfft2(torch.fft.rfft2(images, s=size) * kernel_ft, s=size)
    c = k // 2
    return out[..., c:c + h, c:c + w]
