"""Tests of lensnet.lensing.sie: agreement with lenstronomy's 'SIE', analytic identities, errors.

lenstronomy's 'SIE' is its NIE with a core s = 1e-10/sqrt(q) arcsec. The core changes the
deflection by a relative ~s/psi and kappa by ~(s/psi)^2 (psi = sqrt(q^2 x'^2 + y'^2)), so
positions are drawn at r >= 0.1 theta_E, where psi >= 0.1 q theta_E >= 1e-3 arcsec and the
core's effect stays below 1e-6. Lenstronomy's default Hessian is a one-sided difference of its
deflection with a 1e-10 arcsec step (rounding errors ~1e-4 |alpha|), so the Hessian is compared
at 1e-6 with lenstronomy's centred differences of its analytic deflection, and with the default
Hessian only at the tolerance that step allows (see :func:`test_hessian_matches_lenstronomy_default`).
"""

import math
import zlib

import numpy as np
import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.lensing.sie import (
    SIE,
    sie_convergence,
    sie_deflection,
    sie_hessian,
    sie_potential,
)

QS = [0.1, 0.3, 0.7, 0.999, 1.0]
PHIS = [0.0, 0.6, -1.2, math.pi / 2]
THETA_ES = [0.1, 1.0, 3.0]
RTOL = 1e-6  # float64 agreement required with lenstronomy (issue #2)
N_POINTS = 400


@pytest.fixture(scope="module")
def lens_model():
    lens_model_module = pytest.importorskip("lenstronomy.LensModel.lens_model")
    return lens_model_module.LensModel(["SIE"])


