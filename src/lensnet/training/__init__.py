"""Training on lenses simulated on the fly (Lightning), and the combined network.

:func:`run_training` is the library call behind ``lensnet train``; :class:`TrainConfig` its settings;
:class:`LensRegressor` the Lightning system around a network from :mod:`lensnet.networks`;
:class:`SimulatedLensDataModule` the on-the-fly data; :class:`CombinedNetwork` the paper's
combination of several trained networks.
"""

from lensnet.training.combine import CombinedNetwork, fit_combination, fit_combined_network
from lensnet.training.config import TrainConfig, load_config, save_config
from lensnet.training.datamodule import PresetSimulatorFactory, SimulatedLensDataModule, batch_seed
from lensnet.training.module import LensRegressor, error68
from lensnet.training.train import TrainResult, load_regressor, run_training

__all__ = [
    "CombinedNetwork",
    "LensRegressor",
    "PresetSimulatorFactory",
    "SimulatedLensDataModule",
    "TrainConfig",
    "TrainResult",
    "batch_seed",
    "error68",
    "fit_combination",
    "fit_combined_network",
    "load_config",
    "load_regressor",
    "run_training",
    "save_config",
]
