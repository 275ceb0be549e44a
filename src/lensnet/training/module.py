"""The Lightning system that trains a backbone network to regress the SIE parameters.

Following Lightning's model/system split, the model is a plain ``nn.Module``: a
:class:`~lensnet.inference.predictor.LensPredictor`, the network of :mod:`lensnet.networks` with
the standardisation of its targets, z = (y - mean) / std, so that a checkpoint predicts in physical
units on its own; :class:`LensRegressor` adds loss, metrics and optimiser. The loss is

- ``mse``: the mean over the batch and the parameters of (mu - z)^2, the paper's squared error
  (Hezaveh et al. 2017), for networks returning K means;
- ``gaussian_nll``: the mean of (log s^2 + (mu - z)^2 / s^2) / 2, for networks with
  ``predicts_variance = True`` that return K means and K log-variances;
- ``beta_nll``: the same, each term weighted by s^(2 beta) held constant (no gradient): the
  beta-NLL of Seitzer et al. 2022 (ICLR, arXiv:2203.09168). Plain NLL lets a lens with a large
  predicted variance contribute little to the fit of the mean; beta = 1 gives the means the
  gradient of the squared error while the variances are still fitted.

Validation and test report, per parameter, the paper's 68% error (the half-width of the central
68% interval of the residuals, Table 1 of the paper) and the RMS, in physical units, and for
variance networks the fraction of lenses whose truth lies within one predicted sigma.
"""

from __future__ import annotations

import math
from typing import Sequence

import lightning as L
import torch
import torch.nn as nn

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetValueError
from lensnet.inference.predictor import LOGVAR_RANGE, LensPredictor
from lensnet.metrics import error68

__all__ = ["LensRegressor"]


