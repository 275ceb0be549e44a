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
  taken as the same lens; :func:`paper_to_e1e2` therefore takes the sign that is given. Its theta_E is
  lenstronomy's (:func:`params_to_paper`, :func:`paper_to_params`).
- **PyAutoLens's convention** (``al.mp.Isothermal``): ``centre = (y, x)``, ``ell_comps = (e2, e1)`` (the same
  (1 - q)/(1 + q) exp(2 i phi), phi counter-clockwise from +x, listed y first), and an Einstein radius
  normalised by kappa = theta_E^AL / ((1 + q) sqrt(x'^2 + y'^2 / q^2)), so theta_E = theta_E^AL 2 sqrt(q) / (1 + q)
  (:func:`params_to_autolens`, :func:`autolens_to_params`).
- **On the sky**, a position angle is east of north, 0-180 degrees; :func:`position_angle` turns phi into
  one with the image's WCS.
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
    "params_to_paper",
    "paper_to_params",
    "params_to_autolens",
    "autolens_to_params",
    "position_angle",
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

    ``|e| = sqrt(e1^2 + e2^2)``, ``q = (1 - |e|)/(1 + |e|)``, ``phi = atan2(e2, e1)/2``.
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


def params_to_paper(params: torch.Tensor) -> torch.Tensor:
    """lensnet's (B, 5) ``theta_E, e1, e2, center_x, center_y`` to the paper's ``theta_E, eps_x, eps_y, x, y``
    (:func:`e1e2_to_paper`; theta_E and the centre are the same)."""
    params = _checked_params(params)
    eps_x, eps_y = e1e2_to_paper(params[:, 1], params[:, 2])
    return torch.stack([params[:, 0], eps_x, eps_y, params[:, 3], params[:, 4]], 1)


def paper_to_params(paper: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`params_to_paper` (either sign of (eps_x, eps_y))."""
    paper = _checked_params(paper, "paper")
    e1, e2 = paper_to_e1e2(paper[:, 1], paper[:, 2])
    return torch.stack([paper[:, 0], e1, e2, paper[:, 3], paper[:, 4]], 1)


def params_to_autolens(params: torch.Tensor) -> dict[str, torch.Tensor]:
    """lensnet's (B, 5) SIE parameters to PyAutoLens's ``Isothermal(centre, ell_comps, einstein_radius)``:
    ``centre`` (B, 2) as (y, x), ``ell_comps`` (B, 2) as (e2, e1), ``einstein_radius`` (B,) =
    theta_E (1 + q) / (2 sqrt(q)) (the module docstring)."""
    params = _checked_params(params)
    q, _ = e1e2_to_qphi(params[:, 1], params[:, 2])
    return {"centre": params[:, [4, 3]], "ell_comps": params[:, [2, 1]],
            "einstein_radius": params[:, 0] * (1 + q) / (2 * torch.sqrt(q))}


def autolens_to_params(centre: torch.Tensor, ell_comps: torch.Tensor, einstein_radius: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`params_to_autolens`: (B, 5) lensnet parameters."""
    centre, ell_comps = torch.as_tensor(centre), torch.as_tensor(ell_comps)
    einstein_radius = torch.as_tensor(einstein_radius, dtype=centre.dtype)
    for name, value in (("centre", centre), ("ell_comps", ell_comps)):
        if value.ndim != 2 or value.shape[1] != 2:
            raise LensnetShapeError(name, value.shape, "(B, 2), y first")
    e2, e1 = ell_comps.unbind(1)
    q, _ = e1e2_to_qphi(e1, e2)
    theta_e = einstein_radius * 2 * torch.sqrt(q) / (1 + q)
    return torch.stack([theta_e, e1, e2, centre[:, 1], centre[:, 0]], 1)


def position_angle(phi: torch.Tensor, pixel_to_sky) -> torch.Tensor:
    """Position angle east of north, in degrees in [0, 180), of an axis at angle ``phi`` (radians,
    counter-clockwise from the image's +x, :mod:`lensnet.conventions`' frame).

    ``pixel_to_sky`` (2, 2) or (B, 2, 2) is the WCS's linear map from pixel offsets (x along columns, y along
    rows, FITS order) to (xi, eta), the offsets east and north on the sky (FITS CD matrix, or PC times CDELT;
    astropy's ``WCS.pixel_scale_matrix``); any rotation and flip of the image is taken into account. On an
    image with north up and east left (CD = diag(-s, s)) an axis along the rows is at 0 degrees, one along
    the columns at 90.
    """
    phi = torch.as_tensor(phi)
    matrix = torch.as_tensor(pixel_to_sky, dtype=phi.dtype if phi.is_floating_point() else torch.float64)
    if matrix.shape[-2:] != (2, 2):
        raise LensnetShapeError("pixel_to_sky", matrix.shape, "(2, 2) or (B, 2, 2), the WCS's CD matrix")
    dx, dy = torch.cos(phi), torch.sin(phi)
    east = matrix[..., 0, 0] * dx + matrix[..., 0, 1] * dy
    north = matrix[..., 1, 0] * dx + matrix[..., 1, 1] * dy
    pa = torch.rad2deg(torch.atan2(east, north)) % 180.0
    return torch.where(pa > 180.0 - 1e-9, pa - 180.0, pa)  # -1e-17 degrees is 0, not 180


def _checked_params(params: torch.Tensor, name: str = "params") -> torch.Tensor:
    params = torch.as_tensor(params)
    if params.ndim != 2 or params.shape[1] != len(PARAM_NAMES):
        raise LensnetShapeError(name, params.shape, f"(B, {len(PARAM_NAMES)})")
    return params


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
