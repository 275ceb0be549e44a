r"""Elliptical power-law mass (EPL), batched, in lenstronomy's 'EPL' normalisation.

Convergence in the frame (x', y') of the major axis (x' along it), with slope gamma in (1, 3) (Tessore &
Metcalf 2015, eq. 2):

.. math::  \kappa = \frac{3 - \gamma}{2}\left(\frac{\theta_E}{\sqrt{q x'^2 + y'^2/q}}\right)^{\gamma - 1}
           = \frac{2 - t}{2}\left(\frac{b}{R}\right)^t,\quad t = \gamma - 1,\
           R = \sqrt{q^2 x'^2 + y'^2},\ b = \theta_E\sqrt{q}.

At gamma = 2 it is the SIE of :mod:`lensnet.lensing.sie`. Tessore & Metcalf (2015, A&A 580, A79,
arXiv:1507.01819; eqs. 22-23) give the deflection alpha = alpha_x' + i alpha_y' in closed form with the
elliptical angle theta of Z = q x' + i y' = R e^{i theta} and f = (1 - q)/(1 + q):

.. math::  \alpha = \frac{2b}{1 + q}\left(\frac{b}{R}\right)^{t-1} e^{i\vartheta}\,
           {}_2F_1\!\left(1, \tfrac{t}{2}; 2 - \tfrac{t}{2}; -f e^{2i\vartheta}\right).

**Without the angle of the major axis.** With w = (x - center_x) + i (y - center_y) and e = e1 + i e2
(so |e| = f and e = f e^{2i phi}), zeta = w - e conj(w) equals (1 + |e|) e^{i phi} Z: the elliptical
coordinate rotated back to the sky and scaled. Because 2b/(1 + q) = theta_E s and b/R = theta_E s/|zeta|
with s = sqrt(1 - |e|^2),

.. math::  \alpha_x + i\alpha_y = \theta_E s \left(\frac{\theta_E s}{|\zeta|}\right)^{t-1}
           \frac{\zeta}{|\zeta|}\,{}_2F_1\!\left(1, \tfrac{t}{2}; 2 - \tfrac{t}{2};
           -\bar e\,\frac{\zeta^2}{|\zeta|^2}\right),\qquad
           \kappa = \frac{2 - t}{2}\left(\frac{\theta_E s}{|\zeta|}\right)^t,

directly in the sky frame. Every factor is a polynomial or smooth function of e1 and e2, so, unlike the
route through q and phi (singular at e = 0, where phi is undefined), the gradient is finite for a round lens.

**The hypergeometric series.** With z = -conj(e) zeta^2/|zeta|^2 (|z| = |e| < 1),
2F1(1, t/2; 2 - t/2; z) = sum_n a_n z^n with a_0 = 1 and a_n = a_{n-1} (2n - 2 + t)/(2n + 2 - t): the series
in the angle of Tessore & Metcalf, whose n-th term is their recurrence's n-th step. It is summed by Horner's
rule over a FIXED number N = :data:`_N_TERMS` of terms (batched, no data-dependent loop), and the remainder is
summed as the geometric series a_N z^N/(1 - rho z) with rho = a_{N+1}/a_N, its first ratio. The later ratios
rise slowly towards 1, so this remainder errs by a relative O((2 - t)/N^2) and gains two to three decades over
plain truncation (lenstronomy's 'EPL' evaluates 2F1 with scipy.special.hyp2f1; its 'EPL_NUMBA' sums the
same series to 1e-16 with up to 200 terms). The error falls as |e|^N = ((1 - q)/(1 + q))^N; against mpmath,
for gamma in [1.5, 2.5], it is at most 2e-15 relative for q >= 0.2 (float64 rounding), 2e-12 at q = 0.15 and
3e-9 at q = 0.1. Its first derivatives in z and gamma are analytic (see :class:`_Hyp2F1Series`), so autograd
through the deflection costs about two forward passes; second derivatives through it raise an error.

The potential is phi = (x alpha_x + y alpha_y)/(2 - t) (eq. 15: alpha is homogeneous of degree 1 - t). The
Hessian is analytic: Euler's theorem for that homogeneous deflection gives H (x, y) = (1 - t) alpha, and its
trace is 2 kappa, so f_xx = 2 kappa y^2/r^2 + Re A, f_yy = 2 kappa x^2/r^2 - Re A,
f_xy = -2 kappa x y/r^2 + Im A with A = (1 - t) alpha (x + i y)/r^2 (coordinates relative to the centre;
this is eq. 17 as corrected in the arXiv version).

The centre is singular (kappa diverges; alpha too for gamma > 2). |zeta|^2 and r^2 are clamped to the smallest
normal number, which changes nothing elsewhere: at the exact centre deflection, potential and Hessian are 0,
kappa is huge (b^t tiny^(-t/2); in float32 it overflows to inf as gamma nears 3), and the gradients of the
deflection stay finite (a fit's pixel may fall on the lens centre).

All parameters are (B,) tensors (theta_E, center_x, center_y in arcsec; gamma, e1, e2 dimensionless);
coordinates are (H, W) or (B, H, W), in arcsec; outputs are (B, H, W). Works on any device, in float32 and
float64. The public ``epl_*`` functions validate their inputs; :class:`EPL` validates its parameters once.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from lensnet.conventions import LensParams
from lensnet.errors import check_batch_vector, check_range
from lensnet.lensing.base import LensProfile, check_coordinates

__all__ = [
    "EPL",
    "epl_deflection",
    "epl_convergence",
    "epl_potential",
    "epl_hessian",
]

#: Terms of the hypergeometric series summed explicitly. The cost is one complex multiply-add per term and
#: pixel; 60 reach float64 rounding for q >= 0.2 with the geometric remainder (50 would leave 1e-13).
_N_TERMS = 60


def epl_deflection(x, y, theta_E, gamma, e1, e2, center_x, center_y) -> tuple[torch.Tensor, torch.Tensor]:
    """Deflection angle (alpha_x, alpha_y) in arcsec, each (B, H, W); Tessore & Metcalf 2015 eqs. 22-23.

    Parameters
    ----------
    x, y : Tensor, (H, W) or (B, H, W), arcsec
        Image-plane positions.
    theta_E : Tensor, (B,), arcsec
        Einstein radius in lenstronomy's 'EPL' normalisation (see the module docstring).
    gamma : Tensor, (B,)
        Power-law slope of the 3D density, 1 < gamma < 3 (kappa ~ R^(1 - gamma); 2 is isothermal).
    e1, e2, center_x, center_y : Tensor, (B,)
        Ellipticity and centre (arcsec) in the lensnet convention (:mod:`lensnet.conventions`).

    Raises
    ------
    LensnetShapeError, LensnetRangeError, LensnetValueError
        For badly shaped coordinates or parameters, theta_E <= 0, ``|e| >= 1``, gamma outside (1, 3) or
        non-finite parameters.
    """
    return _deflection(x, y, *_checked(x, y, theta_E, gamma, e1, e2, center_x, center_y))


def epl_convergence(x, y, theta_E, gamma, e1, e2, center_x, center_y) -> torch.Tensor:
    """Convergence kappa = (3 - gamma)/2 (theta_E / sqrt(q x'^2 + y'^2/q))^(gamma - 1), dimensionless, (B, H, W).

    Arguments and errors as :func:`epl_deflection`.
    """
    return _convergence(x, y, *_checked(x, y, theta_E, gamma, e1, e2, center_x, center_y))


def epl_potential(x, y, theta_E, gamma, e1, e2, center_x, center_y) -> torch.Tensor:
    """Lensing potential phi = (x alpha_x + y alpha_y)/(3 - gamma) in arcsec^2, (B, H, W) (Tessore & Metcalf eq. 15).

    x, y are taken relative to the centre. Arguments and errors as :func:`epl_deflection`.
    """
    return _potential(x, y, *_checked(x, y, theta_E, gamma, e1, e2, center_x, center_y))


def epl_hessian(x, y, theta_E, gamma, e1, e2, center_x, center_y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second derivatives of the potential (f_xx, f_xy, f_yy), dimensionless, each (B, H, W).

    Analytic, from the deflection and kappa: H (x, y) = (1 - t) alpha (Euler's theorem, alpha being
    homogeneous of degree 1 - t) with trace 2 kappa; see the module docstring. Arguments and errors as
    :func:`epl_deflection`; at the centre itself, where the Hessian is singular, it returns 0.
    """
    return _hessian(x, y, *_checked(x, y, theta_E, gamma, e1, e2, center_x, center_y))


