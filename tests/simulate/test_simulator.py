"""The batched simulator: shapes, cuts, reproducibility, the source mixture, supersampling error."""

import math

import pytest
import torch

from lensnet.simulate import LensPrior, LensSimulator, SimulationConfig, get_preset


def _lenses(n, seed=0):
    return LensPrior().sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def tiny_batch():
    sim = LensSimulator(get_preset("tiny"))
    return sim, sim.simulate(24, seed=11)


def test_simulated_batch_shapes_and_cuts(tiny_batch):
    sim, batch = tiny_batch
    n = sim.config.n_pix
    assert batch.images.shape == batch.observed.shape == batch.clean.shape == (24, 1, n, n)
    assert batch.targets.shape == (24, 5) and batch.masks.shape == (24, 1, n, n)
    assert torch.isfinite(batch.images).all()
    assert (batch.record["magnification"] >= 2).all()
    assert (batch.record["flux_fraction_in_field"] >= 0.99).all()
    # clean is PSF-free in units of the PSF-convolved peak: blurring only lowers the peak
    assert (batch.clean.amax(dim=(1, 2, 3)) >= 1 - 1e-5).all()
    for key, value in batch.record.items():
        assert value.shape == (24,), key


def test_same_seed_same_batch_other_seed_other_batch(tiny_batch):
    sim, batch = tiny_batch
    again = sim.simulate(24, seed=11)
    other = sim.simulate(24, seed=12)
    assert torch.equal(batch.images, again.images) and torch.equal(batch.targets, again.targets)
    assert not torch.equal(batch.targets, other.targets)


def test_source_mixture_fractions():
    cfg = SimulationConfig.from_dict({"source": {"fractions": [0.0, 0.5, 0.5]}}, get_preset("tiny"))
    sim = LensSimulator(cfg)
    kinds = sim._draw_kind(4000, torch.Generator().manual_seed(0))
    assert (kinds != 0).all()
    assert abs((kinds == 1).float().mean().item() - 0.5) < 0.04


def test_simulation_reaches_every_source_type():
    sim = LensSimulator(get_preset("tiny"))
    batch = sim.simulate(48, seed=5)
    assert set(batch.record["source_type"].tolist()) == {0, 1, 2}
    assert math.isfinite(batch.record["magnification"].max().item())


def test_paper_preset_adaptive_supersampling_error_is_below_the_noise_floor():
    """The preset's supersample_threshold, on its own lenses and mixture of real-galaxy, Sersic and
    clumpy sources: no pixel moves by more than 2 x threshold of its image's peak (the smallest noise
    rms of the preset is 1e-2 of the peak)."""
    from lensnet.simulate.placement import place_sources, render_lenses

    cfg = get_preset("paper")
    sim = LensSimulator(cfg)
    gen = torch.Generator().manual_seed(11)
    lens = cfg.lens.sample(12, gen)
    x, y, _ = place_sources(lens, gen)
    source = sim._make_source(x, y, gen)
    exact = render_lenses(lens, source, sim.grid, cfg.supersample)
    adaptive = render_lenses(lens, source, sim.grid, cfg.supersample, cfg.supersample_threshold)
    error = (adaptive - exact).abs().amax((1, 2)) / exact.amax((1, 2))
    assert cfg.supersample_threshold > 0 and error.max().item() < 2 * cfg.supersample_threshold
    assert cfg.observation.gaussian_noise.rms_range[0] >= 3 * cfg.supersample_threshold


def test_peak_signal_to_noise_adds_gaussian_and_shot_noise():
    from lensnet.simulate.simulator import peak_signal_to_noise

    record = {"noise_applied": torch.tensor([True, True, False]), "noise_rms": torch.tensor([0.1, 0.03, 0.5]),
              "poisson_applied": torch.tensor([False, True, True]), "poisson_counts": torch.tensor([1.0, 400.0, 100.0])}
    snr = peak_signal_to_noise(record)
    torch.testing.assert_close(snr, torch.tensor([10.0, 1 / math.sqrt(0.03**2 + 1 / 400), 10.0]))
