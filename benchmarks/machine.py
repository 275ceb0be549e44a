"""The hardware a benchmark ran on, named for its results file."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["cpu_name", "machine_description"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description(device: torch.device) -> dict:
    """CPU model and cores, torch version, and the GPU's name when ``device`` is CUDA."""
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "device": str(device),
            "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