def _case(q, phi, theta_E, seed):
    """A float64 lens with a random centre and N_POINTS positions at 0.1 to 3 theta_E from it."""
    gen = torch.Generator().manual_seed(seed)
    center = (torch.rand(2, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    params = LensParams.from_qphi(*(torch.tensor([v], dtype=torch.float64) for v in (theta_E, q, phi)),
                                  center[:1], center[1:])
    r = theta_E * (0.1 + 2.9 * torch.rand(N_POINTS, generator=gen, dtype=torch.float64))
    t = 2 * math.pi * torch.rand(N_POINTS, generator=gen, dtype=torch.float64)
    x, y = center[0] + r * torch.cos(t), center[1] + r * torch.sin(t)
    return params, x[None], y[None]  # (1, N) coordinates: an (H, W) grid of one row


def _seed(*case):
    """A fixed seed per test case (unlike hash(), crc32 does not change between runs)."""
    return zlib.crc32(repr(case).encode())


def _np(t):
    return t[0, 0].numpy() if t.ndim == 3 else t[0].numpy()


over_q = pytest.mark.parametrize("q", QS)
over_phi = pytest.mark.parametrize("phi", PHIS)
over_theta_E = pytest.mark.parametrize("theta_E", THETA_ES)


@over_q
@over_phi
@over_theta_E
def test_deflection_and_potential_match_lenstronomy(lens_model, q, phi, theta_E):
    """|alpha - alpha_lenstronomy| <= 1e-6 |alpha|; potentials agree to 1e-6 up to a constant."""
    params, x, y = _case(q, phi, theta_E, seed=_seed(q, phi, theta_E))
    kw = params.to_lenstronomy()
    xn, yn = x[0].numpy(), y[0].numpy()
    ax, ay = (_np(a) for a in sie_deflection(x, y, *params.to_tensor().unbind(1)))
    lax, lay = lens_model.alpha(xn, yn, kw)
    assert np.max(np.hypot(ax - lax, ay - lay) / np.hypot(lax, lay)) <= RTOL

    pot = _np(SIE(params).potential(x, y))
    lpot = lens_model.potential(xn, yn, kw)
    pot, lpot = pot - pot.mean(), lpot - lpot.mean()  # the potential is defined up to a constant
    assert np.max(np.abs(pot - lpot)) <= RTOL * np.max(np.abs(lpot))


@over_q
@over_phi
@over_theta_E
def test_hessian_convergence_shear_magnification_match_lenstronomy(lens_model, q, phi, theta_E):
    """Against centred differences (step 1e-5 theta_E) of lenstronomy's deflection, to 1e-6.

    Hessian components are compared relative to the trace |f_xx| + |f_yy| (= 2 kappa, which bounds
    |f_xy| for the SIE), kappa and |gamma| relative to themselves, det A = 1/mu absolutely at
    1e-6 (1 + 2 kappa)^2.
    """
    params, x, y = _case(q, phi, theta_E, seed=_seed(q, phi, theta_E, "hessian"))
    kw = params.to_lenstronomy()
    xn, yn = x[0].numpy(), y[0].numpy()
    lens = SIE(params)
    fxx, fxy, fyy = (_np(h) for h in lens.hessian(x, y))
    lxx, lxy, lyx, lyy = lens_model.hessian(xn, yn, kw, diff=1e-5 * theta_E, diff_method="cross")
    scale = np.abs(fxx) + np.abs(fyy)
    for ours, theirs in [(fxx, lxx), (fxy, lxy), (fxy, lyx), (fyy, lyy)]:
        assert np.max(np.abs(ours - theirs) / scale) <= RTOL

    kappa = _np(lens.convergence(x, y))
    assert np.max(np.abs(kappa - (lxx + lyy) / 2) / kappa) <= RTOL
    g1, g2 = (_np(g) for g in lens.shear(x, y))
    lg1, lg2 = (lxx - lyy) / 2, (lxy + lyx) / 2
    assert np.max(np.hypot(g1 - lg1, g2 - lg2) / np.hypot(lg1, lg2)) <= RTOL
    det = 1 / _np(lens.magnification(x, y))
    ldet = (1 - lxx) * (1 - lyy) - lxy * lyx
    assert np.max(np.abs(det - ldet) / (1 + 2 * kappa) ** 2) <= RTOL


@pytest.mark.parametrize("q", [0.1, 0.5, 0.999, 1.0])
def test_hessian_matches_lenstronomy_default(lens_model, q):
    """Against lenstronomy's own Hessian and kappa, at the accuracy of its 1e-10 arcsec step.

    lenstronomy differences its deflection one-sidedly with a 1e-10 arcsec step, so rounding
    (~1e-16 |alpha| per evaluation, a few ulp in practice) gives errors up to ~1e-4 |alpha|
    (measured 1.0e-4 at q = 0.1): hence atol = 1e-3 |alpha| here, and kappa near the centre is
    not compared with it at all. The 1e-6 comparison is the centred-difference test above.
    """
    params, x, y = _case(q, 0.4, 2.0, seed=7)
    kw = params.to_lenstronomy()
    xn, yn = x[0].numpy(), y[0].numpy()
    lens = SIE(params)
    alpha = np.hypot(*lens_model.alpha(xn, yn, kw))
    fxx, fxy, fyy = (_np(h) for h in lens.hessian(x, y))
    lxx, lxy, _, lyy = lens_model.hessian(xn, yn, kw)
    for ours, theirs in [(fxx, lxx), (fxy, lxy), (fyy, lyy)]:
        assert np.all(np.abs(ours - theirs) <= 1e-3 * alpha)
    assert np.all(np.abs(_np(lens.convergence(x, y)) - lens_model.kappa(xn, yn, kw)) <= 1e-3 * alpha)


# --- analytic identities ----------------------------------------------------------------------


def _batch(dtype=torch.float64):
    """Four lenses spanning q = 0.1 to 1 with random angles, radii and centres."""
    gen = torch.Generator().manual_seed(11)
    q = torch.tensor([0.1, 0.45, 0.9, 1.0], dtype=dtype)
    phi = (torch.rand(4, generator=gen, dtype=dtype) - 0.5) * math.pi
    theta_E = 0.1 + 2.9 * torch.rand(4, generator=gen, dtype=dtype)
    cx, cy = (torch.rand(2, 4, generator=gen, dtype=dtype) - 0.5) * 0.6
    return LensParams.from_qphi(theta_E, q, phi, cx, cy)


def _points(params, n=24, seed=3):
    """(B, n, n) positions at 0.05 to 3 theta_E from each lens centre."""
    gen = torch.Generator().manual_seed(seed)
    shape = (params.batch_size, n, n)
    r = params.theta_E[:, None, None] * (0.05 + 2.95 * torch.rand(shape, generator=gen, dtype=torch.float64))
    t = 2 * math.pi * torch.rand(shape, generator=gen, dtype=torch.float64)
    x = params.center_x[:, None, None] + r * torch.cos(t)
    y = params.center_y[:, None, None] + r * torch.sin(t)
    return x.to(params.theta_E.dtype), y.to(params.theta_E.dtype)


def _jacobian(lens, x, y):
    """d alpha / d theta by autograd: ((dax/dx, dax/dy), (day/dx, day/dy)), each (B, H, W)."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ax, ay = lens.deflection(x, y)  # each output depends on its own position only
    dax = torch.autograd.grad(ax.sum(), (x, y), retain_graph=True)
    day = torch.autograd.grad(ay.sum(), (x, y))
    return dax, day


def test_convergence_is_half_the_divergence_of_the_deflection():
    params = _batch()
    lens = SIE(params)
    x, y = _points(params)
    (axx, _), (_, ayy) = _jacobian(lens, x, y)
    torch.testing.assert_close((axx + ayy) / 2, lens.convergence(x, y), rtol=1e-10, atol=0)


def test_hessian_is_the_jacobian_of_the_deflection():
    """f_xx = dax/dx, f_xy = dax/dy = day/dx (curl-free), f_yy = day/dy."""
    params = _batch()
    lens = SIE(params)
    x, y = _points(params)
    (axx, axy), (ayx, ayy) = _jacobian(lens, x, y)
    fxx, fxy, fyy = lens.hessian(x, y)
    for ours, autograd in [(fxx, axx), (fxy, axy), (fxy, ayx), (fyy, ayy)]:
        torch.testing.assert_close(ours, autograd, rtol=1e-10, atol=1e-10)


def test_deflection_is_the_gradient_of_the_potential():
    params = _batch()
    lens = SIE(params)
    x, y = _points(params)
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    gx, gy = torch.autograd.grad(lens.potential(xg, yg).sum(), (xg, yg))
    ax, ay = lens.deflection(x, y)
    torch.testing.assert_close(gx, ax, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gy, ay, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("one_minus_q", [0.0, 1e-12, 1e-7, 1e-4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sis_limit(one_minus_q, dtype):
    """As q -> 1 the deflection tends to theta_E (x, y)/r, with error ~ (1 - q) theta_E."""
    gen = torch.Generator().manual_seed(5)
    params = LensParams.from_qphi(*(torch.tensor([v], dtype=dtype) for v in (1.7, 1 - one_minus_q, 0.3, 0.2, -0.1)))
    x, y = (torch.rand(2, 16, 16, generator=gen, dtype=torch.float64) * 8 - 4).to(dtype)
    ax, ay = SIE(params).deflection(x, y)
    dx, dy = x - 0.2, y + 0.1
    r = torch.hypot(dx, dy)
    tol = 1.7 * one_minus_q + (1e-14 if dtype == torch.float64 else 1e-6)
    torch.testing.assert_close(ax[0], 1.7 * dx / r, rtol=0, atol=tol)
    torch.testing.assert_close(ay[0], 1.7 * dy / r, rtol=0, atol=tol)


def test_float32_is_close_to_float64():
    """Relative to the largest value: 2e-5 (artanh near 1 at q = 0.1 amplifies rounding ~100 times)."""
    p64 = _batch()
    p32 = p64.to(dtype=torch.float32)
    x, y = _points(p64)
    args64, args32 = p64.to_tensor().unbind(1), p32.to_tensor().unbind(1)
    for func in (sie_deflection, sie_potential, sie_hessian, sie_convergence):
        out64, out32 = func(x, y, *args64), func(x.float(), y.float(), *args32)
        for a64, a32 in zip(*(o if isinstance(o, tuple) else (o,) for o in (out64, out32))):
            assert a32.dtype == torch.float32
            scale = a64.abs().amax(dim=(1, 2), keepdim=True)
            assert ((a32.double() - a64).abs() / scale).max() <= 2e-5, func.__name__


def test_batch_equals_single_lenses_and_grids_broadcast():
    """A batch of B lenses on an (H, W) grid equals each lens alone, and a (B, H, W) grid."""
    params = _batch()
    x, y = _points(params)
    x2, y2 = x[0], y[0]
    ax, ay = SIE(params).deflection(x2, y2)
    axb, ayb = SIE(params).deflection(x2.expand_as(x), y2.expand_as(y))
    for i in range(params.batch_size):
        single = LensParams(*(t[i:i + 1] for t in params.to_tensor().unbind(1)))
        sx, sy = SIE(single).deflection(x2, y2)
        torch.testing.assert_close(ax[i], sx[0], rtol=1e-15, atol=1e-15)
        torch.testing.assert_close(ay[i], sy[0], rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(ax, axb, rtol=0, atol=0)
    torch.testing.assert_close(ay, ayb, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_centre_is_finite(dtype):
    """At the singular centre deflection, potential and Hessian are 0 and kappa is large but finite."""
    params = _batch(dtype)
    lens = SIE(params)
    x, y = params.center_x[:, None, None], params.center_y[:, None, None]
    for out in (*lens.deflection(x, y), lens.potential(x, y), *lens.hessian(x, y)):
        assert torch.all(out == 0)
    kappa = lens.convergence(x, y)
    assert torch.all(torch.isfinite(kappa)) and torch.all(kappa > 1e8)


def test_outputs_follow_input_dtype_and_device():
    params = _batch(torch.float32)
    x, y = _points(params)
    for out in (*SIE(params).raytrace(x, y), SIE(params).magnification(x, y)):
        assert out.dtype == torch.float32 and out.device == x.device and out.shape == x.shape


# --- errors -------------------------------------------------------------------------------------


def _ones(n=2):
    return torch.ones(n, dtype=torch.float64)


def _good():
    return {"theta_E": _ones(), "e1": 0.1 * _ones(), "e2": -0.2 * _ones(), "center_x": 0 * _ones(),
            "center_y": 0 * _ones()}


@pytest.mark.parametrize("q", [0.0, -0.3, 1.5])
def test_bad_axis_ratio_raises_range_error(q):
    with pytest.raises(LensnetRangeError, match=r"^q = "):
        LensParams.from_qphi(_ones(), q * _ones(), 0 * _ones(), 0 * _ones(), 0 * _ones())


@pytest.mark.parametrize("theta_E", [0.0, -1.0])
def test_bad_einstein_radius_raises_range_error(theta_E):
    with pytest.raises(LensnetRangeError, match="theta_E") as info:
        LensParams(**{**_good(), "theta_E": theta_E * _ones()})
    assert info.value.value == theta_E and info.value.min == 0


@pytest.mark.parametrize("e1, e2", [(1.0, 0.0), (0.8, 0.7), (0.0, -1.2)])
def test_ellipticity_of_modulus_one_or_more_raises_range_error(e1, e2):
    with pytest.raises(LensnetRangeError, match=r"e1.*e2"):
        LensParams(**{**_good(), "e1": e1 * _ones(), "e2": e2 * _ones()})


@pytest.mark.parametrize("name", ["theta_E", "e1", "e2", "center_x", "center_y"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_parameter_raises_value_error(name, bad):
    values = _good()
    values[name] = values[name].clone()
    values[name][1] = bad
    with pytest.raises(LensnetValueError, match=rf"^{name} contains"):
        LensParams(**values)
    with pytest.raises(LensnetValueError, match=rf"^{name} contains"):
        sie_deflection(torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64), **values)


@pytest.mark.parametrize("name", ["q", "phi"])
def test_non_finite_q_or_phi_raises_naming_it(name):
    values = {"theta_E": _ones(), "q": 0.5 * _ones(), "phi": 0 * _ones(), "center_x": 0 * _ones(),
              "center_y": 0 * _ones()}
    values[name] = torch.tensor([0.5, float("nan")], dtype=torch.float64)
    with pytest.raises(LensnetValueError, match=rf"^{name} contains"):
        LensParams.from_qphi(**values)


@pytest.mark.parametrize("name", ["theta_E", "e1", "e2", "center_x", "center_y"])
def test_wrong_parameter_shape_raises_shape_error(name):
    values = _good()
    values[name] = torch.ones(2, 2, dtype=torch.float64)  # (B, 2) instead of (B,)
    with pytest.raises(LensnetShapeError, match=rf"^{name} has shape \(2, 2\); expected \(B,\)"):
        LensParams(**values)


@pytest.mark.parametrize("name", ["e1", "e2", "center_x", "center_y"])
def test_mismatched_batch_sizes_raise_shape_error(name):
    values = _good()
    values[name] = _ones(3)
    with pytest.raises(LensnetShapeError, match=rf"^{name} has shape \(3,\); expected \(2,\)"):
        LensParams(**values)


def test_from_qphi_checks_shapes_under_its_own_names():
    with pytest.raises(LensnetShapeError, match=r"^q has shape"):
        q = torch.full((2, 2), 0.5, dtype=torch.float64)
        LensParams.from_qphi(_ones(), q, 0 * _ones(), 0 * _ones(), 0 * _ones())
    with pytest.raises(LensnetShapeError, match=r"^phi has shape \(3,\)"):
        LensParams.from_qphi(_ones(), 0.5 * _ones(), 0 * _ones(3), 0 * _ones(), 0 * _ones())


def test_integer_parameters_raise_value_error():
    with pytest.raises(LensnetValueError, match="theta_E must be a floating-point tensor"):
        LensParams(**{**_good(), "theta_E": torch.ones(2, dtype=torch.int64)})


def test_from_tensor_checks_its_shape():
    with pytest.raises(LensnetShapeError, match=r"^params has shape \(2, 4\)"):
        LensParams.from_tensor(torch.ones(2, 4))


@pytest.mark.parametrize("x_shape, y_shape, name", [
    ((3, 4, 4), (3, 4, 4), "x"),  # three position sets for two lenses
    ((4, 4), (4, 5), "y"),
    ((16,), (16,), "x"),
    ((2, 1, 4, 4), (2, 1, 4, 4), "x"),
])
def test_badly_shaped_coordinates_raise_shape_error(x_shape, y_shape, name):
    lens = SIE(LensParams(**_good()))
    x, y = torch.zeros(x_shape, dtype=torch.float64), torch.zeros(y_shape, dtype=torch.float64)
    for method in (lens.deflection, lens.convergence, lens.potential, lens.hessian, lens.raytrace,
                   lens.magnification):
        with pytest.raises(LensnetShapeError, match=rf"^{name} has shape"):
            method(x, y)
    with pytest.raises(LensnetShapeError, match=rf"^{name} has shape"):
        sie_deflection(x, y, **_good())
