"""Observational effects of the paper, batched and drawn independently per image.

PSF, Poisson and Gaussian noise, cosmic rays, hot pixels, zero bias and masks, one per module;
:func:`observe` composes them in physical order (see :mod:`lensnet.observe.pipeline`).
"""

from lensnet.observe.bias import BiasConfig, zero_bias
from lensnet.observe.cosmic_rays import CosmicRayConfig, cosmic_rays
from lensnet.observe.gaussian_noise import GaussianNoiseConfig, colored_noise_taps, gaussian_noise
from lensnet.observe.hot_pixels import HotPixelConfig, hot_pixels
from lensnet.observe.masks import MaskConfig, random_masks
from lensnet.observe.pipeline import ObservationConfig, observe
from lensnet.observe.poisson import PoissonConfig, poisson_noise
from lensnet.observe.psf import PixelPSF, PSFConfig, apply_psf, convolve, gaussian_kernels, moffat_kernels

__all__ = [
    "BiasConfig",
    "CosmicRayConfig",
    "GaussianNoiseConfig",
    "HotPixelConfig",
    "MaskConfig",
    "ObservationConfig",
    "PSFConfig",
    "PixelPSF",
    "PoissonConfig",
    "apply_psf",
    "colored_noise_taps",
    "convolve",
    "cosmic_rays",
    "gaussian_kernels",
    "gaussian_noise",
    "hot_pixels",
    "moffat_kernels",
    "observe",
    "poisson_noise",
    "random_masks",
    "zero_bias",
]
