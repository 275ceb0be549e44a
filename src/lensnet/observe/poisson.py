"""Poisson shot noise, drawn per image at a random photon count per unit peak flux.

The paper (Hezaveh et al. 2017, Methods; released code) adds shot noise to each image with
probability 0.8, at 50-1000 counts per unit peak: the image is scaled so that its reference peak
is ``counts`` photons, a Poisson number of photons is drawn per pixel, and the result is scaled
back to the input flux unit.

Negative pixels (a sky-subtracted source stamp can have some) emit no photons: the Poisson rate
is the clamped value max(x, 0), and the pixel receives the zero-mean fluctuation n - lambda added
to its original value, so negative pixels pass through unchanged and the mean image is preserved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform, reference_peak

__all__ = ["PoissonConfig", "poisson_noise"]


@dataclass(frozen=True)
class PoissonConfig(Config):
    """Probability and level of the shot noise.

    Parameters
    ----------
    probability : float
        Chance that an image receives shot noise [0.8, the paper's].
    counts_range : (float, float)
        Photon counts at the reference peak, drawn uniformly per image [(50, 1000), the paper's].
    """

    probability: float = setting(0.8, min=0.0, max=1.0)
    counts_range: tuple[float, float] = setting((50.0, 1000.0), min=0.0, max=1e12, min_open=True)


def poisson_noise(images: torch.Tensor, config: PoissonConfig, generator: torch.Generator,
                  peak: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Add Poisson shot noise to each image with probability ``config.probability``.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Noiseless images, any flux unit; every channel gets the image's count level.
    config : PoissonConfig
        Probability and count range.
    generator : torch.Generator
        Source of randomness, on the images' device.
    peak : Tensor, (B,), optional
        Reference flux that ``counts`` photons correspond to [each image's maximum].

    Returns
    -------
    images : Tensor, (B, C, H, W)
        x + (n - lambda) peak / counts with lambda = max(x, 0) counts / peak and n ~ Poisson(lambda),
        where applied; unchanged elsewhere.
    record : dict of (B,) tensors
        ``poisson_applied`` (bool) and ``poisson_counts`` (counts per reference peak, drawn for
        every image).
    """
    check_images(images, generator)
    peak = reference_peak(images, peak)
    applied = draw_bernoulli(config.probability, images, generator)
    counts = draw_uniform(*config.counts_range, images, generator)
    chosen = applied.nonzero().flatten()  # only these images are drawn: the others are returned as they are
    sub = images[chosen]
    scale = (counts / peak)[chosen][:, None, None, None]
    rate = sub.clamp_min(0).mul_(scale)
    out = images.clone()
    out[chosen] = _photons(rate, generator).sub_(rate).div_(scale).add_(sub)
    return out, {"poisson_applied": applied, "poisson_counts": counts}


#: Below this mean number of photons a pixel gets one photon with probability rate and never two:
#: P(n >= 2) < rate^2 / 2 <= 5e-5. Such pixels (PSF wings, about 40% of a lens image) are the slowest
#: case of ``torch.poisson`` on CPUs.
SMALL_RATE = 0.01


def _photons(rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson draws of mean ``rate``; Bernoulli(rate) where rate < :data:`SMALL_RATE`."""
    small = rate < SMALL_RATE
    photons = torch.poisson(rate.masked_fill(small, 0.0), generator=generator)
    hit = torch.rand(rate.shape, generator=generator, device=rate.device, dtype=rate.dtype) < rate
    return photons.masked_fill_(small & hit, 1.0)
