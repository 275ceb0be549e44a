"""Faint cosmic rays: small hits and straight or slightly curved tracks, added after the PSF.

The paper (Hezaveh et al. 2017, Methods; released code) adds cosmic rays to each image with
probability 0.8, at up to 0.5 of the arc peak. Cosmic rays deposit charge in the detector, so they
are not blurred by the PSF and have sharp edges. lensnet draws, per image, 1-5 rays; each is a hit
(a blob 1-3 px across) or, with probability 0.5, a track 3-30 px long and 1-2 px wide (typical of
HST CCDs at 0.04"/px), bent by up to 20 degrees overall. Every ray has a uniform amplitude.

Rendering is vectorised over the batch and the rays: a ray is a polyline of three equal segments
(the bend shared between its two joints; a hit has length 0), and each pixel centre in a square
patch around the ray gets the coverage clamp(width / 2 + 1/2 - d, 0, 1), d its distance to the
polyline: 1 inside, 0 outside, with a one-pixel ramp that stands for partly crossed pixels.
Patches are scattered into the images; overlapping rays combine by maximum, so no pixel exceeds the
largest drawn amplitude. In a multi-band batch (B, C, H, W) each ray hits one band, drawn uniformly,
as the bands are separate exposures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform, reference_peak

__all__ = ["CosmicRayConfig", "cosmic_rays"]

_SEGMENTS = 3  # straight pieces per track; the bend is split between their two joints


@dataclass(frozen=True)
class CosmicRayConfig(Config):
    """Probability, number, shape and amplitude of the cosmic rays.

    Parameters
    ----------
    probability : float
        Chance that an image has cosmic rays [0.8, the paper's].
    amplitude_range : (float, float)
        Amplitude in units of the reference peak, drawn uniformly per ray [(0.05, 0.5); the
        paper's maximum is 0.5].
    count_range : (int, int)
        Number of rays per image where applied, drawn uniformly (inclusive) [(1, 5)].
    track_probability : float
        Chance that a ray is a track rather than a hit [0.5].
    track_length_range : (float, float)
        Track length in pixels [(3, 30)].
    track_width_range : (float, float)
        Track width in pixels [(1, 2)].
    hit_width_range : (float, float)
        Diameter of a hit in pixels [(1, 3)].
    max_bend_deg : float
        Largest change of direction along a track, degrees; drawn uniformly in +-max_bend_deg [20].
    """

    probability: float = setting(0.8, min=0.0, max=1.0)
    amplitude_range: tuple[float, float] = setting((0.05, 0.5), min=0.0)
    count_range: tuple[int, int] = setting((1, 5), min=0, max=1000)
    track_probability: float = setting(0.5, min=0.0, max=1.0)
    track_length_range: tuple[float, float] = setting((3.0, 30.0), min=0.0, max=1000.0)
    track_width_range: tuple[float, float] = setting((1.0, 2.0), min=0.0, max=100.0, min_open=True)
    hit_width_range: tuple[float, float] = setting((1.0, 3.0), min=0.0, max=100.0, min_open=True)
    max_bend_deg: float = setting(20.0, min=0.0, max=180.0)


def cosmic_rays(images: torch.Tensor, config: CosmicRayConfig, generator: torch.Generator,
                peak: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Add cosmic-ray hits and tracks to each image with probability ``config.probability``.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images after the PSF, any flux unit.
    config : CosmicRayConfig
        Probability, count, shapes and amplitudes.
    generator : torch.Generator
        Source of randomness, on the images' device.
    peak : Tensor, (B,), optional
        Reference flux of the amplitudes' unit [each image's maximum].

    Returns
    -------
    images : Tensor, (B, C, H, W)
        With cosmic rays added where applied.
    record : dict of (B,) tensors
        ``cosmic_rays_applied`` (bool), ``n_cosmic_rays`` and ``n_cosmic_ray_tracks`` (numbers
        added, int64), ``cosmic_ray_amplitude_max`` (largest added amplitude, units of the peak;
        0 if none).
    """
    check_images(images, generator)
    peak = reference_peak(images, peak)
    b, c, h, w = images.shape
    r = config.count_range[1]
    dev, dt = images.device, images.dtype

    def uniform(lo_hi, shape=(b, r)):
        return draw_uniform(*lo_hi, images, generator, shape=shape)

    applied = draw_bernoulli(config.probability, images, generator)
    count = torch.randint(config.count_range[0], r + 1, (b,), generator=generator, device=dev) * applied
    active = torch.arange(r, device=dev) < count[:, None]
    is_track = uniform((0.0, 1.0)) < config.track_probability
    length = torch.where(is_track, uniform(config.track_length_range), torch.zeros((), device=dev, dtype=dt))
    width = torch.where(is_track, uniform(config.track_width_range), uniform(config.hit_width_range))
    amplitude = uniform(config.amplitude_range) * active
    channel = torch.randint(c, (b, r), generator=generator, device=dev)
    row, col = uniform((-0.5, h - 0.5)), uniform((-0.5, w - 0.5))
    angle = uniform((0.0, 2 * math.pi))
    bend = uniform((-1.0, 1.0)) * math.radians(config.max_bend_deg)

    size = math.ceil(config.track_length_range[1] + max(config.track_width_range[1], config.hit_width_range[1])) + 3
    offsets = torch.arange(size, device=dev) - size // 2
    rows = torch.floor(row).long()[..., None] + offsets  # (b, r, size)
    cols = torch.floor(col).long()[..., None] + offsets
    dist = _distance_to_polyline(rows[..., :, None].to(dt), cols[..., None, :].to(dt), row, col, length, angle, bend)
    coverage = (width[..., None, None] / 2 + 0.5 - dist).clamp(0, 1)
    values = coverage * (amplitude * peak[:, None])[..., None, None]

    inside = ((rows >= 0) & (rows < h))[..., :, None] & ((cols >= 0) & (cols < w))[..., None, :]
    frame = torch.arange(b, device=dev)[:, None] * c + channel
    index = (frame[..., None, None] * h + rows[..., :, None]) * w + cols[..., None, :]
    trash = b * c * h * w  # out-of-image patch pixels land in one extra slot, dropped below
    index = torch.where(inside, index, torch.full_like(index, trash))
    flat = torch.zeros(trash + 1, device=dev, dtype=dt)
    flat.scatter_reduce_(0, index.flatten(), values.flatten(), reduce="amax")
    record = {"cosmic_rays_applied": applied, "n_cosmic_rays": count,
              "n_cosmic_ray_tracks": (active & is_track).sum(dim=1),
              "cosmic_ray_amplitude_max": amplitude.amax(dim=1) if r else torch.zeros_like(peak)}
    return images + flat[:trash].reshape(b, c, h, w), record


def _distance_to_polyline(py, px, row, col, length, angle, bend):
    """Distance (b, r, P, P) from pixel centres (py, px) to each ray's three-segment polyline.

    The polyline is centred on (row, col), (b, r) each, with total ``length``, initial direction
    ``angle`` and a change of direction ``bend`` split between its two joints.
    """
    step = length / _SEGMENTS
    turns = [angle + bend * (k / (_SEGMENTS - 1) - 0.5) for k in range(_SEGMENTS)]
    vx = [step * torch.cos(a) for a in turns]
    vy = [step * torch.sin(a) for a in turns]
    x0 = col - sum(vx) / 2
    y0 = row - sum(vy) / 2
    best = None
    for dx, dy in zip(vx, vy):
        ax, ay, dx_, dy_ = (t[..., None, None] for t in (x0, y0, dx, dy))
        t = ((px - ax) * dx_ + (py - ay) * dy_) / (dx_**2 + dy_**2).clamp_min(1e-12)
        t = t.clamp(0, 1)
        d2 = (px - ax - t * dx_) ** 2 + (py - ay - t * dy_) ** 2
        best = d2 if best is None else torch.minimum(best, d2)
        x0, y0 = x0 + dx, y0 + dy
    return best.sqrt()
