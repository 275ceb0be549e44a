"""Analytic identities of the SIE: Poisson equation, critical curves, SIS limit, Hessian, errors."""

import math

import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.lensing import SIE, PixelGrid, sie_caustic, sie_critical_curve, sie_deflection


def _random_params(n=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 5, generator=g, dtype=dtype)
    return LensParams.from_qphi(0.3 + 2.5 * u[:, 0], 0.15 + 0.8 * u[:, 1], math.pi * u[:, 2],
                                0.4 * u[:, 3] - 0.2, 0.4 * u[:, 4] - 0.2)


def _points(n=200, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (4 * torch.rand(n, 1, generator=g, dtype=dtype) - 2, 4 * torch.rand(n, 1, generator=g, dtype=dtype) - 2)


def _jacobian(params, x, y):
    """Autograd Jacobian of the deflection: d(alpha_x, alpha_y)/d(x, y), each (B, N, 1)."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ax, ay = SIE(params).deflection(x.expand(params.batch_size, -1, -1), y.expand(params.batch_size, -1, -1))
    dxx, dxy = torch.autograd.grad(ax.sum(), (x, y), retain_graph=True)
    dyx, dyy = torch.autograd.grad(ay.sum(), (x, y))
    return dxx, dxy, dyx, dyy


def test_convergence_is_half_the_divergence_of_the_deflection():
    for b in range(3):
        params = _random_params(1, seed=b)
        x, y = _points()
        dxx, _, _, dyy = _jacobian(params, x, y)
        kappa = SIE(params).convergence(x, y)[0]
        torch.testing.assert_close((dxx + dyy) / 2, kappa, rtol=1e-9, atol=1e-12)


def test_hessian_equals_autograd_jacobian_of_deflection():
    params = _random_params(1, seed=5)
    x, y = _points()
    dxx, dxy, dyx, dyy = _jacobian(params, x, y)
    fxx, fxy, fyy = (t[0] for t in SIE(params).hessian(x, y))
    torch.testing.assert_close(fxx, dxx, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fyy, dyy, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fxy, dxy, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fxy, dyx, rtol=1e-9, atol=1e-12)  # curl-free deflection


def test_det_a_vanishes_on_the_critical_curve():
    params = _random_params(6)
    cx, cy = sie_critical_curve(params, 512)
    lens = SIE(params)
    fxx, fxy, fyy = lens.hessian(cx[:, :, None], cy[:, :, None])
    det = (1 - fxx) * (1 - fyy) - fxy**2
    assert det.abs().max() < 1e-10


def test_caustic_is_the_raytraced_critical_curve():
    params = _random_params(6)
    kx, ky = sie_critical_curve(params, 256)
    bx, by = SIE(params).raytrace(kx[:, :, None], ky[:, :, None])
    cx, cy = sie_caustic(params, 256)
    torch.testing.assert_close(bx[..., 0], cx, rtol=0, atol=1e-12)
    torch.testing.assert_close(by[..., 0], cy, rtol=0, atol=1e-12)


def test_sis_limit():
    n = 3
    theta_E = torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64)
    zero = torch.zeros(n, dtype=torch.float64)
    x, y = _points()
    for q in (1.0, 1 - 1e-9, 1 - 1e-6):
        params = LensParams.from_qphi(theta_E, torch.full((n,), q, dtype=torch.float64), zero, zero, zero)
        ax, ay = SIE(params).deflection(x, y)
        r = torch.sqrt(x**2 + y**2)
        torch.testing.assert_close(ax, theta_E[:, None, None] * x / r, rtol=2e-6, atol=0)
        torch.testing.assert_close(ay, theta_E[:, None, None] * y / r, rtol=2e-6, atol=0)


def test_float32_close_to_float64():
    params64 = _random_params(4)
    params32 = params64.to(dtype=torch.float32)
    x, y = PixelGrid(32, 0.12).coordinates(dtype=torch.float64)
    a64 = torch.stack(sie_deflection(x, y, params64.theta_E, params64.e1, params64.e2, params64.center_x,
                                     params64.center_y))
    a32 = torch.stack(sie_deflection(x.float(), y.float(), params32.theta_E, params32.e1, params32.e2,
                                     params32.center_x, params32.center_y))
    assert a32.dtype == torch.float32
    assert (a32.double() - a64).abs().max() / a64.abs().max() < 1e-5


def test_finite_at_the_lens_centre():
    params = _random_params(2)
    x = params.center_x[:, None, None].clone()
    y = params.center_y[:, None, None].clone()
    ax, ay = SIE(params).deflection(x, y)
    assert torch.isfinite(ax).all() and torch.isfinite(ay).all()


@pytest.mark.parametrize("make, error, name", [
    (lambda t: LensParams.from_qphi(t(1.0), t(0.0), t(0.0), t(0.0), t(0.0)), LensnetRangeError, "q"),
    (lambda t: LensParams.from_qphi(t(1.0), t(-0.5), t(0.0), t(0.0), t(0.0)), LensnetRangeError, "q"),
    (lambda t: LensParams(t(0.0), t(0.0), t(0.0), t(0.0), t(0.0)), LensnetRangeError, "theta_E"),
    (lambda t: LensParams(t(-1.0), t(0.0), t(0.0), t(0.0), t(0.0)), LensnetRangeError, "theta_E"),
    (lambda t: LensParams(t(1.0), t(float("nan")), t(0.0), t(0.0), t(0.0)), LensnetValueError, "e1"),
    (lambda t: LensParams(t(1.0), t(0.0), t(0.0), t(float("inf")), t(0.0)), LensnetValueError, "center_x"),
    (lambda t: LensParams(t(1.0), t(0.8), t(0.8), t(0.0), t(0.0)), LensnetRangeError, "e1"),
    (lambda t: LensParams(torch.ones(2, 2), t(0.0), t(0.0), t(0.0), t(0.0)), LensnetShapeError, "theta_E"),
    (lambda t: LensParams(torch.ones(2), t(0.0), t(0.0), t(0.0), t(0.0)), LensnetShapeError, "e1"),
    (lambda t: LensParams.from_tensor(torch.ones(3, 4)), LensnetShapeError, "params"),
])
def test_bad_parameters_raise_named_errors(make, error, name):
    t = lambda v: torch.tensor([v])  # noqa: E731
    with pytest.raises(error, match=name):
        make(t)


def test_pixel_grid_rejects_bad_values():
    with pytest.raises(LensnetRangeError, match="pixel_scale"):
        PixelGrid(10, 0.0)
    with pytest.raises(LensnetRangeError, match="n_pix"):
        PixelGrid(0, 0.1)
    with pytest.raises(LensnetRangeError, match="supersample"):
        PixelGrid(10, 0.1).coordinates(supersample=0)
