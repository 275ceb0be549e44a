"""Network-input normalisation, shared by simulated and real images.

The paper divided simulated images by the (known) arc peak and let the network subtract a background
estimate. Real data have no known peak, so lensnet normalises every image, simulated or real, with
estimators computed from the observed pixels alone:

1. background = median of the unmasked pixels in a border ring of ``border`` pixels;
2. scale = maximum of the background-subtracted image smoothed by a Gaussian of ``smooth_sigma``
   pixels (robust to single-pixel noise, hot pixels and thin cosmic rays), over unmasked pixels;
3. output = (image - background) / scale, with masked pixels set to 0.

Nothing depends on the flux unit: an image times 1e-8 (Jy instead of counts, say) gives the same output. The
scale is floored at ``min_scale`` times the image's largest |pixel - background|, a relative floor, so that a
field of pure noise is not divided by a smoothed peak near 0.
"""

from __future__ import annotations

import torch

from lensnet.errors import LensnetShapeError, check_finite

__all__ = ["normalize_images"]


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicated edges, as sums of shifted slices.

    On CPUs this is several times faster than ``conv2d`` with a one-channel 1-D kernel.
    """
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    h, w = images.shape[-2:]
    padded = _replicate_pad(images, radius, dim=-1)
    rows = padded[..., :, 0:w] * k[0]
    for i in range(1, len(k)):
        rows.add_(padded[..., :, i:i + w], alpha=k[i])
    padded = _replicate_pad(rows, radius, dim=-2)
    out = padded[..., 0:h, :] * k[0]
    for i in range(1, len(k)):
        out.add_(padded[..., i:i + h, :], alpha=k[i])
    return out


def _replicate_pad(images: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """``images`` extended by ``radius`` copies of its edge along ``dim`` (F.pad's 'replicate' mode,
    whose CPU kernel is several times slower than these copies)."""
    n = images.shape[dim]
    shape = list(images.shape)
    shape[dim] = n + 2 * radius
    out = images.new_empty(shape)
    out.narrow(dim, radius, n).copy_(images)
    out.narrow(dim, 0, radius).copy_(images.narrow(dim, 0, 1).expand_as(out.narrow(dim, 0, radius)))
    out.narrow(dim, radius + n, radius).copy_(images.narrow(dim, n - 1, 1).expand_as(out.narrow(dim, 0, radius)))
    return out


def normalize_images(images: torch.Tensor, masks: torch.Tensor | None = None, border: int = 6,
                     smooth_sigma: float = 1.5, min_scale: float = 1e-6) -> torch.Tensor:
    """Subtract a border-median background and divide by a smoothed peak, per image and band.

    Parameters
    ----------
    images : Tensor, (B, C, H, W)
        Images in any flux unit.
    masks : Tensor of bool, (B, 1, H, W) or (B, C, H, W), optional
        True where a pixel is masked (excluded from the estimates and set to 0 in the output).
    border : int
        Width in pixels of the ring used for the background median.
    smooth_sigma : float
        Gaussian smoothing (pixels) applied before taking the peak.
    min_scale : float
        Floor of the scale, relative to the largest ``|pixel - background|`` of each image and band.

    Returns
    -------
    Tensor, (B, C, H, W)
        Normalised images: background about 0, arc peak about 1.
    """
    if images.ndim != 4:
        raise LensnetShapeError("images", images.shape, "(B, C, H, W)")
    if masks is not None and (masks.ndim != 4 or masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[-2:]):
        raise LensnetShapeError("masks", masks.shape, f"(B, 1 or C, H, W) matching images {tuple(images.shape)}")
    check_finite("images", images)
    b, c, h, w = images.shape
    invalid = None if masks is None else masks.bool().expand(b, c, h, w)
    ring = torch.zeros(h, w, dtype=torch.bool, device=images.device)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    # Median over the valid ring pixels: NaN marks the masked ones for nanmedian.
    ring_values = images[..., ring]
    if invalid is not None:
        ring_values = ring_values.masked_fill(invalid[..., ring], float("nan"))
    background = torch.nanmedian(ring_values, dim=-1).values.nan_to_num(0.0)[..., None, None]
    centred = images - background
    if invalid is not None:
        centred.masked_fill_(invalid, 0.0)
    smoothed = _gaussian_blur(centred, smooth_sigma)
    if invalid is not None:
        smoothed.masked_fill_(invalid, -float("inf"))
    largest = centred.abs().amax(dim=(-2, -1), keepdim=True)
    floor = torch.where(largest > 0, min_scale * largest, torch.ones_like(largest))  # a constant image stays 0
    scale = torch.maximum(smoothed.amax(dim=(-2, -1), keepdim=True), floor)
    return centred.div_(scale)
