"""Exceptions raised by lensnet, and the small checks public entry points use to raise them.

Which exception to raise:

- :class:`LensnetValueError` for a value that is wrong in itself (NaN, wrong sign, unknown name).
- :class:`LensnetRangeError` for a number outside its allowed interval; it carries value, min and max.
- :class:`LensnetShapeError` for an array or tensor of the wrong shape; the message gives the
  received and the expected shape.
- :class:`LensnetConfigError` for a bad configuration file or field; the message names the field.
- :class:`LensnetIOError` for unreadable, corrupt or missing files and failed writes.
- :class:`LensnetInterrupted` (a :class:`KeyboardInterrupt`) when SIGINT or SIGTERM stopped a run cleanly.

Every class also derives from the matching builtin, so ``except ValueError`` keeps working.
Internal underscore functions skip these checks; public entry points call them.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = [
    "LensnetError",
    "LensnetValueError",
    "LensnetRangeError",
    "LensnetShapeError",
    "LensnetConfigError",
    "LensnetIOError",
    "LensnetInterrupted",
    "check_finite",
    "check_range",
    "check_batch_vector",
    "check_batch_fields",
]


class LensnetError(Exception):
    """Base class of every error lensnet raises on purpose."""


class LensnetValueError(LensnetError, ValueError):
    """A value that is invalid in itself."""


class LensnetRangeError(LensnetValueError):
    """A number outside its allowed interval [min, max] (either bound may be open or absent)."""

    def __init__(self, name: str, value, min=None, max=None, detail: str = ""):
        self.name, self.value, self.min, self.max = name, value, min, max
        lo = "-inf" if min is None else f"{min:g}"
        hi = "inf" if max is None else f"{max:g}"
        msg = f"{name} = {value} is outside its allowed range [{lo}, {hi}]"
        super().__init__(msg + (f": {detail}" if detail else ""))


class LensnetShapeError(LensnetValueError):
    """An array or tensor whose shape is not the one expected."""

    def __init__(self, name: str, received, expected: str):
        self.name, self.received, self.expected = name, tuple(received), expected
        super().__init__(f"{name} has shape {tuple(received)}; expected {expected}")


class LensnetConfigError(LensnetValueError):
    """A configuration file or field that cannot be used; the message names the field."""


class LensnetIOError(LensnetError, OSError):
    """A file that cannot be read or written."""


class LensnetInterrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT, SIGTERM) between two batches, its finished work kept.

    A :class:`KeyboardInterrupt`, so code that stops on Ctrl-C stops on it too; ``signum`` is the signal,
    and the command line exits with 128 + ``signum`` (130 for Ctrl-C, 143 for SIGTERM).
    """

    def __init__(self, signum: int, message: str):
        self.signum = int(signum)
        super().__init__(message)


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise :class:`LensnetValueError` if ``value`` holds NaN or infinity, naming ``name``."""
    # A finite sum proves every element finite in one cheap reduction (NaN and inf propagate);
    # only an infinite or NaN sum, possibly an overflow of finite values, needs the elementwise test.
    if value.is_floating_point() and value.numel() and torch.isfinite(value.sum()):
        return
    if not torch.isfinite(value).all():
        bad = (~torch.isfinite(value)).sum().item()
        raise LensnetValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def check_range(name: str, value: torch.Tensor, min=None, max=None, *, min_open=False,
                max_open=False, detail: str = "") -> None:
    """Raise :class:`LensnetRangeError` if any element of ``value`` is outside [min, max].

    ``min_open``/``max_open`` make the bound exclusive. The offending element is reported.
    """
    value = torch.as_tensor(value)
    bad = torch.zeros_like(value, dtype=torch.bool)
    if min is not None:
        bad |= value <= min if min_open else value < min
    if max is not None:
        bad |= value >= max if max_open else value > max
    if bad.any():
        first = value[bad].flatten()[0].item()
        raise LensnetRangeError(name, first, min, max, detail)


def check_batch_vector(name: str, value, batch: int | None = None) -> torch.Tensor:
    """Return ``value`` as a 1-D tensor of per-lens values, or raise naming ``name``.

    Scalars are not accepted silently when ``batch`` is given and differs from 1: every lens
    parameter is a (B,) tensor.
    """
    t = torch.as_tensor(value)
    if t.ndim != 1:
        raise LensnetShapeError(name, t.shape, "(B,) with one value per lens")
    if batch is not None and t.shape[0] != batch:
        raise LensnetShapeError(name, t.shape, f"({batch},) to match the other parameters")
    if t.is_floating_point() is False:
        raise LensnetValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    check_finite(name, t)
    return t


def check_batch_fields(obj) -> int:
    """Validate every field of dataclass ``obj`` as a (B,) tensor of one batch size; return B.

    Each field is replaced by its validated tensor (frozen dataclasses included); errors name the field.
    """
    batch = None
    for f in dataclasses.fields(obj):
        value = check_batch_vector(f.name, getattr(obj, f.name), batch)
        object.__setattr__(obj, f.name, value)
        batch = value.shape[0]
    return batch
