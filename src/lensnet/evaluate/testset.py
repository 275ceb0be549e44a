"""A trained model on a seeded simulated test set: truths, estimates and timing.

:func:`evaluate_predictor` simulates ``num`` test lenses (source galaxies from the held-out ``test``
split, as in Hezaveh et al. 2017), estimates their parameters and returns an
:class:`EvaluationResult`, whose metrics are :func:`lensnet.metrics.compute_metrics`: per parameter,
the 68% error in lensnet's and in the paper's convention, the RMS, the standard deviation of the
residuals (the released code's metric), the coverage of the predicted 68% and 95% intervals, and the
68% error of the constant predictor equal to the mean truth (the baseline any model must beat).

The test set is a function of (preset, num, seed) only: lens chunk i of :data:`SIM_CHUNK` lenses is
simulated from ``batch_seed(seed, i)`` (:mod:`lensnet.simulate.seeds`).

A test set on another grid than the model's (``hst-acs``: 160 x 160 at 0.05") goes the way a real image
does: each observed image is brought to the model's grid by :func:`lensnet.preprocess.real.prepare_image`
(flux-conserving resampling, padding with noise), then normalised by the predictor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from lensnet.device import resolve_device
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.metrics import compute_metrics
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.simulate.config import SimulationConfig, get_preset
from lensnet.simulate.seeds import TEST_SET, batch_seed
from lensnet.simulate.simulator import LensSimulator, peak_signal_to_noise

__all__ = ["SIM_CHUNK", "TEST_SET", "EvaluationResult", "evaluate_predictor", "evaluate_predictors",
           "model_simulation_config", "simulated_chunks"]

#: Lenses per simulated chunk of the test set (the paper's batch size).
SIM_CHUNK = 50


@dataclass
class EvaluationResult:
    """Truths and estimates of a test set, where they came from, and timing.

    Attributes
    ----------
    truth, mean, std : Tensor, (N, 5), float64, on the CPU
        True parameters, estimates and predicted 1-sigma uncertainties, :data:`lensnet.PARAM_NAMES`.
    model : str
        Name of the model evaluated.
    simulation : str
        Name of the simulation config of the test set.
    seed : int
        Seed of the test set.
    inference_s, simulation_s : float
        Seconds spent estimating (network and its input handling) and simulating.
    device : str
        Where both ran.
    snr : Tensor, (N,), optional
        Signal-to-noise of each lens's arc peak (:func:`lensnet.simulate.simulator.peak_signal_to_noise`).
    z95 : Tensor, (5,), optional
        Half-width of the 95% interval in sigma, from the model's calibration [Gaussian, 1.96].
    metrics : dict
        :func:`compute_metrics` of the three tensors.
    """

    truth: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    model: str
    simulation: str
    seed: int
    inference_s: float
    simulation_s: float
    device: str
    snr: torch.Tensor | None = None
    z95: torch.Tensor | None = None
    metrics: dict = field(init=False)

    def __post_init__(self):
        self.metrics = compute_metrics(self.truth, self.mean, self.std, self.snr, self.z95)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (metrics, test set, timing), without the per-lens tensors."""
        n = self.truth.shape[0]
        return {"model": self.model,
                "test_set": {"num": n, "simulation": self.simulation, "source_split": "test", "seed": self.seed},
                "metrics": self.metrics,
                "timing": {"device": self.device, "inference_s": self.inference_s, "simulation_s": self.simulation_s,
                           "lenses_per_s": n / self.inference_s if self.inference_s > 0 else None}}


def model_simulation_config(card: dict) -> SimulationConfig:
    """The simulation config a model card records (its ``config``, else its preset; 'paper' if none)."""
    sim = (card or {}).get("simulation") or {}
    if sim.get("config"):
        return SimulationConfig.from_dict(sim["config"])
    return get_preset(sim.get("preset") or "paper")


def evaluate_predictor(predictor, preset: str | SimulationConfig = "paper", num: int = TEST_SET["num"],
                       seed: int = TEST_SET["seed"], batch_size: int = TEST_SET["batch_size"], device: str | torch.device | None = None,
                       progress: bool = True, symmetrize: bool = False) -> EvaluationResult:
    """Simulate ``num`` seeded test lenses and estimate their parameters with ``predictor``.

    Parameters
    ----------
    predictor : LensPredictor, or an object with ``predict(images, normalized=, batch_size=, symmetrize=)``
        It returns (mean, std), each (B, 5), for normalised images (B, C, H, W).
    preset : str or SimulationConfig
        Simulation preset name or config ['paper']; its real galaxies are drawn from the ``test``
        split of the bank (unless the config uses ``source.split = 'all'``).
    num : int
        Test lenses, >= 1 [1000, the released code's test set; the paper used 10,000].
    seed : int
        Seed of the test set [2024].
    batch_size : int
        Images per forward pass [50].
    device : str or torch.device, optional
        Where to simulate and predict [the predictor's device, else cpu].
    progress : bool
        Show a progress bar [True].
    symmetrize : bool
        Average each estimate over the eight rotations and reflections of the image
        (:mod:`lensnet.inference.symmetry`); the result's model name gets " (8 views)" [False].

    Returns
    -------
    EvaluationResult
    """
    name = getattr(predictor, "card", {}).get("name", type(predictor).__name__)
    results = evaluate_predictors({name: predictor}, preset, num, seed, batch_size, device, progress, symmetrize)
    return next(iter(results.values()))


