"""A learnable stand-in for the lens simulator: elliptical Gaussian rings on 32x32 images.

The ring's radius, axis ratio and orientation and its centre encode the five targets
(theta_E, e1, e2, center_x, center_y) in the lensnet convention, so a small network can learn them
in a few hundred steps. ``ToySimulator`` has the simulator interface the data module uses:
``simulate(batch_size, seed)`` returns images (B, 1, H, W) and targets (B, 5), deterministic in seed.
It has no source galaxies, so :func:`toy_factory` ignores the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lensnet.conventions import qphi_to_e1e2


@dataclass
class ToyBatch:
    images: torch.Tensor
    targets: torch.Tensor
    seeds: torch.Tensor


class ToySimulator:
    """Rings of radius theta_E ~ U[0.4, 1.1] arcsec, q ~ U[0.5, 1], centre ~ U[-0.3, 0.3] arcsec."""

    def __init__(self, device=None, n_pix: int = 32, pixel_scale: float = 0.1, noise: float = 0.05):
        self.device = torch.device(device or "cpu")
        c = (torch.arange(n_pix, dtype=torch.float32, device=self.device) - (n_pix - 1) / 2) * pixel_scale
        self.y, self.x = torch.meshgrid(c, c, indexing="ij")
        self.noise = noise
        self.seeds_seen: list[int] = []

    def simulate(self, batch_size: int, seed: int) -> ToyBatch:
        self.seeds_seen.append(seed)
        g = torch.Generator(device=self.device).manual_seed(seed)
        u = torch.rand(batch_size, 5, generator=g, device=self.device)
        theta_e, q, phi = 0.4 + 0.7 * u[:, 0], 0.5 + 0.5 * u[:, 1], torch.pi * u[:, 2]
        cx, cy = 0.6 * u[:, 3] - 0.3, 0.6 * u[:, 4] - 0.3
        e1, e2 = qphi_to_e1e2(q, phi)
        dx, dy = self.x - cx[:, None, None], self.y - cy[:, None, None]
        cos, sin = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
        xp, yp = cos * dx + sin * dy, -sin * dx + cos * dy
        qq = q[:, None, None]
        r = torch.sqrt(qq * xp**2 + yp**2 / qq)
        images = torch.exp(-0.5 * ((r - theta_e[:, None, None]) / 0.12) ** 2)
        images = images + self.noise * torch.randn(images.shape, generator=g, device=self.device)
        targets = torch.stack([theta_e, e1, e2, cx, cy], dim=1)
        seeds = seed + torch.arange(batch_size, device=self.device, dtype=torch.int64)
        return ToyBatch(images[:, None], targets, seeds)


def toy_factory(device, split: str = "train") -> ToySimulator:
    return ToySimulator(device)