class EPL(LensProfile):
    """A batch of elliptical power-law lenses.

    Parameters
    ----------
    theta_E, gamma, e1, e2, center_x, center_y : Tensor, (B,)
        As in :func:`epl_deflection`; validated on construction and kept as ``params``
        (:class:`~lensnet.conventions.LensParams`, without gamma) and ``gamma``.

    Examples
    --------
    >>> import torch
    >>> one, zero = torch.tensor([1.0]), torch.tensor([0.0])
    >>> lens = EPL(one, torch.tensor([2.5]), zero, zero, zero, zero)
    >>> ax, ay = lens.deflection(torch.tensor([[4.0]]), torch.tensor([[0.0]]))
    >>> round(ax.item(), 5)  # the circular power law: theta_E^(gamma - 1) r^(2 - gamma)
    0.5
    """

    def __init__(self, theta_E, gamma, e1, e2, center_x, center_y):
        self.params = LensParams(theta_E, e1, e2, center_x, center_y)
        self.gamma = _checked_gamma(gamma, self.params.batch_size)

    def take(self, keep: torch.Tensor) -> "EPL":
        p = self.params.take(keep)
        return EPL(p.theta_E, self.gamma[keep], p.e1, p.e2, p.center_x, p.center_y)

    def _args(self, x, y):
        p = self.params
        check_coordinates(x, y, p.batch_size)
        return p.theta_E, self.gamma, p.e1, p.e2, p.center_x, p.center_y

    def deflection(self, x, y):
        return _deflection(x, y, *self._args(x, y))

    def convergence(self, x, y):
        return _convergence(x, y, *self._args(x, y))

    def potential(self, x, y):
        return _potential(x, y, *self._args(x, y))

    def hessian(self, x, y):
        return _hessian(x, y, *self._args(x, y))


