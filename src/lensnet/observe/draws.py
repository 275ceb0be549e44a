"""Batched random draws shared by the observational effects, and the check of their inputs.

The draw helpers take an explicit ``torch.Generator`` and return one value per image, so every
effect draws the same amount of randomness whatever it decides, and a seed fixes the whole output.
The effects' configs are :class:`lensnet.configfile.Config` dataclasses.
"""

from __future__ import annotations

import torch

from lensnet.errors import LensnetShapeError, LensnetValueError

__all__ = ["check_images", "draw_bernoulli", "draw_uniform", "reference_peak"]


def check_images(images: torch.Tensor, generator: torch.Generator, name: str = "images") -> None:
    """Check a floating (B, C, H, W) batch and a generator on the same device type (no host sync)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise LensnetShapeError(name, getattr(images, "shape", ()), "(B, C, H, W), e.g. (B, 1, H, W) for one band")
    if not images.is_floating_point():
        raise LensnetValueError(f"{name} must be a floating-point tensor, got dtype {images.dtype}")
    if not isinstance(generator, torch.Generator):
        raise LensnetValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != images.device.type:
        raise LensnetValueError(f"generator is on {generator.device} but {name} are on {images.device}; "
                                "create the generator on the images' device")


def reference_peak(images: torch.Tensor, peak: torch.Tensor | None) -> torch.Tensor:
    """The (B,) flux that amplitudes are relative to: ``peak`` if given, else each image's maximum.

    An image whose maximum is not positive gets a reference of 1 (no host sync to reject it).
    """
    if peak is None:
        peak = images.detach().amax(dim=(1, 2, 3))
        return torch.where(peak > 0, peak, torch.ones_like(peak))
    peak = torch.as_tensor(peak, device=images.device, dtype=images.dtype)
    if peak.shape != images.shape[:1]:
        raise LensnetShapeError("peak", peak.shape, f"({images.shape[0]},), one reference flux per image")
    return peak


def draw_uniform(lo: float, hi: float, like: torch.Tensor, generator: torch.Generator, shape=None) -> torch.Tensor:
    """Uniform draws in [lo, hi), of shape ``shape`` (default (B,)), on the device/dtype of ``like``."""
    shape = like.shape[:1] if shape is None else shape
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return lo + (hi - lo) * u


def draw_bernoulli(p: float, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B,) booleans, True with probability ``p``."""
    return torch.rand(like.shape[:1], generator=generator, device=like.device, dtype=like.dtype) < p
