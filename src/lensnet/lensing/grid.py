"""The pixel grid: the only object in lensnet that knows about pixels.

Physics (lenses, sources) lives in arcsec on the sky; a :class:`PixelGrid` says where pixel centres
are. Convention (see :mod:`lensnet.conventions`): x along columns, y along rows, origin at the image
centre, FITS row order (row 0 at the bottom, smallest y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.errors import LensnetRangeError

__all__ = ["PixelGrid"]


@dataclass(frozen=True)
class PixelGrid:
    """A square grid of ``n_pix`` x ``n_pix`` pixels of side ``pixel_scale`` arcsec.

    Parameters
    ----------
    n_pix : int
        Pixels per side [192, the paper's].
    pixel_scale : float
        Pixel side in arcsec [0.04, the paper's].
    """

    n_pix: int = 192
    pixel_scale: float = 0.04

    def __post_init__(self):
        if not _is_positive_int(self.n_pix):
            raise LensnetRangeError("n_pix", self.n_pix, 1, None, "the number of pixels per side must be a positive integer")
        if not _is_positive_finite(self.pixel_scale):
            raise LensnetRangeError("pixel_scale", self.pixel_scale, 0, None, "the pixel scale (arcsec/pixel) must be positive")

    @property
    def fov(self) -> float:
        """Side of the field in arcsec."""
        return self.n_pix * self.pixel_scale

    def coordinates(self, supersample: int = 1, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Sky coordinates (x, y) in arcsec of the (sub)pixel centres, each of shape (n*s, n*s).

        With ``supersample`` s, every pixel is split into s x s sub-pixels; averaging s x s blocks of
        a quantity evaluated here gives its pixel average (as :func:`lensnet.simulate.render.render` does).
        """
        if not _is_positive_int(supersample):
            raise LensnetRangeError("supersample", supersample, 1, None, "must be a positive integer")
        n = self.n_pix * supersample
        step = self.pixel_scale / supersample
        axis = (torch.arange(n, device=device, dtype=dtype) - (n - 1) / 2) * step
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        return x, y

    def pixel_to_sky(self, row, col) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel indices (row, column), possibly fractional, to sky (x, y) in arcsec."""
        c = (self.n_pix - 1) / 2
        return (torch.as_tensor(col) - c) * self.pixel_scale, (torch.as_tensor(row) - c) * self.pixel_scale

    def sky_to_pixel(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        """Sky (x, y) in arcsec to fractional pixel indices (row, column)."""
        c = (self.n_pix - 1) / 2
        return torch.as_tensor(y) / self.pixel_scale + c, torch.as_tensor(x) / self.pixel_scale + c


def _is_positive_int(value) -> bool:
    """True for 1, 2, ... (also 3.0), False for bools, NaN, inf, fractions and non-numbers."""
    try:
        return not isinstance(value, bool) and value >= 1 and int(value) == value
    except (TypeError, ValueError, OverflowError):
        return False


def _is_positive_finite(value) -> bool:
    try:
        return math.isfinite(value) and value > 0
    except TypeError:
        return False
