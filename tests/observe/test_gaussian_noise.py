"""Gaussian noise: rms, white versus coloured fractions, neighbour correlation of coloured noise."""

import math

import pytest
import torch

from lensnet.errors import LensnetConfigError
from lensnet.observe.gaussian_noise import GaussianNoiseConfig, colored_noise_taps, gaussian_noise


def _correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return ((a * b).mean() / (a.std() * b.std())).item()


def _noise(generator, colored, rms=0.05, b=64, n=64, dtype=torch.float64):
    cfg = GaussianNoiseConfig(rms_range=(rms, rms), colored_probability=1.0 if colored else 0.0)
    images = torch.zeros(b, 1, n, n, dtype=dtype)
    return gaussian_noise(images, cfg, generator, peak=torch.ones(b, dtype=dtype))


@pytest.mark.parametrize("colored", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rms_matches_config(generator, colored, dtype):
    out, record = _noise(generator, colored, dtype=dtype)
    assert out.std().item() == pytest.approx(0.05, rel=0.01)  # 262,144 pixels
    assert torch.equal(record["noise_colored"], torch.full((64,), colored))


def test_rms_per_image_matches_record(generator):
    images = torch.full((64, 1, 64, 64), 2.0)
    out, record = gaussian_noise(images, GaussianNoiseConfig(colored_probability=0.0), generator)
    rms = record["noise_rms"]
    assert ((rms >= 0.01) & (rms <= 0.1)).all()
    assert torch.allclose(out.std(dim=(1, 2, 3)), rms * 2.0, rtol=0.08)  # peak = 2; ~1.1% sampling error


def test_neighbour_correlation(generator):
    # coloured: 0.28 horizontally and vertically, 0.28^2 diagonally; white: 0. Error ~0.002 here.
    out, _ = _noise(generator, colored=True)
    x = out[:, 0]
    assert _correlation(x[:, :, 1:], x[:, :, :-1]) == pytest.approx(0.28, abs=0.01)
    assert _correlation(x[:, 1:], x[:, :-1]) == pytest.approx(0.28, abs=0.01)
    assert _correlation(x[:, 1:, 1:], x[:, :-1, :-1]) == pytest.approx(0.28**2, abs=0.01)
    # the edges are as correlated as the interior
    assert _correlation(x[:, 0, 1:], x[:, 0, :-1]) == pytest.approx(0.28, abs=0.03)
    white, _ = _noise(generator, colored=False)
    assert _correlation(white[:, 0, :, 1:], white[:, 0, :, :-1]) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.28, 0.5, 0.7])
def test_taps_give_the_requested_correlation(rho):
    t0, t1, t2 = colored_noise_taps(rho)
    assert t0**2 + t1**2 + t2**2 == pytest.approx(1)
    assert t0 * t1 + t1 * t2 == pytest.approx(rho)


def test_white_coloured_fractions_and_probability(generator):
    images = torch.zeros(512, 1, 8, 8)
    out, record = gaussian_noise(images, GaussianNoiseConfig(), generator)
    assert record["noise_colored"].float().mean().item() == pytest.approx(0.75, abs=0.06)
    assert record["noise_applied"].all()
    out, record = gaussian_noise(images, GaussianNoiseConfig(probability=0.0), generator)
    assert torch.equal(out, images)


def test_bad_config():
    with pytest.raises(LensnetConfigError, match="neighbour_correlation"):
        GaussianNoiseConfig(neighbour_correlation=1 / math.sqrt(2))
    with pytest.raises(LensnetConfigError, match="rms_range"):
        GaussianNoiseConfig(rms_range=(0.1, 0.01))
    with pytest.raises(LensnetConfigError, match="colored_probability"):
        GaussianNoiseConfig(colored_probability="often")
