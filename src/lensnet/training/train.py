"""Train a network on lenses simulated on the fly: the library call behind ``lensnet train``.

:func:`run_training` builds the network from the registry, the data module and a Lightning
Trainer, and trains for ``max_steps`` steps, writing into ``output_dir``::

    config.yaml            the resolved TrainConfig (readable by load_config)
    simulation.yaml        the resolved SimulationConfig (preset plus overrides)
    checkpoints/last.ckpt  every checkpoint_every_n_steps steps and at the end
    checkpoints/best.ckpt  lowest val_loss so far
    checkpoints/interrupted.ckpt  written on Ctrl-C or SIGTERM (removed when a run completes)
    logs/, tensorboard/    CSV and TensorBoard metrics

Ctrl-C (KeyboardInterrupt) and SIGTERM stop training cleanly after saving ``interrupted.ckpt``;
``resume="last"`` continues from the newer of that and ``last.ckpt``. A resumed run is the same
run: weights, optimiser, schedule and step come from the checkpoint, the data of each step is a
function of (seed, step, rank) (see :mod:`lensnet.training.datamodule`), and the global torch
generator, used by dropout, is reseeded from (seed, step, rank) at every step.

With ``devices * num_nodes > 1`` training uses DDP (gloo on CPU, NCCL on GPU); ``batch_size`` is per
device. On GPU, ``precision='auto'`` trains in bf16 (or fp16) mixed precision.
"""

from __future__ import annotations

import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import (Callback, EMAWeightAveraging, LearningRateMonitor, ModelCheckpoint,
                                         OnExceptionCheckpoint, TQDMProgressBar)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lensnet import __version__
from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetConfigError, LensnetIOError
from lensnet.inference import LensPredictor, load_pretrained
from lensnet.networks import DEFAULT_MODEL, create_model
from lensnet.simulate.seeds import batch_seed
from lensnet.training.checkpoint import CHECKPOINT_KEY, read_checkpoint
from lensnet.training.config import TrainConfig, save_config
from lensnet.training.datamodule import PresetSimulatorFactory, SimulatedLensDataModule, SimulatorFactory
from lensnet.training.module import LensRegressor

__all__ = ["TrainResult", "run_training", "resolve_config", "find_resume_checkpoint"]
#: Warnings that do not apply: data is simulated on the device without loader workers, resuming is
#: explicit (Lightning would otherwise resume from any checkpoint it finds), DDP pads the test set
#: with at most world_size - 1 repeated lenses (negligible in the metrics), Lightning/torch deprecations.
_IGNORED_WARNINGS = (r".*does not have many workers.*", r".*ckpt_path.*", r".*exists and is not empty.*",
                     r".*DistributedSampler.*",
                     r".*isinstance\(treespec, LeafSpec\).*", r".*all_gather is deprecated.*")


@dataclass
class TrainResult:
    """What :func:`run_training` leaves: the trained module, where it wrote, and how it ended.

    Attributes
    ----------
    module : LensRegressor
        The trained system (on the training device); ``module(images)`` predicts.
    config : TrainConfig
        The resolved config, as written to ``output_dir/config.yaml``.
    output_dir : Path
        Folder of the run.
    checkpoint : Path or None
        ``interrupted.ckpt`` if interrupted, else ``last.ckpt``.
    global_step : int
        Optimiser steps done.
    interrupted : bool
        Whether Ctrl-C or SIGTERM stopped the run (resume it with ``resume='last'``).
    metrics : dict of str to float
        Test-set metrics (``test_loss``, ``test_err68/<param>``, ...) of a completed run.
    """

    module: LensRegressor
    config: TrainConfig
    output_dir: Path
    checkpoint: Path | None
    global_step: int
    interrupted: bool
    metrics: dict[str, float]


