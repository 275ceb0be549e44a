"""The paper's combined network from trained models, and its Table 1: the library call behind ``lensnet combine``.

:func:`run_combination` loads two or more trained models (shipped weights by name, or training
checkpoints), fits one weight per (model, parameter) and a bias on held-out simulated lenses whose
galaxies come from the bank's ``val`` split (:func:`lensnet.training.combine.fit_combined_network`,
as Hezaveh et al. 2017 trained their final layer), then estimates the seeded test set of
:func:`lensnet.evaluate.table.evaluate_predictor` (``test`` galaxies) with every model and the
combination, and writes::

    combination.json           members, weights, bias, uncertainty scale, fit set, metrics of every row
    combination.md             68% errors of every row beside the paper's Table 1
    combination_estimates.png  the combination's estimates against truth (the paper's Fig. 1)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetValueError
from lensnet.evaluate.metrics import PAPER_PARAM_NAMES
from lensnet.evaluate.table import (PAPER_TABLE1, evaluate_predictors, held_out_config, model_simulation_config,
                                    plot_estimates, simulated_chunks, _markdown)
from lensnet.io.atomic import atomic_output

__all__ = ["load_member", "run_combination", "format_combination_table"]

#: Name of the combination's row in the tables.
COMBINED = "combined"


def load_member(spec: str, device: str | torch.device = "cpu"):
    """A trained model from a training checkpoint path or the name of shipped weights."""
    from lensnet.networks.pretrained import LensPredictor, load_pretrained

    if Path(spec).is_file():
        return LensPredictor.from_checkpoint(spec).to(device)
    return load_pretrained(spec, device=device)


def run_combination(members: Sequence[str], num_fit: int = 2000, fit_seed: int = 2025, num: int = 1000,
                    seed: int = 2024, batch_size: int = 50, device: str | None = None,
                    output_dir: str | Path = "lensnet_combination", progress: bool = True) -> dict:
    """Fit the combined network of ``members`` and evaluate it beside them on one test set.

    Parameters
    ----------
    members : sequence of str
        Two or more shipped model names or training checkpoints, trained on the same image size.
    num_fit, fit_seed : int
        Held-out lenses (``val`` galaxies) the combination is fitted on, and their seed [2000, 2025].
    num, seed : int
        Test lenses and their seed, as in ``lensnet evaluate`` [1000, 2024].
    batch_size : int
        Images per forward pass [50].
    device : str, optional
        Where to simulate and predict; None or 'auto': cuda if available, else cpu.
    output_dir : str or Path
        Folder for the three files.
    progress : bool
        Show progress bars [True].

    Returns
    -------
    dict
        What ``combination.json`` holds, plus ``paths`` (the files written).

    Raises
    ------
    LensnetValueError
        If fewer than two members are given, two share a name, their input sizes differ, or
        ``num_fit`` is too small to fit a weight per member.
    """
    from lensnet.training.combine import fit_combined_network

    if len(members) < 2:
        raise LensnetValueError(f"a combination needs at least two models, got {len(members)}")
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = [load_member(spec, device) for spec in members]
    names = [m.card.get("name", spec) for m, spec in zip(loaded, members)]
    if len(set(names)) != len(names):
        raise LensnetValueError(f"the models must differ; their names are {names}")
    shapes = {str(m.card.get("input", {}).get("image_shape")) for m in loaded}
    if len(shapes) > 1:
        raise LensnetValueError(f"the models were trained on different image shapes: {sorted(shapes)}")
    if num_fit <= len(loaded):
        raise LensnetValueError(f"num_fit = {num_fit}: fitting one weight per model needs more lenses than models")
    config = model_simulation_config(loaded[0].card)

    images, targets = [], []
    for batch, _ in simulated_chunks(held_out_config(config, "val"), int(num_fit), int(fit_seed),
                                     torch.device(device), progress):
        images.append(batch.images)
        targets.append(batch.targets)
    combined = fit_combined_network(loaded, torch.cat(images), torch.cat(targets), batch_size=batch_size)
    del images

    results = evaluate_predictors({**dict(zip(names, loaded)), COMBINED: combined}, config, num=num, seed=seed,
                                  batch_size=batch_size, device=device, progress=progress)
    per_param = lambda t: dict(zip(PARAM_NAMES, t.tolist()))  # noqa: E731
    report = {
        "members": [{"name": n, "source": spec} for n, spec in zip(names, members)],
        "weights": {n: per_param(w) for n, w in zip(names, combined.weights)},
        "bias": per_param(combined.bias),
        "uncertainty_scale": per_param(combined.scale),
        "fit_set": {"num": int(num_fit), "seed": int(fit_seed), "simulation": config.name, "source_split": "val"},
        "results": {name: result.to_dict() for name, result in results.items()},
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "combination.json", out / "combination.md", out / "combination_estimates.png"]
    with atomic_output(paths[0], overwrite=True) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_output(paths[1], overwrite=True) as tmp:
        tmp.write_text(f"# Combined network of {', '.join(names)}\n\n{format_combination_table(report)}\n")
    best = results[COMBINED]
    plot_estimates(best.truth, best.mean, best.std, paths[2],
                   title=f"combined network: {best.truth.shape[0]} test lenses ({best.simulation}, seed {best.seed})")
    return {**report, "paths": paths}


def format_combination_table(report: dict) -> str:
    """68% errors (paper's convention) of every member and the combination beside the paper's Table 1."""
    head = ["", *(f"{n} (\")" if n in ("theta_E", "x", "y") else n for n in PAPER_PARAM_NAMES)]
    rows = [(f"paper: {k}", *(f"{v:.2f}" for v in vals)) for k, vals in PAPER_TABLE1.items()]
    for name, result in report["results"].items():
        err = result["metrics"]["paper"]["err68"]
        rows.append((f"lensnet: {name}", *(f"{err[n]:.3f}" for n in PAPER_PARAM_NAMES)))
    prior = next(iter(report["results"].values()))["metrics"]["paper"]["prior_err68"]
    rows.append(("prior mean (baseline)", *(f"{prior[n]:.3f}" for n in PAPER_PARAM_NAMES)))
    fit, test = report["fit_set"], next(iter(report["results"].values()))["test_set"]
    weights = [(name, *(f"{w[n]:+.3f}" for n in PARAM_NAMES)) for name, w in report["weights"].items()]
    return "\n".join([
        f"Fitted on {fit['num']} held-out lenses ('{fit['source_split']}' galaxies, seed {fit['seed']}); "
        f"tested on {test['num']} lenses ('{test['source_split']}' galaxies, seed {test['seed']}).", "",
        "68% errors in the paper's convention, beside Table 1 of Hezaveh et al. 2017:", "",
        _markdown(head, rows), "", "Weights of the combination (lensnet's convention):", "",
        _markdown(["", *PARAM_NAMES], weights)])
