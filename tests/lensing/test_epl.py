"""Tests of lensnet.lensing.epl: agreement with lenstronomy's 'EPL', the SIE at gamma = 2, identities, errors.

lenstronomy's 'EPL' evaluates the hypergeometric function with scipy.special.hyp2f1, an independent check of
our fixed-length series, and its Hessian analytically; it clamps the elliptical radius at 1e-9 arcsec, far
inside the 0.1 theta_E that the positions here keep from the centre.
"""

import math
import zlib

import numpy as np
import pytest
import torch

from lensnet.conventions import qphi_to_e1e2
from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.lensing.epl import EPL, epl_convergence, epl_deflection, epl_hessian, epl_potential
from lensnet.lensing.sie import sie_convergence, sie_deflection, sie_hessian, sie_potential

QS = [0.2, 0.5, 0.9, 1.0]
GAMMAS = [1.5, 1.8, 2.0, 2.2, 2.5]
PHIS = [0.0, 0.6, -1.2, math.pi / 2]
THETA_ES = [0.1, 1.0, 3.0]
RTOL = 1e-6  # float64 agreement required with lenstronomy
N_POINTS = 200


@pytest.fixture(scope="module")
def lens_model():
    lens_model_module = pytest.importorskip("lenstronomy.LensModel.lens_model")
    return lens_model_module.LensModel(["EPL"])


def _seed(*case):
    """A fixed seed per test case (unlike hash(), crc32 does not change between runs)."""
    return zlib.crc32(repr(case).encode())