def run_training(config: TrainConfig, resume: str | None = None, devices: int | str | None = None,
                 num_nodes: int | None = None, *,
                 simulator_factory: SimulatorFactory | None = None,
                 callbacks: Sequence[Callback] = (), enable_progress_bar: bool = True) -> TrainResult:
    """Train ``config.model`` on lenses simulated on the fly; test it on the fixed test set at the end.

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    resume : str, optional
        A checkpoint path, or ``'last'`` for the newest checkpoint in ``output_dir/checkpoints``.
    devices, num_nodes : optional
        Override ``config.devices`` / ``config.num_nodes``.
    simulator_factory : callable, optional
        ``(device, split) -> simulator`` replacing the config's preset (custom simulators, tests);
        see :mod:`lensnet.training.datamodule`.
    callbacks : sequence of Callback
        Extra Lightning callbacks.
    enable_progress_bar : bool
        Show the progress bar with the running loss.

    Returns
    -------
    TrainResult

    Raises
    ------
    LensnetIOError
        If ``resume`` names no checkpoint, or if not resuming and ``output_dir`` already holds
        checkpoints (a new run never overwrites an old one).
    LensnetValueError
        If the model name is unknown or the loss does not fit the model.
    """
    config = resolve_config(config.with_overrides(devices=devices, num_nodes=num_nodes))
    out = Path(config.output_dir)
    ckpt_path = find_resume_checkpoint(out / "checkpoints", resume) if resume else None
    if ckpt_path is None and any((out / "checkpoints").glob("*.ckpt")):
        raise LensnetIOError(f"{out / 'checkpoints'} already holds checkpoints: resume with resume='last' "
                             "or choose another output_dir")
    if ckpt_path is not None:
        read_checkpoint(ckpt_path)  # an unreadable checkpoint stops the run before anything is written
    # A resumed run restores its own weights; a new one may start from another run's.
    start = _starting_point(config.init_from) if config.init_from is not None and ckpt_path is None else None
    if start is not None and start.model_name != config.model:
        raise LensnetConfigError(f"init_from = {config.init_from!r} holds a {start.model_name!r} "
                                 f"network, but model = {config.model!r}")
    factory = simulator_factory or PresetSimulatorFactory(config.simulation, config.simulation_overrides)
    data = SimulatedLensDataModule(factory, batch_size=config.batch_size, seed=config.seed, num_val=config.num_val,
                                   num_test=config.num_test, num_stats=config.num_stats)
    stats = data.sample_stats()
    with torch.random.fork_rng(devices=[]):  # reproducible initial weights, global state untouched
        torch.manual_seed(config.seed)
        backbone = create_model(config.model, in_chans=stats.image_shape[0], num_outputs=len(PARAM_NAMES),
                                **config.model_kwargs)
    target_mean, target_std = stats.mean.tolist(), stats.std.tolist()
    start_model = start.predictor if start is not None else None
    if start_model is not None:
        # The head was trained against the start's target scaling: keep it so its outputs keep their meaning.
        target_mean, target_std = start_model.target_mean.tolist(), start_model.target_std.tolist()
    module = LensRegressor(backbone, lr=config.lr, optimizer=config.optimizer, momentum=config.momentum,
                           weight_decay=config.weight_decay, schedule=config.schedule,
                           warmup_steps=config.warmup_steps, loss=config.loss, beta=config.beta,
                           channels_last=config.channels_last,
                           target_mean=target_mean, target_std=target_std)
    if start_model is not None:
        try:
            module.model.backbone.load_state_dict(start_model.backbone.state_dict())
        except RuntimeError as exc:
            raise LensnetConfigError(f"init_from = {config.init_from!r}: its network does not match model_kwargs "
                                     f"{config.model_kwargs}: {str(exc).splitlines()[0]}") from None
    info = {"train_config": config.to_dict(), "in_chans": stats.image_shape[0], "lensnet_version": __version__,
            "simulation": _simulation_dict(factory),
            "earlier_stages": start.stages if start is not None else []}
    trainer = _make_trainer(config, info, callbacks, enable_progress_bar)
    if trainer.is_global_zero:
        save_config(config, out / "config.yaml")
        if info["simulation"] is not None:
            (out / "simulation.yaml").write_text(yaml.safe_dump(info["simulation"], sort_keys=False))
    interrupted, metrics = False, {}
    sigint = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings():
        for message in _IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        try:
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        except SystemExit:  # Lightning's exit after saving interrupted.ckpt on Ctrl-C or SIGTERM
            if not trainer.interrupted:
                raise
            interrupted = True
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, sigint)  # Lightning leaves Ctrl-C ignored
        if not interrupted:
            results = trainer.test(module, datamodule=data, verbose=False)
            metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    final = Path(trainer.checkpoint_callback.last_model_path or out / "checkpoints" / "last.ckpt")
    if interrupted:
        final = out / "checkpoints" / "interrupted.ckpt"
    return TrainResult(module, config, out, final if final.is_file() else None, trainer.global_step,
                       interrupted, metrics)


@dataclass
class _StartingPoint:
    """What ``init_from`` gives a run: the network's name, its trained predictor, the stages that made it."""

    model_name: str
    predictor: LensPredictor
    stages: list


