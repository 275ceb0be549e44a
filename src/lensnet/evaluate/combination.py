"""The paper's combined network from trained models, and its Table 1: the library call behind ``lensnet combine``.

:func:`run_combination` loads two or more trained models (shipped weights by name, or training
checkpoints), fits one weight per (model, parameter) and a bias on held-out simulated lenses whose
galaxies come from the bank's ``val`` split (:func:`lensnet.training.combine.fit_combined_network`,
as Hezaveh et al. 2017 trained their final layer), then estimates the seeded test set of
:func:`lensnet.evaluate.testset.evaluate_predictor` (``test`` galaxies) with every model and the
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
from lensnet.device import resolve_device
from lensnet.errors import LensnetValueError
from lensnet.evaluate.evaluation import load_model
from lensnet.evaluate.testset import TEST_SET, evaluate_predictors, model_simulation_config, simulated_chunks
from lensnet.io.atomic import atomic_output, output_folder
from lensnet.metrics.report import format_beside_table1, markdown_table
from lensnet.plotting import plot_estimates
from lensnet.training.combine import fit_combined_network

__all__ = ["run_combination", "format_combination_table"]

#: Name of the combination's row in the tables.
COMBINED = "combined"


def run_combination(members: Sequence[str], num_fit: int = 2000, fit_seed: int = 2025, num: int = TEST_SET["num"],
                    seed: int = TEST_SET["seed"], batch_size: int = TEST_SET["batch_size"], device: str | None = "auto",
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
        Where to simulate and predict ['auto': cuda if available, else cpu].
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
    if len(members) < 2:
        raise LensnetValueError(f"a combination needs at least two models, got {len(members)}")
    device = resolve_device(device)
    out = output_folder(output_dir)
    loaded = [load_model(spec, device) for spec in members]
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
    for batch, _ in simulated_chunks(config.for_split("val"), int(num_fit), int(fit_seed),
                                     device, progress):
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
    results = report["results"]
    fit, test = report["fit_set"], next(iter(results.values()))["test_set"]
    prior = next(iter(results.values()))["metrics"]["paper"]["prior_err68"]
    weights = [(name, *(f"{w[n]:+.3f}" for n in PARAM_NAMES)) for name, w in report["weights"].items()]
    return "\n".join([
        f"Fitted on {fit['num']} held-out lenses ('{fit['source_split']}' galaxies, seed {fit['seed']}); "
        f"tested on {test['num']} lenses ('{test['source_split']}' galaxies, seed {test['seed']}).", "",
        "68% errors in the paper's convention, beside Table 1 of Hezaveh et al. 2017:", "",
        format_beside_table1([(name, r["metrics"]["paper"]["err68"]) for name, r in results.items()], prior,
                             markdown=True), "",
        "Weights of the combination (lensnet's convention):", "",
        markdown_table(["", *PARAM_NAMES], weights)])
