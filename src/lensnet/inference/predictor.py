"""The predictor that wraps a trained network: normalised images in, SIE parameters with 1-sigma out.

A :class:`LensPredictor` is a backbone network (:mod:`lensnet.networks`) with the standardisation of
its targets: it maps the backbone's standardised outputs back to physical units, and turns a
predicted standardised log-variance into a 1-sigma uncertainty (Hezaveh et al. 2017 regress the same
five SIE parameters; lensnet's own networks add the variance). Training wraps the same object
(:class:`lensnet.training.module.LensRegressor` holds one), so the de-standardisation exists once.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import torch
import torch.nn as nn

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError, check_finite
from lensnet.inference.card import card_image_size
from lensnet.inference.catalog import Z95, predict_fits
from lensnet.inference.ood import OODHead, capture_features
from lensnet.inference.symmetry import symmetrized_estimate
from lensnet.networks.registry import create_model
from lensnet.preprocess import normalize_images

__all__ = ["LOGVAR_RANGE", "PREDICT_BATCH", "LensPredictor"]

#: Clamp of predicted standardised log-variances, keeping exp() finite in any precision.
LOGVAR_RANGE = (-20.0, 20.0)
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
        # Calibration temperature of each 1-sigma (lensnet.inference.calibration); it lives in the model card,
        # not in the weights, so the same weights can be recalibrated.
        self.register_buffer("sigma_scale", torch.ones(k), persistent=False)
        # Half-width of the 95% interval in (calibrated) sigma: Gaussian until a calibration measures it.
        self.register_buffer("z95", torch.full((k,), Z95), persistent=False)
        #: The out-of-distribution head (:mod:`lensnet.inference.ood`) from the model card, or None.
        self.ood: OODHead | None = None
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and 1-sigma uncertainties (B, K) of normalised images (B, C, H, W), unchecked.

        Use :meth:`predict` for raw images, input checks and large batches.
        """
        return self.to_physical(*self.split(self.backbone(images)))

    def split(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Backbone output to standardised means (B, K) and clamped log-variances (B, K), or None
        for a mean-only network, in the dtype of the standardisation buffers.

        Raises
        ------
        LensnetShapeError
            If ``output`` is not (B, K), or (B, 2K) for a variance network.
        """
        k = len(self.param_names)
        expected = 2 * k if self.predicts_variance else k
        if output.ndim != 2 or output.shape[1] != expected:
            raise LensnetShapeError("backbone output", output.shape, f"(B, {expected})")
        output = output.to(self.target_mean.dtype)
        if not self.predicts_variance:
            return output, None
        log_var = output[:, k:]
        if self.log_var_clamp is not None:
            log_var = log_var.clamp(*self.log_var_clamp)
        return output[:, :k], log_var

    def to_physical(self, z_mean: torch.Tensor, log_var: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised means and log-variances (or None) to means and 1-sigma in physical units.

        A mean-only network reports ``residual_rms`` (its validation RMS) as every lens's 1-sigma.
        """
        mean = z_mean * self.target_std + self.target_mean
        if log_var is None:
            return mean, (self.residual_rms * self.sigma_scale).expand_as(mean)
        return mean, torch.exp(0.5 * log_var) * self.target_std * self.sigma_scale

    def calibrate(self, temperature: Sequence[float], z95: Sequence[float] | None = None) -> "LensPredictor":
        """Scale every 1-sigma of parameter k by ``temperature[k]`` from now on, and take ``z95[k]`` sigma
        as its 95% half-width [Gaussian, 1.96]; returns self."""
        for name, values in (("temperature", temperature), ("z95", [Z95] * len(self.param_names) if z95 is None
                                                             else z95)):
            value = torch.as_tensor(values, dtype=self.sigma_scale.dtype, device=self.sigma_scale.device)
            if value.shape != self.sigma_scale.shape or not (torch.isfinite(value).all() and (value > 0).all()):
                raise LensnetValueError(f"{name} = {list(values)}: expected {len(self.param_names)} "
                                        "positive numbers, one per parameter")
            getattr(self, "sigma_scale" if name == "temperature" else "z95").copy_(value)
        return self

    def standardize(self, targets: torch.Tensor) -> torch.Tensor:
        """Physical targets (B, K) to the standardised units the backbone is trained in."""
        return (targets.to(self.target_mean.dtype) - self.target_mean) / self.target_std

    def predict(self, images: torch.Tensor, masks: torch.Tensor | None = None, normalized: bool = False,
                batch_size: int = PREDICT_BATCH, symmetrize: bool = False, ood: bool = False):
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
            (:func:`lensnet.inference.symmetry.symmetrized_estimate`): more accurate, eight times
            the compute; needs square images [False].
        ood : bool
            Also return the out-of-distribution score of each image (:mod:`lensnet.inference.ood`; from the
            image as given, not its other views), NaN when the model card has no OOD head [False].

        Returns
        -------
        mean, std : Tensor, each (B, 5)
            Estimates and 1-sigma uncertainties, columns :data:`lensnet.PARAM_NAMES` (theta_E,
            center_x, center_y in arcsec), on the device and in the dtype of ``images``. The network
            runs on its own device in its own dtype, in eval mode.
        score : Tensor, (B,), float64
            With ``ood``: the probability that each image is not a lens like the training set's.

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
        means, stds, scores = [], [], []
        scored = ood and self.ood is not None
        with torch.inference_mode(), capture_features(self.backbone) if scored else nullcontext([]) as features:
            for start in range(0, images.shape[0], int(batch_size)):
                x = images[start:start + int(batch_size)].to(param.device)
                m = None if masks is None else masks[start:start + int(batch_size)].to(param.device).bool()
                if not normalized:
                    x = normalize_images(x, m)
                elif m is not None:
                    x = x.masked_fill(m, 0.0)
                x = x.to(param.dtype)
                features.clear()
                mean, std = symmetrized_estimate(self, x) if symmetrize else self(x)
                means.append(mean)
                stds.append(std)
                if ood:  # the first view is the image as given
                    scores.append(self.ood.score(features[0]) if scored
                                  else torch.full((x.shape[0],), float("nan"), dtype=torch.float64))
        self.train(was_training)
        out = images.device, images.dtype
        mean, std = torch.cat(means).to(*out), torch.cat(stds).to(*out)
        return (mean, std, torch.cat(scores)) if ood else (mean, std)

    def predict_fits(self, paths, **options):
        """One catalogue row (an astropy Table) per FITS file of ``paths``: files, folders or glob patterns
        brought to this model's grid and estimated; options as :func:`lensnet.inference.catalog.predict_fits`."""
        return predict_fits(self, paths, **options)

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
                            in_chans=model["in_chans"], image_size=card_image_size(card),
                            log_var_clamp=output["log_var_clamp"], card=card)
        except (KeyError, TypeError) as exc:
            raise LensnetIOError(f"model card of {card.get('name', '?')!r} lacks or mistypes the entry {exc}") from exc
        if names != list(PARAM_NAMES):
            raise LensnetIOError(f"model card of {card.get('name', '?')!r} predicts {names}, not {list(PARAM_NAMES)}")
        if card.get("ood"):
            predictor.ood = OODHead.from_dict(card["ood"])
        calibration = card.get("calibration")
        if calibration:
            z95 = calibration.get("z95")
            predictor.calibrate([calibration["temperature"][n] for n in PARAM_NAMES],
                                None if z95 is None else [z95[n] for n in PARAM_NAMES])
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
