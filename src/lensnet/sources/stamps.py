r"""Pixelated real-galaxy sources: peak-normalised image stamps placed in the source plane.

Hezaveh et al. (2017) lensed real galaxy images (Galaxy Zoo, GREAT3/COSMOS), peak-normalised,
tapered by 1/(1 + (r / 0.6'')^6) and scaled to 0.4-2.0 arcsec across. A stamp of S_y x S_x pixels
is laid out here over ``size`` arcsec along its x axis (square pixels, so size * S_y / S_x along y),
centred on (center_x, center_y) and rotated counter-clockwise by ``angle``; it is sampled at
source-plane positions by bilinear interpolation (:func:`torch.nn.functional.grid_sample`, zero
outside the stamp) and multiplied by the taper

.. math::  T(r) = \frac{1}{1 + (r / r_t)^6},\qquad r = |\beta - \beta_c|.

Taper radius: the paper's r_t = 0.6'' fixed, applied to sources of any size, would cut small
sources not at all and large ones hard. Tapering before scaling, as the description implies, makes
the taper part of the stamp, so by default r_t scales with the source: r_t = 0.6 x (size / 2),
i.e. 0.6'' for the largest (2.0'') sources, 0.12'' for the smallest (0.4''). At the edge of the
stamp (r = size/2) the taper is 1/(1 + (1/0.6)^6) = 0.045, at its corners 0.006, so stamp edges
never show. An explicit ``taper_radius`` in arcsec (float or (B,)) overrides this; ``math.inf``
switches the taper off.

Bilinear sampling does not low-pass filter the stamp: stamps should not be much finer than the
source-plane sampling (image pixel / supersampling / magnification); downsample the bank otherwise.

Stamp arrays follow the image convention: row 0 is the bottom (smallest y, FITS order), column 0
the left (smallest x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lensnet.errors import LensnetShapeError, check_batch_vector, check_finite, check_range
from lensnet.sources.base import Source

__all__ = ["StampSource", "TAPER_FRACTION"]

#: Default taper radius in units of the stamp half-width (0.6'' for a 2.0'' source).
TAPER_FRACTION = 0.6


@dataclass(frozen=True)
class StampSource(Source):
    """A batch of B sources drawn from a bank of G image stamps.

    Parameters
    ----------
    bank : Tensor, (G, S_y, S_x)
        Peak-normalised stamps (row 0 = bottom), shared by the batch; not copied.
    index : Tensor, (B,), integer
        Which stamp each source uses, in [0, G).
    size : Tensor, (B,), arcsec
        Extent of the stamp along its x axis (the paper: 0.4-2.0 arcsec), > 0.
    center_x, center_y : Tensor, (B,), arcsec
        Position of the stamp centre in the source plane.
    angle : Tensor, (B,), radians, optional
        Counter-clockwise rotation of the stamp [0].
    amplitude : Tensor, (B,), optional
        Surface brightness of a stamp pixel of value 1 [1], flux / arcsec^2.
    taper_radius : float or Tensor (B,), arcsec, optional
        r_t of the taper [TAPER_FRACTION x size / 2]; ``math.inf`` disables the taper.

    Examples
    --------
    >>> import torch
    >>> bank = torch.ones(1, 8, 8)
    >>> s = StampSource(bank, torch.tensor([0]), torch.tensor([1.0]), torch.zeros(1), torch.zeros(1))
    >>> round(s.surface_brightness(torch.zeros(1, 1), torch.zeros(1, 1)).item(), 6)
    1.0
    """

    _shared_fields = ("bank",)

    bank: torch.Tensor
    index: torch.Tensor
    size: torch.Tensor
    center_x: torch.Tensor
    center_y: torch.Tensor
    angle: torch.Tensor | None = None
    amplitude: torch.Tensor | None = None
    taper_radius: torch.Tensor | float | None = None

    def __post_init__(self):
        if self.bank.ndim != 3 or min(self.bank.shape) < 1 or not self.bank.is_floating_point():
            raise LensnetShapeError("bank", self.bank.shape, "(G, S_y, S_x) floating-point stamps")
        check_finite("bank", self.bank)
        index = torch.as_tensor(self.index)
        if index.ndim != 1 or index.is_floating_point():
            raise LensnetShapeError("index", index.shape, "(B,) integer tensor of stamp indices")
        check_range("index", index, 0, self.bank.shape[0] - 1, detail=f"the bank holds {self.bank.shape[0]} stamps")
        batch = index.shape[0]
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        set_("index", index)
        for name in ("size", "center_x", "center_y"):
            set_(name, check_batch_vector(name, getattr(self, name), batch))
        check_range("size", self.size, min=0.0, min_open=True, detail="the angular size across must be positive")
        like = self.size
        for name, default in (("angle", torch.zeros_like(like)), ("amplitude", torch.ones_like(like))):
            value = getattr(self, name)
            set_(name, default if value is None else check_batch_vector(name, value, batch))
        if self.taper_radius is None:
            taper = TAPER_FRACTION * self.size / 2
        else:
            taper = torch.as_tensor(self.taper_radius, dtype=like.dtype, device=like.device)
            taper = taper.expand(batch) if taper.ndim == 0 else check_batch_vector("taper_radius", taper, batch)
        check_range("taper_radius", taper, min=0.0, min_open=True)
        set_("taper_radius", taper)
        # Gathered once here rather than for every tile the renderer asks for.
        set_("_stamps", self.bank[index].unsqueeze(1))

    @property
    def batch_size(self) -> int:
        return self.index.shape[0]

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Surface brightness (B, H, W), flux / arcsec^2, at source-plane x, y ((H, W) or (B, H, W), arcsec)."""
        expand = lambda t: t[:, None, None]  # noqa: E731 - (B,) -> (B, 1, 1)
        dx, dy = x - expand(self.center_x), y - expand(self.center_y)
        # Stamp frame (rotated by -angle), then grid_sample's [-1, 1] (outer pixel edges, align_corners=False).
        half_x = self.size / 2
        half_y = half_x * (self.bank.shape[1] / self.bank.shape[2])
        cos, sin = torch.cos(self.angle), torch.sin(self.angle)
        gx = torch.addcmul(dx * expand(cos / half_x), dy, expand(sin / half_x))
        gy = torch.addcmul(dy * expand(cos / half_y), dx, expand(sin / half_y), value=-1)
        grid = torch.stack((gx, gy), dim=-1)
        sampled = F.grid_sample(self._stamps.to(dtype=grid.dtype), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)[:, 0]
        # Taper 1 / (1 + (r / r_t)^6), with s = (r / r_t)^2.
        s = dx.square().addcmul_(dy, dy).mul_(expand(self.taper_radius**-2))
        return sampled.mul_(expand(self.amplitude)).div_(s.square().mul_(s).add_(1))

    def total_flux(self) -> torch.Tensor:
        """Total flux of each tapered stamp, (B,), flux.

        The integral of the bilinear interpolant of a stamp with zero borders is the sum of its pixels
        times the pixel area (size / S_x)^2; the taper, smooth on the pixel scale, is applied at pixel
        centres. Rotation leaves the flux unchanged.
        """
        stamps = self._stamps[:, 0]
        ny, nx = stamps.shape[-2:]
        pixel = self.size / nx
        iy = torch.arange(ny, device=stamps.device, dtype=pixel.dtype) - (ny - 1) / 2
        ix = torch.arange(nx, device=stamps.device, dtype=pixel.dtype) - (nx - 1) / 2
        d2 = iy[:, None] ** 2 + ix[None, :] ** 2
        k = (pixel / self.taper_radius) ** 2
        taper = 1 / (1 + (k[:, None, None] * d2) ** 3)
        return self.amplitude * pixel**2 * (stamps.to(pixel.dtype) * taper).sum((-2, -1))

    def with_center(self, center_x: torch.Tensor, center_y: torch.Tensor) -> "StampSource":
        """The same stamps moved to new centres (B,), arcsec."""
        return StampSource(self.bank, self.index, self.size, center_x, center_y, self.angle, self.amplitude,
                           self.taper_radius)