def evaluate_predictors(predictors: dict, preset: str | SimulationConfig = "paper", num: int = TEST_SET["num"],
                        seed: int = TEST_SET["seed"], batch_size: int = TEST_SET["batch_size"], device: str | torch.device | None = None,
                        progress: bool = True, symmetrize: bool = False,
                        match_noise_spectrum: bool = True) -> dict[str, EvaluationResult]:
    """:func:`evaluate_predictor` for several predictors (name -> predictor) on one simulated test set.

    Each lens is simulated once and estimated by every predictor; ``simulation_s`` of each result is
    the shared simulation time. With ``symmetrize``, the keys and model names of the results end in
    " (8 views)". A test set on another grid than the model's is brought to it as real images are
    (:func:`~lensnet.preprocess.real.prepare_image`, its noise matched unless ``match_noise_spectrum`` is False).
    """
    if int(num) != num or num < 1:
        raise LensnetRangeError("num", num, 1, None, "the test set needs at least one lens")
    if not predictors:
        raise LensnetValueError("no predictor to evaluate")
    config = (get_preset(preset) if isinstance(preset, str) else preset).for_split("test")
    if device is None:
        first = next(iter(predictors.values()))
        param = next(first.parameters(), None) if hasattr(first, "parameters") else None
        device = param.device if param is not None else "cpu"
    device = resolve_device(device)
    truth, snr, t_sim = [], [], 0.0
    means = {name: [] for name in predictors}
    stds = {name: [] for name in predictors}
    t_inf = dict.fromkeys(predictors, 0.0)
    grid = _model_grid(predictors)
    for batch, seconds in simulated_chunks(config, int(num), int(seed), device, progress):
        t_sim += seconds
        truth.append(batch.targets.double().cpu())
        snr.append(peak_signal_to_noise(batch.record).double().cpu())
        regridded = (None if grid is None or (grid.n_pix, grid.pixel_scale) == (config.n_pix, config.pixel_scale)
                     else _on_grid(batch, config, grid, device, match_noise_spectrum))
        for name, predictor in predictors.items():
            t0 = _synchronized(device)
            if regridded is None:
                mean, std = predictor.predict(batch.images, normalized=True, batch_size=batch_size,
                                              symmetrize=symmetrize)
            else:
                mean, std = predictor.predict(*regridded, batch_size=batch_size, symmetrize=symmetrize)
            t_inf[name] += _synchronized(device) - t0
            means[name].append(mean.double().cpu())
            stds[name].append(std.double().cpu())
    truth, snr = torch.cat(truth), torch.cat(snr)
    suffix = " (8 views)" if symmetrize else ""
    return {name + suffix: EvaluationResult(truth, torch.cat(means[name]), torch.cat(stds[name]), name + suffix,
                                            config.name, int(seed), t_inf[name], t_sim, str(device), snr,
                                            _z95(predictors[name]))
            for name in predictors}


def _model_grid(predictors: dict) -> ModelGrid | None:
    """The grid of the predictors' cards (one for all), or None where a card records none."""
    cards = [getattr(p, "card", None) or {} for p in predictors.values()]
    if not all(card.get("input") for card in cards):
        return None
    grids = {(g.n_pix, g.pixel_scale): g for g in map(ModelGrid.from_card, cards)}
    if len(grids) > 1:
        raise LensnetValueError(f"the predictors take different grids {sorted(grids)}: evaluate them one by one")
    return next(iter(grids.values()))


def _on_grid(batch, config: SimulationConfig, grid: ModelGrid, device, match_noise_spectrum: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The observed images of ``batch`` (one band) brought to ``grid`` as real images are, with their masks."""
    images, masks = [], []
    for i, (image, mask) in enumerate(zip(batch.observed[:, 0].double().cpu().numpy(),
                                          batch.masks[:, 0].cpu().numpy())):
        prepared = prepare_image(image, grid, config.pixel_scale, mask=mask, match_noise_spectrum=match_noise_spectrum,
                                 seed=i, where=f"test lens {i}")
        images.append(prepared.image)
        masks.append(prepared.mask)
    return (torch.from_numpy(np.stack(images))[:, None].to(device),
            torch.from_numpy(np.stack(masks))[:, None].to(device))


def _z95(predictor) -> torch.Tensor | None:
    """The calibrated 95% half-width (in sigma) of a predictor that has one."""
    z95 = getattr(predictor, "z95", None)
    return None if z95 is None else z95.detach().double().cpu()


def simulated_chunks(config: SimulationConfig, num: int, seed: int, device: torch.device, progress: bool = True):
    """Yield (batch, seconds) for ``num`` lenses in chunks of :data:`SIM_CHUNK`, chunk i from
    ``batch_seed(seed, i)``: the seeded test (or fit) set, with a progress bar."""
    simulator = LensSimulator(config, device=device)
    with tqdm(total=num, unit="lens", desc="simulating and estimating", disable=not progress) as bar:
        for i, start in enumerate(range(0, num, SIM_CHUNK)):
            t0 = time.perf_counter()
            batch = simulator.simulate(min(SIM_CHUNK, num - start), batch_seed(seed, i))
            seconds = _synchronized(device) - t0
            yield batch, seconds
            bar.update(len(batch))


def _synchronized(device: torch.device) -> float:
    """The time after the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
