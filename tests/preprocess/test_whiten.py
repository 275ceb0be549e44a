import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from lensnet.observe import GaussianNoiseConfig, gaussian_noise
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.preprocess.whiten import TRAINING_CORRELATION, match_noise, noise_power

N = 128
SKY = np.ones((N, N), bool)


def _adjacent(image: np.ndarray) -> float:
    a = image - image.mean()
    return float(0.5 * ((a[:, 1:] * a[:, :-1]).mean() + (a[1:] * a[:-1]).mean()) / a.var())


def _blurred_noise(sigma: float, seed: int = 0) -> np.ndarray:
    noise = gaussian_filter(np.random.default_rng(seed).normal(size=(N, N)), sigma, mode="wrap")
    return noise / noise.std()


def test_power_spectrum_of_white_noise_is_flat_and_measures_the_variance():
    noise = 2.0 * np.random.default_rng(0).normal(size=(N, N))
    power, level = noise_power(noise, SKY)
    assert power.mean() == pytest.approx(4.0, rel=0.03)
    assert power.std() / power.mean() < 0.05
    assert abs(level) < 0.05


def test_white_and_training_coloured_noise_get_nothing_added():
    white = np.random.default_rng(1).normal(size=(N, N))
    coloured, _ = gaussian_noise(torch.zeros(1, 1, N, N, dtype=torch.float64),
                                 GaussianNoiseConfig(rms_range=(1.0, 1.0), colored_probability=1.0),
                                 torch.Generator().manual_seed(0), peak=torch.ones(1, dtype=torch.float64))
    for noise, rho in ((white, 0.0), (coloured[0, 0].numpy(), TRAINING_CORRELATION)):
        match = match_noise(noise, SKY, np.random.default_rng(0))
        assert match.added is None and match.target == ""
        assert match.correlation == pytest.approx(rho, abs=0.03)
        assert match.rms == pytest.approx(noise.std(), rel=0.03)


def test_correlated_noise_is_brought_to_a_training_spectrum():
    noise = _blurred_noise(1.5)  # adjacent-pixel correlation ~0.9, as a resampling from coarse pixels gives
    match = match_noise(noise, SKY, np.random.default_rng(100))
    assert match.correlation > 0.8 and match.target in ("white", "coloured")
    result = noise + match.added
    assert result.std() == pytest.approx(match.rms, rel=0.05)
    assert _adjacent(result) < TRAINING_CORRELATION + 0.05
    assert match.pad.std() == pytest.approx(match.rms, rel=0.05)  # the padding's noise has the same spectrum
    assert _adjacent(match.pad) == pytest.approx(_adjacent(result), abs=0.05)
    again = match_noise(noise, SKY, np.random.default_rng(100))  # seeded: the same noise
    np.testing.assert_array_equal(again.added, match.added)


def test_sources_and_masked_pixels_do_not_enter_the_spectrum():
    noise = np.random.default_rng(2).normal(size=(N, N))
    image = noise.copy()
    image[40:50, 40:50] += 100.0  # a bright source: clipped
    sky = SKY.copy()
    sky[:, :20] = False
    image[:, :20] = 1e6  # not sky: ignored
    assert match_noise(image, sky, np.random.default_rng(0)).added is None


def test_too_few_sky_pixels_measure_nothing():
    sky = np.zeros((N, N), bool)
    sky[:10, :10] = True
    match = match_noise(_blurred_noise(1.5), sky, np.random.default_rng(0))
    assert match.added is None and np.isnan(match.correlation)


def test_prepare_image_matches_the_noise_of_an_enlarged_image():
    # 0.1" pixels onto a 0.04" grid: the resampling correlates the noise over ~2.5 model pixels.
    data = np.random.default_rng(3).normal(size=(80, 80))
    grid = ModelGrid(96, 0.04)
    prepared = prepare_image(data, grid, 0.1, seed=4)
    assert prepared.noise_correlation > 0.6 and prepared.noise_match in ("white", "coloured")
    assert _adjacent(prepared.image) < TRAINING_CORRELATION + 0.05
    assert prepared.image.std() == pytest.approx(prepared.grid_noise_rms, rel=0.1)
    plain = prepare_image(data, grid, 0.1, seed=4, match_noise_spectrum=False)
    assert plain.noise_match == "" and _adjacent(plain.image) > 0.6
    np.testing.assert_array_equal(prepare_image(data, grid, 0.1, seed=4).image, prepared.image)
