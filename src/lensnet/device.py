"""Where computations run: one resolver for the ``device`` option of every command and library call."""

from __future__ import annotations

import torch

from lensnet.errors import LensnetValueError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device that ``device`` names: 'auto' or None is CUDA when available, else the CPU.

    Raises
    ------
    LensnetValueError
        If ``device`` is not a device name (cpu, cuda, cuda:1, ...), or names a CUDA device that this
        torch cannot use (no CUDA build, no GPU, or fewer GPUs than the index).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise LensnetValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, ... or auto)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise LensnetValueError(f"device {device!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                                    "use --device cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise LensnetValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif resolved.type not in ("cpu", "mps"):
        raise LensnetValueError(f"device {device!r}: lensnet runs on cpu or cuda")
    return resolved
