"""Poisson shot noise: variance equals mean in counts, negatives pass through, records."""

import pytest
import torch

from lensnet.errors import LensnetConfigError
from lensnet.observe.poisson import PoissonConfig, poisson_noise


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_variance_equals_mean_in_counts(generator, dtype):
    counts = 200.0
    level = torch.tensor([0.05, 0.25, 1.0], dtype=dtype)  # 10, 50 and 200 expected photons
    images = level[None, :, None, None].expand(64, 3, 32, 32).contiguous()
    cfg = PoissonConfig(probability=1.0, counts_range=(counts, counts))
    out, record = poisson_noise(images, cfg, generator, peak=torch.ones(64, dtype=dtype))
    photons = (out * counts).transpose(0, 1).reshape(3, -1)  # per level, 65,536 pixels
    expected = level * counts
    assert torch.allclose(photons.mean(dim=1), expected, rtol=0.01)
    assert torch.allclose(photons.var(dim=1), expected, rtol=0.03)  # sampling error ~0.6%
    assert torch.allclose(photons, photons.round(), atol=1e-3)  # whole photons


def test_counts_are_relative_to_the_peak(generator):
    images = torch.full((64, 1, 32, 32), 3.0, dtype=torch.float64)
    cfg = PoissonConfig(probability=1.0, counts_range=(100.0, 100.0))
    out, _ = poisson_noise(images, cfg, generator)  # peak defaults to the image maximum, 3
    assert (out / 3 * 100).var().item() == pytest.approx(100, rel=0.03)


def test_negative_pixels_pass_through_and_records(generator):
    images = torch.rand(128, 1, 16, 16, generator=generator) - 0.3
    out, record = poisson_noise(images, PoissonConfig(), generator)
    assert torch.equal(out[images < 0], images[images < 0])
    applied = record["poisson_applied"]
    assert 0.65 < applied.float().mean() < 0.95
    assert torch.equal(out[~applied], images[~applied])
    assert not torch.equal(out[applied], images[applied])
    assert ((record["poisson_counts"] >= 50) & (record["poisson_counts"] <= 1000)).all()


def test_bad_config():
    with pytest.raises(LensnetConfigError, match="counts_range"):
        PoissonConfig(counts_range=(0.0, 10.0))
    with pytest.raises(LensnetConfigError, match="unknown|no field"):
        PoissonConfig.from_dict({"count_range": [1, 2]})
