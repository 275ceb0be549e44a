"""Export a training checkpoint as a shipped model: float32 safetensors weights and a model card.

:func:`export_model` (``lensnet export CHECKPOINT``) writes three files into a folder (the package's
``lensnet/weights/`` for the model that ships, read back by :func:`lensnet.inference.load_pretrained`)::

    <name>.safetensors   state dict of LensPredictor in float32: backbone.* and the buffers
                         target_mean, target_std, residual_rms (at most MAX_WEIGHTS_BYTES)
    <name>.json          the model card (TrainingCheckpoint.card plus the caller's extras)
    <name>.md            the card rendered for people (lensnet.inference.card.card_markdown)

Every file is written atomically (:func:`lensnet.io.atomic.atomic_output`). The card records what a
user needs to reproduce or trust the model: the registry name and keyword arguments of the network,
input bands and size, the input normalisation (:func:`lensnet.preprocess.normalize_images`), the
target standardisation per parameter, the simulation config, the training seed, steps and number of
training images (steps x batch size x devices; every step sees fresh lenses, as in Hezaveh et al.
2017), the hardware and training time, and the evaluation when given.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save as save_safetensors

from lensnet.errors import LensnetIOError, LensnetValueError
from lensnet.inference import CARD_FORMAT, DEFAULT_PRETRAINED, card_markdown
from lensnet.io.atomic import atomic_output, output_folder
from lensnet.training.checkpoint import read_checkpoint

__all__ = ["ExportedModel", "MAX_WEIGHTS_BYTES", "CARD_EXTRAS", "export_model"]

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
    if not name or Path(name).name != name or name.startswith("."):
        raise LensnetValueError(f"name = {name!r}: expected a plain file stem such as {DEFAULT_PRETRAINED!r}")
    extras = _check_extras(card or {})
    ckpt = read_checkpoint(checkpoint)
    module = ckpt.regressor()
    info = ckpt.card(module)
    info["name"] = name
    info["description"] = extras.get("description", info["description"])
    info["notes"] = extras.get("notes", "")
    info["training"]["hardware"] = extras.get("hardware")
    info["training"]["training_time_s"] = extras.get("training_time_s")
    info["evaluation"] = extras.get("evaluation")
    state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in module.model.state_dict().items()}
    data = save_safetensors(state, metadata={"format": CARD_FORMAT, "name": name})
    if len(data) > MAX_WEIGHTS_BYTES:
        raise LensnetValueError(f"the weights of {name!r} take {len(data) / 1e6:.1f} MB; at most "
                                f"{MAX_WEIGHTS_BYTES / 1e6:.0f} MB can ship in the package")
    info["weights"] = {"file": f"{name}.safetensors", "format": "safetensors", "dtype": "float32",
                       "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    out = output_folder(out_dir)
    paths = [out / f"{name}{suffix}" for suffix in (".safetensors", ".json", ".md")]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise LensnetIOError(f"{', '.join(existing)} already exist(s); pass --overwrite (overwrite=True) to replace them")
    # The weights go first: a model is listed only once its card is there too.
    contents = (data, json.dumps(info, indent=2, allow_nan=False).encode() + b"\n", card_markdown(info).encode())
    for path, content in zip(paths, contents):
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_bytes(content)
    return ExportedModel(*paths, info)


def _check_extras(extras: dict) -> dict:
    for key, value in extras.items():
        if key not in CARD_EXTRAS:
            raise LensnetValueError(f"card has the unknown entry {key!r}; allowed: {', '.join(CARD_EXTRAS)}")
        if value is not None and not isinstance(value, CARD_EXTRAS[key]):
            raise LensnetValueError(f"card entry {key!r} = {value!r} has type {type(value).__name__}")
    return extras
