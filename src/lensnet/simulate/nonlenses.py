"""Images that are not lenses, observed as the lenses of a simulation preset: what the network must not trust.

Surveys hand lensnet candidates of which most are not lenses. :func:`simulate_nonlenses` draws fields of one
kind, sends them through the same observation (:func:`lensnet.observe.pipeline.observe`: PSF, Poisson and
Gaussian noise, cosmic rays, hot pixels, bias, masks, scaled to the brightest pixel) and normalisation
(:func:`lensnet.preprocess.normalize_images`) as the preset's lenses, so only the sky differs:

- ``noise``: an empty field, the noise alone;
- ``blank``: an empty field with a faint smooth background (a gradient of 0.05-0.3 of the noise-free peak
  across the field) under the noise;
- ``star``: a point source within 0.3" of the centre;
- ``galaxy``: one elliptical Sérsic galaxy (R 0.1-1.5", n 0.5-6, q 0.3-1) within 0.3" of the centre;
- ``pair``: two such galaxies 0.8-3" apart, the second 0.1-1 times as bright.
"""

from __future__ import annotations

import math

import torch

from lensnet.conventions import qphi_to_e1e2
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.lensing import PixelGrid
from lensnet.observe.pipeline import observe
from lensnet.preprocess import normalize_images
from lensnet.simulate.config import SimulationConfig
from lensnet.simulate.render import render_unlensed
from lensnet.sources.sersic import Sersic

__all__ = ["NONLENS_KINDS", "simulate_nonlenses"]

#: The kinds of :func:`simulate_nonlenses` (module docstring).
NONLENS_KINDS = ("noise", "blank", "star", "galaxy", "pair")


def simulate_nonlenses(config: SimulationConfig, kind: str, num: int, seed: int,
                       device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` observed fields of one of :data:`NONLENS_KINDS`, as the network sees the preset's lenses.

    Returns
    -------
    images : Tensor, (num, C, H, W), float32
        Normalised network input.
    masks : Tensor of bool, (num, 1, H, W)
        True where masked.

    Raises
    ------
    LensnetValueError, LensnetRangeError
        For an unknown kind or ``num`` < 1.
    """
    if kind not in NONLENS_KINDS:
        raise LensnetValueError(f"kind = {kind!r}: expected one of {', '.join(NONLENS_KINDS)}")
    if num < 1:
        raise LensnetRangeError("num", num, 1, None)
    gen = torch.Generator(device).manual_seed(int(seed))
    grid = PixelGrid(config.n_pix, config.pixel_scale)
    n, b = config.n_pix, int(num)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=gen, device=device, dtype=torch.float64)

    sky = torch.zeros(b, n, n, dtype=torch.float64, device=device)
    if kind == "blank":
        angle, strength = uniform(0, 2 * math.pi), uniform(0.05, 0.3)
        x, y = grid.coordinates(1, dtype=torch.float64, device=device)
        half = n * config.pixel_scale / 2
        slope = (x * angle.cos()[:, None, None] + y * angle.sin()[:, None, None]) / (2 * half)
        sky = 1.0 + strength[:, None, None] * slope  # the offset is removed by the normalisation's background
    elif kind == "star":
        row, col = (n / 2 + uniform(-0.3, 0.3) / config.pixel_scale).long(), (n / 2 + uniform(-0.3, 0.3)
                                                                               / config.pixel_scale).long()
        sky[torch.arange(b), row.clamp(0, n - 1), col.clamp(0, n - 1)] = 1.0
    elif kind in ("galaxy", "pair"):
        sky = _galaxy(grid, b, uniform, uniform(-0.3, 0.3), uniform(-0.3, 0.3), torch.ones(b, dtype=torch.float64))
        if kind == "pair":
            separation, angle = uniform(0.8, 3.0), uniform(0, 2 * math.pi)
            sky = sky + _galaxy(grid, b, uniform, separation * angle.cos(), separation * angle.sin(), uniform(0.1, 1.0))
    clean = sky.float()[:, None]
    observed, masks, _ = observe(clean, config.observation, gen, config.pixel_scale)
    return normalize_images(observed, masks), masks


def _galaxy(grid: PixelGrid, b: int, uniform, cx: torch.Tensor, cy: torch.Tensor, flux: torch.Tensor) -> torch.Tensor:
    """Elliptical Sérsic galaxies of total flux ~ ``flux`` (B, H, W)."""
    radius, index, q, phi = uniform(0.1, 1.5), uniform(0.5, 6.0), uniform(0.3, 1.0), uniform(0, math.pi)
    e1, e2 = qphi_to_e1e2(q, phi)
    image = render_unlensed(Sersic(torch.ones_like(radius), radius, index, e1, e2, cx, cy), grid, 4)
    return image * (flux / image.sum((1, 2)).clamp_min(1e-30))[:, None, None]
