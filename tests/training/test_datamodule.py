"""The on-the-fly data: a seed stream per (seed, step, rank), fixed sets, target statistics."""

import itertools
import math

import pytest
import torch

from lensnet.errors import LensnetValueError
from lensnet.simulate.seeds import batch_seed
from lensnet.training.datamodule import SimulatedLensDataModule, TrainSeedStream


def test_stream_resumed_at_step_k_continues_the_uninterrupted_one():
    full = list(itertools.islice(TrainSeedStream(7, rank=0), 12))
    resumed = list(itertools.islice(TrainSeedStream(7, rank=0, start_step=5), 7))
    assert resumed == full[5:]
    other_rank = list(itertools.islice(TrainSeedStream(7, rank=1), 12))
    assert not set(full) & set(other_rank)


def test_fixed_sets_are_reproducible_and_disjoint_from_training(toy_simulator_cls):
    built = []

    def factory(device, split):
        built.append((split, toy_simulator_cls(device)))
        return built[-1][1]

    modules = [SimulatedLensDataModule(factory, batch_size=16, seed=5, num_val=40, num_test=24)
               for _ in range(2)]
    for dm in modules:
        dm.setup("fit")
        dm.setup("test")
    images, targets = modules[0].val_set.tensors
    assert images.shape == (40, 1, 32, 32) and targets.shape == (40, 5)
    for a, b in zip(modules[0].val_set.tensors + modules[0].test_set.tensors,
                    modules[1].val_set.tensors + modules[1].test_set.tensors):
        assert torch.equal(a, b)
    assert [split for split, _ in built] == ["train", "val", "test"] * 2  # one simulator per split
    fixed_seeds = {seed for split, sim in built[:3] for seed in sim.seeds_seen}
    train_seeds = {batch_seed(5, step, "train", rank) for step in range(2000) for rank in range(2)}
    assert len(fixed_seeds) == 3 + 2 and not fixed_seeds & train_seeds


def test_training_batches_and_target_statistics(toy_factory):
    dm = SimulatedLensDataModule(toy_factory, batch_size=500, seed=1, num_stats=4000)
    with pytest.raises(LensnetValueError, match="setup"):
        dm.simulate_batch(0)
    dm.setup("fit")
    images, targets = dm.simulate_batch(123)
    assert images.shape == (500, 1, 32, 32) and targets.shape == (500, 5)
    assert torch.equal(dm.simulate_batch(123)[0], images)
    stats = dm.sample_stats()
    assert stats.image_shape == (1, 32, 32)
    # The toy prior: theta_E ~ U[0.4, 1.1], centres ~ U[-0.3, 0.3].
    assert stats.mean[0] == pytest.approx(0.75, abs=0.01)
    assert stats.std[0] == pytest.approx(0.7 / math.sqrt(12), rel=0.03)
    assert stats.std[3] == pytest.approx(0.6 / math.sqrt(12), rel=0.03)
