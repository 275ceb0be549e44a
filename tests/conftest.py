"""Shared fixtures: path to the shared real data, seeded generators."""

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"shared real data not found at {REALDATA}")
    return REALDATA


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
