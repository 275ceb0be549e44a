"""Evaluate a trained model on a seeded simulated test set: the paper's Table 1 and Fig. 1.

:func:`evaluate_predictor` simulates ``num`` test lenses (source galaxies from the held-out ``test``
split, as in Hezaveh et al. 2017), estimates their parameters and returns an
:class:`EvaluationResult`; :func:`compute_metrics` gives, per parameter, the 68% error in lensnet's
and in the paper's convention (:mod:`lensnet.evaluate.metrics`), the RMS, the standard deviation
of the residuals (the released code's metric), the coverage of the predicted 68% and 95% intervals,
and the 68% error of the constant predictor equal to the mean truth (the baseline any model must
beat). :func:`format_table` sets our numbers beside the paper's Table 1, :func:`write_results`
writes JSON, Markdown and a FITS table of every lens (:func:`lens_table`), and :func:`plot_estimates`
draws estimates against truth as the paper's Fig. 1 (68% and 95% bands of the estimates and the
y = x line).

The test set is a function of (preset, num, seed) only: lens chunk i of :data:`SIM_CHUNK` lenses is
simulated from ``LensSimulator.batch_seed(seed, i)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table
from tqdm.auto import tqdm

from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.evaluate.metrics import (PAPER_PARAM_NAMES, coverage, error68, error68_abs, paper_residuals,
                                      residual_std, rms)
from lensnet.io.atomic import atomic_output
from lensnet.io.fits import write_table
from lensnet.simulate.config import SimulationConfig, get_preset

__all__ = ["PAPER_TABLE1", "SIM_CHUNK", "EvaluationResult", "compute_metrics", "evaluate_predictor",
           "evaluate_predictors", "held_out_config", "simulated_chunks",
           "run_evaluation", "format_table", "lens_table", "write_results", "plot_estimates",
           "model_simulation_config"]

#: Table 1 of Hezaveh et al. 2017: 68% errors of theta_E ("), eps_x, eps_y, x ("), y (").
PAPER_TABLE1 = {
    "Inception-v4": (0.03, 0.04, 0.05, 0.06, 0.06),
    "AlexNet": (0.03, 0.04, 0.04, 0.05, 0.06),
    "OverFeat": (0.04, 0.05, 0.05, 0.06, 0.06),
    "own network": (0.03, 0.05, 0.06, 0.05, 0.05),
    "combined": (0.02, 0.04, 0.04, 0.04, 0.04),
}
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
    metrics: dict = field(init=False)

    def __post_init__(self):
        self.metrics = compute_metrics(self.truth, self.mean, self.std)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (metrics, test set, timing), without the per-lens tensors."""
        n = self.truth.shape[0]
        return {"model": self.model,
                "test_set": {"num": n, "simulation": self.simulation, "source_split": "test", "seed": self.seed},
                "metrics": self.metrics,
                "timing": {"device": self.device, "inference_s": self.inference_s, "simulation_s": self.simulation_s,
                           "lenses_per_s": n / self.inference_s if self.inference_s > 0 else None}}


