"""``lensnet refine`` on a seeded ``paper`` test set: the network alone, the network-seeded likelihood fit
and the blind fit (the maximum-likelihood modelling the paper compares with), split by source kind.

Every lens of the test set (seed 2024, ``test`` galaxies) is estimated by the shipped network (calibrated
1-sigma), then fitted by :func:`lensnet.refine.refine_lenses` with the SIE + Sersic model twice: seeded
(started at the network's estimate, its calibrated uncertainty as a Gaussian prior) and blind (started at
the training prior's mean with restarts drawn from its spread, no prior term). The noise, PSF and masks
given to the fit are those the simulator drew; cosmic rays and hot pixels are left to the fit's clipping.
68% errors in lensnet's convention and the paper's; seconds per lens of each method. Results go to
``benchmarks/results/refine_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_refine.py --num 48
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from lensnet.conventions import PARAM_NAMES
from lensnet.evaluate.testset import model_simulation_config, simulated_chunks
from lensnet.inference import load_pretrained
from lensnet.lensing import PixelGrid
from lensnet.metrics import PAPER_PARAM_NAMES, error68
from lensnet.metrics.accuracy import paper_residuals
from lensnet.refine import refine_lenses
from lensnet.refine.simulated import simulated_image_data
from lensnet.simulate.simulator import SOURCE_TYPES

try:
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("network", "seeded fit", "blind fit")


def run(num: int, seed: int, restarts: int, blind_restarts: int, max_iter: int, chunk: int) -> dict:
    predictor = load_pretrained()
    config = model_simulation_config(predictor.card)
    grid = PixelGrid(config.n_pix, config.pixel_scale)
    prior_mean = torch.tensor([predictor.card["target_mean"][n] for n in PARAM_NAMES], dtype=torch.float64)
    prior_std = torch.tensor([predictor.card["target_std"][n] for n in PARAM_NAMES], dtype=torch.float64)
    truth, kinds, estimates, seconds = [], [], {m: [] for m in METHODS}, dict.fromkeys(METHODS, 0.0)
    chi2 = {m: [] for m in METHODS[1:]}
    for batch, _ in simulated_chunks(config.for_split("test"), num, seed, torch.device("cpu"), progress=False):
        for start in range(0, len(batch), chunk):
            part = slice(start, start + chunk)
            images = batch.images[part]
            t0 = time.perf_counter()
            mean, std = predictor.predict(images, normalized=True)
            seconds["network"] += time.perf_counter() - t0
            data = simulated_image_data(batch, grid).take(torch.arange(len(batch))[part])
            seeded = refine_lenses(data, mean.double(), std.double(), prior=True, restarts=restarts,
                                   max_iter=max_iter, seed=seed)
            n = len(images)
            blind = refine_lenses(data, prior_mean.expand(n, -1), prior_std.expand(n, -1), prior=False,
                                  restarts=blind_restarts, max_iter=max_iter, seed=seed)
            seconds["seeded fit"] += seeded.seconds
            seconds["blind fit"] += blind.seconds
            estimates["network"].append(mean.double())
            estimates["seeded fit"].append(seeded.lens)
            estimates["blind fit"].append(blind.lens)
            chi2["seeded fit"].append(seeded.reduced_chi2)
            chi2["blind fit"].append(blind.reduced_chi2)
            truth.append(batch.targets[part].double())
            kinds.append(batch.record["source_type"][part])
            print(f"{sum(len(t) for t in truth)}/{num} lenses", flush=True)
    truth, kinds = torch.cat(truth), torch.cat(kinds)
    out = {"num": num, "seed": seed, "restarts": restarts, "blind_restarts": blind_restarts, "max_iter": max_iter,
           "seconds_per_lens": {m: seconds[m] / num for m in METHODS}, "by_kind": {}}
    for code, kind in [(None, "all"), *enumerate(SOURCE_TYPES)]:
        sel = torch.ones(len(truth), dtype=torch.bool) if code is None else kinds == code
        if not sel.any():
            continue
        row = {"lenses": int(sel.sum())}
        for m in METHODS:
            est = torch.cat(estimates[m])[sel]
            row[m] = {"lensnet": dict(zip(PARAM_NAMES, error68(est - truth[sel]).tolist())),
                      "paper": dict(zip(PAPER_PARAM_NAMES, error68(paper_residuals(est, truth[sel])).tolist()))}
            if m in chi2:
                row[m]["median_reduced_chi2"] = float(torch.cat(chi2[m])[sel].median())
        out["by_kind"][kind] = row
    return out


def write(result: dict, argv: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    machine = machine_description(torch.device("cpu"))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine, **result}
    (RESULTS / "refine_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# lensnet refine on the paper test set ({machine['cpu']}, {machine['cores']} cores, "
             f"torch {machine['torch']})", "", f"`python benchmarks/bench_refine.py {argv}`, {result['date']}; "
             f"68% errors in the paper's convention; seconds per lens in batches.", "",
             "| source | lenses | method | s/lens | " + " | ".join(PAPER_PARAM_NAMES) + " | median reduced chi2 |",
             "|---|---|---|---|" + "---|" * len(PAPER_PARAM_NAMES) + "---|"]
    for kind, row in result["by_kind"].items():
        for m in METHODS:
            errors = row[m]["paper"]
            chi = row[m].get("median_reduced_chi2")
            lines.append(f"| {kind} | {row['lenses']} | {m} | {result['seconds_per_lens'][m]:.3g} | "
                         + " | ".join(f"{errors[n]:.3f}" for n in PAPER_PARAM_NAMES)
                         + f" | {'' if chi is None else f'{chi:.2f}'} |")
    (RESULTS / "refine_cpu.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=48)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--restarts", type=int, default=2, help="starts per lens of the seeded fit")
    parser.add_argument("--blind-restarts", type=int, default=6, help="starts per lens of the blind fit")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=16, help="lenses fitted together")
    args = parser.parse_args(argv)
    result = run(args.num, args.seed, args.restarts, args.blind_restarts, args.max_iter, args.chunk)
    write(result, " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()))
    print((RESULTS / "refine_cpu.md").read_text())
    return result


if __name__ == "__main__":
    main()
