"""Source placement inside the grown caustic and the shrunk cut, and the acceptance cuts."""

import math

import pytest
import torch

from lensnet.sources.base import Source

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.lensing import SIE, PixelGrid, sie_caustic, sie_cut
from lensnet.simulate.config import PlacementConfig
from lensnet.simulate.placement import (REGION_CAUSTIC, REGION_CUT, _radial, acceptance, draw_accepted, place_sources,
                                        placement_regions, points_in_polygons)
from lensnet.simulate.prior import LensPrior
from lensnet.simulate.render import render
from lensnet.sources import Sersic




def _same_lens(n, theta_E=1.0, q=1.0, phi=0.0, cx=0.0, cy=0.0, dtype=torch.float64):
    full = lambda v: torch.full((n,), v, dtype=dtype)  # noqa: E731
    return LensParams.from_qphi(full(theta_E), full(q), full(phi), full(cx), full(cy))


def _small_sersic(x, y, radius=0.1, n_sersic=1.0):
    one = torch.ones_like(x)
    return Sersic(one, radius * one, n_sersic * one, 0 * one, 0 * one, x, y)


def test_points_in_concave_polygon():
    # An L-shape: the notch (1.5, 1.5) is outside although inside the bounding box.
    vx = torch.tensor([[0.0, 2.0, 2.0, 1.0, 1.0, 0.0]])
    vy = torch.tensor([[0.0, 0.0, 1.0, 1.0, 2.0, 2.0]])
    px = torch.tensor([[0.5, 1.5, 1.5, 0.5, 2.5]])
    py = torch.tensor([[1.5, 0.5, 1.5, 0.5, 0.5]])
    assert points_in_polygons(px, py, vx, vy).tolist() == [[True, True, False, True, False]]


