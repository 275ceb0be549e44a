"""Everything that reads a training checkpoint, from one read of the file.

A checkpoint of :func:`lensnet.training.train.run_training` is Lightning's (``state_dict``,
``hyper_parameters``, ``global_step``, optimiser and loop state) plus, under :data:`CHECKPOINT_KEY`,
what lensnet needs to use it without its run folder: the resolved training config, the input bands,
the simulation config and the training stages it was initialised from (``init_from``).

:func:`read_checkpoint` reads and checks the file once; the :class:`TrainingCheckpoint` it returns
rebuilds the Lightning module (:meth:`~TrainingCheckpoint.regressor`), the predictor
(:meth:`~TrainingCheckpoint.predictor`), the list of training stages and the model card.
"""

from __future__ import annotations

import datetime
import inspect
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from lensnet import __version__
from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetIOError
from lensnet.inference.card import CARD_FORMAT, CARD_VERSION, card_image_size
from lensnet.inference.predictor import LensPredictor
from lensnet.networks import create_model
from lensnet.preprocess import normalize_images
from lensnet.training.module import LensRegressor

__all__ = ["CHECKPOINT_KEY", "TrainingCheckpoint", "read_checkpoint"]

#: Key under which checkpoints carry the resolved config, so they can be loaded without it.
CHECKPOINT_KEY = "lensnet"
#: Entries every lensnet training checkpoint has.
_REQUIRED = ("state_dict", "hyper_parameters", CHECKPOINT_KEY)


