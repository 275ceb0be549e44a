"""Trained models that ship with lensnet, and the predictor that wraps a trained network.

A shipped model is two files in the package folder ``lensnet/weights/`` (written by
:func:`lensnet.training.export.export_model`):

- ``<name>.safetensors``: the state dict of :class:`LensPredictor` in float32: the network's
  weights under ``backbone.*`` and the buffers ``target_mean``, ``target_std``, ``residual_rms``;
- ``<name>.json``: the model card: registry name and keyword arguments of the network, input
  bands and image size, target standardisation, the input normalisation, the simulation and the
  training that produced it, its evaluation, and the SHA-256 of the weights file.

:func:`load_pretrained` rebuilds the network from the registry with the card's arguments, checks the
weights against the card's hash and returns a :class:`LensPredictor`, whose ``predict`` takes raw
or normalised images (B, C, H, W) and returns means and 1-sigma uncertainties in physical units
(Hezaveh et al. 2017 regress the same five SIE parameters; the uncertainties come from the
network's predicted log-variances).

Examples
--------
>>> from lensnet.networks.pretrained import list_pretrained, load_pretrained
>>> names = list_pretrained()
>>> predictor = load_pretrained(names[0]) if names else None
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError, check_finite
from lensnet.networks.registry import create_model
from lensnet.networks.symmetry import symmetrized_estimate
from lensnet.preprocess import normalize_images

__all__ = ["DEFAULT_PRETRAINED", "CARD_FORMAT", "LensPredictor", "list_pretrained", "load_pretrained",
           "pretrained_card", "training_images", "weights_directory"]

#: Name of the model ``load_pretrained()`` loads by default.
DEFAULT_PRETRAINED = "lensnet_resnet_paper"
#: ``format`` entry of every model card, and the card version this module reads.
CARD_FORMAT = "lensnet-model-card"
CARD_VERSION = 1
#: Images per forward pass in :meth:`LensPredictor.predict`.
PREDICT_BATCH = 64


class LensPredictor(nn.Module):
    """A trained network with its target standardisation: images in, SIE parameters out.

    Parameters
    ----------
    backbone : nn.Module
        Network mapping normalised images (B, C, H, W) to (B, K) standardised means, or to (B, 2K)
        means and log-variances when its attribute ``predicts_variance`` is true.
    target_mean, target_std : sequence of K floats
        Standardisation of the targets in their physical units, :data:`lensnet.PARAM_NAMES` order.
    residual_rms : sequence of K floats, optional
        1-sigma uncertainty reported by mean-only networks (the validation RMS) [NaN].
    in_chans : int, optional
        Input bands the network was trained on; ``predict`` rejects other counts [any].
    image_size : (int, int), optional
        (H, W) the network was trained on; ``predict`` rejects other sizes [any].
    log_var_clamp : (float, float), optional
        Range the standardised log-variances are clamped to, as in training [no clamp].
    card : dict, optional
        The model card (provenance; not used for prediction) [{}].
    """

    def __init__(self, backbone: nn.Module, target_mean: Sequence[float], target_std: Sequence[float],
                 residual_rms: Sequence[float] | None = None, *, in_chans: int | None = None,
                 image_size: tuple[int, int] | None = None,
                 log_var_clamp: tuple[float, float] | None = None, card: dict | None = None):
        super().__init__()
        k = len(PARAM_NAMES)
        self.backbone = backbone
        self.param_names = PARAM_NAMES
        self.predicts_variance = bool(getattr(backbone, "predicts_variance", False))
        self.in_chans = None if in_chans is None else int(in_chans)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.log_var_clamp = None if log_var_clamp is None else (float(log_var_clamp[0]), float(log_var_clamp[1]))
        self.card = dict(card or {})
        rms = [float("nan")] * k if residual_rms is None else residual_rms
        for name, value in (("target_mean", target_mean), ("target_std", target_std), ("residual_rms", rms)):
            value = torch.as_tensor(value, dtype=torch.float32).detach().clone().cpu()
            if value.shape != (k,):
                raise LensnetShapeError(name, value.shape, f"({k},), one value per parameter")
            self.register_buffer(name, value)
        if not (self.target_std > 0).all():
            raise LensnetValueError(f"target_std must be positive, got {self.target_std.tolist()}")
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and 1-sigma uncertainties (B, K) of normalised images (B, C, H, W), unchecked.

        Use :meth:`predict` for raw images, input checks and large batches.
        """
        output = self.backbone(images).to(self.target_mean.dtype)
        k = len(self.param_names)
        mean = output[:, :k] * self.target_std + self.target_mean
        if not self.predicts_variance:
            return mean, self.residual_rms.expand_as(mean)
        log_var = output[:, k:]
        if self.log_var_clamp is not None:
            log_var = log_var.clamp(*self.log_var_clamp)
        return mean, torch.exp(0.5 * log_var) * self.target_std

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None, normalized: bool = False,
                batch_size: int = PREDICT_BATCH, symmetrize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimate the SIE parameters of a batch of images, with 1-sigma uncertainties.

        Parameters
        ----------
        images : Tensor, (B, C, H, W), float
            Images in any flux unit (``normalized=False``), or already normalised by
            :func:`lensnet.preprocess.normalize_images` as the simulator's ``images`` are.
        masks : Tensor of bool, (B, 1, H, W) or (B, C, H, W), optional
            True where a pixel is masked: excluded from the normalisation and set to 0.
        normalized : bool
            Whether ``images`` are already normalised [False].
        batch_size : int
            Images per forward pass [64].
        symmetrize : bool
            Average the estimates of the eight rotations and reflections of each image
            (:func:`lensnet.networks.symmetry.symmetrized_estimate`): more accurate, eight times
            the compute; needs square images [False].

        Returns
        -------
        mean, std : Tensor, each (B, 5)
            Estimates and 1-sigma uncertainties, columns :data:`lensnet.PARAM_NAMES` (theta_E,
            center_x, center_y in arcsec), on the device and in the dtype of ``images``. The network
            runs on its own device in its own dtype, in eval mode.

        Raises
        ------
        LensnetShapeError
            If ``images`` is not (B, C, H, W) with the trained bands and size, or ``masks`` does not
            match it.
        LensnetValueError
            If ``images`` is not floating point or holds NaN or infinity.
        """
        self._check_images(images, masks)
        if int(batch_size) < 1:
            raise LensnetValueError(f"batch_size = {batch_size}: expected a positive number of images")
        param = next(self.parameters())
        was_training = self.training
        self.eval()
        means, stds = [], []
        with torch.inference_mode():
            for start in range(0, images.shape[0], int(batch_size)):
                x = images[start:start + int(batch_size)].to(param.device)
                m = None if masks is None else masks[start:start + int(batch_size)].to(param.device).bool()
                if not normalized:
                    x = normalize_images(x, m)
                elif m is not None:
                    x = x.masked_fill(m, 0.0)
                x = x.to(param.dtype)
                mean, std = symmetrized_estimate(self, x) if symmetrize else self(x)
                means.append(mean)
                stds.append(std)
        self.train(was_training)
        out = images.device, images.dtype
        return torch.cat(means).to(*out), torch.cat(stds).to(*out)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, map_location: str | torch.device = "cpu") -> "LensPredictor":
        """The predictor of a training checkpoint of :func:`lensnet.training.run_training`.

        Raises
        ------
        LensnetIOError
            If the file is missing, unreadable, or not a lensnet training checkpoint.
        """
        from lensnet.training.export import checkpoint_card
        from lensnet.training.train import load_regressor

        module = load_regressor(checkpoint, map_location=map_location)
        card = checkpoint_card(checkpoint)
        return cls(module.backbone, module.target_mean, module.target_std, module.residual_rms,
                   in_chans=card["model"]["in_chans"], image_size=_image_size(card),
                   log_var_clamp=card["output"]["log_var_clamp"], card=card)

    @classmethod
    def from_card(cls, card: dict, state_dict: dict[str, torch.Tensor] | None = None) -> "LensPredictor":
        """Build the network a model card describes and load ``state_dict`` into it (if given).

        Raises
        ------
        LensnetIOError
            If the card lacks an entry or the state dict does not fit the network.
        """
        try:
            model, output = card["model"], card["output"]
            backbone = create_model(model["name"], in_chans=model["in_chans"], num_outputs=len(PARAM_NAMES),
                                    **model["kwargs"])
            names = list(card["parameters"])
            predictor = cls(backbone, [card["target_mean"][n] for n in names], [card["target_std"][n] for n in names],
                            in_chans=model["in_chans"], image_size=_image_size(card),
                            log_var_clamp=output["log_var_clamp"], card=card)
        except (KeyError, TypeError) as exc:
            raise LensnetIOError(f"model card of {card.get('name', '?')!r} lacks or mistypes the entry {exc}") from exc
        if names != list(PARAM_NAMES):
            raise LensnetIOError(f"model card of {card.get('name', '?')!r} predicts {names}, not {list(PARAM_NAMES)}")
        if state_dict is not None:
            try:
                predictor.load_state_dict(state_dict)
            except RuntimeError as exc:
                raise LensnetIOError(f"weights of {card.get('name', '?')!r} do not fit its network: {exc}") from exc
        return predictor.eval()

    def _check_images(self, images: torch.Tensor, masks: torch.Tensor | None) -> None:
        h, w = self.image_size or ("H", "W")
        expected = f"(B, {self.in_chans or 'C'}, {h}, {w}) with B >= 1"
        if not isinstance(images, torch.Tensor):
            raise LensnetValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[0] < 1 or (
                self.in_chans is not None and images.shape[1] != self.in_chans) or (
                self.image_size is not None and tuple(images.shape[-2:]) != self.image_size):
            raise LensnetShapeError("images", images.shape, expected)
        if not images.is_floating_point():
            raise LensnetValueError(f"images must be floating point, got dtype {images.dtype}")
        check_finite("images", images)
        if masks is not None and (masks.ndim != 4 or masks.shape[0] != images.shape[0]
                                  or masks.shape[1] not in (1, images.shape[1])
                                  or masks.shape[-2:] != images.shape[-2:]):
            raise LensnetShapeError("masks", masks.shape, f"(B, 1 or C, H, W) matching images {tuple(images.shape)}")


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
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LensnetIOError(f"cannot read the model card {path}: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise LensnetIOError(f"{path} is not a lensnet model card (no format: {CARD_FORMAT!r})")
    if card.get("format_version", 0) > CARD_VERSION:
        raise LensnetIOError(f"{path} has card version {card.get('format_version')}; this lensnet reads up to "
                             f"{CARD_VERSION}: upgrade lensnet")
    return card


def training_images(card: dict) -> int:
    """Simulated lenses a model card's model was trained on, over all its training stages.

    Cards written before staged training record only their last run's ``num_training_images``.
    """
    training = card["training"]
    return training.get("num_training_images_all_stages", training["num_training_images"])


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
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    folder = Path(directory) if directory is not None else weights_directory()
    card = pretrained_card(name, folder)
    path = folder / f"{name}.safetensors"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LensnetIOError(f"cannot read the weights {path}: {exc}") from exc
    expected = card.get("weights", {}).get("sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise LensnetIOError(f"the weights {path} are corrupt: their SHA-256 differs from the one in {name}.json")
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise LensnetIOError(f"cannot read the weights {path}: {exc}") from exc
    return LensPredictor.from_card(card, state).to(device or "cpu")



def _image_size(card: dict) -> tuple[int, int] | None:
    """(H, W) of the card's ``input.image_shape`` (C, H, W), or None where the card does not know it."""
    shape = card["input"]["image_shape"]
    return None if shape is None else (int(shape[1]), int(shape[2]))
