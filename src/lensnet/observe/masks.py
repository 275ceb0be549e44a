"""Random circular masks that hide part of the image, sparing most of the arc flux.

The paper (Hezaveh et al. 2017, main text and Methods) masks 1-29 random discs of radius 0.2" per
training image, covering at most 25% of the arc flux, so that the networks tolerate masked
cosmic rays, ghosts and lens-light residuals in real data (where the same 0.2" discs are used).
Masked pixels are set to 0. The paper does not say how often images are masked nor where the discs
fall; lensnet masks half of the images and centres each disc, with probability 0.5, on an arc
pixel drawn in proportion to the noiseless arc flux (otherwise uniformly in the field), so that the
masks do hide parts of the arcs.

The flux limit is kept exactly, without host synchronisation: the discs of an image are
considered in the order drawn, and each is kept only if the arc flux under the union of the kept
discs stays within ``max_flux_fraction`` of the image's total arc flux (a loop over the fixed
maximum number of discs, vectorised over the batch). The disc radius is given in arcsec, so its
size in pixels follows the pixel scale; a pixel is masked if its centre lies within the radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.errors import LensnetRangeError, LensnetShapeError
from lensnet.configfile import Config, setting
from lensnet.observe.draws import check_images, draw_bernoulli, draw_uniform

__all__ = ["MaskConfig", "random_masks"]


@dataclass(frozen=True)
class MaskConfig(Config):
    """Probability, number, size and flux limit of the masks.

    Parameters
    ----------
    probability : float
        Chance that an image is masked [0.5; not given by the paper].
    count_range : (int, int)
        Number of discs drawn per masked image, uniformly (inclusive) [(1, 29), the paper's].
    radius_arcsec : float
        Disc radius in arcsec [0.2, the paper's].
    max_flux_fraction : float
        Largest fraction of the noiseless arc flux the masks may cover [0.25, the paper's].
    on_arc_probability : float
        Chance that a disc is centred on an arc pixel (drawn in proportion to flux) rather than
        uniformly in the field [0.5].
    """

    probability: float = setting(0.5, min=0.0, max=1.0)
    count_range: tuple[int, int] = setting((1, 29), min=0, max=1000)
    radius_arcsec: float = setting(0.2, min=0.0, max=10.0, min_open=True)
    max_flux_fraction: float = setting(0.25, min=0.0, max=1.0)
    on_arc_probability: float = setting(0.5, min=0.0, max=1.0)


def random_masks(images: torch.Tensor, arc: torch.Tensor, config: MaskConfig, generator: torch.Generator,
                 pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Mask random discs in each image with probability ``config.probability``.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Observed images.
    arc : Tensor, (B, C, H, W) or (B, 1, H, W)
        Noiseless arc images (negative values count as 0); their flux, summed over channels,
        sets the limit and draws the on-arc centres.
    config : MaskConfig
        Probability, number, radius and flux limit.
    generator : torch.Generator
        Source of randomness, on the images' device.
    pixel_scale : float
        Pixel side in arcsec, to turn the radius into pixels.

    Returns
    -------
    images : Tensor, (B, C, H, W)
        With masked pixels set to 0 in every channel.
    mask : Tensor of bool, (B, 1, H, W)
        True where masked.
    record : dict of (B,) tensors
        ``masks_applied`` (bool), ``n_masks_drawn`` and ``n_masks`` (discs drawn and kept, int64),
        ``mask_flux_fraction`` (fraction of the arc flux covered, <= ``max_flux_fraction``).
    """
    check_images(images, generator)
    b, _, h, w = images.shape
    if arc.ndim != 4 or arc.shape[0] != b or arc.shape[2:] != images.shape[2:]:
        raise LensnetShapeError("arc", arc.shape, f"({b}, C, {h}, {w}) like images")
    if not pixel_scale > 0:
        raise LensnetRangeError("pixel_scale", pixel_scale, 0, None, "the pixel scale (arcsec/pixel) must be > 0")
    dev, dt = images.device, images.dtype
    r = config.count_range[1]
    radius = config.radius_arcsec / pixel_scale

    # Flux per pixel, plus one zero slot that patch pixels outside the image point at (see ``trash``).
    flux_pad = torch.zeros(b, h * w + 1, dtype=torch.float64, device=dev)
    flux = flux_pad[:, :h * w]
    flux.copy_(arc.detach().clamp_min(0).sum(dim=1).reshape(b, h * w))
    total = flux.sum(dim=1)
    applied = draw_bernoulli(config.probability, images, generator)
    count = torch.randint(config.count_range[0], r + 1, (b,), generator=generator, device=dev) * applied
    on_arc = draw_uniform(0.0, 1.0, images, generator, shape=(b, r)) < config.on_arc_probability
    on_arc &= (total > 0)[:, None]
    # on-arc centres: inverse-CDF draw of a pixel in proportion to flux, jittered within it
    cdf = flux.cumsum(dim=1)
    u = draw_uniform(0.0, 1.0, images, generator, shape=(b, r)).double() * cdf[:, -1:]
    pick = torch.searchsorted(cdf, u, right=True).clamp(max=h * w - 1)
    jitter = draw_uniform(-0.5, 0.5, images, generator, shape=(2, b, r))
    anywhere = draw_uniform(0.0, 1.0, images, generator, shape=(2, b, r))
    row = torch.where(on_arc, torch.div(pick, w, rounding_mode="floor").to(dt) + jitter[0], anywhere[0] * h - 0.5)
    col = torch.where(on_arc, (pick % w).to(dt) + jitter[1], anywhere[1] * w - 0.5)

    size = 2 * math.ceil(radius) + 3
    offsets = torch.arange(size, device=dev) - size // 2
    rows = torch.floor(row).long()[..., None, None] + offsets[:, None]  # (b, r, size, 1)
    cols = torch.floor(col).long()[..., None, None] + offsets[None, :]  # (b, r, 1, size)
    disc = (rows - row[..., None, None]) ** 2 + (cols - col[..., None, None]) ** 2 <= radius**2
    disc &= (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    trash = h * w
    index = torch.where(disc, rows * w + cols, torch.full_like(disc, trash, dtype=torch.long)).reshape(b, r, -1)
    disc = disc.reshape(b, r, -1)

    mask = torch.zeros(b, h * w + 1, dtype=torch.bool, device=dev)
    covered = flux.new_zeros(b)
    limit = config.max_flux_fraction * total
    active = torch.arange(r, device=dev) < count[:, None]
    kept = torch.zeros(b, dtype=torch.long, device=dev)
    for i in range(r):
        idx, new = index[:, i], disc[:, i] & ~mask.gather(1, index[:, i])
        extra = (flux_pad.gather(1, idx) * new).sum(dim=1)
        accept = active[:, i] & (covered + extra <= limit)
        covered = covered + extra * accept
        kept += accept
        mask.scatter_(1, idx, mask.gather(1, idx) | (disc[:, i] & accept[:, None]))
    mask = mask[:, :trash].reshape(b, 1, h, w)
    fraction = torch.where(total > 0, covered / torch.where(total > 0, total, 1.0), 0.0).to(dt)
    record = {"masks_applied": applied, "n_masks_drawn": count, "n_masks": kept, "mask_flux_fraction": fraction}
    return images.masked_fill(mask, 0), mask, record
