"""Zero bias: one constant offset per image, N(0, 0.05) of the peak."""

import pytest
import torch

from lensnet.errors import LensnetConfigError
from lensnet.observe.bias import BiasConfig, zero_bias


def test_offset_is_constant_and_recorded(generator):
    images = torch.rand(512, 2, 8, 8, generator=generator, dtype=torch.float64) * 4
    peak = images.amax(dim=(1, 2, 3))
    out, record = zero_bias(images, BiasConfig(), generator)
    diff = out - images
    assert torch.allclose(diff, (record["bias"] * peak)[:, None, None, None], atol=1e-12)
    assert record["bias"].std().item() == pytest.approx(0.05, rel=0.1)
    assert abs(record["bias"].mean().item()) < 0.01


def test_probability_zero_changes_nothing(generator):
    images = torch.rand(16, 1, 8, 8, generator=generator)
    out, record = zero_bias(images, BiasConfig(probability=0.0), generator)
    assert torch.equal(out, images) and not record["bias_applied"].any()


def test_bad_config():
    with pytest.raises(LensnetConfigError, match="std"):
        BiasConfig(std=-0.1)