def compute_metrics(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> dict:
    """Per-parameter metrics of estimates ``mean`` +- ``std`` of ``truth``, each (N, 5).

    Returns
    -------
    dict
        ``{"lensnet": {metric: {param: value}}, "paper": {...}}``; lensnet-convention metrics are
        err68, err68_abs, rms, std, bias (median residual), cover68, cover95 and prior_err68 (the
        constant predictor equal to the mean truth); paper-convention ones (:data:`PAPER_PARAM_NAMES`)
        are err68, err68_abs, rms, std, bias and prior_err68.
    """
    if mean.shape != truth.shape or std.shape != truth.shape:
        raise LensnetShapeError("mean" if mean.shape != truth.shape else "std",
                                mean.shape if mean.shape != truth.shape else std.shape, f"{tuple(truth.shape)}")
    truth, mean, std = truth.double(), mean.double(), std.double()
    prior = truth.mean(0, keepdim=True).expand_as(truth)
    res, res_paper = mean - truth, paper_residuals(mean, truth)
    named = lambda names, values: {n: float(v) for n, v in zip(names, values.tolist())}  # noqa: E731
    out = {"lensnet": {}, "paper": {}}
    median = lambda r: r.median(0).values  # noqa: E731
    for key, fn in (("err68", error68), ("err68_abs", error68_abs), ("rms", rms), ("std", residual_std),
                    ("bias", median)):
        out["lensnet"][key] = named(PARAM_NAMES, fn(res))
        out["paper"][key] = named(PAPER_PARAM_NAMES, fn(res_paper))
    out["lensnet"]["cover68"] = named(PARAM_NAMES, coverage(res, std, 0.68))
    out["lensnet"]["cover95"] = named(PARAM_NAMES, coverage(res, std, 0.95))
    out["lensnet"]["prior_err68"] = named(PARAM_NAMES, error68(prior - truth))
    out["paper"]["prior_err68"] = named(PAPER_PARAM_NAMES, error68(paper_residuals(prior, truth)))
    return out


def model_simulation_config(card: dict) -> SimulationConfig:
    """The simulation config a model card records (its ``config``, else its preset; 'paper' if none)."""
    sim = (card or {}).get("simulation") or {}
    if sim.get("config"):
        return SimulationConfig.from_dict(sim["config"])
    return get_preset(sim.get("preset") or "paper")


def evaluate_predictor(predictor, preset: str | SimulationConfig = "paper", num: int = 1000, seed: int = 2024,
                       batch_size: int = 50, device: str | torch.device | None = None,
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
        (:mod:`lensnet.networks.symmetry`); the result's model name gets " (8 views)" [False].

    Returns
    -------
    EvaluationResult
    """
    name = getattr(predictor, "card", {}).get("name", type(predictor).__name__)
    results = evaluate_predictors({name: predictor}, preset, num, seed, batch_size, device, progress, symmetrize)
    return next(iter(results.values()))


def evaluate_predictors(predictors: dict, preset: str | SimulationConfig = "paper", num: int = 1000,
                        seed: int = 2024, batch_size: int = 50, device: str | torch.device | None = None,
                        progress: bool = True, symmetrize: bool = False) -> dict[str, EvaluationResult]:
    """:func:`evaluate_predictor` for several predictors (name -> predictor) on one simulated test set.

    Each lens is simulated once and estimated by every predictor; ``simulation_s`` of each result is
    the shared simulation time. With ``symmetrize``, the keys and model names of the results end in
    " (8 views)".
    """
    if int(num) != num or num < 1:
        raise LensnetRangeError("num", num, 1, None, "the test set needs at least one lens")
    if not predictors:
        raise LensnetValueError("no predictor to evaluate")
    config = held_out_config(preset, "test")
    if device is None:
        first = next(iter(predictors.values()))
        param = next(first.parameters(), None) if hasattr(first, "parameters") else None
        device = param.device if param is not None else "cpu"
    device = torch.device(device)
    truth, t_sim = [], 0.0
    means = {name: [] for name in predictors}
    stds = {name: [] for name in predictors}
    t_inf = dict.fromkeys(predictors, 0.0)
    for batch, seconds in simulated_chunks(config, int(num), int(seed), device, progress):
        t_sim += seconds
        truth.append(batch.targets.double().cpu())
        for name, predictor in predictors.items():
            t0 = _synchronized(device)
            mean, std = predictor.predict(batch.images, normalized=True, batch_size=batch_size,
                                          symmetrize=symmetrize)
            t_inf[name] += _synchronized(device) - t0
            means[name].append(mean.double().cpu())
            stds[name].append(std.double().cpu())
    truth = torch.cat(truth)
    suffix = " (8 views)" if symmetrize else ""
    return {name + suffix: EvaluationResult(truth, torch.cat(means[name]), torch.cat(stds[name]), name + suffix,
                                            config.name, int(seed), t_inf[name], t_sim, str(device))
            for name in predictors}


def held_out_config(preset: str | SimulationConfig, split: str) -> SimulationConfig:
    """``preset`` with its real galaxies from the bank's ``split`` ('val' or 'test'), unless it uses them all."""
    config = get_preset(preset) if isinstance(preset, str) else preset
    if config.source.split != "all":
        config = SimulationConfig.from_dict({"source": {"split": split}}, base=config)
    return config


def simulated_chunks(config: SimulationConfig, num: int, seed: int, device: torch.device, progress: bool = True):
    """Yield (batch, seconds) for ``num`` lenses in chunks of :data:`SIM_CHUNK`, chunk i from
    ``LensSimulator.batch_seed(seed, i)``: the seeded test (or fit) set, with a progress bar."""
    from lensnet.simulate.simulator import LensSimulator

    simulator = LensSimulator(config, device=device)
    with tqdm(total=num, unit="lens", desc="simulating and estimating", disable=not progress) as bar:
        for i, start in enumerate(range(0, num, SIM_CHUNK)):
            t0 = time.perf_counter()
            batch = simulator.simulate(min(SIM_CHUNK, num - start), LensSimulator.batch_seed(seed, i))
            seconds = _synchronized(device) - t0
            yield batch, seconds
            bar.update(len(batch))


def run_evaluation(weights: str | None = None, checkpoint: str | Path | None = None, preset: str | None = None,
                   num: int = 1000, seed: int = 2024, batch_size: int = 50, device: str | None = None,
                   output_dir: str | Path = "lensnet_evaluation", progress: bool = True,
                   symmetrize: bool = False) -> tuple[EvaluationResult, list[Path]]:
    """Load a model, evaluate it and write the results: the library call behind ``lensnet evaluate``.

    Parameters
    ----------
    weights : str, optional
        Name of a shipped model [``DEFAULT_PRETRAINED`` unless ``checkpoint`` is given].
    checkpoint : str or Path, optional
        A training checkpoint to evaluate instead of shipped weights.
    preset : str, optional
        Simulation preset of the test set [the one the model was trained on, from its card].
    num, seed, batch_size : int
        As in :func:`evaluate_predictor`.
    device : str, optional
        Where to simulate and predict; None or 'auto': cuda if available, else cpu.
    output_dir : str or Path
        Folder for :func:`write_results` ["lensnet_evaluation"].
    progress : bool
        Show a progress bar [True].
    symmetrize : bool
        Average every estimate over the eight rotations and reflections of the image [False].

    Returns
    -------
    result : EvaluationResult
    paths : list of Path
        The JSON, Markdown and PNG files written.

    Raises
    ------
    LensnetValueError
        If both ``weights`` and ``checkpoint`` are given.
    LensnetIOError
        If the model cannot be loaded.
    """
    from lensnet.networks.pretrained import DEFAULT_PRETRAINED, LensPredictor, load_pretrained

    if weights and checkpoint:
        raise LensnetValueError("give weights or checkpoint, not both")
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = (LensPredictor.from_checkpoint(checkpoint) if checkpoint
                 else load_pretrained(weights or DEFAULT_PRETRAINED)).to(device)
    config = preset or model_simulation_config(predictor.card)
    result = evaluate_predictor(predictor, config, num=num, seed=seed, batch_size=batch_size, progress=progress,
                                symmetrize=symmetrize)
    return result, write_results(result, output_dir)


def format_table(result: EvaluationResult | dict, markdown: bool = False) -> str:
    """Our 68% errors beside the paper's Table 1, then every metric per parameter (lensnet convention).

    Parameters
    ----------
    result : EvaluationResult or dict
        A result or its ``to_dict()`` (as stored in a model card).
    markdown : bool
        Markdown tables instead of aligned text [False].
    """
    d = result.to_dict() if isinstance(result, EvaluationResult) else result
    m, ts, timing = d["metrics"], d["test_set"], d["timing"]
    paper_head = [f"{n} (\")" if n in ("theta_E", "x", "y") else n for n in PAPER_PARAM_NAMES]
    rows1 = [(f"paper: {k}", *(f"{v:.2f}" for v in vals)) for k, vals in PAPER_TABLE1.items()]
    rows1 += [(f"lensnet: {d['model']}", *(f"{m['paper']['err68'][n]:.3f}" for n in PAPER_PARAM_NAMES)),
              ("prior mean (baseline)", *(f"{m['paper']['prior_err68'][n]:.3f}" for n in PAPER_PARAM_NAMES))]
    labels = {"err68": "68% error", "err68_abs": "68th percentile of abs(residual)", "rms": "RMS",
              "std": "std (released code)",
              "bias": "median residual (bias)",
              "cover68": "coverage of 68% interval", "cover95": "coverage of 95% interval",
              "prior_err68": "prior mean: 68% error"}
    lens_head = [f"{n} ({u})" if u else n for n, u in zip(PARAM_NAMES, PARAM_UNITS)]
    rows2 = [(label, *(f"{m['lensnet'][key][n]:.4f}" for n in PARAM_NAMES)) for key, label in labels.items()
             if key in m["lensnet"]]  # results stored by older versions may lack a metric
    speed = timing.get("lenses_per_s")
    intro = (f"{ts['num']} test lenses (simulation '{ts['simulation']}', held-out '{ts['source_split']}' source "
             f"galaxies, seed {ts['seed']}); inference "
             + (f"{speed:,.0f} lenses/s on {timing['device']}." if speed else f"on {timing['device']}."))
    title1 = ("68% errors, half-width of the central 68% interval of the residuals, in the paper's convention "
              "(eps = (1-q)(cos 2phi, sin 2phi), better sign per lens) beside Table 1 of Hezaveh et al. 2017:")
    title2 = "Every metric in lensnet's convention (e1 + i e2 = (1-q)/(1+q) exp(2i phi)):"
    table = _markdown if markdown else _text
    return "\n".join([intro, "", title1, "", table(["", *paper_head], rows1), "", title2, "",
                      table(["", *lens_head], rows2)])


def lens_table(result: EvaluationResult) -> Table:
    """Every test lens as an astropy table: true value, estimate and 1-sigma of each parameter.

    Columns ``<param>_true``, ``<param>`` and ``<param>_sigma`` for each of :data:`lensnet.PARAM_NAMES`
    (lensnet's convention, with units), so that errors can be studied against any parameter.
    """
    table = Table(meta={"MODEL": result.model, "SIMUL": result.simulation, "SEED": result.seed,
                        "SPLIT": "test"})
    for i, (name, unit) in enumerate(zip(PARAM_NAMES, PARAM_UNITS)):
        for column, values in ((f"{name}_true", result.truth), (name, result.mean), (f"{name}_sigma", result.std)):
            table[column] = values[:, i].detach().to("cpu", torch.float64).numpy()
            table[column].unit = unit or None
    return table


def write_results(result: EvaluationResult, output_dir: str | Path, name: str = "evaluation") -> list[Path]:
    """Write ``<name>.json``, ``<name>.md``, the Fig.-1-style ``<name>_estimates.png`` and the per-lens
    FITS table ``<name>_lenses.fits`` (:func:`lens_table`) into ``output_dir``.

    Existing files are replaced. Returns the four paths.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}{ending}" for ending in (".json", ".md", "_estimates.png", "_lenses.fits")]
    with atomic_output(paths[0], overwrite=True) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    with atomic_output(paths[1], overwrite=True) as tmp:
        tmp.write_text(f"# Evaluation of {result.model}\n\n{format_table(result, markdown=True)}\n")
    title = f"{result.model}: {result.truth.shape[0]} test lenses ({result.simulation}, seed {result.seed})"
    plot_estimates(result.truth, result.mean, result.std, paths[2], title=title)
    write_table(paths[3], lens_table(result), overwrite=True)
    return paths


def plot_estimates(truth: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, output: str | Path,
                   title: str = "") -> Path:
    """Estimates against truth per parameter, like Fig. 1 of Hezaveh et al. 2017.

    Each panel shows the lenses as points (with their predicted 1-sigma bars when there are at most
    200), the 68% and 95% intervals of the estimates in bins of the true value as shaded bands, and
    the y = x line.

    Parameters
    ----------
    truth, mean, std : Tensor, (N, 5)
        True parameters, estimates and predicted 1-sigma uncertainties (:data:`lensnet.PARAM_NAMES`).
    output : str or Path
        PNG to write (replaced if it exists).
    title : str
        Figure title [none].

    Returns
    -------
    Path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if mean.shape != truth.shape or std.shape != truth.shape or truth.ndim != 2 or truth.shape[1] != len(PARAM_NAMES):
        raise LensnetShapeError("truth/mean/std", truth.shape, f"three (N, {len(PARAM_NAMES)}) tensors of one shape")
    t, m, s = (x.detach().double().cpu().numpy() for x in (truth, mean, std))
    n = t.shape[0]
    fig, axes = plt.subplots(1, len(PARAM_NAMES), figsize=(3.3 * len(PARAM_NAMES), 3.6))
    for k, (ax, name, unit) in enumerate(zip(axes, PARAM_NAMES, PARAM_UNITS)):
        lo, hi = float(min(t[:, k].min(), m[:, k].min())), float(max(t[:, k].max(), m[:, k].max()))
        pad = 0.05 * (hi - lo or 1.0)
        centres, bands = _binned_quantiles(t[:, k], m[:, k], bins=int(np.clip(n // 25, 3, 20)))
        ax.fill_between(centres, bands[0], bands[3], color="tab:blue", alpha=0.2, lw=0, label="95% interval")
        ax.fill_between(centres, bands[1], bands[2], color="tab:blue", alpha=0.4, lw=0, label="68% interval")
        if n <= 200 and np.isfinite(s[:, k]).all():
            ax.errorbar(t[:, k], m[:, k], yerr=s[:, k], fmt="none", ecolor="0.5", elinewidth=0.6, alpha=0.6)
        ax.plot(t[:, k], m[:, k], ".", color="0.3", ms=2.5 if n > 200 else 4, label="test lenses")
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="tab:red", lw=1, label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        label = f"{name} [{unit}]" if unit else name
        ax.set_xlabel(f"true {label}", fontsize=9)
        ax.set_ylabel(f"estimated {label}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(output, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(output)


def _binned_quantiles(x: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Medians of equal-count bins of ``x`` and the 2.5, 16, 84, 97.5 percentiles (4, bins) of ``y`` in each,
    with the first and last bin repeated at the smallest and largest ``x``."""
    order = np.argsort(x)
    groups = [g for g in np.array_split(order, max(1, min(bins, len(x)))) if len(g)]
    centres = np.array([x.min(), *(np.median(x[g]) for g in groups), x.max()])
    bands = np.array([np.percentile(y[g], [2.5, 16, 84, 97.5]) for g in groups]).T
    return centres, np.concatenate([bands[:, :1], bands, bands[:, -1:]], axis=1)  # held flat to the ends


def _synchronized(device: torch.device) -> float:
    """The time after the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _text(head: list[str], rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def _markdown(head: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])
