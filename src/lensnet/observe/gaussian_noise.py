"""Gaussian read/sky noise, white or coloured, at a random rms per image.

The paper (Hezaveh et al. 2017, Methods; released code) adds Gaussian noise to every image with an
rms drawn from U[0.01, 0.1] of the arc peak; 25% of the images get white noise and 75% coloured
noise with an HST-like spectrum (drizzling correlates neighbouring pixels; neighbour correlation
about 0.28).

Coloured noise is white noise filtered by the separable 3 x 3 kernel a a^T with a = (t, 1, t) / n,
n = sqrt(1 + 2 t^2), so the sum of the squared taps is 1 and the rms is the one requested. The
correlation of horizontal or vertical neighbours is then rho = 2 t / (1 + 2 t^2), so
t = (1 - sqrt(1 - 2 rho^2)) / (2 rho) reaches any rho up to 1/sqrt(2); diagonal neighbours have
correlation rho^2 (0.0784 at the default rho = 0.28) and pixels two apart t^2 / (1 + 2 t^2)
(0.020). The white noise is drawn one pixel wider on every side, so the edges are as correlated as
the interior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform, reference_peak

__all__ = ["GaussianNoiseConfig", "colored_noise_taps", "gaussian_noise"]


@dataclass(frozen=True)
class GaussianNoiseConfig(Config):
    """Probability, level and colour of the Gaussian noise.

    Parameters
    ----------
    probability : float
        Chance that an image receives noise [1.0, the paper's].
    rms_range : (float, float)
        Noise rms in units of the reference peak, drawn uniformly [(0.01, 0.1), the paper's].
    colored_probability : float
        Chance that the noise is coloured rather than white [0.75, the paper's].
    neighbour_correlation : float
        Correlation of adjacent pixels in coloured noise, in [0, 1/sqrt(2)) [0.28, the paper's].
    """

    probability: float = setting(1.0, min=0.0, max=1.0)
    rms_range: tuple[float, float] = setting((0.01, 0.1), min=0.0)
    colored_probability: float = setting(0.75, min=0.0, max=1.0)
    neighbour_correlation: float = setting(0.28, min=0.0, max=1 / math.sqrt(2), max_open=True)


def colored_noise_taps(neighbour_correlation: float) -> tuple[float, float, float]:
    """The 1-D taps (t, 1, t) / sqrt(1 + 2 t^2) giving adjacent-pixel correlation ``neighbour_correlation``."""
    rho = neighbour_correlation
    t = 0.0 if rho == 0 else (1 - math.sqrt(1 - 2 * rho**2)) / (2 * rho)
    n = math.sqrt(1 + 2 * t**2)
    return t / n, 1 / n, t / n


def gaussian_noise(images: torch.Tensor, config: GaussianNoiseConfig, generator: torch.Generator,
                   peak: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Add white or coloured Gaussian noise of rms ~ U(rms_range) x peak to each image.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images, any flux unit; each channel gets independent noise at the image's level.
    config : GaussianNoiseConfig
        Probability, rms range, chance of colour and neighbour correlation.
    generator : torch.Generator
        Source of randomness, on the images' device.
    peak : Tensor, (B,), optional
        Reference flux of the rms's unit [each image's maximum].

    Returns
    -------
    images : Tensor, (B, C, H, W)
        Noisy where applied.
    record : dict of (B,) tensors
        ``noise_applied`` (bool), ``noise_rms`` (units of the peak) and ``noise_colored`` (bool),
        drawn for every image.
    """
    check_images(images, generator)
    peak = reference_peak(images, peak)
    b, c, h, w = images.shape
    applied = draw_bernoulli(config.probability, images, generator)
    rms = draw_uniform(*config.rms_range, images, generator)
    colored = draw_bernoulli(config.colored_probability, images, generator)
    white = torch.randn((b, c, h + 2, w + 2), generator=generator, device=images.device, dtype=images.dtype)
    t0, t1, t2 = colored_noise_taps(config.neighbour_correlation)
    # Separable filter as in-place sums of shifted slices: several times faster than conv2d here.
    rows = (white[..., :-2, :] * t0).add_(white[..., 1:-1, :], alpha=t1).add_(white[..., 2:, :], alpha=t2)
    noise = (rows[..., :-2] * t0).add_(rows[..., 1:-1], alpha=t1).add_(rows[..., 2:], alpha=t2)
    noise = torch.where(colored[:, None, None, None], noise, white[..., 1:-1, 1:-1])
    sigma = torch.where(applied, rms * peak, torch.zeros_like(peak))
    return noise.mul_(sigma[:, None, None, None]).add_(images), {"noise_applied": applied, "noise_rms": rms,
                                                                 "noise_colored": colored}
