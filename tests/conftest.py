"""Shared fixtures: path to the shared real data, seeded generators."""

import importlib.util
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


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every test runs torch on one thread: the test tensors are small, so one thread is as fast, stays
    fast when other jobs share the cores, and makes floating-point reductions reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def write_tiny_checkpoint():
    """``write_tiny_checkpoint(path, preset="tiny", steps=7, seed=0)``: a random lensnet_resnet_small
    checkpoint in run_training's format (``tests/tiny_checkpoint.py``)."""
    spec = importlib.util.spec_from_file_location("lensnet_tests_tiny_checkpoint",
                                                  Path(__file__).with_name("tiny_checkpoint.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_checkpoint
