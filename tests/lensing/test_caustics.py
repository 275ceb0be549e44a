"""Tests of the SIE critical curve, caustic and cut (lensnet.lensing.sie) against lenstronomy and theory.

lenstronomy finds critical curves as the zero contour of 1/mu on a grid of step h (marching
squares, linear interpolation along cell edges) and ray-traces them to caustics. Its points lie
within a small fraction of h of our analytic curves. Caustic points are even closer: for the SIE
the Jacobian A maps every displacement off the critical curve onto the caustic's tangent (A has
rank one there, and its range is the caustic's direction), so the contour's error only slides
points along the caustic.
"""

import math

import numpy as np
import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.lensing.sie import SIE, sie_caustic, sie_critical_curve, sie_cut

N_DENSE = 1024  # vertices of our polylines: chord error < 1e-3 h


@pytest.fixture(scope="module")
def extensions():
    lens_model = pytest.importorskip("lenstronomy.LensModel.lens_model")
    lens_model_extensions = pytest.importorskip("lenstronomy.LensModel.lens_model_extensions")
    return lens_model_extensions.LensModelExtensions(lens_model.LensModel(["SIE"]))


def _params(q, phi, theta_E, center=(0.13, -0.21), dtype=torch.float64):
    return LensParams.from_qphi(*(torch.tensor([v], dtype=dtype) for v in (theta_E, q, phi, *center)))


def _distance_to_polyline(px, py, vx, vy):
    """Distance (M,) from each point (px, py) to the closed polyline with vertices (vx, vy)."""
    a = np.stack([vx, vy], axis=1)
    d = np.roll(a, -1, axis=0) - a
    p = np.stack([px, py], axis=1)[:, None, :] - a[None]
    # Repeated vertices (closed contours, or a caustic shrunk to a point at q = 1) are zero-length.
    t = np.clip((p * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300), 0, 1)
    return np.sqrt(((p - t[..., None] * d) ** 2).sum(-1)).min(axis=1)


@pytest.mark.parametrize("q", [0.1, 0.4, 0.8, 0.999, 1.0])
@pytest.mark.parametrize("phi, theta_E", [(0.3, 0.1), (1.2, 3.0), (-0.7, 1.1)])
def test_lenstronomy_critical_curve_and_caustic_lie_on_ours(extensions, q, phi, theta_E):
    """Lenstronomy's points lie within 0.2 h (critical curve) and 0.02 h (caustic) of ours.

    Measured: 0.11 h and 0.003 h. The reverse distance (every vertex of ours near lenstronomy's
    polyline, < 0.5 h, measured 0.2 h where it cuts the tips of the q = 0.1 ellipse and the
    caustic's cusps) shows that no part of our curves is missing or extra.
    """
    params = _params(q, phi, theta_E)
    cx, cy = params.center_x.item(), params.center_y.item()
    window = 2.5 * theta_E / math.sqrt(q)  # the critical curve's major axis is 2 theta_E / sqrt(q)
    h = window / 200
    crit_x, crit_y, caus_x, caus_y = extensions.critical_curve_caustics(
        params.to_lenstronomy(), compute_window=window, grid_scale=h, center_x=cx, center_y=cy)
    assert len(crit_x) == 1, "the SIE has a single (tangential) critical curve"

    ours_crit = [c[0].numpy() for c in sie_critical_curve(params, N_DENSE)]
    ours_caus = [c[0].numpy() for c in sie_caustic(params, N_DENSE)]
    assert _distance_to_polyline(crit_x[0], crit_y[0], *ours_crit).max() < 0.2 * h
    assert _distance_to_polyline(caus_x[0], caus_y[0], *ours_caus).max() < 0.02 * h
    assert _distance_to_polyline(*ours_crit, crit_x[0], crit_y[0]).max() < 0.5 * h
    assert _distance_to_polyline(*ours_caus, caus_x[0], caus_y[0]).max() < 0.5 * h


def _batch():
    gen = torch.Generator().manual_seed(21)
    q = torch.tensor([0.1, 0.35, 0.7, 0.999, 1.0], dtype=torch.float64)
    phi = (torch.rand(5, generator=gen, dtype=torch.float64) - 0.5) * math.pi
    theta_E = 0.1 + 2.9 * torch.rand(5, generator=gen, dtype=torch.float64)
    cx, cy = (torch.rand(2, 5, generator=gen, dtype=torch.float64) - 0.5) * 0.6
    return LensParams.from_qphi(theta_E, q, phi, cx, cy)


