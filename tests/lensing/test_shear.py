"""Tests of lensnet.lensing.shear: agreement with lenstronomy's 'SHEAR' and param_util, identities, errors."""

import math

import numpy as np
import pytest
import torch

from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.lensing.shear import (
    ExternalShear,
    shear_cartesian_to_polar,
    shear_deflection,
    shear_hessian,
    shear_polar_to_cartesian,
    shear_potential,
)

GAMMA1 = [0.05, -0.08, 0.0, 0.3, -0.02]
GAMMA2 = [0.01, 0.06, -0.1, 0.0, 0.0]


def _shears(dtype=torch.float64):
    return torch.tensor(GAMMA1, dtype=dtype), torch.tensor(GAMMA2, dtype=dtype)


def _points(dtype=torch.float64, n=12):
    """(B, n, n) positions within 4 arcsec of the origin, one set per shear."""
    gen = torch.Generator().manual_seed(5)
    return ((torch.rand(2, len(GAMMA1), n, n, generator=gen, dtype=torch.float64) - 0.5) * 8).to(dtype)


def test_deflection_potential_and_hessian_match_lenstronomy():
    lens_model = pytest.importorskip("lenstronomy.LensModel.lens_model").LensModel(["SHEAR"])
    g1, g2 = _shears()
    x, y = _points()
    ax, ay = shear_deflection(x, y, g1, g2)
    pot = shear_potential(x, y, g1, g2)
    fxx, fxy, fyy = shear_hessian(x, y, g1, g2)
    for i in range(len(GAMMA1)):
        xn, yn = x[i].flatten().numpy(), y[i].flatten().numpy()
        kw = [{"gamma1": GAMMA1[i], "gamma2": GAMMA2[i]}]
        lax, lay = lens_model.alpha(xn, yn, kw)
        np.testing.assert_allclose(ax[i].flatten().numpy(), lax, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(ay[i].flatten().numpy(), lay, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(pot[i].flatten().numpy(), lens_model.potential(xn, yn, kw), rtol=1e-12, atol=1e-15)
        lxx, lxy, lyx, lyy = lens_model.hessian(xn, yn, kw)
        for ours, theirs in [(fxx, lxx), (fxy, lxy), (fxy, lyx), (fyy, lyy)]:
            np.testing.assert_allclose(ours[i].flatten().numpy(), theirs, rtol=1e-12, atol=1e-15)


def test_converters_match_lenstronomy_param_util():
    param_util = pytest.importorskip("lenstronomy.Util.param_util")
    g1, g2 = _shears()
    gamma_ext, phi_ext = shear_cartesian_to_polar(g1, g2)
    phi_l, gamma_l = param_util.shear_cartesian2polar(g1.numpy(), g2.numpy())
    np.testing.assert_allclose(gamma_ext.numpy(), gamma_l, rtol=1e-15, atol=0)
    np.testing.assert_allclose(phi_ext.numpy(), phi_l, rtol=1e-15, atol=0)
    phi = torch.tensor([0.0, 0.4, -1.2, math.pi / 2, 3.0], dtype=torch.float64)
    strength = torch.tensor([0.1, 0.02, 0.3, 0.05, 0.0], dtype=torch.float64)
    c1, c2 = shear_polar_to_cartesian(strength, phi)
    l1, l2 = param_util.shear_polar2cartesian(phi.numpy(), strength.numpy())
    np.testing.assert_allclose(c1.numpy(), l1, rtol=1e-15, atol=1e-18)
    np.testing.assert_allclose(c2.numpy(), l2, rtol=1e-15, atol=1e-18)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_converters_round_trip(dtype):
    g1, g2 = _shears(dtype)
    b1, b2 = shear_polar_to_cartesian(*shear_cartesian_to_polar(g1, g2))
    tol = 1e-15 if dtype == torch.float64 else 1e-7
    torch.testing.assert_close((b1, b2), (g1, g2), rtol=0, atol=tol)
    strength = torch.tensor([0.1, 0.02, 0.3], dtype=dtype)
    phi = torch.tensor([0.3, -1.2, 1.5], dtype=dtype)  # in (-pi/2, pi/2], where the angle is unique
    back_strength, back_phi = shear_cartesian_to_polar(*shear_polar_to_cartesian(strength, phi))
    torch.testing.assert_close((back_strength, back_phi), (strength, phi), rtol=0, atol=10 * tol)


def test_shear_is_constant_and_the_convergence_zero():
    g1, g2 = _shears()
    x, y = _points()
    lens = ExternalShear(g1, g2)
    assert torch.all(lens.convergence(x, y) == 0)
    s1, s2 = lens.shear(x, y)
    assert torch.equal(s1, g1[:, None, None].expand_as(x)) and torch.equal(s2, g2[:, None, None].expand_as(x))
    mu = lens.magnification(x, y)
    torch.testing.assert_close(mu, (1 / (1 - g1**2 - g2**2))[:, None, None].expand_as(x), rtol=1e-15, atol=0)


def test_deflection_is_the_gradient_of_the_potential():
    g1, g2 = _shears()
    x, y = (p.requires_grad_(True) for p in _points())
    gx, gy = torch.autograd.grad(shear_potential(x, y, g1, g2).sum(), (x, y))
    ax, ay = shear_deflection(x, y, g1, g2)
    torch.testing.assert_close((gx, gy), (ax, ay), rtol=1e-14, atol=1e-15)


def test_grids_broadcast_take_and_dtype():
    g1, g2 = _shears(torch.float32)
    x, y = _points(torch.float32)
    lens = ExternalShear(g1, g2)
    ax, ay = lens.deflection(x[0], y[0])  # an (H, W) grid shared by the batch
    assert ax.shape == (len(GAMMA1), *x.shape[1:]) and ax.dtype == torch.float32
    torch.testing.assert_close((ax, ay), lens.deflection(x[0].expand_as(x), y[0].expand_as(y)), rtol=0, atol=0)
    keep = torch.tensor([True, False, True, False, False])
    kx, ky = lens.take(keep).deflection(x[0], y[0])
    torch.testing.assert_close((kx, ky), (ax[keep], ay[keep]), rtol=0, atol=0)
    for out in (*lens.hessian(x, y), lens.potential(x, y), lens.convergence(x, y)):
        assert out.shape == x.shape and out.dtype == torch.float32


def test_bad_parameters_and_coordinates_raise():
    g1, g2 = _shears()
    x, y = _points()
    with pytest.raises(LensnetValueError, match=r"^gamma2 contains"):
        ExternalShear(g1, torch.full_like(g2, float("inf")))
    with pytest.raises(LensnetShapeError, match=r"^gamma2 has shape \(2,\); expected \(5,\)"):
        shear_deflection(x, y, g1, g2[:2])
    with pytest.raises(LensnetShapeError, match=r"^gamma1 has shape \(\)"):
        shear_potential(x, y, torch.tensor(0.1, dtype=torch.float64), g2)
    with pytest.raises(LensnetShapeError, match=r"^x has shape \(3, 12, 12\)"):
        ExternalShear(g1, g2).hessian(x[:3], y[:3])
