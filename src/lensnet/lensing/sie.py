r"""Singular isothermal ellipsoid (SIE), batched, in lenstronomy's normalisation.

Convergence in the frame (x', y') of the major axis (x' along it):

.. math::  \kappa = \frac{\theta_E}{2\sqrt{q x'^2 + y'^2 / q}} = \frac{b}{2\psi},
           \quad \psi = \sqrt{q^2 x'^2 + y'^2},\quad b = \theta_E \sqrt{q}.

So lenstronomy's theta_E maps to Keeton's b as b = theta_E sqrt(q) (the "intermediate-axis"
Einstein radius), and the SIE is Keeton's isothermal model with core s = 0. With
c = sqrt(1 - q^2) (Keeton 2001, arXiv:astro-ph/0102341, eqs. 34-35 at s = 0):

.. math::  \alpha_{x'} = \frac{b}{c}\arctan\frac{c\,x'}{\psi},\qquad
           \alpha_{y'} = \frac{b}{c}\,\mathrm{artanh}\frac{c\,y'}{\psi},

the potential is phi = x' alpha_x' + y' alpha_y' (the profile is homogeneous of degree one), and
the Hessian is f_x'x' = b y'^2 / (psi r^2), f_y'y' = b x'^2 / (psi r^2), f_x'y' = -b x' y' / (psi r^2)
with r^2 = x'^2 + y'^2. Hence f_xx f_yy - f_xy^2 = 0 and det A = 1 - 2 kappa = 1 - b / psi: the
tangential critical curve is the ellipse psi = b and there is no radial critical curve, only the cut.

At q = 1 (c = 0, the SIS) b/c arctan(c x'/psi) and b/c artanh(c y'/psi) are 0/0; c is therefore
raised to at least sqrt(eps) of the dtype, which changes them by a relative c^2/3 <= eps/3, below
rounding: the SIS limit alpha = theta_E (x, y)/r holds to rounding in float32 and float64.

All parameters are (B,) tensors (arcsec where dimensional); coordinates are (H, W) or (B, H, W),
in arcsec; outputs are (B, H, W). Works on any device, in float32 and float64. The public
``sie_*`` functions validate their inputs; :class:`SIE` validates its parameters once, when built.
"""

from __future__ import annotations

import math

import torch

from lensnet.conventions import LensParams, e1e2_to_qphi
from lensnet.lensing.base import LensProfile, check_coordinates

__all__ = [
    "SIE",
    "sie_deflection",
    "sie_convergence",
    "sie_potential",
    "sie_hessian",
    "sie_critical_curve",
    "sie_caustic",
    "sie_cut",
]