def test_regions_are_star_shaped_for_every_axis_ratio():
    # The fan-triangle sampler needs every triangle (centre, v_k, v_k+1) to have the same orientation.
    n = 200
    q = torch.logspace(-3, 0, n, dtype=torch.float64)
    params = LensParams.from_qphi(torch.full((n,), 1.3, dtype=torch.float64), q, torch.linspace(0, 3, n,
                                  dtype=torch.float64), torch.full((n,), 0.2, dtype=torch.float64),
                                  torch.full((n,), -0.1, dtype=torch.float64))
    kx, ky, ux, uy = placement_regions(params)
    for vx, vy in ((kx, ky), (ux, uy)):
        dx, dy = vx - params.center_x[:, None], vy - params.center_y[:, None]
        cross = dx * torch.roll(dy, -1, 1) - dy * torch.roll(dx, -1, 1)
        assert ((cross > 0).all(1) | (cross < 0).all(1)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sources_lie_inside_their_region_half_each(dtype):
    params = LensPrior().sample(512, torch.Generator().manual_seed(0), dtype=dtype)
    x, y, region = place_sources(params, torch.Generator().manual_seed(1))
    assert x.dtype == y.dtype == dtype and region.dtype == torch.int64
    kx, ky, ux, uy = placement_regions(params.to(dtype=torch.float64))
    xd, yd = x.double()[:, None], y.double()[:, None]
    in_caustic = points_in_polygons(xd, yd, kx, ky)[:, 0]
    in_cut = points_in_polygons(xd, yd, ux, uy)[:, 0]
    assert in_caustic[region == REGION_CAUSTIC].all()
    assert in_cut[region == REGION_CUT].all()
    assert abs((region == REGION_CUT).double().mean().item() - 0.5) < 0.07  # 3 sigma for 512 draws


def test_round_lens_regions_are_discs_filled_uniformly():
    # q = 1 exactly: the caustic is a point and grows into the disc of radius 0.15"; the cut is the
    # Einstein circle, shrunk to radius 0.7 theta_E. Uniform in area: 1/4 of the points within r/2.
    params = _same_lens(4000, theta_E=1.2, q=1.0, cx=0.1, cy=-0.2)
    x, y, region = place_sources(params, torch.Generator().manual_seed(2))
    r = torch.hypot(x - 0.1, y + 0.2)
    for code, radius in ((REGION_CAUSTIC, 0.15), (REGION_CUT, 0.7 * 1.2)):
        rr = r[region == code]
        assert radius * 0.99 < rr.max() <= radius * (1 + 1e-9)
        assert abs((rr < radius / 2).double().mean().item() - 0.25) < 0.03


def test_placement_is_uniform_in_area_for_an_elliptical_lens():
    # Fraction of the cut-region draws that fall inside the caustic (a naked-cusp lens, q = 0.2)
    # against the area ratio measured by uniform points in the shrunk cut's bounding box.
    params = _same_lens(4000, theta_E=1.0, q=0.2, phi=0.4)
    gen = torch.Generator().manual_seed(3)
    x, y, region = place_sources(params, gen)
    one = _same_lens(1, theta_E=1.0, q=0.2, phi=0.4)
    kx, ky, _, _ = placement_regions(one, growth=0.0)  # the caustic itself
    _, _, sx, sy = placement_regions(one)  # the shrunk cut
    box = torch.rand(1, 20000, 2, generator=gen, dtype=torch.float64)
    px = sx.min() + (sx.max() - sx.min()) * box[..., 0]
    py = sy.min() + (sy.max() - sy.min()) * box[..., 1]
    in_shrunk = points_in_polygons(px, py, sx, sy)
    expected = (points_in_polygons(px, py, kx, ky) & in_shrunk).sum() / in_shrunk.sum()
    cut = region == REGION_CUT
    drawn = points_in_polygons(x[cut][None], y[cut][None], kx, ky).double().mean()
    assert abs(drawn.item() - expected.item()) < 0.035


def test_naked_cusps_are_sampled_outside_the_cut():
    # For q = 0.15 the tangential caustic pokes out of the radial cut; those sources are kept and
    # are still strongly magnified (three images).
    params = _same_lens(400, theta_E=1.0, q=0.15, phi=0.3)
    x, y, region = place_sources(params, torch.Generator().manual_seed(4), growth=0.0)
    _, _, ux, uy = placement_regions(params, shrink=1.0)
    outside_cut = ~points_in_polygons(x[:, None], y[:, None], ux, uy)[:, 0] & (region == REGION_CAUSTIC)
    assert outside_cut.sum() > 10
    grid = PixelGrid(64, 0.1)
    idx = outside_cut.nonzero()[:8, 0]
    sub = LensParams.from_tensor(params.to_tensor()[idx].float())
    xs, ys = x[idx].float(), y[idx].float()
    stats = acceptance(SIE(sub), _small_sersic(xs, ys, 0.05), grid, 2, source_center=(xs, ys))
    assert (stats.magnification > 2).all()


def test_most_placed_sources_are_multiply_imaged():
    gen = torch.Generator().manual_seed(5)
    params = LensPrior().sample(64, gen)
    x, y, region = place_sources(params, gen)
    radius = 0.05 + 0.1 * torch.rand(64, generator=gen)
    source = Sersic(torch.ones(64), radius, torch.ones(64), torch.zeros(64), torch.zeros(64), x, y)
    stats = acceptance(SIE(params), source, PixelGrid(64, 0.12), 2, source_center=(x, y))
    assert (stats.magnification >= 2).double().mean() > 0.85  # 0.97 measured at 192 px of 0.04"
    assert stats.accepted().double().mean() > 0.6


def test_magnification_matches_the_sis_point_source_limit():
    # SIS: total magnification 2 theta_E / beta inside the Einstein radius (two images), 1 + theta_E /
    # beta outside (one image, rejected); the small source changes it by ~(R / beta)^2.
    beta = torch.tensor([0.5, 1.6], dtype=torch.float64)
    params = _same_lens(2, theta_E=1.0, q=1.0)
    source = _small_sersic(beta, torch.zeros(2, dtype=torch.float64), radius=0.05)
    stats = acceptance(SIE(params), source, PixelGrid(96, 0.06), 2, source_center=(beta, 0 * beta))
    assert stats.magnification[0].item() == pytest.approx(4.0, rel=0.03)
    assert stats.magnification[1].item() == pytest.approx(1 + 1 / 1.6, rel=0.03)
    assert stats.accepted().tolist() == [True, False]


def test_flux_fraction_and_arcs_leaving_the_field():
    # Rings of growing theta_E in a 2.56"-wide field (0.04" pixels), against a 3x wider render at
    # full resolution: the coarse outer grid must get the fraction right where the 0.99 cut acts.
    grid = PixelGrid(64, 0.04)
    theta_E = torch.tensor([0.6, 1.0, 1.1, 1.25])
    zero = torch.zeros(4)
    params = LensParams(theta_E, zero + 0.05, zero, zero, zero)
    source = _small_sersic(zero + 0.1, zero, radius=0.08)
    stats = acceptance(SIE(params), source, grid, 2)
    wide = render(SIE(params), source, PixelGrid(192, 0.04), 2)
    expected = wide[:, 64:128, 64:128].sum((1, 2)) / wide.sum((1, 2))
    assert torch.allclose(stats.flux_fraction[:3], expected[:3], atol=0.003)
    assert torch.allclose(stats.flux_fraction, expected, atol=0.02)
    assert stats.accepted().tolist() == [True, True, False, False]
    assert torch.equal(stats.images, render(SIE(params), source, grid, 2))


def test_unlensed_flux_of_a_source_at_the_field_edge():
    # A source straddling the field edge: its unlensed flux is the analytic total, not the part of it
    # that falls on the field grid.
    grid = PixelGrid(48, 0.05)
    x, y = torch.tensor([1.15], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    source = _small_sersic(x, y, radius=0.15)
    lens = SIE(_same_lens(1, theta_E=1.0, q=0.8))
    result = acceptance(lens, source, grid, 2)
    total = result.images.sum() / result.flux_fraction / result.magnification
    assert total.item() == pytest.approx(source.total_flux().item(), rel=1e-6)


class _NoAnalyticFlux(Source):
    """A Sérsic without total_flux: acceptance falls back to rendering it re-centred."""

    def __init__(self, inner):
        self.inner, self.batch_size = inner, inner.batch_size

    def surface_brightness(self, x, y):
        return self.inner.surface_brightness(x, y)


def test_unlensed_flux_fallback_renders_the_source_recentred():
    grid = PixelGrid(48, 0.05)
    x, y = torch.tensor([1.15], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)
    inner = _small_sersic(x, y, radius=0.15)
    lens = SIE(_same_lens(1, theta_E=1.0, q=0.8))
    centred = acceptance(lens, _NoAnalyticFlux(inner), grid, 2, source_center=(x, y))
    in_place = acceptance(lens, _NoAnalyticFlux(inner), grid, 2)
    total = centred.images.sum() / centred.flux_fraction / centred.magnification
    assert total.item() == pytest.approx(inner.total_flux().item(), rel=0.01)
    assert in_place.magnification > 1.2 * centred.magnification


def _sersic_maker(x, y, generator):
    return _small_sersic(x, y, radius=0.1)


def test_draw_accepted_keeps_only_passing_lenses_reproducibly():
    prior = LensPrior(theta_E_range=(0.4, 1.0))
    grid = PixelGrid(32, 0.12)
    a = draw_accepted(12, prior, _sersic_maker, grid, torch.Generator().manual_seed(6))
    b = draw_accepted(12, prior, _sersic_maker, grid, torch.Generator().manual_seed(6))
    assert torch.equal(a.params.to_tensor(), b.params.to_tensor()) and torch.equal(a.images, b.images)
    assert a.images.shape == (12, 32, 32) and a.params.batch_size == 12
    assert (a.magnification >= 2).all() and (a.flux_fraction >= 0.99).all()
    assert set(a.region.tolist()) <= {REGION_CAUSTIC, REGION_CUT}
    check = acceptance(SIE(a.params), _sersic_maker(a.source_x, a.source_y, None), grid, 2,
                       source_center=(a.source_x, a.source_y))
    assert torch.allclose(check.images, a.images) and torch.allclose(check.magnification, a.magnification)


def test_draw_accepted_gives_up_after_max_rounds():
    with pytest.raises(LensnetRangeError, match="batch_size"):
        draw_accepted(0, LensPrior(), _sersic_maker, PixelGrid(16, 0.5), torch.Generator().manual_seed(0))
    cuts = PlacementConfig(min_magnification=1e6, max_rounds=2)
    with pytest.raises(LensnetValueError, match="4 of 4 lenses .* after 2 rounds"):
        draw_accepted(4, LensPrior(), _sersic_maker, PixelGrid(16, 0.5), torch.Generator().manual_seed(0),
                      supersample=1, cuts=cuts)


@pytest.mark.parametrize("kwargs, name", [({"growth": -0.1}, "growth"), ({"growth": math.nan}, "growth"),
                                          ({"shrink": 0.0}, "shrink"), ({"shrink": 1.5}, "shrink"),
                                          ({"n_vertices": 4}, "n_vertices")])
def test_bad_placement_arguments_are_named(kwargs, name):
    with pytest.raises(LensnetRangeError, match=name):
        place_sources(_same_lens(2), torch.Generator().manual_seed(0), **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_draw_accepted_on_cuda():
    drawn = draw_accepted(8, LensPrior(theta_E_range=(0.4, 1.0)), _sersic_maker, PixelGrid(32, 0.12),
                          torch.Generator("cuda").manual_seed(0))
    assert drawn.images.device.type == drawn.source_x.device.type == "cuda"
    assert (drawn.magnification >= 2).all()


def _prior_lenses(n, seed=0):
    return LensPrior().sample(n, torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_points_in_polygons_unit_square():
    vx = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    vy = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    px = torch.tensor([[0.5, 1.5, 0.1, -0.1]])
    py = torch.tensor([[0.5, 0.5, 0.9, 0.5]])
    assert points_in_polygons(px, py, vx, vy).tolist() == [[True, False, True, False]]


def test_half_of_the_sources_in_each_region_of_prior_lenses():
    params = _prior_lenses(400)
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
