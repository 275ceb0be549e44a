"""Training on the real simulator's 'tiny' preset (skipped until lensnet.simulate.simulator exists)."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from lensnet.training.datamodule import PresetSimulatorFactory, SimulatedLensDataModule


@pytest.fixture(scope="module")
def simulator_module():
    return pytest.importorskip("lensnet.simulate.simulator")


def test_preset_factory_applies_overrides(simulator_module):
    factory = PresetSimulatorFactory("tiny", {"n_pix": 40})
    assert factory.config().n_pix == 40
    dm = SimulatedLensDataModule(factory, batch_size=4, seed=0, num_val=4)
    dm.setup("fit")
    images, targets = dm.simulate_batch(12345)
    assert images.shape[0] == 4 and images.shape[2:] == (40, 40) and targets.shape == (4, 5)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    assert torch.equal(dm.simulate_batch(12345)[1], targets)


def test_short_run_on_the_tiny_preset(simulator_module, tiny_config):
    from lensnet.training.train import run_training

    config = tiny_config.with_overrides(simulation="tiny", batch_size=8, max_steps=6, val_every_n_steps=3,
                                        checkpoint_every_n_steps=3, num_val=8, num_test=8, num_stats=32)
    result = run_training(config, enable_progress_bar=False)
    assert result.global_step == 6 and math.isfinite(result.metrics["test_loss"])
    simulation = yaml.safe_load((Path(config.output_dir) / "simulation.yaml").read_text())
    assert simulation["name"] == "tiny" and simulation["n_pix"] == 32
