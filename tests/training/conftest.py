"""Fixtures of the training tests: the toy simulator stand-in and a tiny, fast training config."""

import importlib.util
from pathlib import Path

import pytest

from lensnet.training.config import TrainConfig

_spec = importlib.util.spec_from_file_location("lensnet_tests_toy_problem", Path(__file__).with_name("toy_problem.py"))
toy_problem = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy_problem)

#: A network small enough for a few hundred CPU steps in seconds.
TINY_MODEL = {"model": "lensnet_resnet_small", "model_kwargs": {"widths": [8, 16, 32, 32], "stem_width": 8}}


@pytest.fixture(scope="session")
def toy_factory():
    return toy_problem.toy_factory


@pytest.fixture
def toy_simulator_cls():
    return toy_problem.ToySimulator


@pytest.fixture(scope="session")
def tiny_model() -> dict:
    return {"model": TINY_MODEL["model"], "model_kwargs": dict(TINY_MODEL["model_kwargs"])}


@pytest.fixture
def tiny_config(tmp_path) -> TrainConfig:
    return TrainConfig(**TINY_MODEL, batch_size=32, lr=3e-3, max_steps=300, val_every_n_steps=100,
                       checkpoint_every_n_steps=100, log_every_n_steps=20, num_val=128, num_test=128,
                       num_stats=512, accelerator="cpu", devices=1, output_dir=str(tmp_path / "run"))


