r"""External shear, batched, in lenstronomy's 'SHEAR' convention (origin at x = y = 0).

The potential of a constant shear (gamma1, gamma2), dimensionless, about the image origin:

.. math::  \psi = \frac{\gamma_1}{2}(x^2 - y^2) + \gamma_2\, x y,\qquad
           \alpha = (\gamma_1 x + \gamma_2 y,\ \gamma_2 x - \gamma_1 y),\qquad
           f_{xx} = -f_{yy} = \gamma_1,\ f_{xy} = \gamma_2,

so kappa = 0 and the shear is (gamma1, gamma2) everywhere: lenstronomy's ``Shear`` profile with
ra_0 = dec_0 = 0 (Birrer & Amara 2018, Phys. Dark Univ. 22, 189). In polar form gamma1 + i gamma2 =
gamma_ext exp(2 i phi_ext), with phi_ext = atan2(gamma2, gamma1)/2 (radians, counter-clockwise from +x) the
direction along which the shear stretches images, as lenstronomy's ``param_util.shear_cartesian2polar``
(which returns them in the order phi, gamma).

Parameters are (B,) tensors; coordinates are (H, W) or (B, H, W), in arcsec; outputs are (B, H, W), deflections
in arcsec and the potential in arcsec^2. Works on any device, in float32 and float64. The public ``shear_*``
profile functions validate their inputs; :class:`ExternalShear` validates its parameters once, when built.
"""

from __future__ import annotations

import torch

from lensnet.errors import check_batch_vector
from lensnet.lensing.base import LensProfile, check_coordinates

__all__ = [
    "ExternalShear",
    "shear_deflection",
    "shear_potential",
    "shear_hessian",
    "shear_cartesian_to_polar",
    "shear_polar_to_cartesian",
]


def shear_deflection(x, y, gamma1, gamma2) -> tuple[torch.Tensor, torch.Tensor]:
    """Deflection angle (gamma1 x + gamma2 y, gamma2 x - gamma1 y) in arcsec, each (B, H, W).

    Parameters
    ----------
    x, y : Tensor, (H, W) or (B, H, W), arcsec
        Image-plane positions, relative to the origin of the shear (the image centre).
    gamma1, gamma2 : Tensor, (B,)
        Shear components, dimensionless.

    Raises
    ------
    LensnetShapeError, LensnetValueError
        For badly shaped coordinates or parameters, or non-finite parameters.
    """
    return _deflection(x, y, *_checked(x, y, gamma1, gamma2))


def shear_potential(x, y, gamma1, gamma2) -> torch.Tensor:
    """Lensing potential gamma1 (x^2 - y^2)/2 + gamma2 x y in arcsec^2, (B, H, W).

    Arguments and errors as :func:`shear_deflection`.
    """
    return _potential(x, y, *_checked(x, y, gamma1, gamma2))


def shear_hessian(x, y, gamma1, gamma2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second derivatives of the potential (f_xx, f_xy, f_yy) = (gamma1, gamma2, -gamma1), each (B, H, W).

    Arguments and errors as :func:`shear_deflection`.
    """
    return _hessian(x, y, *_checked(x, y, gamma1, gamma2))


def shear_cartesian_to_polar(gamma1: torch.Tensor, gamma2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shear components to strength and angle (gamma_ext, phi_ext), tensors of any one shape.

    gamma_ext = sqrt(gamma1^2 + gamma2^2), phi_ext = atan2(gamma2, gamma1)/2 in (-pi/2, pi/2] radians,
    counter-clockwise from +x (lenstronomy's ``param_util.shear_cartesian2polar``, which returns phi first).
    """
    return torch.hypot(gamma1, gamma2), torch.atan2(gamma2, gamma1) / 2


def shear_polar_to_cartesian(gamma_ext: torch.Tensor, phi_ext: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Strength and angle (radians) to shear components gamma1 = gamma_ext cos 2phi, gamma2 = gamma_ext sin 2phi.

    The inverse of :func:`shear_cartesian_to_polar` (lenstronomy's ``param_util.shear_polar2cartesian``, which
    takes phi first).
    """
    return gamma_ext * torch.cos(2 * phi_ext), gamma_ext * torch.sin(2 * phi_ext)


class ExternalShear(LensProfile):
    """A batch of external shears.

    Parameters
    ----------
    gamma1, gamma2 : Tensor, (B,)
        Shear components, validated on construction.

    Examples
    --------
    >>> import torch
    >>> shear = ExternalShear(torch.tensor([0.1]), torch.tensor([0.0]))
    >>> ax, ay = shear.deflection(torch.tensor([[2.0]]), torch.tensor([[1.0]]))
    >>> round(ax.item(), 5), round(ay.item(), 5)
    (0.2, -0.1)
    """

    def __init__(self, gamma1, gamma2):
        self.gamma1 = check_batch_vector("gamma1", gamma1)
        self.gamma2 = check_batch_vector("gamma2", gamma2, self.gamma1.shape[0])

    def take(self, keep: torch.Tensor) -> "ExternalShear":
        return ExternalShear(self.gamma1[keep], self.gamma2[keep])

    def _args(self, x, y):
        check_coordinates(x, y, self.gamma1.shape[0])
        return self.gamma1, self.gamma2

    def deflection(self, x, y):
        return _deflection(x, y, *self._args(x, y))

    def convergence(self, x, y):
        """kappa = 0, (B, H, W)."""
        self._args(x, y)
        return x.new_zeros(torch.broadcast_shapes((self.gamma1.shape[0], 1, 1), x.shape))

    def potential(self, x, y):
        return _potential(x, y, *self._args(x, y))

    def hessian(self, x, y):
        return _hessian(x, y, *self._args(x, y))


def _checked(x, y, gamma1, gamma2):
    gamma1 = check_batch_vector("gamma1", gamma1)
    gamma2 = check_batch_vector("gamma2", gamma2, gamma1.shape[0])
    check_coordinates(x, y, gamma1.shape[0])
    return gamma1, gamma2


def _deflection(x, y, gamma1, gamma2):
    g1, g2 = gamma1[:, None, None], gamma2[:, None, None]
    return (g1 * x).addcmul_(g2, y), (g2 * x).addcmul_(g1, y, value=-1)


def _potential(x, y, gamma1, gamma2):
    g1, g2 = gamma1[:, None, None], gamma2[:, None, None]
    return (g1 / 2 * (x * x - y * y)).addcmul_(g2, x * y)


def _hessian(x, y, gamma1, gamma2):
    # Constant, but (B, H, W) like every other profile's Hessian, so that they add.
    ones = torch.ones_like(x)
    fxx = gamma1[:, None, None] * ones
    return fxx, gamma2[:, None, None] * ones, -fxx
