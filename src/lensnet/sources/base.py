"""The source protocol: anything with a batched surface brightness in the source plane."""

from __future__ import annotations

import dataclasses

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

    def total_flux(self) -> torch.Tensor:
        """Total (unlensed) flux of each source, (B,); the flux unit of the surface brightness."""
        raise NotImplementedError(f"{type(self).__name__} has no analytic total flux")

    #: Dataclass fields shared by the whole batch (never indexed by :meth:`take`).
    _shared_fields: tuple[str, ...] = ()

    def take(self, keep: torch.Tensor) -> "Source":
        """The sources selected by ``keep`` ((B,) bool or indices); nested sources are indexed too.

        Works for dataclass sources whose per-lens fields are batch-first tensors.
        """
        def pick(name, value):
            if isinstance(value, Source):
                return value.take(keep)
            if torch.is_tensor(value) and value.ndim >= 1 and name not in self._shared_fields:
                return value[keep]
            return value
        return dataclasses.replace(self, **{f.name: pick(f.name, getattr(self, f.name))
                                            for f in dataclasses.fields(self) if f.init})
