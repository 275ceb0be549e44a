"""The one parameter and axis convention of lensnet, and converters to the others.

Written down once here and tested everywhere:

- **Lens parameters** are lenstronomy's ``theta_E, e1, e2, center_x, center_y``, in that column
  order (:data:`PARAM_NAMES`). ``theta_E``, ``center_x`` and ``center_y`` are in arcsec; ``e1`` and
  ``e2`` are the two components of the complex ellipticity

      e1 + i e2 = (1 - q) / (1 + q) * exp(2 i phi),

  with ``q`` the axis ratio (minor/major, 0 < q <= 1) and ``phi`` the angle of the major axis of
  the mass distribution, in radians, counter-clockwise from +x.
- **The SIE normalisation** is lenstronomy's: kappa = theta_E / (2 sqrt(q x'^2 + y'^2 / q)) with x'
  along the major axis (see :mod:`lensnet.lensing.sie`).
- **Image axes**: x runs along columns, y along rows, the origin is the centre of the image, and
  arrays are stored in FITS row order: row 0 is the bottom of the image (smallest y). Pixel (i, j)
  (row, column) is centred at x = (j - (N - 1) / 2) * scale, y = (i - (N - 1) / 2) * scale.
- **The paper's convention** (Hezaveh et al. 2017, released code): ellipticity targets
  (1 - q) * (cos a, sin a) with a single angle a = 2 phi, so (eps_x, eps_y) and (-eps_x, -eps_y) are
  taken as the same lens; :func:`paper_to_e1e2` therefore takes the sign that is given.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import torch

from lensnet.errors import LensnetShapeError, check_batch_fields, check_batch_vector, check_range

__all__ = [
    "PARAM_NAMES",
    "PARAM_UNITS",
    "LensParams",
    "qphi_to_e1e2",
    "e1e2_to_qphi",
    "e1e2_to_paper",
    "paper_to_e1e2",
]

#: Column order of every (B, 5) target or prediction tensor.
PARAM_NAMES: tuple[str, ...] = ("theta_E", "e1", "e2", "center_x", "center_y")
#: Unit of each parameter, in the order of :data:`PARAM_NAMES`.
PARAM_UNITS: tuple[str, ...] = ("arcsec", "", "", "arcsec", "arcsec")


def qphi_to_e1e2(q: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis ratio and major-axis angle to ellipticity components.

    e1 = (1 - q)/(1 + q) cos 2phi, e2 = (1 - q)/(1 + q) sin 2phi (lenstronomy's
    ``param_util.phi_q2_ellipticity``).

    Parameters
    ----------
    q : Tensor
        Axis ratio (minor/major), 0 < q <= 1.
    phi : Tensor
        Major-axis angle in radians, counter-clockwise from +x.
    """
    g = (1 - q) / (1 + q)
    return g * torch.cos(2 * phi), g * torch.sin(2 * phi)


