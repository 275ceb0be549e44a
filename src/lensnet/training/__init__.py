"""Training on lenses simulated on the fly (Lightning), checkpoints, export, and fitting the combined network.

:func:`run_training` is the library call behind ``lensnet train``; :class:`TrainConfig` its settings;
:class:`LensRegressor` the Lightning system around a :class:`~lensnet.inference.LensPredictor`;
:class:`SimulatedLensDataModule` the on-the-fly data; :func:`read_checkpoint` everything that reads
a checkpoint; :func:`export_model` turns one into a shipped model; :func:`fit_combined_network`
fits the paper's combination of several trained networks.
"""

import importlib

# Submodules load on first use (PEP 562), so that reading a TrainConfig (``lensnet train --help``)
# does not import Lightning.
_EXPORTS = {
    "CHECKPOINT_KEY": "checkpoint", "TrainingCheckpoint": "checkpoint", "read_checkpoint": "checkpoint",
    "fit_combination": "combine", "fit_combined_network": "combine",
    "TrainConfig": "config", "load_config": "config", "save_config": "config",
    "PresetSimulatorFactory": "datamodule", "SimulatedLensDataModule": "datamodule",
    "export_model": "export", "LensRegressor": "module", "TrainResult": "train", "run_training": "train",
}

__all__ = [
    "CHECKPOINT_KEY",
    "LensRegressor",
    "PresetSimulatorFactory",
    "SimulatedLensDataModule",
    "TrainConfig",
    "TrainResult",
    "TrainingCheckpoint",
    "export_model",
    "fit_combination",
    "fit_combined_network",
    "load_config",
    "read_checkpoint",
    "run_training",
    "save_config",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
