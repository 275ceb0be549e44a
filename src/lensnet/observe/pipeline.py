"""All observational effects of the paper, composed in physical order on a batch of clean images.

Order of application (Hezaveh et al. 2017, Methods; each effect drawn independently per image,
unlike the released code, which drew the PSF width and the noise level from one random number):

1. PSF convolution of the sky image (:mod:`lensnet.observe.psf`).
2. Division by the arc peak: the maximum of the PSF-convolved noiseless image. From here on every
   amplitude is in units of that peak, as in the paper, which is the same as applying each effect
   in the input flux unit with amplitudes relative to the peak and dividing at the end.
3. Poisson shot noise (:mod:`lensnet.observe.poisson`).
4. Gaussian noise, white or coloured (:mod:`lensnet.observe.gaussian_noise`).
5. Cosmic rays, then hot pixels: detector effects, after the PSF and unblurred
   (:mod:`lensnet.observe.cosmic_rays`, :mod:`lensnet.observe.hot_pixels`).
6. Zero bias, a constant offset (:mod:`lensnet.observe.bias`).
7. Masks: random discs set to 0, limited by the flux of the noiseless arc of step 2
   (:mod:`lensnet.observe.masks`).

The background subtraction that prepares network inputs is not an observational effect and is left
to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images
from lensnet.observe.bias import BiasConfig, zero_bias
from lensnet.observe.cosmic_rays import CosmicRayConfig, cosmic_rays
from lensnet.observe.gaussian_noise import GaussianNoiseConfig, gaussian_noise
from lensnet.observe.hot_pixels import HotPixelConfig, hot_pixels
from lensnet.observe.masks import MaskConfig, random_masks
from lensnet.observe.poisson import PoissonConfig, poisson_noise
from lensnet.observe.psf import PixelPSF, PSFConfig, apply_psf

__all__ = ["ObservationConfig", "observe"]


@dataclass(frozen=True)
class ObservationConfig(Config):
    """The configs of every effect; defaults are the paper's numbers.

    Parameters
    ----------
    psf : PSFConfig
        PSF kind, probability and widths.
    poisson : PoissonConfig
        Shot-noise probability and counts per unit peak.
    gaussian_noise : GaussianNoiseConfig
        Gaussian noise level and colour.
    cosmic_rays : CosmicRayConfig
        Cosmic-ray probability, number, shapes and amplitudes.
    hot_pixels : HotPixelConfig
        Hot-pixel rate and amplitudes.
    bias : BiasConfig
        Constant offset distribution.
    masks : MaskConfig
        Mask probability, number, radius and arc-flux limit.

    Examples
    --------
    >>> cfg = ObservationConfig.from_dict({"poisson": {"probability": 1.0}})
    >>> cfg.poisson.probability, cfg.psf.sigma_range
    (1.0, (0.1, 2.0))
    >>> ObservationConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    psf: PSFConfig = setting(factory=PSFConfig)
    poisson: PoissonConfig = setting(factory=PoissonConfig)
    gaussian_noise: GaussianNoiseConfig = setting(factory=GaussianNoiseConfig)
    cosmic_rays: CosmicRayConfig = setting(factory=CosmicRayConfig)
    hot_pixels: HotPixelConfig = setting(factory=HotPixelConfig)
    bias: BiasConfig = setting(factory=BiasConfig)
    masks: MaskConfig = setting(factory=MaskConfig)


def observe(clean_images: torch.Tensor, config: ObservationConfig, generator: torch.Generator,
            pixel_scale: float, psf: PixelPSF | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Apply every observational effect to a batch of noiseless lensed images.

    Parameters
    ----------
    clean_images : Tensor, (B, C, H, W)
        Noiseless sky images (lensed arcs) at the native pixel scale, any flux unit.
    config : ObservationConfig
        Probabilities and ranges of every effect.
    generator : torch.Generator
        The only source of randomness, on the images' device; a seed fixes the output.
    pixel_scale : float
        Pixel side in arcsec (sets the mask radius in pixels).
    psf : PixelPSF, optional
        Kernels when ``config.psf.kind`` is "pixel" (otherwise read from ``config.psf.pixel_psf_file``).

    Returns
    -------
    images : Tensor, (B, C, H, W)
        Observed images in units of the arc peak, masked pixels 0.
    masks : Tensor of bool, (B, 1, H, W)
        True where masked.
    record : dict of (B,) tensors
        Every drawn value, keyed as in the effects' records, plus ``arc_peak``: the peak of the
        PSF-convolved noiseless image in the input flux unit, by which the images were divided.
    """
    check_images(clean_images, generator, "clean_images")
    images, record = apply_psf(clean_images, config.psf, generator, psf)
    peak = images.detach().amax(dim=(1, 2, 3))
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    images = images / peak[:, None, None, None]
    arc = images
    unit = torch.ones_like(peak)
    for effect, cfg in ((poisson_noise, config.poisson), (gaussian_noise, config.gaussian_noise),
                        (cosmic_rays, config.cosmic_rays), (hot_pixels, config.hot_pixels), (zero_bias, config.bias)):
        images, rec = effect(images, cfg, generator, unit)
        record.update(rec)
    images, masks, rec = random_masks(images, arc, config.masks, generator, pixel_scale)
    record.update(rec)
    record["arc_peak"] = peak
    return images, masks, record