def sie_deflection(x, y, theta_E, e1, e2, center_x, center_y, core: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deflection angle (alpha_x, alpha_y) in arcsec, each (B, H, W); Keeton 2001 eqs. 34-35.

    Parameters
    ----------
    x, y : Tensor, (H, W) or (B, H, W), arcsec
        Image-plane positions.
    theta_E, e1, e2, center_x, center_y : Tensor, (B,)
        SIE parameters in the lensnet convention (:mod:`lensnet.conventions`).
    core : float
        Core radius s in arcsec [0: the SIE]: the non-singular isothermal ellipsoid of Keeton 2001
        (section 3.1.2), psi = sqrt(q^2 (s^2 + x'^2) + y'^2). A fit uses a core far below a pixel, so that
        the deflection's derivative stays finite where a sample falls on the lens centre.

    Raises
    ------
    LensnetShapeError, LensnetRangeError, LensnetValueError
        For badly shaped coordinates or parameters, theta_E <= 0, ``|e| >= 1`` or non-finite parameters.
    """
    return _deflection(x, y, *_checked(x, y, theta_E, e1, e2, center_x, center_y), core=core)


def sie_convergence(x, y, theta_E, e1, e2, center_x, center_y) -> torch.Tensor:
    """Convergence kappa = theta_E / (2 sqrt(q x'^2 + y'^2/q)), dimensionless, (B, H, W).

    Arguments and errors as :func:`sie_deflection`.
    """
    return _convergence(x, y, *_checked(x, y, theta_E, e1, e2, center_x, center_y))


def sie_potential(x, y, theta_E, e1, e2, center_x, center_y) -> torch.Tensor:
    """Lensing potential phi = x' alpha_x' + y' alpha_y' in arcsec^2, (B, H, W) (Keeton 2001 eq. 33, s = 0).

    Arguments and errors as :func:`sie_deflection`.
    """
    return _potential(x, y, *_checked(x, y, theta_E, e1, e2, center_x, center_y))


def sie_hessian(x, y, theta_E, e1, e2, center_x, center_y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second derivatives of the potential (f_xx, f_xy, f_yy), dimensionless, each (B, H, W).

    In the major-axis frame f_x'x' = b y'^2/(psi r^2), f_y'y' = b x'^2/(psi r^2),
    f_x'y' = -b x'y'/(psi r^2); rotated to the sky frame as H = R H' R^T. Arguments and errors as
    :func:`sie_deflection`; at the centre itself, where the Hessian is singular, it returns 0.
    """
    return _hessian(x, y, *_checked(x, y, theta_E, e1, e2, center_x, center_y))


def sie_critical_curve(params: LensParams, n_points: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Tangential critical curve (x, y) in arcsec, each (B, n_points): the ellipse psi = b.

    In the major-axis frame it is x' = (b/q) cos t, y' = b sin t, on which det A = 1 - b/psi = 0.
    """
    b, q, cos, sin = _curve_frame(params)
    ct, st = _ellipse_points(n_points, params.theta_E)
    return _to_sky(b / q * ct, b * st, cos, sin, params.center_x, params.center_y)


def sie_caustic(params: LensParams, n_points: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Tangential caustic (x, y) in arcsec, each (B, n_points): the critical curve mapped by beta = theta - alpha."""
    b, q, cos, sin = _curve_frame(params)
    ct, st = _ellipse_points(n_points, params.theta_E)
    xp, yp = b / q * ct, b * st
    axp, ayp = _deflection_major_axis(xp, yp, b, q)
    return _to_sky(xp - axp, yp - ayp, cos, sin, params.center_x, params.center_y)


def sie_cut(params: LensParams, n_points: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial cut (pseudo-caustic) (x, y) in arcsec, each (B, n_points).

    The SIE deflection is constant along rays from the centre, so images near the centre map to
    beta = -alpha(cos t, sin t): a source crossing this curve gains or loses two images.
    """
    b, q, cos, sin = _curve_frame(params)
    ct, st = _ellipse_points(n_points, params.theta_E)
    axp, ayp = _deflection_major_axis(ct, st, b, q)
    return _to_sky(-axp, -ayp, cos, sin, params.center_x, params.center_y)


class SIE(LensProfile):
    """A batch of singular isothermal ellipsoids.

    Parameters
    ----------
    params : LensParams
        theta_E, e1, e2, center_x, center_y, each (B,), validated on construction.

    Examples
    --------
    >>> import torch
    >>> from lensnet.conventions import LensParams
    >>> lens = SIE(LensParams.from_qphi(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.0]),
    ...                                 torch.tensor([0.0]), torch.tensor([0.0])))
    >>> ax, ay = lens.deflection(torch.tensor([[2.0]]), torch.tensor([[0.0]]))
    >>> round(ax.item(), 5)
    1.0
    """

    def __init__(self, params: LensParams):
        self.params = params

    def take(self, keep: torch.Tensor) -> "SIE":
        return SIE(self.params.take(keep))

    def _args(self, x, y):
        p = self.params
        check_coordinates(x, y, p.batch_size)
        return p.theta_E, p.e1, p.e2, p.center_x, p.center_y

    def deflection(self, x, y):
        return _deflection(x, y, *self._args(x, y))

    def convergence(self, x, y):
        return _convergence(x, y, *self._args(x, y))

    def potential(self, x, y):
        return _potential(x, y, *self._args(x, y))

    def hessian(self, x, y):
        return _hessian(x, y, *self._args(x, y))


def _checked(x, y, theta_E, e1, e2, center_x, center_y):
    p = LensParams(theta_E, e1, e2, center_x, center_y)
    check_coordinates(x, y, p.batch_size)
    return p.theta_E, p.e1, p.e2, p.center_x, p.center_y


def _deflection(x, y, theta_E, e1, e2, center_x, center_y, core: float = 0.0):
    xp, yp, b, q, cos, sin = _frame(x, y, theta_E, e1, e2, center_x, center_y)
    axp, ayp = _deflection_major_axis(xp, yp, b, q) if core == 0 else _nie_deflection_major_axis(xp, yp, b, q, core)
    return (cos * axp).addcmul_(sin, ayp, value=-1), (sin * axp).addcmul_(cos, ayp)


def _convergence(x, y, theta_E, e1, e2, center_x, center_y):
    xp, yp, b, q, _, _ = _frame(x, y, theta_E, e1, e2, center_x, center_y)
    return b / (2 * _psi(xp, yp, q))


def _potential(x, y, theta_E, e1, e2, center_x, center_y):
    xp, yp, b, q, _, _ = _frame(x, y, theta_E, e1, e2, center_x, center_y)
    axp, ayp = _deflection_major_axis(xp, yp, b, q)
    return xp * axp + yp * ayp


def _hessian(x, y, theta_E, e1, e2, center_x, center_y):
    xp, yp, b, q, cos, sin = _frame(x, y, theta_E, e1, e2, center_x, center_y)
    b_psi = b / _psi(xp, yp, q)
    # Ratios first: at the centre they are 0/tiny = 0, where b/(psi r^2) would overflow to inf * 0.
    r2 = (xp**2 + yp**2).clamp_min(torch.finfo(xp.dtype).tiny)
    hxx, hyy, hxy = b_psi * (yp**2 / r2), b_psi * (xp**2 / r2), -b_psi * (xp * yp / r2)
    fxx = cos**2 * hxx - 2 * cos * sin * hxy + sin**2 * hyy
    fyy = sin**2 * hxx + 2 * cos * sin * hxy + cos**2 * hyy
    fxy = cos * sin * (hxx - hyy) + (cos**2 - sin**2) * hxy
    return fxx, fxy, fyy


def _frame(x, y, theta_E, e1, e2, center_x, center_y):
    """Major-axis frame coordinates (B, H, W), plus b, q, cos phi, sin phi shaped (B, 1, 1)."""
    q, phi = e1e2_to_qphi(e1, e2)
    expand = lambda t: t[:, None, None]  # noqa: E731 - (B,) -> (B, 1, 1)
    cos, sin = expand(torch.cos(phi)), expand(torch.sin(phi))
    dx, dy = x - expand(center_x), y - expand(center_y)
    xp = (cos * dx).addcmul_(sin, dy)
    yp = (cos * dy).addcmul_(sin, dx, value=-1)
    b = expand(theta_E * torch.sqrt(q))
    return xp, yp, b, expand(q), cos, sin


def _psi(xp, yp, q):
    # Clamped below sqrt's argument, not after: the same values, and at the exact centre neither 0/0 nor an
    # infinite derivative (a fit's gradient stays finite when a pixel falls on the lens centre).
    tiny = torch.finfo(xp.dtype).tiny
    return torch.sqrt((q * xp).square_().addcmul_(yp, yp).clamp_min_(tiny))


def _deflection_major_axis(xp, yp, b, q):
    c = _eccentricity(q)
    psi = _psi(xp, yp, q)
    # atan2 instead of atan of the ratio: same value, about twice as fast on CPUs. The atanh argument
    # is bounded by c < 1 because |y'| <= psi, so it never reaches the pole.
    scale = b / c
    return torch.atan2(c * xp, psi).mul_(scale), torch.atanh((c * yp).div_(psi)).mul_(scale)


def _nie_deflection_major_axis(xp, yp, b, q, core: float):
    """Keeton 2001 eq. 34-35 with a core s: the NIE's deflection in the major-axis frame."""
    c = _eccentricity(q)
    psi = torch.sqrt(q * q * (core * core + xp * xp) + yp * yp)
    scale = b / c
    return torch.atan2(c * xp, psi + core) * scale, torch.atanh(c * yp / (psi + q * q * core)) * scale


def _eccentricity(q):
    """c = sqrt(1 - q^2), at least sqrt(eps): b/c arctan(c u) -> b u without 0/0 at q = 1 (the SIS).

    The floor changes b/c arctan(c u) and b/c artanh(c u) by a relative ~c^2 u^2 / 3 <= eps/3
    (|u| <= 1/q ~ 1 where it applies), below rounding.
    """
    return torch.sqrt((1 - q) * (1 + q)).clamp_min(torch.finfo(q.dtype).eps ** 0.5)


def _ellipse_points(n_points: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.linspace(0, 2 * math.pi, n_points + 1, device=like.device, dtype=like.dtype)[:-1]
    return torch.cos(t), torch.sin(t)


def _to_sky(xp, yp, cos, sin, center_x, center_y):
    return cos * xp - sin * yp + center_x[:, None], sin * xp + cos * yp + center_y[:, None]


def _curve_frame(params: LensParams):
    q, phi = params.qphi()
    b = (params.theta_E * torch.sqrt(q))[:, None]
    return b, q[:, None], torch.cos(phi)[:, None], torch.sin(phi)[:, None]
