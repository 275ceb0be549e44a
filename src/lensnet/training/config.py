"""The configuration of a training run: one typed dataclass, loaded from YAML or TOML.

Every field has a type, a default and a one-line description (``TrainConfig.describe()``, used for
``--help`` and ``--print-config``). Construction checks ranges; :meth:`TrainConfig.from_dict` and
:func:`load_config` also check types and reject unknown fields, with a
:class:`~lensnet.errors.LensnetConfigError` naming the field. The resolved
config (model name, precision and devices filled in) is written as ``config.yaml`` in the output
directory, next to the checkpoints, by :func:`lensnet.training.train.run_training`.

Defaults follow Hezaveh et al. 2017 where the paper fixes a value (batch 50, a fresh simulated batch
every step); the paper's optimiser (SGD on the mean squared error) is available with
``optimizer: sgd`` and ``loss: mse``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lensnet.configfile import from_dict, read_config_file
from lensnet.errors import LensnetConfigError

__all__ = ["TrainConfig", "load_config", "save_config"]


def _f(default, help: str, min=None, max=None, min_open=False):
    """A dataclass field carrying its description and allowed range in ``metadata``."""
    meta = {"help": help, "min": min, "max": max, "min_open": min_open}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (see the module docstring; ``describe()`` lists every field)."""

    model: str | None = _f(None, "network name in lensnet.networks.list_models(); None: DEFAULT_MODEL")
    model_kwargs: dict = _f({}, "extra keyword arguments of create_model, e.g. {drop_rate: 0.1}")
    simulation: str = _f("paper", "simulation preset: paper, hst-acs or tiny (lensnet.simulate.config)")
    simulation_overrides: dict = _f({}, "fields of the preset's SimulationConfig to change (nested dict)")
    batch_size: int = _f(50, "lenses per step and device (the paper: 50)", min=1)
    lr: float = _f(1e-3, "peak learning rate", min=0.0, min_open=True)
    optimizer: Literal["adamw", "sgd"] = _f("adamw", "adamw, or sgd with momentum as in the paper")
    momentum: float = _f(0.9, "SGD momentum (sgd only)", min=0.0, max=1.0)
    weight_decay: float = _f(1e-4, "decoupled weight decay of weights (not biases or norms)", min=0.0)
    schedule: Literal["cosine", "onecycle", "constant"] = _f("cosine", "learning-rate schedule over max_steps")
    warmup_steps: int = _f(0, "linear warm-up steps of the cosine schedule", min=0)
    loss: Literal["auto", "gaussian_nll", "mse"] = _f(
        "auto", "gaussian_nll (variance models), mse (the paper's); auto picks by the model")
    gradient_clip: float = _f(0.0, "clip the gradient norm to this value; 0: no clipping", min=0.0)
    max_steps: int = _f(100_000, "optimizer steps in total", min=1)
    val_every_n_steps: int = _f(1000, "validate every this many steps", min=1)
    checkpoint_every_n_steps: int = _f(1000, "write checkpoints/last.ckpt every this many steps", min=1)
    log_every_n_steps: int = _f(50, "write training metrics every this many steps", min=1)
    num_val: int = _f(1000, "lenses in the fixed validation set", min=1)
    num_test: int = _f(1000, "lenses in the fixed test set (the paper reports 10,000)", min=1)
    num_stats: int = _f(1000, "lenses simulated to standardise the targets", min=2)
    seed: int = _f(0, "seed of weights, training stream and validation/test sets", min=0)
    precision: Literal["auto", "32-true", "64-true", "16-mixed", "bf16-mixed"] = _f(
        "auto", "auto: bf16-mixed (or 16-mixed) on GPU, 32-true on CPU")
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = _f("auto", "Lightning accelerator")
    devices: int | str = _f("auto", "devices per node: a count or 'auto'; > 1 trains with DDP", min=1)
    num_nodes: int = _f(1, "machines; devices * num_nodes > 1 trains with DDP", min=1)
    output_dir: str = _f("runs/lensnet", "folder for config.yaml, checkpoints/ and logs")
    init_from: str | None = _f(None, "checkpoint whose weights and target scaling start this run (fine-tuning); "
                                     "optimizer and schedule start afresh")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_value(f, getattr(self, f.name))

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name to its one-line description, in declaration order."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping; unknown fields and wrong types raise an error naming the field."""
        if not isinstance(values, dict):
            raise LensnetConfigError(f"a training config must be a mapping of fields, got {values!r}")
        return from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (YAML/TOML-serialisable)."""
        return dataclasses.asdict(self)

    def with_overrides(self, **overrides) -> "TrainConfig":
        """A copy with the given fields replaced; ``None`` values are ignored (unset CLI options)."""
        return self.from_dict({**self.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


def load_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.yaml``/``.yml`` or ``.toml`` file.

    Fields not in the file keep their defaults.

    Raises
    ------
    LensnetIOError
        If the file does not exist.
    LensnetConfigError
        If the file cannot be parsed, has an unknown field, or a field of the wrong type or range;
        the message names the file and the field.
    """
    try:
        return TrainConfig.from_dict(read_config_file(path))
    except LensnetConfigError as exc:
        message = str(exc)
        raise LensnetConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (readable again by :func:`load_config`) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def _check_value(f: dataclasses.Field, value) -> None:
    """Raise LensnetConfigError naming ``f`` if ``value`` is outside the field's range (or not a mapping)."""
    lo, hi, open_lo = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("min_open")
    if f.type in ("dict", dict) and not isinstance(value, dict):
        raise LensnetConfigError(f"{f.name} = {value!r}: expected a mapping of names to values")
    if f.name == "devices" and isinstance(value, str) and value != "auto":
        raise LensnetConfigError(f"devices = {value!r}: expected a positive count or 'auto'")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (lo is not None and (value <= lo if open_lo else value < lo)) or (hi is not None and value > hi):
        bound = (f"> {lo}" if open_lo else f">= {lo}") + (f" and <= {hi}" if hi is not None else "")
        raise LensnetConfigError(f"{f.name} = {value!r}: expected a number {bound}")