def _checked_gamma(gamma, batch: int) -> torch.Tensor:
    gamma = check_batch_vector("gamma", gamma, batch)
    check_range("gamma", gamma, min=1.0, max=3.0, min_open=True, max_open=True,
                detail="the power-law slope must lie in (1, 3): the mass diverges at the centre for gamma >= 3 "
                       "and at infinity for gamma <= 1")
    return gamma


def _checked(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    p = LensParams(theta_E, e1, e2, center_x, center_y)
    gamma = _checked_gamma(gamma, p.batch_size)
    check_coordinates(x, y, p.batch_size)
    return p.theta_E, gamma, p.e1, p.e2, p.center_x, p.center_y


def _deflection(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    _, _, alpha, _ = _fields(x, y, theta_E, gamma, e1, e2, center_x, center_y)
    return alpha.real, alpha.imag


def _convergence(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    _, _, _, rho2, t, b = _frame(x, y, theta_E, gamma, e1, e2, center_x, center_y)
    return _kappa(rho2, t, b)


def _potential(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    dx, dy, alpha, t = _fields(x, y, theta_E, gamma, e1, e2, center_x, center_y)
    return (dx * alpha.real).addcmul_(dy, alpha.imag) / (2 - t)


def _hessian(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    dx, dy, zeta, rho2, t, b = _frame(x, y, theta_E, gamma, e1, e2, center_x, center_y)
    alpha = _alpha(zeta, rho2, t, b, e1, e2)
    two_kappa = 2 * _kappa(rho2, t, b)
    ax, ay = alpha.real, alpha.imag
    # Ratios first: at the centre they are 0/tiny = 0, where kappa/r^2 would overflow to inf * 0.
    r2 = (dx**2 + dy**2).clamp_min(torch.finfo(dx.dtype).tiny)
    re_a = (1 - t) * ((ax * dx).addcmul_(ay, dy, value=-1) / r2)
    im_a = (1 - t) * ((ax * dy).addcmul_(ay, dx) / r2)
    fxx = two_kappa * (dy**2 / r2) + re_a
    fyy = two_kappa * (dx**2 / r2) - re_a
    fxy = im_a - two_kappa * (dx * dy / r2)
    return fxx, fxy, fyy


def _frame(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    """dx, dy and zeta = w - e conj(w) (complex), each (B, H, W); |zeta|^2 clamped; t and b = theta_E s (B, 1, 1)."""
    expand = lambda v: v[:, None, None]  # noqa: E731 - (B,) -> (B, 1, 1)
    e1_, e2_ = expand(e1), expand(e2)
    dx, dy = x - expand(center_x), y - expand(center_y)
    zeta_re = ((1 - e1_) * dx).addcmul_(e2_, dy, value=-1)
    zeta_im = ((1 + e1_) * dy).addcmul_(e2_, dx, value=-1)
    # Clamped: the same values elsewhere, while at the exact centre rsqrt and log stay finite and the clamp's zero
    # derivative stops their infinite ones (a fit's gradient stays finite when a pixel falls on the lens centre).
    rho2 = (zeta_re * zeta_re).addcmul_(zeta_im, zeta_im).clamp_min_(torch.finfo(dx.dtype).tiny)
    b = expand(theta_E * torch.sqrt(1 - e1 * e1 - e2 * e2))
    return dx, dy, torch.complex(zeta_re, zeta_im), rho2, expand(gamma - 1), b


def _fields(x, y, theta_E, gamma, e1, e2, center_x, center_y):
    """dx, dy, the complex deflection alpha_x + i alpha_y, each (B, H, W), and t (B, 1, 1)."""
    dx, dy, zeta, rho2, t, b = _frame(x, y, theta_E, gamma, e1, e2, center_x, center_y)
    return dx, dy, _alpha(zeta, rho2, t, b, e1, e2), t


def _alpha(zeta, rho2, t, b, e1, e2):
    unit = zeta * rho2.rsqrt()  # zeta/|zeta|, 0 at the centre
    z = unit.square().mul_(-torch.complex(e1, -e2)[:, None, None])  # -conj(e) zeta^2/|zeta|^2, |z| = |e|
    # The unit vector apart from the radial factor b^t |zeta|^(1 - t): that is at most b^t tiny^(-1/2) at the
    # centre, where b^t |zeta|^(-t) could overflow and make inf * 0 = NaN. exp of a log: twice as fast as pow.
    radial = torch.exp(torch.addcmul(t * torch.log(b), torch.log(rho2), (1 - t) / 2))
    return unit * _Hyp2F1Series.apply(t, z) * radial


def _kappa(rho2, t, b):
    return (2 - t) / 2 * torch.exp(torch.addcmul(t * torch.log(b), torch.log(rho2), -t / 2))


class _Hyp2F1Series(torch.autograd.Function):
    """F = 2F1(1, t/2; 2 - t/2; z) for |z| < 1, t (B, 1, 1) real, z (B, H, W) complex; once differentiable.

    With a_n = a_{n-1} (2n - 2 + t)/(2n + 2 - t), a_0 = 1, F = a_0 + z (a_1 + ... + z (a_{N-1} + z a_N/(1 - rho z)))
    for N = _N_TERMS, rho = a_{N+1}/a_N (the remainder's first ratio). Autograd through the N complex
    multiply-adds would keep N arrays and take about five times the forward pass; here dF/dz is closed
    (the contiguous relation z F' = [(1 - t/2)(1 - F) + (t/2) z F]/(1 - z) of 2F1(1, b; c; z)) and dF/dt,
    only when asked for, is one more Horner sum with the coefficients da_n/dt = a_n sum_{k<=n} [1/(2k - 2 + t)
    + 1/(2k + 2 - t)]. Second derivatives through F raise (``once_differentiable``).
    """

    @staticmethod
    def forward(ctx, t, z):
        n = torch.arange(1, _N_TERMS + 1, dtype=t.dtype, device=t.device)[:, None, None, None]
        a = torch.cumprod((2 * n - 2 + t) / (2 * n + 2 - t), dim=0)  # a_1 .. a_N, (N, B, 1, 1)
        rho = (2 * _N_TERMS + t) / (2 * _N_TERMS + 4 - t)
        tail = 1 - rho * z
        a_c = a.to(z.dtype)
        p = _horner(a_c, a_c[-1] / tail, z)  # (F - 1)/z
        f = (p * z).add_(1)
        df_dz = df_dt = None
        if ctx.needs_input_grad[1]:
            df_dz = (t / 2 * f - (1 - t / 2) * p) / (1 - z)
        if ctx.needs_input_grad[0]:
            da = (a * torch.cumsum(1 / (2 * n - 2 + t) + 1 / (2 * n + 2 - t), dim=0)).to(z.dtype)
            drho = (4 * _N_TERMS + 4) / (2 * _N_TERMS + 4 - t) ** 2
            df_dt = z * _horner(da, (da[-1] + a_c[-1] * drho * z / tail) / tail, z)
        ctx.save_for_backward(df_dz, df_dt)
        return f

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        df_dz, df_dt = ctx.saved_tensors
        grad_t = None if df_dt is None else (grad * df_dt.conj()).real.sum(dim=(1, 2), keepdim=True)
        grad_z = None if df_dz is None else grad * df_dz.conj()  # F is holomorphic in z
        return grad_t, grad_z


def _horner(coeffs, innermost, z):
    """coeffs[0] + z (coeffs[1] + ... + z (coeffs[-2] + z innermost)), coeffs (N, B, 1, 1)."""
    p = innermost
    for k in range(coeffs.shape[0] - 2, -1, -1):  # a fixed count, whatever the data: batched
        p = torch.addcmul(coeffs[k], p, z)
    return p
