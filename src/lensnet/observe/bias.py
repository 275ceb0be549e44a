"""Zero bias: a constant offset added to each image.

The paper (Hezaveh et al. 2017, Methods; released code) gives every image a constant offset drawn
from N(0, 0.05) in units of the arc peak, so the network cannot rely on a zero sky level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, reference_peak

__all__ = ["BiasConfig", "zero_bias"]


@dataclass(frozen=True)
class BiasConfig(Config):
    """Probability and distribution of the offset, in units of the reference peak.

    Parameters
    ----------
    probability : float
        Chance that an image is offset [1.0, the paper's].
    mean : float
        Mean offset [0.0].
    std : float
        Standard deviation of the offset [0.05, the paper's].
    """

    probability: float = setting(1.0, min=0.0, max=1.0)
    mean: float = setting(0.0)
    std: float = setting(0.05, min=0.0)


def zero_bias(images: torch.Tensor, config: BiasConfig, generator: torch.Generator,
              peak: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Add a constant offset ~ N(mean, std) x peak to each image with probability ``config.probability``.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images, any flux unit; the channels share the offset.
    config : BiasConfig
        Probability, mean and standard deviation.
    generator : torch.Generator
        Source of randomness, on the images' device.
    peak : Tensor, (B,), optional
        Reference flux of the offset's unit [each image's maximum].

    Returns
    -------
    images : Tensor, (B, C, H, W)
        Offset where applied.
    record : dict of (B,) tensors
        ``bias_applied`` (bool) and ``bias`` (the drawn offset in units of the peak, drawn for
        every image).
    """
    check_images(images, generator)
    peak = reference_peak(images, peak)
    applied = draw_bernoulli(config.probability, images, generator)
    offset = config.mean + config.std * torch.randn(images.shape[:1], generator=generator, device=images.device,
                                                    dtype=images.dtype)
    out = images + torch.where(applied, offset * peak, torch.zeros_like(peak))[:, None, None, None]
    return out, {"bias_applied": applied, "bias": offset}