class LensRegressor(L.LightningModule):
    """Trains ``backbone`` on standardised SIE parameters; ``forward`` predicts physical ones.

    The trained model is ``self.model``, a :class:`~lensnet.inference.predictor.LensPredictor`.

    Parameters
    ----------
    backbone : nn.Module
        Network mapping images (B, C, H, W) to (B, K), or to (B, 2K) means and log-variances when
        its attribute ``predicts_variance`` is true.
    lr : float
        Peak learning rate [1e-3].
    optimizer : {'adamw', 'sgd'}
        AdamW, or SGD with Nesterov momentum as in the paper ['adamw'].
    momentum : float
        SGD momentum [0.9].
    weight_decay : float
        Decoupled weight decay of weight matrices and kernels (not biases or norms) [1e-4].
    schedule : {'cosine', 'onecycle', 'constant'}
        Learning-rate schedule over the Trainer's ``max_steps`` ['cosine'].
    warmup_steps : int
        Linear warm-up of the cosine schedule [0].
    loss : {'auto', 'gaussian_nll', 'beta_nll', 'mse'}
        'auto' is 'gaussian_nll' for variance networks and 'mse' otherwise ['auto'].
    beta : float
        Exponent of the ``beta_nll`` weighting [0.5].
    channels_last : bool
        Train in channels-last memory layout [False].
    target_mean, target_std : sequence of 5 floats, optional
        Standardisation of the targets, in their physical units, in :data:`lensnet.PARAM_NAMES`
        order [zeros, ones].
    """

    def __init__(self, backbone: nn.Module, lr: float = 1e-3, optimizer: str = "adamw", momentum: float = 0.9,
                 weight_decay: float = 1e-4, schedule: str = "cosine", warmup_steps: int = 0, loss: str = "auto",
                 beta: float = 0.5, channels_last: bool = False, target_mean: Sequence[float] | None = None, target_std: Sequence[float] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        k = len(PARAM_NAMES)
        self.model = LensPredictor(backbone, [0.0] * k if target_mean is None else target_mean,
                                   [1.0] * k if target_std is None else target_std, log_var_clamp=LOGVAR_RANGE).train()
        self.loss_name = ("gaussian_nll" if self.model.predicts_variance else "mse") if loss == "auto" else loss
        if self.loss_name not in ("gaussian_nll", "beta_nll", "mse"):
            raise LensnetValueError(f"loss {loss!r} is not one of 'auto', 'gaussian_nll', 'beta_nll', 'mse'")
        if self.loss_name != "mse" and not self.model.predicts_variance:
            raise LensnetValueError(f"loss {self.loss_name!r} needs a network with predicts_variance = True; "
                                    "use loss 'mse' or 'auto'")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._running_loss: torch.Tensor | None = None
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and 1-sigma uncertainties (B, K), physical units, of network-ready images (B, C, H, W);
        for mean-only networks ``std`` is the validation RMS of each parameter (NaN before any validation)."""
        return self.model(images)

    def on_fit_start(self) -> None:
        self.model.to(memory_format=self.memory_format)

    def on_fit_end(self) -> None:
        self.model.to(memory_format=torch.contiguous_format)  # what export and safetensors expect

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        images = images.contiguous(memory_format=self.memory_format)
        loss = self._loss(*self.model.split(self.model.backbone(images)), self.model.standardize(targets))
        self._running_loss = loss.detach() if self._running_loss is None else (
            0.98 * self._running_loss + 0.02 * loss.detach())
        self.log("train_loss", loss, batch_size=len(targets))
        self.log("loss_avg", self._running_loss, prog_bar=True, logger=False, batch_size=len(targets))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        rms = self._eval_epoch_end("val")
        if rms is not None and not self.trainer.sanity_checking:
            self.model.residual_rms.copy_(rms)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": hp.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        elif hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        else:
            raise LensnetValueError(f"optimizer {hp.optimizer!r} is not one of 'adamw', 'sgd'")
        if hp.schedule == "constant":
            return opt
        total = self.trainer.max_steps if self.trainer is not None else -1
        if total is None or total <= 0:
            raise LensnetValueError(f"schedule {hp.schedule!r} needs the Trainer's max_steps > 0")
        if hp.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total + 1)
        elif hp.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(hp.warmup_steps, total))
        else:
            raise LensnetValueError(f"schedule {hp.schedule!r} is not one of 'cosine', 'onecycle', 'constant'")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _loss(self, mu: torch.Tensor, log_var: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """The loss of standardised means and log-variances (from ``self.model.split``) against targets z."""
        if self.loss_name == "mse":
            return ((mu - z) ** 2).mean()
        nll = 0.5 * (log_var + (mu - z) ** 2 * torch.exp(-log_var))
        if self.loss_name == "beta_nll":
            nll = nll * torch.exp(self.hparams.beta * log_var).detach()
        return nll.mean()

    def _eval_step(self, batch, stage: str) -> None:
        images, targets = batch
        images = images.contiguous(memory_format=self.memory_format)
        mu, log_var = self.model.split(self.model.backbone(images))
        z = self.model.standardize(targets)
        self.log(f"{stage}_loss", self._loss(mu, log_var, z), on_epoch=True, sync_dist=True, batch_size=len(targets))
        scale = self.model.target_std
        residual = (mu - z) * scale
        std = scale * torch.exp(0.5 * log_var) if log_var is not None else torch.zeros_like(residual)
        self._eval_outputs.append((residual.detach(), std.detach()))

    def _eval_epoch_end(self, stage: str) -> torch.Tensor | None:
        """Log per-parameter 68% error, RMS (and coverage) over every rank; return the RMS."""
        if not self._eval_outputs:
            return None
        k = len(PARAM_NAMES)
        residual = self.all_gather(torch.cat([r for r, _ in self._eval_outputs])).reshape(-1, k)
        std = self.all_gather(torch.cat([s for _, s in self._eval_outputs])).reshape(-1, k)
        self._eval_outputs.clear()
        err, rms = error68(residual), residual.pow(2).mean(0).sqrt()
        cover = (residual.abs() <= std).float().mean(0)
        for i, name in enumerate(PARAM_NAMES):
            self.log(f"{stage}_err68/{name}", err[i], sync_dist=True)
            self.log(f"{stage}_rms/{name}", rms[i], sync_dist=True)
            if self.model.predicts_variance:
                self.log(f"{stage}_cover68/{name}", cover[i], sync_dist=True)
        return rms


def _warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear from 1/warmup to 1 over the warm-up, then a cosine to 0."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor
