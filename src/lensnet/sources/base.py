"""The source protocol: anything with a batched surface brightness in the source plane."""

from __future__ import annotations

import torch

__all__ = ["Source"]


class Source:
    """A batch of B source-plane light distributions.

    Subclasses implement :meth:`surface_brightness`; positions are in arcsec in the source plane,
    of shape (B, H, W) (one grid per lens, as ray-tracing gives) or (H, W) (shared), and the result
    is a surface brightness (flux per arcsec^2, arbitrary flux unit) of shape (B, H, W).
    """

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
