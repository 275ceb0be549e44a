"""Base class of thin lenses: the lens equation written once, and the check of coordinate shapes."""

from __future__ import annotations

import torch

from lensnet.errors import LensnetShapeError

__all__ = ["LensProfile", "check_coordinates"]


def check_coordinates(x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    """Raise :class:`~lensnet.errors.LensnetShapeError` unless x, y suit a batch of ``batch`` lenses.

    Parameters
    ----------
    x, y : Tensor, (H, W) or (B, H, W), arcsec
        Image-plane positions; both of the same shape, with B equal to ``batch`` (or 1).
    batch : int
        Number of lenses B.
    """
    if x.ndim not in (2, 3):
        raise LensnetShapeError("x", x.shape, f"(H, W) or ({batch}, H, W)")
    if y.shape != x.shape:
        raise LensnetShapeError("y", y.shape, f"{tuple(x.shape)}, the shape of x")
    if x.ndim == 3 and x.shape[0] not in (1, batch):
        raise LensnetShapeError("x", x.shape, f"(H, W) or ({batch}, H, W) to match the {batch} lenses")


class LensProfile:
    """A thin lens. Subclasses implement deflection, convergence, potential and hessian.

    Coordinates are in arcsec, of shape (H, W) (shared by the batch) or (B, H, W); outputs are
    (B, H, W).
    """

    def deflection(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def convergence(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def potential(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hessian(self, x: torch.Tensor, y: torch.Tensor):
        raise NotImplementedError

    def take(self, keep: torch.Tensor) -> "LensProfile":
        """The lenses selected by ``keep`` ((B,) bool or indices)."""
        raise NotImplementedError

    def raytrace(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Source-plane position beta = theta - alpha(theta) (the lens equation), arcsec."""
        ax, ay = self.deflection(x, y)
        return x - ax, y - ay

    def shear(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shear components gamma1 = (f_xx - f_yy)/2, gamma2 = f_xy."""
        fxx, fxy, fyy = self.hessian(x, y)
        return (fxx - fyy) / 2, fxy

    def magnification(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Signed magnification mu = 1 / det A, det A = (1 - f_xx)(1 - f_yy) - f_xy^2."""
        fxx, fxy, fyy = self.hessian(x, y)
        return 1 / ((1 - fxx) * (1 - fyy) - fxy**2)