def e1e2_to_qphi(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ellipticity components to axis ratio and major-axis angle (radians, in (-pi/2, pi/2]).

    |e| = sqrt(e1^2 + e2^2), q = (1 - |e|)/(1 + |e|), phi = atan2(e2, e1)/2.
    """
    g = torch.sqrt(e1**2 + e2**2)
    return (1 - g) / (1 + g), torch.atan2(e2, e1) / 2


def e1e2_to_paper(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lensnet ellipticity to the paper's (eps_x, eps_y) = (1 - q)(cos a, sin a), a = phi + 90 degrees.

    Hezaveh et al. (2017) and their released code point a along the lens's minor axis, drawn over a full
    turn, so (eps_x, eps_y) and (-eps_x, -eps_y) are the same lens (their evaluation takes, per lens, the
    sign nearer the truth: :func:`lensnet.metrics.paper_residuals`). An angle error moves eps by
    (1 - q) times the error, half as much as it moves a (cos 2phi, sin 2phi) form.
    """
    q, phi = e1e2_to_qphi(e1, e2)
    a = phi + math.pi / 2
    return (1 - q) * torch.cos(a), (1 - q) * torch.sin(a)


def paper_to_e1e2(eps_x: torch.Tensor, eps_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's (eps_x, eps_y) = (1 - q)(cos a, sin a) to lensnet's (e1, e2), with phi = a - 90 degrees.

    Either sign of (eps_x, eps_y) gives the same (e1, e2): the lens is the same.
    """
    one_minus_q = torch.sqrt(eps_x**2 + eps_y**2)
    return qphi_to_e1e2(1 - one_minus_q, torch.atan2(eps_y, eps_x) - math.pi / 2)


@dataclass(frozen=True)
class LensParams:
    """SIE parameters of a batch of B lenses, each a (B,) tensor, in the lensnet convention.

    Parameters
    ----------
    theta_E : Tensor, shape (B,), arcsec
        Einstein radius, > 0.
    e1, e2 : Tensor, shape (B,)
        Ellipticity components, sqrt(e1^2 + e2^2) < 1.
    center_x, center_y : Tensor, shape (B,), arcsec
        Lens centre relative to the image centre.
    """

    theta_E: torch.Tensor
    e1: torch.Tensor
    e2: torch.Tensor
    center_x: torch.Tensor
    center_y: torch.Tensor

    def __post_init__(self):
        check_batch_fields(self)
        check_range("theta_E", self.theta_E, min=0.0, min_open=True, detail="the Einstein radius must be positive")
        check_range("|e| = sqrt(e1^2 + e2^2)", torch.sqrt(self.e1**2 + self.e2**2), max=1.0, max_open=True,
                    detail="the axis ratio q = (1-|e|)/(1+|e|) must be > 0")

    @property
    def batch_size(self) -> int:
        return self.theta_E.shape[0]

    @classmethod
    def from_tensor(cls, params: torch.Tensor) -> "LensParams":
        """Build from a (B, 5) tensor with columns in :data:`PARAM_NAMES` order."""
        if params.ndim != 2 or params.shape[1] != len(PARAM_NAMES):
            raise LensnetShapeError("params", params.shape, f"(B, {len(PARAM_NAMES)}) with columns {PARAM_NAMES}")
        return cls(*params.unbind(dim=1))

    @classmethod
    def from_qphi(cls, theta_E, q, phi, center_x, center_y) -> "LensParams":
        """Build from axis ratio q and major-axis angle phi (radians) instead of e1, e2.

        q and phi are (B,) tensors, checked (shape, NaN, 0 < q <= 1) under their own names.
        """
        q = check_batch_vector("q", q)
        phi = check_batch_vector("phi", phi, q.shape[0])
        check_range("q", q, min=0.0, max=1.0, min_open=True, detail="the axis ratio is minor/major")
        e1, e2 = qphi_to_e1e2(q, phi)
        return cls(theta_E, e1, e2, center_x, center_y)

    def to_tensor(self) -> torch.Tensor:
        """The (B, 5) tensor with columns in :data:`PARAM_NAMES` order."""
        return torch.stack([getattr(self, n) for n in PARAM_NAMES], dim=1)

    def qphi(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis ratio q and major-axis angle phi (radians)."""
        return e1e2_to_qphi(self.e1, self.e2)

    def take(self, keep: torch.Tensor) -> "LensParams":
        """The lenses selected by ``keep`` ((B,) bool or indices)."""
        return LensParams(*(getattr(self, n)[keep] for n in PARAM_NAMES))

    def to(self, device=None, dtype=None) -> "LensParams":
        return LensParams(*(getattr(self, n).to(device=device, dtype=dtype) for n in PARAM_NAMES))

    def to_lenstronomy(self) -> list[dict[str, float]]:
        """One lenstronomy ``kwargs_lens`` dict per lens (for tests and comparisons only)."""
        rows = self.to_tensor().detach().cpu().double().tolist()
        return [dict(zip(PARAM_NAMES, row)) for row in rows]
