"""Hot pixels: a few single pixels per image with a spurious positive signal.

The paper (Hezaveh et al. 2017, Methods) lists hot pixels among the training effects without
giving numbers; lensnet's defaults are a Poisson number of hot pixels with mean 2 per image
(at most 10), each at U[0.05, 0.5] of the arc peak. Hot pixels are detector defects, so they sit
at the same position in every channel (band) of an image and are not PSF-convolved. Two hot
pixels drawn on the same pixel combine by maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform, reference_peak

__all__ = ["HotPixelConfig", "hot_pixels"]


@dataclass(frozen=True)
class HotPixelConfig(Config):
    """Probability, number and amplitude of hot pixels.

    Parameters
    ----------
    probability : float
        Chance that an image has hot pixels [1.0].
    rate : float
        Mean number of hot pixels per image where applied (Poisson) [2.0].
    max_count : int
        Cap on the number per image [10].
    amplitude_range : (float, float)
        Amplitude in units of the reference peak, drawn uniformly per pixel [(0.05, 0.5)].
    """

    probability: float = setting(1.0, min=0.0, max=1.0)
    rate: float = setting(2.0, min=0.0, max=1e4)
    max_count: int = setting(10, min=0, max=10_000)
    amplitude_range: tuple[float, float] = setting((0.05, 0.5), min=0.0)


def hot_pixels(images: torch.Tensor, config: HotPixelConfig, generator: torch.Generator,
               peak: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Add hot pixels to each image with probability ``config.probability``.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images, any flux unit.
    config : HotPixelConfig
        Probability, rate, cap and amplitude range.
    generator : torch.Generator
        Source of randomness, on the images' device.
    peak : Tensor, (B,), optional
        Reference flux of the amplitudes' unit [each image's maximum].

    Returns
    -------
    images : Tensor, (B, C, H, W)
        With hot pixels added where applied.
    record : dict of (B,) tensors
        ``hot_pixels_applied`` (bool), ``n_hot_pixels`` (number added, int64) and
        ``hot_pixel_amplitude_max`` (largest added amplitude, units of the peak; 0 if none).
    """
    check_images(images, generator)
    peak = reference_peak(images, peak)
    b, _, h, w = images.shape
    m = config.max_count
    applied = draw_bernoulli(config.probability, images, generator)
    rate = torch.full((b,), config.rate, device=images.device, dtype=images.dtype)
    count = torch.poisson(rate, generator=generator).clamp(max=m).long() * applied
    position = torch.randint(h * w, (b, m), generator=generator, device=images.device)
    amplitude = draw_uniform(*config.amplitude_range, images, generator, shape=(b, m))
    amplitude = amplitude * (torch.arange(m, device=images.device) < count[:, None])
    index = position + h * w * torch.arange(b, device=images.device)[:, None]
    flat = torch.zeros(b * h * w, device=images.device, dtype=images.dtype)
    flat.scatter_reduce_(0, index.flatten(), (amplitude * peak[:, None]).flatten(), reduce="amax")
    record = {"hot_pixels_applied": applied, "n_hot_pixels": count,
              "hot_pixel_amplitude_max": amplitude.amax(dim=1) if m else torch.zeros_like(peak)}
    return images + flat.reshape(b, 1, h, w), record
