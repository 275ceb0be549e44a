"""Cosmic rays: only where applied, never above the configured amplitude, realistic track sizes."""

import math

import pytest
import torch

from lensnet.errors import LensnetConfigError
from lensnet.observe.cosmic_rays import CosmicRayConfig, cosmic_rays


def test_rays_only_where_applied_and_bounded(generator):
    images = torch.rand(256, 1, 48, 48, generator=generator)
    peak = images.amax(dim=(1, 2, 3))
    out, record = cosmic_rays(images, CosmicRayConfig(), generator)
    diff = out - images
    applied = record["cosmic_rays_applied"]
    assert 0.7 < applied.float().mean() < 0.9
    assert torch.equal(out[~applied], images[~applied])
    assert (record["n_cosmic_rays"][~applied] == 0).all()
    n = record["n_cosmic_rays"][applied]
    assert ((n >= 1) & (n <= 5)).all()
    assert (diff >= -1e-6).all()
    assert (diff.amax(dim=(1, 2, 3)) <= record["cosmic_ray_amplitude_max"] * peak + 1e-6).all()
    assert (diff.amax(dim=(1, 2, 3)) <= 0.5 * peak + 1e-6).all()
    # each ray is centred in the image, so every hit image shows it: coverage >= 1 - sqrt(2)/2
    assert (diff.amax(dim=(1, 2, 3))[applied] >= 0.29 * 0.05 * peak[applied]).all()


def test_track_area_is_length_times_width(generator):
    # coverage integrates to the area of a capsule: length x width plus a disc of the width
    cfg = CosmicRayConfig(probability=1.0, amplitude_range=(1.0, 1.0), count_range=(1, 1), track_probability=1.0,
                          track_length_range=(20.0, 20.0), track_width_range=(1.5, 1.5), max_bend_deg=0.0)
    out, record = cosmic_rays(torch.zeros(64, 1, 128, 128, dtype=torch.float64), cfg, generator,
                              peak=torch.ones(64, dtype=torch.float64))
    area = out.sum(dim=(1, 2, 3))
    assert (record["n_cosmic_ray_tracks"] == 1).all()
    assert area.median().item() == pytest.approx(20 * 1.5 + math.pi * 0.75**2, rel=0.05)
    assert (area <= (20 * 1.5 + math.pi * 0.75**2) * 1.05).all()


def test_hits_are_small_blobs(generator):
    cfg = CosmicRayConfig(probability=1.0, amplitude_range=(1.0, 1.0), count_range=(1, 1), track_probability=0.0)
    out, record = cosmic_rays(torch.zeros(64, 1, 32, 32), cfg, generator, peak=torch.ones(64))
    assert (record["n_cosmic_ray_tracks"] == 0).all()
    assert ((out > 0).sum(dim=(1, 2, 3)) <= 16).all()  # at most 3 px across, plus partly covered pixels


def test_each_ray_hits_one_band(generator):
    cfg = CosmicRayConfig(probability=1.0, count_range=(1, 1))
    out, _ = cosmic_rays(torch.zeros(64, 2, 32, 32), cfg, generator, peak=torch.ones(64))
    hit = (out > 0).any(dim=(2, 3))
    assert (hit.sum(dim=1) == 1).all() and hit[:, 0].any() and hit[:, 1].any()


def test_bad_config():
    with pytest.raises(LensnetConfigError, match="count_range"):
        CosmicRayConfig(count_range=(1.5, 3))
    with pytest.raises(LensnetConfigError, match="max_bend_deg"):
        CosmicRayConfig(max_bend_deg=-5)
