"""Elliptical Sersic profile against lenstronomy's 'SERSIC_ELLIPSE', flux, and input checks."""

import math

import numpy as np
import pytest
import torch
from lenstronomy.LightModel.light_model import LightModel

from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.sources import Sersic, sersic_profile, sersic_total_flux

# (amp, R_sersic, n_sersic, e1, e2, center_x, center_y): round, elliptical, near the n limits.
CASES = [
    (1.0, 0.2, 1.0, 0.0, 0.0, 0.0, 0.0),
    (1.3, 0.2, 3.0, 0.2, -0.15, 0.1, -0.05),
    (0.7, 0.5, 0.5, -0.3, 0.1, -0.2, 0.3),
    (2.0, 0.05, 8.0, 0.05, 0.4, 0.0, 0.1),
    (1.0, 0.3, 0.2, 0.6, 0.0, 0.0, 0.0),
]


def _sersic(rows, dtype=torch.float64) -> Sersic:
    columns = torch.tensor(rows, dtype=dtype).T
    return Sersic(*columns)


def _positions(n=41, half=1.0):
    axis = np.linspace(-half, half, n)
    return np.meshgrid(axis, axis)


@pytest.mark.parametrize("case", CASES)
def test_matches_lenstronomy_float64(case):
    """Same formula and radius floor, so float64 agrees to rounding (1e-12 of the peak)."""
    x, y = _positions()
    names = ["amp", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y"]
    ref = LightModel(["SERSIC_ELLIPSE"]).surface_brightness(x, y, [dict(zip(names, case))])
    out = _sersic([case]).surface_brightness(torch.tensor(x), torch.tensor(y))[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * ref.max())


def test_matches_lenstronomy_float32_batched():
    """A batch of all cases at once in float32: 1e-5 relative (exp of arguments up to ~b_n ~ 16)."""
    x, y = _positions()
    model = LightModel(["SERSIC_ELLIPSE"])
    source = _sersic(CASES, torch.float32)
    out = source.surface_brightness(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert out.shape == (len(CASES), 41, 41) and out.dtype == torch.float32
    for b, kwargs in enumerate(source.to_lenstronomy()):
        ref = model.surface_brightness(x, y, [kwargs])
        np.testing.assert_allclose(out[b].numpy(), ref, rtol=1e-5, atol=1e-6 * ref.max())


def test_pure_function_and_per_lens_positions():
    """(B, H, W) positions give the same values as shared (H, W) positions."""
    source = _sersic(CASES[:2])
    x, y = (torch.tensor(a) for a in _positions(9))
    shared = source.surface_brightness(x, y)
    per_lens = sersic_profile(x.expand(2, 9, 9), y.expand(2, 9, 9), *(getattr(source, n) for n in
                              ("amplitude", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y")))
    torch.testing.assert_close(per_lens, shared, rtol=0, atol=0)


def test_amplitude_is_brightness_at_R_sersic_on_the_intermediate_axis():
    """R_sersic is sqrt(major x minor): along the major axis I = I_e at R_e / sqrt(q)."""
    q, r_e = 0.5, 0.3
    e1 = (1 - q) / (1 + q)  # phi = 0: major axis along x
    source = _sersic([(2.0, r_e, 2.0, e1, 0.0, 0.0, 0.0)])
    x = torch.tensor([[r_e / math.sqrt(q), 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, r_e * math.sqrt(q)]], dtype=torch.float64)
    torch.testing.assert_close(source.surface_brightness(x, y)[0], torch.full((1, 2), 2.0, dtype=torch.float64))


@pytest.mark.parametrize("n_sersic", [0.5, 1.0, 2.0, 4.0])
def test_total_flux(n_sersic):
    """Analytic flux equals lenstronomy's and, for n <= 2, the numerical integral of the profile.

    Midpoint rule on 0.003'' pixels over +-3'' (30 R_e): the field misses < 1e-5 of the flux for
    n <= 2 and the centre is resolved to ~1e-4, hence 1e-3; the n = 4 wings reach beyond the field
    (1e-3 of the flux), so n = 4 is only compared with lenstronomy's analytic flux.
    """
    case = (1.5, 0.1, n_sersic, 0.2, -0.1, 0.0, 0.0)
    source = _sersic([case])
    ref = LightModel(["SERSIC_ELLIPSE"]).total_flux([dict(zip(
        ["amp", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y"], case))])[0]
    torch.testing.assert_close(source.total_flux(), torch.tensor([ref], dtype=torch.float64), rtol=1e-12, atol=0)
    if n_sersic > 2:
        return
    step = 0.003
    axis = (torch.arange(2000, dtype=torch.float64) - 999.5) * step
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    numeric = source.surface_brightness(x, y).sum() * step**2
    assert abs(numeric.item() / ref - 1) < 1e-3


def test_total_flux_function_independent_of_ellipticity():
    flux = sersic_total_flux(torch.tensor([1.0]), torch.tensor([0.2]), torch.tensor([1.0]))
    b = 1.9992 - 0.3271
    assert flux.item() == pytest.approx(2 * math.pi * 0.04 * math.exp(b) / b**2, rel=1e-6)


def test_gradient_finite_at_the_centre():
    """The 1e-4'' radius floor keeps R^(1/n) differentiable where a sub-pixel hits the centre."""
    params = torch.tensor([[1.0], [0.2], [4.0], [0.1], [0.0], [0.0], [0.0]], dtype=torch.float64, requires_grad=True)
    source = Sersic(*params)
    centre = torch.zeros(1, 1, dtype=torch.float64)
    source.surface_brightness(centre, centre).sum().backward()
    assert torch.isfinite(params.grad).all()


def test_with_center_and_to():
    source = _sersic([CASES[1]])
    moved = source.with_center(torch.tensor([0.5], dtype=torch.float64), torch.tensor([-0.5], dtype=torch.float64))
    x, y = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64)
    shift_x = 0.5 - source.center_x.item()
    shift_y = -0.5 - source.center_y.item()
    torch.testing.assert_close(moved.surface_brightness(x + shift_x, y + shift_y), source.surface_brightness(x, y))
    assert source.to(dtype=torch.float32).amplitude.dtype == torch.float32


@pytest.mark.parametrize("index, value, error, name", [
    (1, 0.0, LensnetRangeError, "R_sersic"),
    (1, -0.1, LensnetRangeError, "R_sersic"),
    (2, 0.1, LensnetRangeError, "n_sersic"),
    (2, 9.0, LensnetRangeError, "n_sersic"),
    (0, -1.0, LensnetRangeError, "amplitude"),
    (3, 0.9, LensnetRangeError, "e1"),
    (5, float("nan"), LensnetValueError, "center_x"),
    (2, float("inf"), LensnetValueError, "n_sersic"),
])
def test_bad_values_raise_named_errors(index, value, error, name):
    case = list(CASES[1])
    case[index] = value
    if index == 3:
        case[4] = 0.9  # |e| > 1
    with pytest.raises(error, match=name):
        _sersic([case])


def test_bad_shapes_raise_named_errors():
    ok = torch.ones(3)
    with pytest.raises(LensnetShapeError, match="R_sersic"):
        Sersic(ok, torch.ones(2), ok, 0 * ok, 0 * ok, 0 * ok, 0 * ok)
    with pytest.raises(LensnetShapeError, match="amplitude"):
        Sersic(torch.ones(3, 1), ok, ok, 0 * ok, 0 * ok, 0 * ok, 0 * ok)