def _det_a(lens, x, y):
    fxx, fxy, fyy = lens.hessian(x, y)
    return (1 - fxx) * (1 - fyy) - fxy**2


def test_det_a_vanishes_on_the_critical_curve_and_changes_sign_across_it():
    params = _batch()
    lens = SIE(params)
    x, y = (c[:, None, :] for c in sie_critical_curve(params, 200))  # (B, 1, n)
    assert _det_a(lens, x, y).abs().max() < 1e-12
    # det A = 1 - b/psi is negative inside (psi < b) and positive outside.
    cx, cy = params.center_x[:, None, None], params.center_y[:, None, None]
    for factor, sign in [(0.98, -1), (1.02, 1)]:
        det = _det_a(lens, cx + factor * (x - cx), cy + factor * (y - cy))
        assert torch.all(sign * det > 0)


def test_caustic_is_the_raytraced_critical_curve():
    params = _batch()
    x, y = (c[:, None, :] for c in sie_critical_curve(params, 200))
    bx, by = SIE(params).raytrace(x, y)
    cx, cy = sie_caustic(params, 200)
    torch.testing.assert_close(bx[:, 0], cx, rtol=0, atol=1e-12)
    torch.testing.assert_close(by[:, 0], cy, rtol=0, atol=1e-12)


def test_critical_curve_is_the_ellipse_of_semi_axes_theta_E_over_and_times_sqrt_q():
    """x' = theta_E/sqrt(q) cos t, y' = theta_E sqrt(q) sin t: area pi theta_E^2 for every q."""
    params = _batch()
    x, y = sie_critical_curve(params, 4096)
    dx, dy = x - params.center_x[:, None], y - params.center_y[:, None]
    area = 0.5 * (dx * torch.roll(dy, -1, 1) - torch.roll(dx, -1, 1) * dy).sum(1)
    torch.testing.assert_close(area, math.pi * params.theta_E**2, rtol=1e-5, atol=0)


def test_sis_caustic_is_a_point_and_cut_a_circle():
    """At q = 1 the caustic degenerates to the lens centre and the cut is the circle r = theta_E."""
    params = _params(1.0, 0.3, 1.4)
    cx, cy = sie_caustic(params, 64)
    torch.testing.assert_close(cx, torch.full_like(cx, 0.13), rtol=0, atol=1e-12)
    torch.testing.assert_close(cy, torch.full_like(cy, -0.21), rtol=0, atol=1e-12)
    ux, uy = sie_cut(params, 64)
    torch.testing.assert_close(torch.hypot(ux - 0.13, uy + 0.21), torch.full_like(ux, 1.4), rtol=1e-12, atol=0)


def test_cut_is_minus_the_deflection_on_the_unit_circle_around_the_centre():
    """The SIE deflection is constant along rays from the centre: the cut is -alpha(direction)."""
    params = _batch()
    _, phi = params.qphi()
    # sie_cut's vertex k is the direction at angle 2 pi k / n from the major axis.
    t = torch.linspace(0, 2 * math.pi, 65, dtype=torch.float64)[:-1] + phi[:, None, None]
    x = params.center_x[:, None, None] + 1e-3 * torch.cos(t)
    y = params.center_y[:, None, None] + 1e-3 * torch.sin(t)
    ax, ay = SIE(params).deflection(x, y)
    ux, uy = sie_cut(params, 64)
    torch.testing.assert_close(ux, params.center_x[:, None] - ax[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(uy, params.center_y[:, None] - ay[:, 0], rtol=0, atol=1e-12)


def test_float32_curves_are_close_to_float64():
    p64 = _batch()
    p32 = p64.to(dtype=torch.float32)
    for func in (sie_critical_curve, sie_caustic, sie_cut):
        for c32, c64 in zip(func(p32, 128), func(p64, 128)):
            assert c32.dtype == torch.float32
            torch.testing.assert_close(c32.double(), c64, rtol=0, atol=2e-5 * p64.theta_E.max().item())
