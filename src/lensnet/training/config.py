"""The configuration of a training run: one typed dataclass, loaded from YAML or TOML.

Every field is declared with :func:`lensnet.configfile.setting`: a type, a default, an allowed
range and a one-line description (``TrainConfig.describe()``), from which the options of
``lensnet train`` are generated. Construction checks types and ranges; :meth:`TrainConfig.from_dict`
and :func:`load_config` also reject unknown fields, with a :class:`~lensnet.errors.LensnetConfigError`
naming the file, the field and the allowed range. The resolved
config (model name, precision and devices filled in) is written as ``config.yaml`` in the output
directory, next to the checkpoints, by :func:`lensnet.training.train.run_training`.

Defaults follow Hezaveh et al. 2017 where the paper fixes a value (batch 50, a fresh simulated batch
every step); the paper's optimiser (SGD on the mean squared error) is available with
``optimizer: sgd`` and ``loss: mse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from lensnet.configfile import Config, load_config_file, setting
from lensnet.io.atomic import atomic_output
from lensnet.simulate.config import PRESETS

__all__ = ["TrainConfig", "load_config", "save_config"]


@dataclass(frozen=True)
class TrainConfig(Config):
    """Settings of one training run (see the module docstring; ``describe()`` lists every field)."""

    model: str | None = setting(None, "network name in lensnet.networks.list_models(); None: DEFAULT_MODEL")
    model_kwargs: dict = setting({}, "extra keyword arguments of create_model, e.g. {drop_rate: 0.1}")
    simulation: str = setting("paper", "simulation preset (lensnet.simulate.config.PRESETS)", choices=tuple(PRESETS))
    simulation_overrides: dict = setting({}, "fields of the preset's SimulationConfig to change (nested dict)")
    batch_size: int = setting(50, "lenses per step and device (the paper: 50)", min=1)
    lr: float = setting(1e-3, "peak learning rate", min=0.0, min_open=True)
    optimizer: Literal["adamw", "sgd"] = setting("adamw", "adamw, or sgd with momentum as in the paper")
    momentum: float = setting(0.9, "SGD momentum (sgd only)", min=0.0, max=1.0)
    weight_decay: float = setting(1e-4, "decoupled weight decay of weights (not biases or norms)", min=0.0)
    schedule: Literal["cosine", "onecycle", "constant"] = setting("cosine", "learning-rate schedule over max_steps")
    warmup_steps: int = setting(0, "linear warm-up steps of the cosine schedule", min=0)
    loss: Literal["auto", "gaussian_nll", "beta_nll", "mse"] = setting(
        "auto", "gaussian_nll or beta_nll (variance models), mse (the paper's); auto picks by the model")
    beta: float = setting(0.5, "beta of the beta_nll loss: 0 is gaussian_nll, 1 weighs residuals like mse",
                          min=0.0, max=1.0)
    ema_decay: float = setting(0.0, "decay per step of an exponential moving average of the weights, used for "
                                    "validation, test and the exported model; 0: no average", min=0.0, max=1.0,
                               max_open=True)
    channels_last: bool = setting(False, "train in channels-last memory layout (faster convolutions on CPUs)")
    gradient_clip: float = setting(0.0, "clip the gradient norm to this value; 0: no clipping", min=0.0)
    max_steps: int = setting(100_000, "optimizer steps in total", min=1)
    val_every_n_steps: int = setting(1000, "validate every this many steps", min=1)
    checkpoint_every_n_steps: int = setting(1000, "write checkpoints/last.ckpt every this many steps", min=1)
    log_every_n_steps: int = setting(50, "write training metrics every this many steps", min=1)
    num_val: int = setting(1000, "lenses in the fixed validation set", min=1)
    num_test: int = setting(1000, "lenses in the fixed test set (the paper reports 10,000)", min=1)
    num_stats: int = setting(1000, "lenses simulated to standardise the targets", min=2)
    seed: int = setting(0, "seed of weights, training stream and validation/test sets", min=0)
    precision: Literal["auto", "32-true", "64-true", "16-mixed", "bf16-mixed"] = setting(
        "auto", "auto: bf16-mixed (or 16-mixed) on GPU, 32-true on CPU")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = setting("auto", "Lightning accelerator")
    devices: int | str = setting("auto", "devices per node: a count or 'auto'; > 1 trains with DDP", min=1,
                                 choices=("auto",))
    num_nodes: int = setting(1, "machines; devices * num_nodes > 1 trains with DDP", min=1)
    output_dir: str = setting("runs/lensnet", "folder for config.yaml, checkpoints/ and logs")
    init_from: str | None = setting(None, "checkpoint, or 'pretrained:NAME' for a shipped model, whose weights and "
                                     "target scaling start this run (fine-tuning); optimizer and schedule start "
                                     "afresh")

    def with_overrides(self, **overrides) -> "TrainConfig":
        """A copy with the given fields replaced; ``None`` values are ignored (unset CLI options)."""
        return self.from_dict({k: v for k, v in overrides.items() if v is not None}, base=self)


def load_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.yaml``/``.yml`` or ``.toml`` file.

    Fields not in the file keep their defaults.

    Raises
    ------
    LensnetIOError
        If the file does not exist.
    LensnetConfigError
        If the file cannot be parsed, has an unknown field, or a field of the wrong type or range;
        the message names the file, the field and the allowed range.
    """
    return load_config_file(TrainConfig, path)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (readable again by :func:`load_config`), atomically, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
