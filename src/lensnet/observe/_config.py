"""Shared machinery of the observational effects: config validation and batched random draws.

Every effect config is a frozen dataclass deriving from :class:`EffectConfig`, which gives it
``from_dict`` / ``to_dict``; its ``__post_init__`` validates each field with the ``check_*``
helpers below, which raise :class:`~lensnet.errors.LensnetConfigError` naming the field. The draw
helpers take an explicit ``torch.Generator`` and return one value per image, so every effect draws
the same amount of randomness whatever it decides, and a seed fixes the whole output.
"""

from __future__ import annotations

import math

import torch

from lensnet.configfile import from_dict, to_dict
from lensnet.errors import LensnetConfigError, LensnetShapeError, LensnetValueError

__all__ = [
    "EffectConfig",
    "check_bool",
    "check_choice",
    "check_images",
    "check_interval",
    "check_number",
    "check_probability",
    "draw_bernoulli",
    "draw_uniform",
    "reference_peak",
]


class EffectConfig:
    """Mixin giving a frozen config dataclass ``from_dict`` and ``to_dict`` (via :mod:`lensnet.configfile`)."""

    @classmethod
    def from_dict(cls, d: dict, where: str = ""):
        """Build from a plain dict (e.g. parsed YAML); unknown or bad fields raise LensnetConfigError.

        Fields left out keep their defaults; ``where`` prefixes field names in messages.
        """
        if not isinstance(d, dict):
            raise LensnetConfigError(f"{where or cls.__name__}: expected a mapping of fields, got {d!r}")
        return from_dict(cls, d, where)

    def to_dict(self) -> dict:
        """Plain dict of the fields (tuples as lists), readable back by :meth:`from_dict`."""
        return to_dict(self)


def _fail(obj, name: str, value, expected: str):
    raise LensnetConfigError(f"{name} = {value!r}: expected {expected} ({type(obj).__name__})")


def _as_number(obj, name, value, integer: bool):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(obj, name, value, "an integer" if integer else "a number")
    if not math.isfinite(value):
        _fail(obj, name, value, "a finite number")
    if integer and int(value) != value:
        _fail(obj, name, value, "an integer")
    return int(value) if integer else float(value)


def _bounds_text(min, max, min_open, max_open) -> str:
    lo = "-inf" if min is None else f"{min:g}"
    hi = "inf" if max is None else f"{max:g}"
    return ("(" if min_open else "[") + f"{lo}, {hi}" + (")" if max_open else "]")


def _in_bounds(v, min, max, min_open, max_open) -> bool:
    ok_lo = min is None or (v > min if min_open else v >= min)
    ok_hi = max is None or (v < max if max_open else v <= max)
    return ok_lo and ok_hi


def check_number(obj, name: str, min=None, max=None, *, min_open=False, max_open=False, integer=False) -> None:
    """Validate the number ``obj.name`` (in [min, max], optionally open) and store it as float/int."""
    value = getattr(obj, name)
    v = _as_number(obj, name, value, integer)
    if not _in_bounds(v, min, max, min_open, max_open):
        _fail(obj, name, value, f"a value in {_bounds_text(min, max, min_open, max_open)}")
    object.__setattr__(obj, name, v)


def check_probability(obj, name: str = "probability") -> None:
    """Validate a probability in [0, 1]."""
    check_number(obj, name, 0.0, 1.0)


def check_interval(obj, name: str, min=None, max=None, *, min_open=False, integer=False) -> None:
    """Validate ``obj.name`` as a range (lo, hi) with min <= lo <= hi <= max; store it as a tuple."""
    value = getattr(obj, name)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        _fail(obj, name, value, "a pair (low, high)")
    lo, hi = (_as_number(obj, name, v, integer) for v in value)
    if lo > hi:
        _fail(obj, name, value, "low <= high")
    for v in (lo, hi):
        if not _in_bounds(v, min, max, min_open, False):
            _fail(obj, name, value, f"both ends in {_bounds_text(min, max, min_open, False)}")
    object.__setattr__(obj, name, (lo, hi))


def check_bool(obj, name: str) -> None:
    """Validate a boolean flag (True or False, not 0 or 1)."""
    if not isinstance(getattr(obj, name), bool):
        _fail(obj, name, getattr(obj, name), "True or False")


def check_choice(obj, name: str, choices: tuple[str, ...]) -> None:
    """Validate that ``obj.name`` is one of ``choices``."""
    if getattr(obj, name) not in choices:
        _fail(obj, name, getattr(obj, name), f"one of {list(choices)}")


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