def _grid_case(q, gamma, seed):
    """One float64 lens per (phi, theta_E) with a random centre, and N_POINTS positions at 0.1 to 3 theta_E.

    Returns the (B,) parameters theta_E, gamma, e1, e2, center_x, center_y and (B, 1, N_POINTS) positions.
    """
    gen = torch.Generator().manual_seed(seed)
    phi, theta_E = (torch.tensor(v, dtype=torch.float64).flatten() for v in np.meshgrid(PHIS, THETA_ES))
    b = phi.shape[0]
    e1, e2 = qphi_to_e1e2(torch.full((b,), q, dtype=torch.float64), phi)
    cx, cy = (torch.rand(2, b, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    r = theta_E[:, None] * (0.1 + 2.9 * torch.rand(b, N_POINTS, generator=gen, dtype=torch.float64))
    t = 2 * math.pi * torch.rand(b, N_POINTS, generator=gen, dtype=torch.float64)
    x, y = cx[:, None] + r * torch.cos(t), cy[:, None] + r * torch.sin(t)
    params = (theta_E, torch.full((b,), gamma, dtype=torch.float64), e1, e2, cx, cy)
    return params, x[:, None], y[:, None]


def _kwargs(params, i):
    names = ("theta_E", "gamma", "e1", "e2", "center_x", "center_y")
    return [{n: v[i].item() for n, v in zip(names, params)}]


over_q_gamma = pytest.mark.parametrize("q, gamma", [(q, g) for q in QS for g in GAMMAS])


@over_q_gamma
def test_deflection_and_potential_match_lenstronomy(lens_model, q, gamma):
    """|alpha - alpha_lenstronomy| <= 1e-6 |alpha| over angles, Einstein radii and centres; potentials likewise."""
    params, x, y = _grid_case(q, gamma, _seed(q, gamma))
    ax, ay = epl_deflection(x, y, *params)
    pot = epl_potential(x, y, *params)
    for i in range(x.shape[0]):
        xn, yn, kw = x[i, 0].numpy(), y[i, 0].numpy(), _kwargs(params, i)
        lax, lay = lens_model.alpha(xn, yn, kw)
        err = np.hypot(ax[i, 0].numpy() - lax, ay[i, 0].numpy() - lay) / np.hypot(lax, lay)
        assert err.max() <= RTOL
        lpot = lens_model.potential(xn, yn, kw)
        assert np.max(np.abs(pot[i, 0].numpy() - lpot)) <= RTOL * np.max(np.abs(lpot))


@over_q_gamma
def test_hessian_and_convergence_match_lenstronomy(lens_model, q, gamma):
    """Hessian components relative to its Frobenius norm, kappa relative to itself, both to 1e-6."""
    params, x, y = _grid_case(q, gamma, _seed(q, gamma, "hessian"))
    fxx, fxy, fyy = (h.numpy() for h in epl_hessian(x, y, *params))
    kappa = epl_convergence(x, y, *params).numpy()
    for i in range(x.shape[0]):
        xn, yn, kw = x[i, 0].numpy(), y[i, 0].numpy(), _kwargs(params, i)
        lxx, lxy, lyx, lyy = lens_model.hessian(xn, yn, kw)
        scale = np.sqrt(lxx**2 + lxy**2 + lyx**2 + lyy**2)
        for ours, theirs in [(fxx, lxx), (fxy, lxy), (fxy, lyx), (fyy, lyy)]:
            assert np.max(np.abs(ours[i, 0] - theirs) / scale) <= RTOL
        lkappa = lens_model.kappa(xn, yn, kw)
        assert np.max(np.abs(kappa[i, 0] - lkappa) / lkappa) <= RTOL


@pytest.mark.parametrize("gamma", [1.5, 2.5])
def test_series_reaches_float64_rounding_from_q_0_2(lens_model, gamma):
    """At q = 0.2, the smallest axis ratio the series is sized for, it is at float64 rounding (~1e-15)."""
    params, x, y = _grid_case(0.2, gamma, _seed(0.2, gamma, "rounding"))
    ax, ay = epl_deflection(x, y, *params)
    for i in range(x.shape[0]):
        lax, lay = lens_model.alpha(x[i, 0].numpy(), y[i, 0].numpy(), _kwargs(params, i))
        assert np.max(np.hypot(ax[i, 0].numpy() - lax, ay[i, 0].numpy() - lay) / np.hypot(lax, lay)) <= 1e-13


# --- the SIE limit and analytic identities -------------------------------------------------------------------


def _batch(gammas, dtype=torch.float64):
    """One lens per slope, q from 0.2 to 1 in turn, with random angles, radii and centres."""
    gen = torch.Generator().manual_seed(11)
    b = len(gammas)
    q = torch.tensor([0.2, 0.45, 0.9, 1.0] * b, dtype=torch.float64)[:b]
    phi = (torch.rand(b, generator=gen, dtype=torch.float64) - 0.5) * math.pi
    theta_E = 0.1 + 2.9 * torch.rand(b, generator=gen, dtype=torch.float64)
    e1, e2 = qphi_to_e1e2(q, phi)
    cx, cy = (torch.rand(2, b, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    return tuple(v.to(dtype) for v in (theta_E, torch.tensor(gammas, dtype=torch.float64), e1, e2, cx, cy))


def _points(params, n=16, seed=3):
    """(B, n, n) float64 positions at 0.05 to 3 theta_E from each lens centre."""
    theta_E, _, _, _, cx, cy = (p.double() for p in params)
    gen = torch.Generator().manual_seed(seed)
    shape = (theta_E.shape[0], n, n)
    r = theta_E[:, None, None] * (0.05 + 2.95 * torch.rand(shape, generator=gen, dtype=torch.float64))
    t = 2 * math.pi * torch.rand(shape, generator=gen, dtype=torch.float64)
    return cx[:, None, None] + r * torch.cos(t), cy[:, None, None] + r * torch.sin(t)


SLOPES = [1.5, 1.8, 2.0, 2.3, 2.5, 2.9, 1.1, 2.0]  # beyond lenstronomy's [1.5, 2.5] too: identities hold for all


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-14), (torch.float32, 1e-5)])
def test_gamma_2_equals_the_sie(dtype, tol):
    """Deflection, potential, kappa and Hessian at gamma = 2 equal the SIE's to rounding, relative to their scale.

    float32 allows 1e-5: each side rounds to ~1e-6 here (the SIE's artanh near 1 at q = 0.2 amplifies it).
    """
    params = _batch([2.0] * 4, dtype)
    x, y = (p.to(dtype) for p in _points(params))
    sie_params = (params[0], *params[2:])
    for epl_f, sie_f in [(epl_deflection, sie_deflection), (epl_potential, sie_potential),
                         (epl_convergence, sie_convergence), (epl_hessian, sie_hessian)]:
        ours, theirs = epl_f(x, y, *params), sie_f(x, y, *sie_params)
        for a, b in zip(*(o if isinstance(o, tuple) else (o,) for o in (ours, theirs))):
            scale = b.abs().amax(dim=(1, 2), keepdim=True)
            assert a.dtype == dtype and ((a - b).abs() / scale).max() <= tol, epl_f.__name__


def _jacobian(lens, x, y):
    """d alpha / d theta by autograd: ((dax/dx, dax/dy), (day/dx, day/dy)), each (B, H, W)."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ax, ay = lens.deflection(x, y)  # each output depends on its own position only
    dax = torch.autograd.grad(ax.sum(), (x, y), retain_graph=True)
    day = torch.autograd.grad(ay.sum(), (x, y))
    return dax, day


def test_convergence_is_half_the_divergence_of_the_deflection():
    params = _batch(SLOPES)
    lens = EPL(*params)
    x, y = _points(params)
    (axx, _), (_, ayy) = _jacobian(lens, x, y)
    torch.testing.assert_close((axx + ayy) / 2, lens.convergence(x, y), rtol=1e-12, atol=0)


def test_hessian_is_the_jacobian_of_the_deflection():
    """f_xx = dax/dx, f_xy = dax/dy = day/dx (curl-free), f_yy = day/dy."""
    params = _batch(SLOPES)
    lens = EPL(*params)
    x, y = _points(params)
    (axx, axy), (ayx, ayy) = _jacobian(lens, x, y)
    fxx, fxy, fyy = lens.hessian(x, y)
    scale = (fxx.abs() + fyy.abs() + fxy.abs()).amax(dim=(1, 2), keepdim=True)
    for ours, autograd in [(fxx, axx), (fxy, axy), (fxy, ayx), (fyy, ayy)]:
        assert ((ours - autograd).abs() / scale).max() <= 1e-12


def test_deflection_is_the_gradient_of_the_potential():
    params = _batch(SLOPES)
    lens = EPL(*params)
    x, y = _points(params)
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    gx, gy = torch.autograd.grad(lens.potential(xg, yg).sum(), (xg, yg))
    ax, ay = lens.deflection(x, y)
    torch.testing.assert_close(gx, ax, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gy, ay, rtol=1e-10, atol=1e-12)


def test_parameter_gradients_match_central_differences():
    """The series' analytic derivatives in gamma and in z (through e1, e2, centre, theta_E), a round lens included."""
    params = _batch([1.6, 2.0, 2.4, 2.2])  # the last lens is round: e1 = e2 = 0, where phi is undefined
    x, y = _points(params, n=6)
    weights = torch.randn((2, *x.shape), generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss(*p):
        ax, ay = epl_deflection(x, y, *p)
        return (weights[0] * ax + weights[1] * ay).sum()

    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss(*leaves), leaves)
    h = 1e-6
    for k, grad in enumerate(grads):
        for i in range(params[0].shape[0]):
            up, down = [list(params) for _ in range(2)]
            up[k], down[k] = params[k].clone(), params[k].clone()
            up[k][i] += h
            down[k][i] -= h
            numeric = (loss(*up) - loss(*down)) / (2 * h)
            assert abs(grad[i] - numeric) <= 1e-6 * (1 + abs(numeric)), (k, i)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_are_finite_with_a_sample_on_the_centre(dtype):
    """A fit's pixel may fall exactly on the lens centre: deflection 0 there, and finite gradients everywhere.

    The slopes span the range lenstronomy allows; the last lens is round (e1 = e2 = 0, where phi is undefined).
    """
    params = _batch([1.5, 2.0, 2.5, 2.2], dtype)
    leaves = [p.clone().requires_grad_(True) for p in params]
    offsets = torch.linspace(-1.0, 1.0, 5, dtype=dtype)  # the middle one is 0: the centre itself
    x = params[4][:, None, None] + offsets[None, :, None].expand(-1, 5, 5)
    y = params[5][:, None, None] + offsets[None, None, :].expand(-1, 5, 5)
    ax, ay = epl_deflection(x, y, *leaves)
    assert torch.all(ax[:, 2, 2] == 0) and torch.all(ay[:, 2, 2] == 0)
    loss = ((x - ax) ** 2 + (y - ay) ** 2).sum() + epl_potential(x, y, *leaves).sum()
    names = ("theta_E", "gamma", "e1", "e2", "center_x", "center_y")
    for name, grad in zip(names, torch.autograd.grad(loss, leaves)):
        assert torch.all(torch.isfinite(grad)), name


def test_float32_is_close_to_float64():
    params64 = _batch(SLOPES)
    params32 = tuple(p.float() for p in params64)
    x, y = _points(params64)
    for func in (epl_deflection, epl_potential, epl_hessian, epl_convergence):
        out64, out32 = func(x, y, *params64), func(x.float(), y.float(), *params32)
        for a64, a32 in zip(*(o if isinstance(o, tuple) else (o,) for o in (out64, out32))):
            assert a32.dtype == torch.float32
            scale = a64.abs().amax(dim=(1, 2), keepdim=True)
            assert ((a32.double() - a64).abs() / scale).max() <= 2e-5, func.__name__


def test_batch_equals_single_lenses_and_take_selects_them():
    params = _batch(SLOPES[:4])
    x, y = _points(params)
    lens = EPL(*params)
    ax, ay = lens.deflection(x[0], y[0])  # an (H, W) grid shared by the batch
    axb, ayb = lens.deflection(x[0].expand_as(x), y[0].expand_as(y))
    torch.testing.assert_close((ax, ay), (axb, ayb), rtol=0, atol=0)
    for i in range(4):
        sx, sy = EPL(*(p[i:i + 1] for p in params)).deflection(x[0], y[0])
        torch.testing.assert_close((sx[0], sy[0]), (ax[i], ay[i]), rtol=1e-15, atol=1e-15)
    keep = torch.tensor([False, True, False, True])
    kx, ky = lens.take(keep).deflection(x[0], y[0])
    torch.testing.assert_close((kx, ky), (ax[keep], ay[keep]), rtol=0, atol=0)
    assert torch.equal(lens.take(keep).gamma, params[1][keep])


def test_outputs_follow_input_dtype_and_shape():
    params = _batch(SLOPES[:4], torch.float32)
    x, y = (p.float() for p in _points(params))
    lens = EPL(*params)
    for out in (*lens.raytrace(x, y), lens.magnification(x, y), lens.convergence(x, y), lens.potential(x, y)):
        assert out.dtype == torch.float32 and out.device == x.device and out.shape == x.shape


# --- errors -------------------------------------------------------------------------------------------------


def _good():
    ones = torch.ones(2, dtype=torch.float64)
    return {"theta_E": ones, "gamma": 2 * ones, "e1": 0.1 * ones, "e2": -0.2 * ones, "center_x": 0 * ones,
            "center_y": 0 * ones}


@pytest.mark.parametrize("gamma", [1.0, 3.0, 0.5, 3.2])
def test_slope_outside_one_to_three_raises_range_error(gamma):
    values = {**_good(), "gamma": torch.tensor([2.0, gamma], dtype=torch.float64)}
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(LensnetRangeError, match=r"^gamma = ") as info:
        epl_deflection(zeros, zeros, **values)
    assert info.value.name == "gamma" and info.value.value == gamma and (info.value.min, info.value.max) == (1, 3)
    with pytest.raises(LensnetRangeError, match=r"^gamma = "):
        EPL(**values)


def test_non_finite_or_misshapen_slope_raises():
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(LensnetValueError, match=r"^gamma contains"):
        epl_deflection(zeros, zeros, **{**_good(), "gamma": torch.tensor([2.0, float("nan")], dtype=torch.float64)})
    with pytest.raises(LensnetShapeError, match=r"^gamma has shape \(3,\); expected \(2,\)"):
        EPL(**{**_good(), "gamma": torch.full((3,), 2.0, dtype=torch.float64)})


def test_shared_parameters_are_checked_as_for_the_sie():
    zeros = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(LensnetRangeError, match="theta_E"):
        EPL(**{**_good(), "theta_E": -_good()["theta_E"]})
    with pytest.raises(LensnetRangeError, match=r"e1.*e2"):
        epl_convergence(zeros, zeros, **{**_good(), "e1": torch.ones(2, dtype=torch.float64)})
    with pytest.raises(LensnetShapeError, match=r"^y has shape"):
        EPL(**_good()).hessian(zeros, torch.zeros(3, 4, dtype=torch.float64))


def test_second_derivatives_through_the_series_raise():
    """The series is once differentiable (its derivatives are analytic): a double backward must fail loudly."""
    params = _batch([1.7, 2.3])
    x, y = (p.requires_grad_(True) for p in _points(params, n=3))
    ax, _ = epl_deflection(x, y, *params)
    (gx,) = torch.autograd.grad(ax.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gx.sum().backward()
