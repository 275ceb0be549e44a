"""Trained models that ship with lensnet: the package folder ``lensnet/weights/``.

A shipped model is two files (written by :func:`lensnet.training.export.export_model`):

- ``<name>.safetensors``: the state dict of :class:`~lensnet.inference.predictor.LensPredictor` in
  float32: the network's weights under ``backbone.*`` and the buffers ``target_mean``,
  ``target_std``, ``residual_rms``;
- ``<name>.json``: its model card (:mod:`lensnet.inference.card`), with the SHA-256 of the weights.

:func:`load_pretrained` rebuilds the network from the registry with the card's arguments, checks the
weights against the card's hash and returns a :class:`~lensnet.inference.predictor.LensPredictor`.

Examples
--------
>>> from lensnet.inference import list_pretrained, load_pretrained
>>> predictor = load_pretrained() if "lensnet_resnet_paper" in list_pretrained() else None
"""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from lensnet.device import resolve_device
from lensnet.errors import LensnetIOError
from lensnet.inference.card import read_card
from lensnet.inference.predictor import LensPredictor

__all__ = ["DEFAULT_PRETRAINED", "list_pretrained", "load_pretrained", "pretrained_card", "weights_directory"]

#: Name of the model ``load_pretrained()`` loads by default.
DEFAULT_PRETRAINED = "lensnet_resnet_paper"


def weights_directory() -> Path:
    """The package folder of the shipped models, ``lensnet/weights/``."""
    return Path(str(importlib.resources.files("lensnet") / "weights"))


def list_pretrained(directory: str | Path | None = None) -> list[str]:
    """Sorted names of the models whose card and weights are both in ``directory``.

    Parameters
    ----------
    directory : str or Path, optional
        Folder to look in [the package's ``lensnet/weights/``].
    """
    folder = Path(directory) if directory is not None else weights_directory()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())


def pretrained_card(name: str = DEFAULT_PRETRAINED, directory: str | Path | None = None) -> dict:
    """The model card of a shipped model (the parsed ``<name>.json``).

    Raises
    ------
    LensnetIOError
        If the model is not there (the message lists those that are) or its card is not a lensnet
        model card.
    """
    folder = Path(directory) if directory is not None else weights_directory()
    path = folder / f"{name}.json"
    if not path.is_file() or not path.with_suffix(".safetensors").is_file():
        available = list_pretrained(folder)
        raise LensnetIOError(f"no trained model {name!r} in {folder}; available: "
                             + (", ".join(available) if available else "none (no trained weights are installed)"))
    return read_card(path)


def load_pretrained(name: str = DEFAULT_PRETRAINED, device: str | torch.device | None = None,
                    directory: str | Path | None = None) -> LensPredictor:
    """Load a shipped model as a :class:`LensPredictor` in eval mode.

    Parameters
    ----------
    name : str
        A name from :func:`list_pretrained` [``DEFAULT_PRETRAINED``].
    device : str or torch.device, optional
        Where to put the network [cpu].
    directory : str or Path, optional
        Folder holding ``<name>.json`` and ``<name>.safetensors`` [the package's ``lensnet/weights/``].

    Returns
    -------
    LensPredictor

    Raises
    ------
    LensnetIOError
        If the model is missing (the message lists the available ones), or its card or weights are
        corrupt (hash mismatch, unreadable file, tensors that do not fit the network).
    LensnetValueError
        If ``device`` cannot be used here (:func:`lensnet.device.resolve_device`).
    """
    folder = Path(directory) if directory is not None else weights_directory()
    card = pretrained_card(name, folder)
    path = folder / f"{name}.safetensors"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LensnetIOError(f"cannot read the weights {path}: {exc}") from exc
    expected = (card.get("weights") or {}).get("sha256")
    if expected is None:
        raise LensnetIOError(f"the model card {name}.json records no weights.sha256 to check {path} against")
    if hashlib.sha256(data).hexdigest() != expected:
        raise LensnetIOError(f"the weights {path} are corrupt: their SHA-256 differs from the one in {name}.json")
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise LensnetIOError(f"cannot read the weights {path}: {exc}") from exc
    return LensPredictor.from_card(card, state).to(resolve_device(device or "cpu"))
