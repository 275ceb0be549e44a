"""Clumpy galaxies: the sampler, the clump sum, moving, rendering and input checks."""

import math

import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetShapeError
from lensnet.lensing import SIE, PixelGrid
from lensnet.simulate import render
from lensnet.sources import MAX_CLUMPS, ClumpySource, Sersic, draw_clumpy_sources


def _body(batch=1, dtype=torch.float64):
    one, zero = torch.ones(batch, dtype=dtype), torch.zeros(batch, dtype=dtype)
    return Sersic(one, 0.2 * one, one, 0.1 * one, zero, 0.1 * one, -0.1 * one)


def test_draws_follow_the_documented_ranges(generator):
    sources = draw_clumpy_sources(500, generator)
    assert sources.batch_size == 500 and sources.clump_dx.shape == (500, MAX_CLUMPS)
    assert sources.n_clumps.min() >= 1 and sources.n_clumps.max() <= MAX_CLUMPS
    assert set(sources.n_clumps.tolist()) == set(range(1, MAX_CLUMPS + 1))
    assert sources.clump_sigma.min() >= 0.01 and sources.clump_sigma.max() <= 0.11
    relative = sources.clump_amplitude / sources.body.central_brightness()[:, None]
    assert relative.min() >= 0 and relative.max() <= 1
    # Offsets are Normal(0, R_sersic) per axis: their rms in units of R_sersic is ~1.
    rms = (torch.cat([sources.clump_dx, sources.clump_dy], 1) / sources.body.R_sersic[:, None]).pow(2).mean().sqrt()
    assert rms.item() == pytest.approx(1.0, abs=0.1)
    assert sources.clump_dx.dtype == torch.float32


def test_draws_are_reproducible_and_take_centres():
    centre = torch.tensor([0.3, -0.2])
    a = draw_clumpy_sources(2, torch.Generator().manual_seed(7), center_x=centre, center_y=-centre)
    b = draw_clumpy_sources(2, torch.Generator().manual_seed(7), center_x=centre, center_y=-centre)
    torch.testing.assert_close(a.clump_dx, b.clump_dx, rtol=0, atol=0)
    torch.testing.assert_close(a.body.center_x, centre)


def test_surface_brightness_is_body_plus_active_clumps():
    body = _body(dtype=torch.float64)
    dx = torch.tensor([[0.1, -0.2, 0.0, 0.0, 0.0]], dtype=torch.float64)
    dy = torch.tensor([[0.0, 0.1, 0.3, 0.0, 0.0]], dtype=torch.float64)
    sigma = torch.full((1, 5), 0.05, dtype=torch.float64)
    amp = torch.full((1, 5), 2.0, dtype=torch.float64)
    source = ClumpySource(body, dx, dy, sigma, amp, torch.tensor([2]))
    x = torch.linspace(-0.5, 0.5, 11, dtype=torch.float64).expand(11, 11)
    y = x.T
    expected = body.surface_brightness(x, y)
    for k in range(2):  # only the two active clumps
        r2 = (x - 0.1 - dx[0, k]) ** 2 + (y + 0.1 - dy[0, k]) ** 2
        expected = expected + 2.0 * torch.exp(-r2 / (2 * 0.05**2))
    torch.testing.assert_close(source.surface_brightness(x, y), expected, rtol=1e-12, atol=0)
    none = ClumpySource(body, dx, dy, sigma, amp, torch.tensor([0]))
    torch.testing.assert_close(none.surface_brightness(x, y), body.surface_brightness(x, y), rtol=0, atol=0)


def test_with_center_moves_body_and_clumps(generator):
    source = draw_clumpy_sources(3, generator, dtype=torch.float64)
    shift = torch.tensor([0.2, -0.1, 0.05], dtype=torch.float64)
    moved = source.with_center(source.body.center_x + shift, source.body.center_y - shift)
    x = torch.linspace(-0.4, 0.4, 9, dtype=torch.float64).expand(9, 9)
    y = x.T
    s = shift[:, None, None]
    torch.testing.assert_close(moved.surface_brightness(x + s, y - s), source.surface_brightness(x, y))


def test_lensed_clumpy_sources_render_finite_positive(generator):
    sources = draw_clumpy_sources(4, generator)
    lens = SIE(LensParams.from_qphi(torch.full((4,), 1.0), torch.full((4,), 0.7), torch.zeros(4),
                                    torch.zeros(4), torch.zeros(4)))
    image = render(lens, sources, PixelGrid(48, 0.08), supersample=2)
    assert image.shape == (4, 48, 48) and image.dtype == torch.float32
    assert torch.isfinite(image).all() and image.min() >= 0 and (image.amax((1, 2)) > 0).all()


def test_bad_inputs_raise_named_errors(generator):
    body = _body(2)
    ok = torch.full((2, 5), 0.05, dtype=torch.float64)
    with pytest.raises(LensnetShapeError, match="clump_sigma"):
        ClumpySource(body, ok, ok, ok[:, :3], ok, torch.tensor([1, 1]))
    with pytest.raises(LensnetRangeError, match="clump_sigma"):
        ClumpySource(body, ok, ok, -ok, ok, torch.tensor([1, 1]))
    with pytest.raises(LensnetRangeError, match="n_clumps"):
        ClumpySource(body, ok, ok, ok, ok, torch.tensor([1, 6]))
    with pytest.raises(LensnetShapeError, match="n_clumps"):
        ClumpySource(body, ok, ok, ok, ok, torch.tensor([1.0, 2.0]))
    with pytest.raises(LensnetRangeError, match="n_clumps_range"):
        draw_clumpy_sources(2, generator, n_clumps_range=(2, 7))
    with pytest.raises(LensnetShapeError, match="center_x"):
        draw_clumpy_sources(2, generator, center_x=torch.zeros(3))
    with pytest.raises(ValueError, match="clump_dx"):
        ClumpySource(body, ok * math.nan, ok, ok, ok, torch.tensor([1, 1]))
