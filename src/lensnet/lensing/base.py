"""Base class of thin lenses: the lens equation written once."""

from __future__ import annotations

import torch

__all__ = ["LensProfile"]


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
