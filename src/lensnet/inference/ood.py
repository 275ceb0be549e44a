"""What the network cannot measure: a score of how unlike the simulated lenses an image is, and a flag.

A network trained on lenses answers for any image: pure noise, a star or a lone galaxy gets a confident
"lens". The out-of-distribution (OOD) head reads the network's penultimate features (the input of its last
linear layer, the backbone frozen) and gives the probability that the image is not one of the lenses it was
trained on: a small multilayer perceptron on standardised features z = (f - mu) / s,

    score = sigmoid(W_L relu(... relu(W_1 z + b_1) ...) + b_L),

fitted on simulated lenses (held-out ``val`` galaxies) against simulated non-lenses of the same observation
(noise, blank sky, stars, lone and paired galaxies: :mod:`lensnet.simulate.nonlenses`). An image is flagged
(``ood``) when its score exceeds ``threshold``, set on other held-out lenses so that few real lenses of the
training distribution are flagged. The head lives in the model card (``ood``), fitted by ``lensnet calibrate
--ood`` (:mod:`lensnet.evaluate.ood`), which also records the fractions it flags on fresh test sets.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn

from lensnet.errors import LensnetIOError, LensnetShapeError

__all__ = ["OODHead", "capture_features"]


@dataclass
class OODHead:
    """A multilayer perceptron on standardised penultimate features (module docstring): ``mean``, ``scale``
    (D,); ``layers``, each a weight (out, in) and a bias (out,), ReLU between them, the last with one output."""

    mean: torch.Tensor
    scale: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    threshold: float

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Probability (B,) that images of penultimate ``features`` (B, D) are not lenses like the training set's.

        Raises
        ------
        LensnetShapeError
            If ``features`` is not (B, D) with the head's D.
        """
        if features.ndim != 2 or features.shape[1] != self.mean.shape[0]:
            raise LensnetShapeError("features", features.shape, f"(B, {self.mean.shape[0]})")
        z = (features.double().cpu() - self.mean.double()) / self.scale.double()
        for k, (weight, bias) in enumerate(self.layers):
            z = z @ weight.double().T + bias.double()
            if k < len(self.layers) - 1:
                z = torch.relu(z)
        return torch.sigmoid(z[:, 0])

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
                "threshold": float(self.threshold)}

    @classmethod
    def from_dict(cls, entry: dict) -> "OODHead":
        """The head a model card's ``ood`` entry holds.

        Raises
        ------
        LensnetIOError
            If an entry is missing or the shapes do not chain from D features to one output.
        """
        try:
            mean, scale = (torch.tensor(entry[k], dtype=torch.float64) for k in ("mean", "scale"))
            layers = [(torch.tensor(layer["weight"], dtype=torch.float64),
                       torch.tensor(layer["bias"], dtype=torch.float64)) for layer in entry["layers"]]
            threshold = float(entry["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LensnetIOError(f"the model card's ood entry is incomplete or mistyped: {exc}") from exc
        width = mean.shape[0] if mean.ndim == 1 else -1
        for weight, bias in layers:
            if weight.ndim != 2 or weight.shape[1] != width or bias.shape != (weight.shape[0],):
                width = -1
                break
            width = weight.shape[0]
        if scale.shape != mean.shape or not layers or width != 1:
            raise LensnetIOError("the model card's ood entry's shapes do not chain from the features to one output")
        return cls(mean, scale, layers, threshold)


@contextmanager
def capture_features(backbone: nn.Module):
    """Collect the input of ``backbone``'s last linear layer (its penultimate features) at every forward pass;
    yields the list the (B, D) tensors are appended to."""
    linear = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise LensnetShapeError("backbone", (0,), "a network ending in a linear layer")
    captured: list[torch.Tensor] = []
    handle = linear[-1].register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().flatten(1)))
    try:
        yield captured
    finally:
        handle.remove()
