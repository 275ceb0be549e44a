"""Lenses simulated on the fly for training, and fixed seeded validation and test sets.

As in Hezaveh et al. 2017, every training step sees a freshly simulated batch, so no image is
seen twice. The design, chosen so that resuming and DDP need no state of their own:

- The training dataloader yields only **batch seeds**, plain integers
  ``batch_seed(seed, step, "train", rank)``: a hash of the config seed, the global step and the
  DDP rank. Each step's data is therefore fresh, different on every rank, and the same again when
  a run is resumed at that step (the stream starts at ``trainer.global_step``, which Lightning
  has restored from the checkpoint before it asks for the dataloader).
- The images are simulated in :meth:`SimulatedLensDataModule.on_after_batch_transfer`, on the
  training device, by a simulator built there in :meth:`~SimulatedLensDataModule.setup`: nothing
  crosses the host-device bus and no dataloader workers are needed.
- Validation and test sets are simulated once in ``setup``, from the seed streams ``"val"`` and
  ``"test"``; training, validation, test and the standardisation sample use four different
  streams, so their seeds are disjoint (up to a 2^-40 chance per pair of batch seeds). As in the
  paper, they are also drawn from source galaxies never used in training: the simulator of each
  set is built for its own split of the real-galaxy bank.

A simulator is any object with ``simulate(batch_size: int, seed: int)`` returning a batch with
``images`` (B, C, H, W) float and ``targets`` (B, 5) in :data:`lensnet.PARAM_NAMES` order, such
as :class:`lensnet.simulate.simulator.LensSimulator`. The data module takes a factory
``(device, split) -> simulator``, split being ``"train"``, ``"val"`` or ``"test"``, so that each
DDP process builds its own simulators on its own device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from lensnet.errors import LensnetValueError
from lensnet.simulate.config import SimulationConfig, get_preset
from lensnet.simulate.seeds import batch_seed
from lensnet.simulate.simulator import LensSimulator

__all__ = [
    "SimulatorLike",
    "SimulatorFactory",
    "SampleStats",
    "PresetSimulatorFactory",
    "SimulatedLensDataModule",
    "TrainSeedStream",
]

class SimulatorLike(Protocol):
    def simulate(self, batch_size: int, seed: int):
        """Return a batch with ``images`` (B, C, H, W) and ``targets`` (B, 5), deterministic in ``seed``."""


#: ``(device, split) -> simulator``, split one of "train", "val", "test".
SimulatorFactory = Callable[[torch.device, str], SimulatorLike]


@dataclass(frozen=True)
class SampleStats:
    """Per-parameter mean and standard deviation of the targets, and the image shape (C, H, W)."""

    mean: torch.Tensor
    std: torch.Tensor
    image_shape: tuple[int, int, int]


class PresetSimulatorFactory:
    """Builds :class:`~lensnet.simulate.simulator.LensSimulator` for a preset with overrides.

    The simulator of split ``"val"`` or ``"test"`` draws real galaxies from that split of the
    bank (``source.split``), unless the config uses every galaxy (``source.split: all``).

    Parameters
    ----------
    preset : str
        Name for :func:`lensnet.simulate.config.get_preset` ('paper', 'hst-acs', 'tiny').
    overrides : dict
        Fields of the preset's ``SimulationConfig`` to change (nested dicts are merged into it).
    """

    def __init__(self, preset: str, overrides: dict | None = None):
        self.preset, self.overrides = preset, dict(overrides or {})

    def config(self):
        """The resolved ``SimulationConfig``: the preset with the overrides merged in."""
        return SimulationConfig.from_dict(self.overrides, base=get_preset(self.preset))

    def __call__(self, device: torch.device, split: str = "train") -> SimulatorLike:
        return LensSimulator(self.config().for_split(split), device=device)


class TrainSeedStream(IterableDataset):
    """Endless stream of the training batch seeds of one rank, from ``start_step`` on."""

    def __init__(self, seed: int, rank: int = 0, start_step: int = 0):
        self.seed, self.rank, self.start_step = seed, rank, start_step

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            yield batch_seed(self.seed, step, "train", self.rank)
            step += 1


class SimulatedLensDataModule(L.LightningDataModule):
    """Training batches simulated on the fly on the training device, fixed validation/test sets.

    Parameters
    ----------
    simulator_factory : callable
        ``(device, split) -> simulator`` (see the module docstring), e.g. :class:`PresetSimulatorFactory`.
    batch_size : int
        Lenses per step and device [50, as in the paper].
    seed : int
        Seed of every stream [0].
    num_val, num_test : int
        Sizes of the fixed validation and test sets [1000].
    num_stats : int
        Lenses simulated (on the CPU) by :meth:`sample_stats` [1000].
    """

    def __init__(self, simulator_factory: SimulatorFactory, batch_size: int = 50,
                 seed: int = 0, num_val: int = 1000, num_test: int = 1000, num_stats: int = 1000):
        super().__init__()
        self.simulator_factory = simulator_factory
        self.batch_size, self.seed = batch_size, seed
        self.num_val, self.num_test, self.num_stats = num_val, num_test, num_stats
        self.simulator: SimulatorLike | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None
        self._stats: SampleStats | None = None

    def sample_stats(self) -> SampleStats:
        """Target mean and std (population std, per parameter) of ``num_stats`` seeded lenses.

        Simulated once on the CPU from the ``"stats"`` stream and cached; called before the model is
        built, since the model stores these to de-standardise its predictions.
        """
        if self._stats is None:
            images, targets = self._simulate_set(self.simulator_factory(torch.device("cpu"), "train"), "stats",
                                                 self.num_stats)
            targets = targets.double()
            self._stats = SampleStats(targets.mean(0).float(), targets.std(0, unbiased=False).float(),
                                      tuple(images.shape[1:]))
        return self._stats

    def setup(self, stage: str) -> None:
        """Build the training simulator on this process's device and the fixed set(s) of ``stage``."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if stage == "fit" and self.simulator is None:
            self.simulator = self.simulator_factory(device, "train")
        if stage in ("fit", "validate") and self.val_set is None:
            self.val_set = TensorDataset(*self._simulate_set(self.simulator_factory(device, "val"), "val",
                                                             self.num_val))
        if stage == "test" and self.test_set is None:
            self.test_set = TensorDataset(*self._simulate_set(self.simulator_factory(device, "test"), "test",
                                                              self.num_test))

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return DataLoader(TrainSeedStream(self.seed, rank, start), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Turn a training batch seed into (images, targets) simulated on the training device."""
        if self.trainer is not None and self.trainer.training:
            return self.simulate_batch(int(batch))
        return batch

    def simulate_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) and targets (B, 5) of one training batch seed (``setup`` first)."""
        if self.simulator is None:
            raise LensnetValueError("call setup('fit') before simulate_batch(): the simulator is built there")
        batch = self.simulator.simulate(self.batch_size, seed)
        return batch.images, batch.targets

    def _simulate_set(self, simulator: SimulatorLike, stream: str, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` lenses from ``stream`` in chunks of ``batch_size`` (chunk i has seed i of the stream)."""
        images, targets = [], []
        for i, start in enumerate(range(0, num, self.batch_size)):
            batch = simulator.simulate(min(self.batch_size, num - start), batch_seed(self.seed, i, stream))
            images.append(batch.images)
            targets.append(batch.targets)
        return torch.cat(images), torch.cat(targets)

