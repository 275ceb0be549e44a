"""Hot pixels: Poisson count, single pixels within the amplitude range, same pixel in every band."""

import pytest
import torch

from lensnet.errors import LensnetConfigError
from lensnet.observe.hot_pixels import HotPixelConfig, hot_pixels


def test_counts_positions_and_amplitudes(generator):
    images = torch.zeros(512, 2, 32, 32)
    cfg = HotPixelConfig(rate=2.0, max_count=6, amplitude_range=(0.1, 0.3))
    out, record = hot_pixels(images, cfg, generator, peak=torch.full((512,), 2.0))
    n = record["n_hot_pixels"]
    assert n.float().mean().item() == pytest.approx(2.0, abs=0.2) and n.max() <= 6
    assert torch.equal(out[:, 0], out[:, 1])  # a detector defect: the same pixel in every band
    lit = (out[:, 0] > 0).sum(dim=(1, 2))
    assert (lit <= n).all() and (lit >= n - 1).all()  # two draws on one pixel are rare
    values = out[out > 0]
    assert ((values >= 0.2 - 1e-6) & (values <= 0.6 + 1e-6)).all()
    assert torch.allclose(out.amax(dim=(1, 2, 3)), record["hot_pixel_amplitude_max"] * 2)


def test_probability_zero_changes_nothing(generator):
    images = torch.rand(16, 1, 8, 8, generator=generator)
    out, record = hot_pixels(images, HotPixelConfig(probability=0.0), generator)
    assert torch.equal(out, images) and (record["n_hot_pixels"] == 0).all()


def test_bad_config():
    with pytest.raises(LensnetConfigError, match="max_count"):
        HotPixelConfig(max_count=2.5)
