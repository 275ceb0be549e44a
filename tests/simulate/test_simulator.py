"""The batched simulator: placement inside the caustics, acceptance cuts, reproducibility, configs."""

import math

import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetConfigError, LensnetRangeError
from lensnet.lensing import SIE, PixelGrid, sie_caustic, sie_cut
from lensnet.simulate import (LensPrior, LensSimulator, SimulationConfig, get_preset, load_simulation_config,
                              place_sources, points_in_polygons)
from lensnet.simulate.placement import REGION_CAUSTIC, REGION_CUT, _radial, acceptance
from lensnet.sources import Sersic


def _lenses(n, seed=0):
    return LensPrior().sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_points_in_polygons_unit_square():
    vx = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    vy = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    px = torch.tensor([[0.5, 1.5, 0.1, -0.1]])
    py = torch.tensor([[0.5, 0.5, 0.9, 0.5]])
    assert points_in_polygons(px, py, vx, vy).tolist() == [[True, False, True, False]]


def test_sources_lie_inside_their_region_half_each():
    params = _lenses(400)
    x, y, region = place_sources(params, torch.Generator().manual_seed(1), growth=0.15, shrink=0.7)
    kx, ky = _radial(*sie_caustic(params, 128), params.center_x, params.center_y, growth=0.15)
    ux, uy = _radial(*sie_cut(params, 128), params.center_x, params.center_y, scale=0.7)
    in_caustic = points_in_polygons(x[:, None], y[:, None], kx, ky)[:, 0]
    in_cut = points_in_polygons(x[:, None], y[:, None], ux, uy)[:, 0]
    assert in_caustic[region == REGION_CAUSTIC].all()
    assert in_cut[region == REGION_CUT].all()
    assert abs((region == REGION_CUT).float().mean().item() - 0.5) < 0.08


def test_placement_is_uniform_in_area_for_a_round_lens():
    # Inside the shrunk cut of an SIS (a circle of radius 0.7 theta_E) the fraction of points within
    # half that radius must be 1/4 for a uniform-in-area draw.
    n = 4000
    one, zero = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    params = LensParams(one, zero + 1e-4, zero, zero, zero)
    x, y, region = place_sources(params, torch.Generator().manual_seed(2), shrink=0.7)
    r = torch.sqrt(x**2 + y**2)[region == REGION_CUT]
    assert abs((r < 0.35).double().mean().item() - 0.25) < 0.03


def test_acceptance_rejects_far_sources_and_arcs_leaving_the_field():
    grid = PixelGrid(48, 0.1)
    one, zero = torch.ones(3), torch.zeros(3)
    lens = SIE(LensParams(torch.tensor([1.0, 1.0, 2.3]), zero + 0.05, zero, zero, zero))
    # Source 0 near the centre (ring: strongly magnified), 1 far outside the caustics, 2 inside a lens
    # whose Einstein ring (2.3") is outside the 2.4"-wide half field.
    source = Sersic(one, 0.1 * one, one, zero, zero, torch.tensor([0.02, 2.0, 0.02]), zero)
    _, fraction, mu = acceptance(lens, source, grid, 1)
    assert mu[0] > 5 and fraction[0] > 0.99
    assert mu[1] < 2
    assert fraction[2] < 0.99


def test_prior_ranges_and_reproducibility():
    prior = LensPrior()
    a = prior.sample(2000, torch.Generator().manual_seed(3))
    b = prior.sample(2000, torch.Generator().manual_seed(3))
    c = prior.sample(2000, torch.Generator().manual_seed(4))
    assert torch.equal(a.to_tensor(), b.to_tensor()) and not torch.equal(a.to_tensor(), c.to_tensor())
    q, _ = a.qphi()
    assert a.theta_E.min() >= 0.1 and a.theta_E.max() <= 3.0
    assert q.min() >= 0.1 - 1e-6 and q.max() <= 1.0
    assert a.center_x.abs().max() <= 0.28 and a.center_y.abs().max() <= 0.28


def test_prior_rejects_bad_ranges():
    with pytest.raises(LensnetConfigError, match="theta_E_range"):
        LensPrior(theta_E_range=(0.0, 1.0))
    with pytest.raises(LensnetConfigError, match="one_minus_q_range"):
        LensPrior(one_minus_q_range=(0.0, 1.0))


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


def test_presets_and_config_round_trip(tmp_path):
    for name in ("paper", "hst-acs", "tiny"):
        cfg = get_preset(name)
        assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "sim.yaml"
    path.write_text("preset: tiny\nn_pix: 40\nobservation:\n  gaussian_noise:\n    rms_range: [0.02, 0.03]\n")
    cfg = load_simulation_config(path)
    assert cfg.n_pix == 40 and cfg.name == "tiny" and cfg.observation.gaussian_noise.rms_range == (0.02, 0.03)
    toml = tmp_path / "sim.toml"
    toml.write_text('preset = "paper"\n[lens]\ntheta_E_range = [0.5, 2.0]\n')
    assert load_simulation_config(toml).lens.theta_E_range == (0.5, 2.0)


@pytest.mark.parametrize("text, field", [
    ("n_pix: 4\n", "n_pix"),
    ("pixel_scale: -0.1\n", "pixel_scale"),
    ("supersample_threshold: 1.5\n", "supersample_threshold"),
    ("lens:\n  theta_E_range: [2, 1]\n", "theta_E_range"),
    ("source:\n  fractions: [0.5, 0.5, 0.5]\n", "fractions"),
    ("placement:\n  cut_shrink: 2\n", "cut_shrink"),
    ("bogus: 1\n", "bogus"),
    ("lens:\n  bogus: 1\n", "bogus"),
    ("observation:\n  psf:\n    probability: 2\n", "probability"),
    ("n_pix: many\n", "n_pix"),
])
def test_bad_config_fields_are_named(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LensnetConfigError, match=field):
        load_simulation_config(path)


def test_unknown_preset_lists_presets():
    with pytest.raises(LensnetConfigError, match="paper"):
        get_preset("nope")


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
