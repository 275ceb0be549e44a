"""Pixelated stamp sources: interpolation, orientation, taper, rendering and input checks."""

import math

import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.lensing import SIE, PixelGrid
from lensnet.simulate import render
from lensnet.sources import TAPER_FRACTION, StampSource

S = 16
STEP = 0.05  # arcsec per stamp pixel when size = S * STEP


def _source(bank, index=(0,), size=S * STEP, center=(0.0, 0.0), **kwargs):
    b = len(index)
    return StampSource(bank, torch.tensor(index), torch.full((b,), size, dtype=bank.dtype),
                       torch.full((b,), center[0], dtype=bank.dtype), torch.full((b,), center[1], dtype=bank.dtype),
                       **kwargs)


def _pixel_centres(center=(0.0, 0.0)):
    axis = (torch.arange(S, dtype=torch.float64) - (S - 1) / 2) * STEP
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x + center[0], y + center[1]


def test_sampling_at_stamp_pixel_centres_reproduces_the_stamp(generator):
    """Bilinear interpolation at the pixel centres returns the pixels (taper off), per stamp."""
    bank = torch.rand(3, S, S, generator=generator, dtype=torch.float64)
    source = _source(bank, index=(2, 0), center=(0.3, -0.2), taper_radius=math.inf)
    x, y = _pixel_centres((0.3, -0.2))
    out = source.surface_brightness(x, y)
    torch.testing.assert_close(out, bank[[2, 0]], rtol=1e-12, atol=1e-12)


def test_orientation_row_zero_is_bottom_and_rotation_is_counter_clockwise():
    bank = torch.zeros(1, S, S, dtype=torch.float64)
    bank[0, 0, S - 1] = 1.0  # row 0 = bottom (smallest y), last column = right (largest x)
    corner = (S - 1) / 2 * STEP
    x = torch.tensor([[corner, corner]], dtype=torch.float64)
    y = torch.tensor([[-corner, corner]], dtype=torch.float64)
    plain = _source(bank, taper_radius=math.inf).surface_brightness(x, y)[0]
    torch.testing.assert_close(plain, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    turned = _source(bank, taper_radius=math.inf, angle=torch.tensor([math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(turned.surface_brightness(x, y)[0], torch.tensor([[0.0, 1.0]], dtype=torch.float64))


def test_taper_default_scales_with_size_and_outside_is_zero():
    """T(r_t) = 1/2 with r_t = 0.6 x size/2; beyond the outer half pixel the stamp is zero."""
    bank = torch.ones(1, 64, 64, dtype=torch.float64)
    for size in (0.4, 2.0):
        source = _source(bank, size=size)
        r_t = TAPER_FRACTION * size / 2
        last_centre = size / 2 * 63 / 64  # centre of the outermost stamp pixel
        r = torch.tensor([[0.0, r_t, last_centre, 0.6 * size]], dtype=torch.float64)
        out = source.surface_brightness(r, torch.zeros_like(r))[0, 0]
        expected = 1 / (1 + (r[0] / r_t) ** 6)
        expected[-1] = 0.0  # beyond the stamp edge: zero padding
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
        assert out[1].item() == pytest.approx(0.5)
    assert _source(bank, size=2.0).taper_radius.item() == pytest.approx(0.6)  # the paper's 0.6''


def test_explicit_taper_radius_and_amplitude():
    bank = torch.ones(1, 32, 32, dtype=torch.float64)
    source = _source(bank, size=1.0, taper_radius=0.2, amplitude=torch.tensor([3.0], dtype=torch.float64))
    out = source.surface_brightness(torch.tensor([[0.2]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert out.item() == pytest.approx(1.5)


def test_with_center_moves_the_stamp(generator):
    bank = torch.rand(1, S, S, generator=generator, dtype=torch.float64)
    source = _source(bank)
    moved = source.with_center(torch.tensor([0.1], dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64))
    x, y = _pixel_centres()
    torch.testing.assert_close(moved.surface_brightness(x + 0.1, y + 0.2), source.surface_brightness(x, y))


def test_lensed_stamps_render_finite_positive(generator):
    bank = torch.rand(2, 24, 24, generator=generator)
    source = StampSource(bank, torch.tensor([0, 1, 1]), torch.tensor([0.4, 1.0, 2.0]),
                         torch.tensor([0.05, -0.1, 0.0]), torch.tensor([0.0, 0.1, -0.05]),
                         angle=torch.tensor([0.0, 1.0, 2.0]))
    lens = SIE(LensParams.from_qphi(torch.full((3,), 1.2), torch.full((3,), 0.8), torch.zeros(3),
                                    torch.zeros(3), torch.zeros(3)))
    image = render(lens, source, PixelGrid(48, 0.08))
    assert image.shape == (3, 48, 48) and torch.isfinite(image).all()
    assert image.min() >= 0 and (image.amax((1, 2)) > 0).all()


def test_bad_inputs_raise_named_errors():
    bank = torch.ones(2, 8, 8)
    with pytest.raises(LensnetRangeError, match="index"):
        _source(bank, index=(0, 2))
    with pytest.raises(LensnetShapeError, match="index"):
        StampSource(bank, torch.tensor([0.0]), torch.ones(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(LensnetShapeError, match="bank"):
        _source(torch.ones(8, 8))
    with pytest.raises(LensnetRangeError, match="size"):
        _source(bank, size=0.0)
    with pytest.raises(LensnetValueError, match="center_x"):
        _source(bank, center=(math.nan, 0.0))
    with pytest.raises(LensnetRangeError, match="taper_radius"):
        _source(bank, taper_radius=-1.0)
    with pytest.raises(LensnetShapeError, match="angle"):
        _source(bank, angle=torch.zeros(2))
