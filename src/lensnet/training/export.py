"""Export a training checkpoint as a shipped model: float32 safetensors weights and a model card.

:func:`export_model` writes three files into a folder (the package's ``lensnet/weights/`` for the
model that ships, read back by :func:`lensnet.networks.pretrained.load_pretrained`)::

    <name>.safetensors   state dict of LensPredictor in float32: backbone.* and the buffers
                         target_mean, target_std, residual_rms (at most MAX_WEIGHTS_BYTES)
    <name>.json          the model card (:func:`checkpoint_card` plus the caller's extras)
    <name>.md            the card rendered for people (:func:`card_markdown`)

Every file is written atomically (:func:`lensnet.io.atomic.atomic_output`). The card records what a
user needs to reproduce or trust the model: the registry name and keyword arguments of the network,
input bands and size, the input normalisation (:func:`lensnet.preprocess.normalize_images`), the
target standardisation per parameter, the simulation config, the training seed, steps and number of
training images (steps x batch size x devices; every step sees fresh lenses, as in Hezaveh et al.
2017), the hardware and training time, and the evaluation when given.

Command line (``python -m lensnet.training.export --help``)::

    python -m lensnet.training.export runs/ship_cpu/checkpoints/last.ckpt src/lensnet/weights \\
        --hardware "2 CPU cores" --training-time-s 9000 --evaluate 1000
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import inspect
import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from lensnet import __version__
from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetIOError, LensnetValueError
from lensnet.io.atomic import atomic_output
from lensnet.networks.pretrained import CARD_FORMAT, CARD_VERSION, DEFAULT_PRETRAINED, LensPredictor
from lensnet.preprocess import normalize_images
from lensnet.training.module import LOGVAR_RANGE, LensRegressor
from lensnet.training.train import CHECKPOINT_KEY, load_regressor, training_stages

__all__ = ["ExportedModel", "MAX_WEIGHTS_BYTES", "CARD_EXTRAS", "export_model", "checkpoint_card", "card_markdown"]

#: Largest weights file :func:`export_model` writes (it ships inside the package).
MAX_WEIGHTS_BYTES = 20_000_000
#: Entries the caller may add to a card, with their types: where each goes is in :func:`export_model`.
CARD_EXTRAS = {"description": str, "hardware": str, "training_time_s": (int, float), "evaluation": dict,
               "notes": str}


@dataclass(frozen=True)
class ExportedModel:
    """The files :func:`export_model` wrote and the card it wrote into ``card_path``."""

    weights_path: Path
    card_path: Path
    markdown_path: Path
    card: dict


def export_model(checkpoint: str | Path, out_dir: str | Path, name: str = DEFAULT_PRETRAINED,
                 card: dict | None = None, overwrite: bool = False) -> ExportedModel:
    """Write a checkpoint's network as ``<name>.safetensors``, ``<name>.json`` and ``<name>.md``.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint of :func:`lensnet.training.run_training` (``last.ckpt``, ``best.ckpt``).
    out_dir : str or Path
        Folder to write into (created if missing).
    name : str
        Model name, the stem of the three files [``DEFAULT_PRETRAINED``].
    card : dict, optional
        Extras for the card, keys from :data:`CARD_EXTRAS`: ``description`` and ``notes`` (text),
        ``hardware`` (text) and ``training_time_s`` (seconds) go under ``training``, ``evaluation``
        (``EvaluationResult.to_dict()`` of :mod:`lensnet.evaluate`).
    overwrite : bool
        Replace existing files [False].

    Returns
    -------
    ExportedModel

    Raises
    ------
    LensnetIOError
        If the checkpoint cannot be read, or a file exists and ``overwrite`` is False.
    LensnetValueError
        If ``name`` is not a plain file stem, ``card`` has an unknown key or a value of the wrong
        type, or the weights exceed :data:`MAX_WEIGHTS_BYTES`.
    """
    from safetensors.torch import save as save_safetensors

    if not name or Path(name).name != name or name.startswith("."):
        raise LensnetValueError(f"name = {name!r}: expected a plain file stem such as {DEFAULT_PRETRAINED!r}")
    extras = _check_extras(card or {})
    module = load_regressor(checkpoint)
    info = checkpoint_card(checkpoint, module)
    info["name"] = name
    info["description"] = extras.get("description", info["description"])
    info["notes"] = extras.get("notes", "")
    info["training"]["hardware"] = extras.get("hardware")
    info["training"]["training_time_s"] = extras.get("training_time_s")
    info["evaluation"] = extras.get("evaluation")
    predictor = LensPredictor(module.backbone, module.target_mean, module.target_std, module.residual_rms)
    state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in predictor.state_dict().items()}
    data = save_safetensors(state, metadata={"format": CARD_FORMAT, "name": name})
    if len(data) > MAX_WEIGHTS_BYTES:
        raise LensnetValueError(f"the weights of {name!r} take {len(data) / 1e6:.1f} MB; at most "
                                f"{MAX_WEIGHTS_BYTES / 1e6:.0f} MB can ship in the package")
    info["weights"] = {"file": f"{name}.safetensors", "format": "safetensors", "dtype": "float32",
                       "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}{suffix}" for suffix in (".safetensors", ".json", ".md")]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise LensnetIOError(f"{', '.join(existing)} already exist(s); pass overwrite=True to replace")
    # The weights go first: a model is listed only once its card is there too.
    contents = (data, json.dumps(info, indent=2, allow_nan=False).encode() + b"\n", card_markdown(info).encode())
    for path, content in zip(paths, contents):
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_bytes(content)
    return ExportedModel(*paths, info)


def checkpoint_card(checkpoint: str | Path, module: LensRegressor | None = None) -> dict:
    """The model card of a training checkpoint, without the weights entry and the caller's extras.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint of :func:`lensnet.training.run_training`.
    module : LensRegressor, optional
        The module loaded from it, if already loaded [loaded here].

    Raises
    ------
    LensnetIOError
        If the file is missing, unreadable, or not a lensnet training checkpoint.
    """
    module = module if module is not None else load_regressor(checkpoint)
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise LensnetIOError(f"cannot read checkpoint {checkpoint}: {exc}") from exc
    info = ckpt[CHECKPOINT_KEY]
    cfg, sim = info["train_config"], info.get("simulation")
    steps = int(ckpt.get("global_step", 0))
    world = (cfg["devices"] if isinstance(cfg["devices"], int) else 1) * cfg["num_nodes"]
    stages = training_stages(checkpoint)
    total_images = sum(stage["num_training_images"] for stage in stages)
    variance = module.predicts_variance
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
                  "num_parameters": sum(p.numel() for p in module.backbone.parameters())},
        "output": {"predicts_variance": variance,
                   "log_var_clamp": list(LOGVAR_RANGE) if variance else None,
                   "uncertainty": "exp(log_var / 2) * target_std, from the predicted standardised log-variance"
                                  if variance else "residual_rms: the RMS of the validation residuals"},
        "target_mean": per_param(module.target_mean),
        "target_std": per_param(module.target_std),
        "residual_rms": per_param(module.residual_rms),
        "input": {"image_shape": [info["in_chans"], sim["n_pix"], sim["n_pix"]] if sim else None,
                  "pixel_scale_arcsec": sim["pixel_scale"] if sim else None,
                  "normalization": "lensnet.preprocess.normalize_images",
                  "normalization_kwargs": norm_kwargs,
                  "axes": "x along columns, y along rows, origin at the image centre, row 0 at the bottom"},
        "simulation": {"preset": cfg["simulation"], "overrides": cfg["simulation_overrides"], "config": sim},
        "training": {"seed": cfg["seed"], "steps": steps, "batch_size": cfg["batch_size"], "devices": world,
                     "num_training_images": steps * cfg["batch_size"] * world,
                     "optimizer": cfg["optimizer"], "lr": cfg["lr"], "schedule": cfg["schedule"],
                     "loss": module.loss_name, "precision": cfg["precision"], "checkpoint": Path(checkpoint).name,
                     "stages": stages, "num_training_images_all_stages": total_images,
                     "hardware": None, "training_time_s": None, "config": cfg},
        "evaluation": None,
    }


def card_markdown(card: dict) -> str:
    """The model card as Markdown: what the model is, its input, training and evaluation."""
    from lensnet.evaluate.table import format_table

    model, train, inp = card["model"], card["training"], card["input"]
    shape = inp["image_shape"]
    size = f"{shape[1]}x{shape[2]} pixels of {inp['pixel_scale_arcsec']}\", {shape[0]} band(s)" if shape else "any"
    norm = ", ".join(f"{k}={v}" for k, v in inp["normalization_kwargs"].items())
    hours = train.get("training_time_s")
    lines = [
        f"# {card['name']}", "", card["description"], "",
        "| | |", "|---|---|",
        f"| network | `{model['name']}` {json.dumps(model['kwargs'])}, {model['num_parameters'] / 1e6:.2f} M "
        "parameters |",
        f"| input | {size}; normalised by `{inp['normalization']}({norm})` |",
        f"| output | {', '.join(card['parameters'])}: mean and 1-sigma ({card['output']['uncertainty']}) |",
        f"| simulation | preset `{card['simulation']['preset']}`, overrides "
        f"{json.dumps(card['simulation']['overrides'])}; test lenses from held-out source galaxies |",
        f"| training | {train['steps']:,} steps x {train['batch_size']} lenses x {train['devices']} device(s) = "
        f"{train['num_training_images']:,} fresh simulated lenses; seed {train['seed']}; {train['optimizer']}, "
        f"lr {train['lr']}, {train['schedule']}, loss {train['loss']}, precision {train['precision']} |",
        *([f"| stages | {len(train['stages'])} runs, each starting from the previous one's weights: "
           + "; ".join(f"{st['steps']:,} steps x {st['batch_size'] * st['devices']} (seed {st['seed']}, lr {st['lr']})"
                       for st in train["stages"])
           + f" = {train['num_training_images_all_stages']:,} lenses in all |"] if len(train.get("stages", [])) > 1 else []),
        f"| hardware | {train.get('hardware') or 'not recorded'}; training time "
        f"{f'{hours / 3600:.2f} h' if hours is not None else 'not recorded'} |",
        f"| weights | `{card['weights']['file']}`, {card['weights']['bytes'] / 1e6:.1f} MB, sha256 "
        f"`{card['weights']['sha256'][:16]}...` |" if "weights" in card else "| weights | not written |",
        f"| lensnet | exported with {card['lensnet_version']}, trained with {card['trained_with_lensnet']} |",
        "", "## Target standardisation", "",
        "| parameter | unit | mean | std |", "|---|---|---|---|",
        *(f"| {n} | {card['units'][n] or '-'} | {card['target_mean'][n]:.4f} | {card['target_std'][n]:.4f} |"
          for n in card["parameters"]),
        "", "## Evaluation", "",
        format_table(card["evaluation"], markdown=True) if card.get("evaluation") else "Not evaluated.",
    ]
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    return "\n".join(lines) + "\n"


def _check_extras(extras: dict) -> dict:
    for key, value in extras.items():
        if key not in CARD_EXTRAS:
            raise LensnetValueError(f"card has the unknown entry {key!r}; allowed: {', '.join(CARD_EXTRAS)}")
        if value is not None and not isinstance(value, CARD_EXTRAS[key]):
            raise LensnetValueError(f"card entry {key!r} = {value!r} has type {type(value).__name__}")
    return extras


def _finite(value: float) -> float | None:
    """JSON has no NaN: unknown values are written as null."""
    return value if math.isfinite(value) else None


def main(argv=None) -> None:
    """Export a checkpoint from the command line, optionally evaluating it first (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m lensnet.training.export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out_dir")
    parser.add_argument("--name", default=DEFAULT_PRETRAINED)
    parser.add_argument("--description")
    parser.add_argument("--hardware")
    parser.add_argument("--training-time-s", type=float)
    parser.add_argument("--evaluate", type=int, default=0, metavar="NUM",
                        help="evaluate on NUM seeded test lenses of the training preset and put it in the card")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the evaluation set")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    extras = {"hardware": args.hardware, "training_time_s": args.training_time_s}
    if args.description:
        extras["description"] = args.description
    if args.evaluate:
        from lensnet.evaluate import evaluate_predictor, format_table, model_simulation_config

        predictor = LensPredictor.from_checkpoint(args.checkpoint)
        result = evaluate_predictor(predictor, preset=model_simulation_config(predictor.card), num=args.evaluate,
                                    seed=args.seed)
        print(format_table(result))
        extras["evaluation"] = result.to_dict()
    exported = export_model(args.checkpoint, args.out_dir, args.name, extras, overwrite=args.overwrite)
    for path in (exported.weights_path, exported.card_path, exported.markdown_path):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