def _starting_point(init_from: str) -> _StartingPoint:
    """A training checkpoint's, or with ``pretrained:NAME`` a shipped model's, weights and history."""
    if init_from.startswith("pretrained:"):
        predictor = load_pretrained(init_from.split(":", 1)[1])
        card = predictor.card
        return _StartingPoint(card["model"]["name"], predictor, list((card.get("training") or {}).get("stages", [])))
    start = read_checkpoint(init_from)
    return _StartingPoint(start.train_config["model"], start.regressor().model, start.stages())


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill in what 'auto'/None stand for: the default model and the precision for the accelerator."""
    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise LensnetConfigError(f"accelerator = {config.accelerator!r}: this torch ({torch.__version__}) sees no "
                                 "CUDA GPU; use accelerator 'cpu' or 'auto'")
    precision = config.precision
    if precision == "auto":
        gpu = torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")
        precision = ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if gpu else "32-true"
    return config.with_overrides(model=config.model or DEFAULT_MODEL, precision=precision)


def find_resume_checkpoint(ckpt_dir: str | Path, resume: str) -> Path:
    """The checkpoint ``resume`` names: a path, or ``'last'`` for the latest one in ``ckpt_dir``.

    ``'last'`` considers ``last*.ckpt`` and ``interrupted.ckpt`` and takes the one of the highest
    training step (the newest file among equals): a checkpoint of an earlier step never wins over a
    later one, whatever the files' times.

    Raises
    ------
    LensnetIOError
        If there is no such checkpoint, or one of the candidates cannot be read.
    """
    ckpt_dir = Path(ckpt_dir)
    if resume != "last":
        return read_checkpoint(resume).path
    found = sorted({*ckpt_dir.glob("last*.ckpt"), *ckpt_dir.glob("interrupted.ckpt")})
    if not found:
        raise LensnetIOError(f"resume='last': no last.ckpt or interrupted.ckpt in {ckpt_dir}")
    return max(found, key=lambda p: (read_checkpoint(p).global_step, p.stat().st_mtime))


def _make_trainer(config: TrainConfig, info: dict, callbacks: Sequence[Callback],
                  enable_progress_bar: bool) -> L.Trainer:
    out = Path(config.output_dir)
    ckpt_dir = out / "checkpoints"
    # The run is one endless epoch; validating on the epoch-local batch count (check_val_every_n_epoch=1)
    # keeps the schedule after a resume, where Lightning's total count is one ahead.
    return L.Trainer(
        max_steps=config.max_steps, max_epochs=-1, val_check_interval=config.val_every_n_steps,
        check_val_every_n_epoch=1, log_every_n_steps=config.log_every_n_steps,
        accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
        strategy=_strategy(config), precision=config.precision,
        gradient_clip_val=config.gradient_clip or None, default_root_dir=out,
        enable_progress_bar=enable_progress_bar,
        logger=[CSVLogger(out, name="logs"), TensorBoardLogger(out, name="tensorboard")],
        callbacks=[
            ModelCheckpoint(ckpt_dir, every_n_train_steps=config.checkpoint_every_n_steps, save_top_k=0,
                            save_last=True),
            ModelCheckpoint(ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1),
            _InterruptedCheckpoint(ckpt_dir, filename="interrupted"),
            LearningRateMonitor(logging_interval="step"),
            _ReseedEachStep(config.seed),
            _StoreInCheckpoint(info),
            # The average's weights are what validation, test, the checkpoints' state_dict and export see.
            *([EMAWeightAveraging(decay=config.ema_decay)] if config.ema_decay > 0 else []),
            *([_RunProgressBar()] if enable_progress_bar else []),
            *callbacks,
        ],
    )


class _RunProgressBar(TQDMProgressBar):
    """Steps done out of ``max_steps``, also after a resume.

    Lightning sets the bar's total and description in ``on_train_epoch_start``, which a run resumed in the
    middle of its (single, endless) epoch never calls; without this the resumed bar reads "Training: 5022/?".
    """

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self.train_progress_bar.total = trainer.max_steps
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch}")


class _InterruptedCheckpoint(OnExceptionCheckpoint):
    """``interrupted.ckpt`` on Ctrl-C, SIGTERM or an error, unless no step was trained: a run that failed
    while starting (a checkpoint it could not restore, say) leaves nothing that ``--resume last`` could
    mistake for progress."""

    def on_exception(self, trainer, *args, **kwargs):
        if trainer.global_step > 0:
            super().on_exception(trainer, *args, **kwargs)


class _ReseedEachStep(Callback):
    """Seed the global torch generator (dropout) from (seed, step, rank) so resumed runs match."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.manual_seed(batch_seed(self.seed, trainer.global_step, "dropout", trainer.global_rank))


class _StoreInCheckpoint(Callback):
    """Put the resolved config and provenance into every checkpoint under :data:`CHECKPOINT_KEY`."""

    def __init__(self, info: dict):
        self.info = info

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint[CHECKPOINT_KEY] = self.info


def _strategy(config: TrainConfig) -> str:
    world = config.devices * config.num_nodes if isinstance(config.devices, int) else config.num_nodes
    return "ddp" if world > 1 else "auto"


def _simulation_dict(factory) -> dict | None:
    config = getattr(factory, "config", None)
    return config().to_dict() if callable(config) else None
