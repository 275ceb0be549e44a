"""Keep freed memory mapped: simulating on the CPU allocates and frees tens of MB per batch.

glibc returns large freed blocks to the operating system (``munmap`` or heap trimming), so the next
batch's arrays start on fresh pages and pay a page fault per 4 KiB: on the ``paper`` preset that was
a quarter of the simulation time. Raising ``M_TOP_PAD`` makes the heap grow in large steps and keep
that much freed memory, so batches reuse mapped pages. The cost is resident memory that stays with
the process (at most ``top_pad_bytes`` beyond what it uses).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["keep_freed_memory"]

_M_TOP_PAD = -2  # glibc's malloc.h


@functools.lru_cache(maxsize=None)
def keep_freed_memory(top_pad_bytes: int = 1 << 30) -> bool:
    """Set glibc's ``M_TOP_PAD`` for this process; True if set, False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_TOP_PAD, int(top_pad_bytes)))
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