@dataclass(frozen=True)
class TrainingCheckpoint:
    """The contents of one training checkpoint (see :func:`read_checkpoint`)."""

    path: Path
    contents: dict

    @property
    def info(self) -> dict:
        """lensnet's entry: ``train_config``, ``in_chans``, ``simulation``, ``earlier_stages``, ``lensnet_version``."""
        return self.contents[CHECKPOINT_KEY]

    @property
    def train_config(self) -> dict:
        return self.info["train_config"]

    @property
    def global_step(self) -> int:
        return int(self.contents.get("global_step", 0))

    def regressor(self) -> LensRegressor:
        """The trained :class:`LensRegressor`, its network re-created from the registry, in eval mode.

        Raises
        ------
        LensnetIOError
            If the weights do not fit the network the checkpoint's config describes.
        """
        cfg = self.train_config
        backbone = create_model(cfg["model"], in_chans=self.info["in_chans"], num_outputs=len(PARAM_NAMES),
                                **cfg["model_kwargs"])
        module = LensRegressor(backbone, **self.contents["hyper_parameters"])
        try:
            module.load_state_dict(self.contents["state_dict"])
        except RuntimeError as exc:
            raise LensnetIOError(f"the weights in {self.path} do not fit its {cfg['model']!r} network: "
                                 f"{str(exc).splitlines()[0]}") from None
        return module.eval()

    def predictor(self, module: LensRegressor | None = None) -> LensPredictor:
        """The checkpoint's :class:`LensPredictor`, with its model card and input checks."""
        module = module if module is not None else self.regressor()
        card = self.card(module)
        model = module.model
        return LensPredictor(model.backbone, model.target_mean, model.target_std, model.residual_rms,
                             in_chans=card["model"]["in_chans"], image_size=card_image_size(card),
                             log_var_clamp=card["output"]["log_var_clamp"], card=card)

    def stages(self) -> list[dict]:
        """The training runs that made this checkpoint, oldest first: the stages it was initialised
        from, recorded at training time, followed by its own run.

        Each stage is a dict: checkpoint, seed, steps, batch_size, devices, num_training_images, lr, schedule.
        """
        cfg, steps = self.train_config, self.global_step
        world = _world_size(cfg)
        return [*self.info["earlier_stages"],
                {"checkpoint": str(self.path), "seed": cfg["seed"], "steps": steps, "batch_size": cfg["batch_size"],
                 "devices": world, "num_training_images": steps * cfg["batch_size"] * world, "lr": cfg["lr"],
                 "schedule": cfg["schedule"]}]

    def card(self, module: LensRegressor | None = None) -> dict:
        """The model card of this checkpoint, without the weights entry and the exporter's extras."""
        module = module if module is not None else self.regressor()
        info, cfg, sim = self.info, self.train_config, self.info.get("simulation")
        steps, world, stages = self.global_step, _world_size(cfg), self.stages()
        total_images = sum(stage["num_training_images"] for stage in stages)
        model = module.model
        variance = model.predicts_variance
        per_param = lambda values: {n: _finite(v) for n, v in zip(PARAM_NAMES, values.tolist())}  # noqa: E731
        norm_kwargs = {k: p.default for k, p in inspect.signature(normalize_images).parameters.items()
                       if p.default is not inspect.Parameter.empty and k != "masks"}
        return {
            "format": CARD_FORMAT,
            "format_version": CARD_VERSION,
            "name": f"{cfg['model']}@step{steps}",
            "description": f"{cfg['model']} trained on {total_images:,} lenses simulated "
                           f"with the {cfg['simulation']!r} preset",
            "notes": "",
            "lensnet_version": __version__,
            "trained_with_lensnet": info.get("lensnet_version"),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "parameters": list(PARAM_NAMES),
            "units": dict(zip(PARAM_NAMES, PARAM_UNITS)),
            "model": {"name": cfg["model"], "kwargs": cfg["model_kwargs"], "in_chans": info["in_chans"],
                      "num_outputs": len(PARAM_NAMES),
                      "num_parameters": sum(p.numel() for p in model.backbone.parameters())},
            "output": {"predicts_variance": variance,
                       "log_var_clamp": list(model.log_var_clamp) if variance else None,
                       "uncertainty": "exp(log_var / 2) * target_std, from the predicted standardised log-variance"
                                      if variance else "residual_rms: the RMS of the validation residuals"},
            "target_mean": per_param(model.target_mean),
            "target_std": per_param(model.target_std),
            "residual_rms": per_param(model.residual_rms),
            "input": {"image_shape": [info["in_chans"], sim["n_pix"], sim["n_pix"]] if sim else None,
                      "pixel_scale_arcsec": sim["pixel_scale"] if sim else None,
                      "normalization": "lensnet.preprocess.normalize_images",
                      "normalization_kwargs": norm_kwargs,
                      "axes": "x along columns, y along rows, origin at the image centre, row 0 at the bottom"},
            "simulation": {"preset": cfg["simulation"], "overrides": cfg["simulation_overrides"], "config": sim},
            "training": {"seed": cfg["seed"], "steps": steps, "batch_size": cfg["batch_size"], "devices": world,
                         "num_training_images": steps * cfg["batch_size"] * world,
                         "optimizer": cfg["optimizer"], "lr": cfg["lr"], "schedule": cfg["schedule"],
                         "loss": module.loss_name, "precision": cfg["precision"], "checkpoint": self.path.name,
                         "stages": stages, "num_training_images_all_stages": total_images,
                         "hardware": None, "training_time_s": None, "config": cfg},
            "evaluation": None,
        }


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> TrainingCheckpoint:
    """Read a lensnet training checkpoint.

    Raises
    ------
    LensnetIOError
        If the file is missing, truncated or corrupt, or not a lensnet training checkpoint; the
        message is one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise LensnetIOError(f"checkpoint {path} does not exist")
    try:
        contents = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise LensnetIOError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
        # torch's own message suggests weights_only=False, which would run whatever the file holds.
        raise LensnetIOError(f"cannot read checkpoint {path}: it is truncated, corrupt or not a torch "
                             "checkpoint") from None
    missing = [key for key in _REQUIRED if not isinstance(contents, dict) or key not in contents]
    if missing:
        raise LensnetIOError(f"{path} is not a lensnet training checkpoint (no {missing[0]!r} entry)")
    return TrainingCheckpoint(path, contents)


def _world_size(cfg: dict) -> int:
    return (cfg["devices"] if isinstance(cfg["devices"], int) else 1) * cfg["num_nodes"]


def _finite(value: float) -> float | None:
    """JSON has no NaN: unknown values are written as null."""
    return value if math.isfinite(value) else None
