r"""Elliptical Sersic light profile, batched, in lenstronomy's 'SERSIC_ELLIPSE' convention.

.. math::  I(x, y) = I_e \exp\left(-b_n\left[(R / R_e)^{1/n} - 1\right]\right),\qquad
           R = \sqrt{q\,x'^2 + y'^2 / q},

with x' along the major axis, q = minor/major and (e1, e2) the ellipticity of
:mod:`lensnet.conventions`. ``R_sersic`` (R_e) is the half-light radius along the *intermediate*
axis, sqrt(major x minor), as in lenstronomy's default (``sersic_major_axis=False``); ``amplitude``
(I_e) is the surface brightness at R = R_e. The map (x', y') -> (sqrt(q) x', y'/sqrt(q)) has unit
Jacobian, so the total flux does not depend on q:

.. math::  F = 2\pi n R_e^2 I_e\, e^{b_n} b_n^{-2n}\, \Gamma(2n).

b_n is the linear approximation b_n = 1.9992 n - 0.3271 that lenstronomy uses (Capaccioli 1989),
accurate to better than 0.1% for 0.5 <= n <= 10; below n ~ 0.5 R_e is no longer exactly the
half-light radius, but the formula above stays the exact integral of the profile.

Without trigonometry, (sqrt(q) x', y'/sqrt(q)) is reached by the symmetric linear map
[[1 - e1, -e2], [-e2, 1 + e1]] / sqrt(1 - e1^2 - e2^2), whose eigenvalues are sqrt(q) along the
major axis and 1/sqrt(q) along the minor axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from lensnet.conventions import qphi_to_e1e2
from lensnet.errors import check_batch_fields, check_range
from lensnet.sources.base import Source

__all__ = ["Sersic", "draw_sersic_sources", "sersic_profile", "sersic_b_n", "sersic_total_flux", "N_SERSIC_RANGE"]

#: Allowed Sersic indices; outside, b_n's approximation (and float32 dynamic range, e^{b_n}) fail.
N_SERSIC_RANGE: tuple[float, float] = (0.2, 8.0)
# Radius floor in arcsec, lenstronomy's default "smoothing": keeps R^(1/n) and its gradient finite
# at the exact centre.
_R_FLOOR = 1e-4
_LOG2_E = 1 / math.log(2)


def sersic_b_n(n_sersic: torch.Tensor) -> torch.Tensor:
    """b_n = 1.9992 n - 0.3271 (floored at 1e-5), so that R_e encloses half the light."""
    return (1.9992 * n_sersic - 0.3271).clamp_min(1e-5)


def sersic_total_flux(amplitude: torch.Tensor, R_sersic: torch.Tensor, n_sersic: torch.Tensor) -> torch.Tensor:
    """Total flux 2 pi n R_e^2 I_e e^{b_n} b_n^{-2n} Gamma(2n), independent of the ellipticity.

    Parameters
    ----------
    amplitude : Tensor, (B,), flux / arcsec^2
        Surface brightness at R_sersic.
    R_sersic : Tensor, (B,), arcsec
        Intermediate-axis half-light radius.
    n_sersic : Tensor, (B,)
        Sersic index.

    Returns
    -------
    Tensor, (B,), flux
    """
    b = sersic_b_n(n_sersic)
    log_norm = b - 2 * n_sersic * torch.log(b) + torch.lgamma(2 * n_sersic)
    return 2 * math.pi * n_sersic * R_sersic**2 * amplitude * torch.exp(log_norm)


def sersic_profile(x, y, amplitude, R_sersic, n_sersic, e1, e2, center_x, center_y) -> torch.Tensor:
    """Surface brightness of a batch of elliptical Sersic profiles, (B, H, W).

    Unchecked kernel (see :class:`Sersic` for the validated entry point).

    Parameters
    ----------
    x, y : Tensor, (H, W) or (B, H, W), arcsec
        Source-plane positions.
    amplitude : Tensor, (B,), flux / arcsec^2
        Surface brightness at R_sersic.
    R_sersic : Tensor, (B,), arcsec
        Half-light radius along the intermediate axis sqrt(major x minor).
    n_sersic : Tensor, (B,)
        Sersic index.
    e1, e2 : Tensor, (B,)
        Ellipticity components (:mod:`lensnet.conventions`).
    center_x, center_y : Tensor, (B,), arcsec
        Profile centre.

    Returns
    -------
    Tensor, (B, H, W), flux / arcsec^2
    """
    expand = lambda t: t[:, None, None]  # noqa: E731 - (B,) -> (B, 1, 1)
    # The elliptical map divided by R_e, so that u^2 + v^2 = (R / R_e)^2 directly.
    scale = 1 / (R_sersic * torch.sqrt((1 - e1**2 - e2**2).clamp_min(1e-12)))
    a11, a22, a12 = expand((1 - e1) * scale), expand((1 + e1) * scale), expand(-e2 * scale)
    dx, dy = x - expand(center_x), y - expand(center_y)
    u = torch.addcmul(a11 * dx, a12, dy)
    v = torch.addcmul(a22 * dy, a12, dx)
    r2 = torch.addcmul(u * u, v, v).clamp_min_(expand((_R_FLOOR / R_sersic) ** 2))
    # (R/R_e)^(1/n) = 2^(log2(r2) / (2n)), and exp(z) = 2^(z log2 e): on the CPU exp2 is several
    # times faster than exp and pow.
    t = torch.exp2(torch.log2(r2) * expand(0.5 / n_sersic))
    c = expand(sersic_b_n(n_sersic) * _LOG2_E)
    return expand(amplitude) * torch.exp2(torch.addcmul(c, t, -c))


@dataclass(frozen=True)
class Sersic(Source):
    """A batch of B elliptical Sersic sources (lenstronomy 'SERSIC_ELLIPSE').

    Parameters
    ----------
    amplitude : Tensor, (B,), flux / arcsec^2
        Surface brightness at R_sersic, >= 0.
    R_sersic : Tensor, (B,), arcsec
        Half-light radius along the intermediate axis sqrt(major x minor), > 0.
    n_sersic : Tensor, (B,)
        Sersic index, in :data:`N_SERSIC_RANGE` [0.2, 8].
    e1, e2 : Tensor, (B,)
        Ellipticity components, sqrt(e1^2 + e2^2) < 1.
    center_x, center_y : Tensor, (B,), arcsec
        Centre in the source plane.

    Raises
    ------
    LensnetShapeError
        If a parameter is not (B,) or the batch sizes differ.
    LensnetValueError, LensnetRangeError
        For NaN/inf or a value outside its range; the message names the parameter.

    Examples
    --------
    >>> import torch
    >>> one = torch.ones(1)
    >>> s = Sersic(one, one, 4 * one, 0 * one, 0 * one, 0 * one, 0 * one)
    >>> round(s.surface_brightness(torch.tensor([[1.0]]), torch.tensor([[0.0]])).item(), 6)
    1.0
    """

    amplitude: torch.Tensor
    R_sersic: torch.Tensor
    n_sersic: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    center_x: torch.Tensor
    center_y: torch.Tensor

    def __post_init__(self):
        check_batch_fields(self)
        check_range("amplitude", self.amplitude, min=0.0)
        check_range("R_sersic", self.R_sersic, min=0.0, min_open=True, detail="the half-light radius must be positive")
        check_range("n_sersic", self.n_sersic, *N_SERSIC_RANGE)
        check_range("|e| = sqrt(e1^2 + e2^2)", torch.sqrt(self.e1**2 + self.e2**2), max=1.0, max_open=True,
                    detail="the axis ratio q = (1-|e|)/(1+|e|) must be > 0")

    @property
    def batch_size(self) -> int:
        return self.amplitude.shape[0]

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Surface brightness (B, H, W) in flux / arcsec^2 at source-plane x, y ((H, W) or (B, H, W), arcsec)."""
        return sersic_profile(x, y, *(getattr(self, f.name) for f in fields(self)))

    def total_flux(self) -> torch.Tensor:
        """Analytic total flux of each profile, (B,)."""
        return sersic_total_flux(self.amplitude, self.R_sersic, self.n_sersic)

    def central_brightness(self) -> torch.Tensor:
        """Surface brightness at the centre, I_e e^{b_n}, (B,) (the radius floor aside)."""
        return self.amplitude * torch.exp(sersic_b_n(self.n_sersic))

    def with_center(self, center_x: torch.Tensor, center_y: torch.Tensor) -> "Sersic":
        """The same profiles moved to new centres (B,), arcsec."""
        return Sersic(self.amplitude, self.R_sersic, self.n_sersic, self.e1, self.e2, center_x, center_y)

    def to(self, device=None, dtype=None) -> "Sersic":
        return Sersic(*(getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)))

    def to_lenstronomy(self) -> list[dict[str, float]]:
        """One lenstronomy 'SERSIC_ELLIPSE' kwargs dict per source (for tests and comparisons only)."""
        names = ["amp", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y"]
        rows = torch.stack([getattr(self, f.name) for f in fields(self)], 1).detach().cpu().double().tolist()
        return [dict(zip(names, row)) for row in rows]


def draw_sersic_sources(center_x: torch.Tensor, center_y: torch.Tensor, generator: torch.Generator,
                        R_sersic_range: tuple[float, float], n_sersic_range: tuple[float, float],
                        q_range: tuple[float, float]) -> Sersic:
    """Unit-amplitude elliptical Sérsic sources centred on (center_x, center_y), shapes drawn uniformly.

    The axis ratio q ~ U(q_range), the major-axis angle phi ~ U[0, pi), the half-light radius
    R_sersic ~ U(R_sersic_range) arcsec and the index n ~ U(n_sersic_range), drawn in that order from
    ``generator`` (on the centres' device), one value per source.

    Parameters
    ----------
    center_x, center_y : Tensor, (B,)
        Source centres, arcsec.
    generator : torch.Generator
        Source of randomness, on the device of the centres.
    R_sersic_range, n_sersic_range, q_range : (float, float)
        Ranges of the half-light radius (arcsec), the index and the axis ratio.
    """
    def uniform(lo_hi):
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(center_x.numel(), generator=generator,
                                                              device=center_x.device)

    e1, e2 = qphi_to_e1e2(uniform(q_range), uniform((0.0, math.pi)))
    radius, index = uniform(R_sersic_range), uniform(n_sersic_range)
    return Sersic(torch.ones_like(center_x), radius, index, e1, e2, center_x, center_y)
