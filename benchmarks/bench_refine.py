"""``lensnet refine`` on a seeded ``paper`` test set: the network alone, the network-seeded likelihood fit
and the blind fit (the maximum-likelihood modelling the paper compares with), split by source kind.

Every lens of the test set (seed 2024, ``test`` galaxies) is estimated by the shipped network (calibrated
1-sigma), then fitted by :func:`lensnet.refine.refine_lenses` with the SIE + Sersic model twice: seeded
(started at the network's estimate, its calibrated uncertainty as a Gaussian prior) and blind (started at
the training prior's mean with restarts drawn from its spread, no prior term); the lenses of the kinds given
by ``--pixelated`` (real-galaxy sources by default) are also fitted, seeded, with the pixelated source
(``source="pixelated"``, about 20 s per lens). The noise, PSF and masks
given to the fit are those the simulator drew; cosmic rays and hot pixels are left to the fit's clipping.
68% errors in lensnet's convention and the paper's; seconds per lens of each method. With
``--lenstronomy N`` the first N lenses are also fitted by lenstronomy's own ``FittingSequence`` (a particle
swarm over the training prior's box, then a downhill simplex), blind like the blind fit, as the peer's
timing anchor. Results go to ``benchmarks/results/refine_cpu.json`` and ``.md`` (``--name`` for another name;
``--blind-restarts 0 --pixelated`` times the seeded fit alone).

Usage::

    python benchmarks/bench_refine.py --num 96 --lenstronomy 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from lenstronomy.Workflow.fitting_sequence import FittingSequence

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
METHODS = ("network", "seeded fit", "blind fit", "seeded fit, pixelated source")
PIXELATED = METHODS[-1]


def run(predictor, num: int, seed: int, restarts: int, blind_restarts: int, max_iter: int, chunk: int,
        pixelated_kinds: tuple[str, ...] = ("real",), n_side: int = 16) -> dict:
    config = model_simulation_config(predictor.card)
    grid = PixelGrid(config.n_pix, config.pixel_scale)
    prior_mean = torch.tensor([predictor.card["target_mean"][n] for n in PARAM_NAMES], dtype=torch.float64)
    prior_std = torch.tensor([predictor.card["target_std"][n] for n in PARAM_NAMES], dtype=torch.float64)
    truth, kinds, estimates, seconds = [], [], {m: [] for m in METHODS}, dict.fromkeys(METHODS, 0.0)
    chi2 = {m: [] for m in METHODS[1:]}
    pixelated_codes = torch.tensor([SOURCE_TYPES.index(k) for k in pixelated_kinds], dtype=torch.long)
    n_pixelated = 0
    for batch, _ in simulated_chunks(config.for_split("test"), num, seed, torch.device("cpu"), progress=False):
        batch_data = simulated_image_data(batch, grid)
        for start in range(0, len(batch), chunk):
            part = slice(start, start + chunk)
            images = batch.images[part]
            t0 = time.perf_counter()
            mean, std = predictor.predict(images, normalized=True)
            seconds["network"] += time.perf_counter() - t0
            data = batch_data.take(torch.arange(len(batch))[part])
            seeded = refine_lenses(data, mean.double(), std.double(), prior=True, restarts=restarts,
                                   max_iter=max_iter, seed=seed)
            n = len(images)
            seconds["seeded fit"] += seeded.seconds
            estimates["network"].append(mean.double())
            estimates["seeded fit"].append(seeded.lens)
            chi2["seeded fit"].append(seeded.reduced_chi2)
            if blind_restarts:
                blind = refine_lenses(data, prior_mean.expand(n, -1), prior_std.expand(n, -1), prior=False,
                                      restarts=blind_restarts, max_iter=max_iter, seed=seed)
                seconds["blind fit"] += blind.seconds
                estimates["blind fit"].append(blind.lens)
                chi2["blind fit"].append(blind.reduced_chi2)
            # The pixelated source on the chosen kinds only (its time includes its Sersic stage); NaN elsewhere.
            lens_pix, chi_pix = torch.full_like(seeded.lens, float("nan")), torch.full_like(seeded.reduced_chi2, float("nan"))
            chosen = torch.isin(batch.record["source_type"][part], pixelated_codes)
            if chosen.any():
                index = torch.nonzero(chosen)[:, 0]
                pixel = refine_lenses(data.take(index), mean.double()[index], std.double()[index], prior=True,
                                      restarts=restarts, max_iter=max_iter, seed=seed, source="pixelated", n_side=n_side)
                lens_pix[index], chi_pix[index] = pixel.lens, pixel.reduced_chi2
                seconds[PIXELATED] += pixel.seconds
                n_pixelated += len(index)
            estimates[PIXELATED].append(lens_pix)
            chi2[PIXELATED].append(chi_pix)
            truth.append(batch.targets[part].double())
            kinds.append(batch.record["source_type"][part])
            print(f"{sum(len(t) for t in truth)}/{num} lenses", flush=True)
    truth, kinds = torch.cat(truth), torch.cat(kinds)
    done = [m for m in METHODS if estimates[m] and (m != PIXELATED or n_pixelated)]
    per_lens = {m: seconds[m] / (n_pixelated if m == PIXELATED else num) for m in done}
    out = {"num": num, "seed": seed, "restarts": restarts, "blind_restarts": blind_restarts, "max_iter": max_iter,
           "pixelated_kinds": list(pixelated_kinds), "n_side": n_side, "seconds_per_lens": per_lens, "by_kind": {}}
    for code, kind in [(None, "all"), *enumerate(SOURCE_TYPES)]:
        sel = torch.ones(len(truth), dtype=torch.bool) if code is None else kinds == code
        if not sel.any():
            continue
        row = {"lenses": int(sel.sum())}
        for m in done:
            est = torch.cat(estimates[m])[sel]
            if not torch.isfinite(est).all():  # the pixelated source where it was not fitted
                continue
            row[m] = {"lensnet": dict(zip(PARAM_NAMES, error68(est - truth[sel]).tolist())),
                      "paper": dict(zip(PAPER_PARAM_NAMES, error68(paper_residuals(est, truth[sel])).tolist()))}
            if m in chi2:
                row[m]["median_reduced_chi2"] = float(torch.cat(chi2[m])[sel].median())
        out["by_kind"][kind] = row
    return out


def lenstronomy_fits(batch, grid: PixelGrid, count: int, prior_mean, prior_std) -> dict:
    """lenstronomy's PSO + simplex fit of the first ``count`` lenses of ``batch``: 68% errors need more
    lenses than a handful, so this returns the estimates, truths and seconds per lens."""
    data = simulated_image_data(batch, grid)
    n, scale = grid.n_pix, grid.pixel_scale
    corner = -(n - 1) / 2 * scale
    estimates, seconds = [], 0.0
    names = ("theta_E", "e1", "e2", "center_x", "center_y")
    for i in range(count):
        image = data.image[i].numpy()
        rms = float(batch.record["noise_rms"][i]) if bool(batch.record["noise_applied"][i]) else 1e-3
        counts = float(batch.record["poisson_counts"][i]) if bool(batch.record["poisson_applied"][i]) else 1e12
        border = np.concatenate([image[:6].ravel(), image[-6:].ravel()])
        kwargs_data = {"image_data": image - np.median(border), "background_rms": rms, "exposure_time": counts,
                       "transform_pix2angle": np.diag([scale, scale]), "ra_at_xy_0": corner, "dec_at_xy_0": corner}
        kwargs_psf = {"psf_type": "PIXEL", "kernel_point_source": data.psf[i].numpy()}
        mean, std = prior_mean.tolist(), prior_std.tolist()
        lens = [[dict(zip(names, mean))], [dict(zip(names, std))], [{}],
                [{"theta_E": 0.1, "e1": -0.85, "e2": -0.85, "center_x": -0.3, "center_y": -0.3}],
                [{"theta_E": 3.0, "e1": 0.85, "e2": 0.85, "center_x": 0.3, "center_y": 0.3}]]
        source = [[{"R_sersic": 0.15, "n_sersic": 1.0, "e1": 0.0, "e2": 0.0, "center_x": 0.0, "center_y": 0.0}],
                  [{"R_sersic": 0.1, "n_sersic": 0.5, "e1": 0.2, "e2": 0.2, "center_x": 0.3, "center_y": 0.3}], [{}],
                  [{"R_sersic": 0.01, "n_sersic": 0.3, "e1": -0.6, "e2": -0.6, "center_x": -1.5, "center_y": -1.5}],
                  [{"R_sersic": 1.0, "n_sersic": 6.0, "e1": 0.6, "e2": 0.6, "center_x": 1.5, "center_y": 1.5}]]
        fitting = FittingSequence(
            {"multi_band_list": [[kwargs_data, kwargs_psf, {"supersampling_factor": 1}]],
             "multi_band_type": "single-band"},
            {"lens_model_list": ["SIE"], "source_light_model_list": ["SERSIC_ELLIPSE"]}, {},
            {"image_likelihood_mask_list": [(~data.mask[i]).numpy().astype(float)]},
            {"lens_model": lens, "source_model": source})
        t0 = time.perf_counter()
        fitting.fit_sequence([["PSO", {"sigma_scale": 1.0, "n_particles": 60, "n_iterations": 150}],
                              ["SIMPLEX", {"n_iterations": 400}]])
        seconds += time.perf_counter() - t0
        best = fitting.best_fit()["kwargs_lens"][0]
        estimates.append([best[k] for k in names])
    estimates = torch.tensor(estimates, dtype=torch.float64)
    truth = batch.targets[:count].double()
    return {"lenses": count, "seconds_per_lens": seconds / count,
            "abs_error": {n: v for n, v in zip(PARAM_NAMES, (estimates - truth).abs().median(0).values.tolist())},
            "estimates": estimates.tolist(), "truth": truth.tolist()}


def write(result: dict, argv: str, name: str = "refine_cpu") -> None:
    RESULTS.mkdir(exist_ok=True)
    machine = machine_description(torch.device("cpu"))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine, **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# lensnet refine on the paper test set ({machine['cpu']}, {machine['cores']} cores, "
             f"torch {machine['torch']})", "", f"`python benchmarks/bench_refine.py {argv}`, {result['date']}; "
             f"68% errors in the paper's convention; seconds per lens in batches.", "",
             "| source | lenses | method | s/lens | " + " | ".join(PAPER_PARAM_NAMES) + " | median reduced chi2 |",
             "|---|---|---|---|" + "---|" * len(PAPER_PARAM_NAMES) + "---|"]
    for kind, row in result["by_kind"].items():
        for m in (m for m in METHODS if m in row):
            errors = row[m]["paper"]
            chi = row[m].get("median_reduced_chi2")
            lines.append(f"| {kind} | {row['lenses']} | {m} | {result['seconds_per_lens'][m]:.3g} | "
                         + " | ".join(f"{errors[n]:.3f}" for n in PAPER_PARAM_NAMES)
                         + f" | {'' if chi is None else f'{chi:.2f}'} |")
    if "lenstronomy" in result:
        anchor = result["lenstronomy"]
        lines += ["", f"lenstronomy's FittingSequence (PSO, 60 particles x 150 iterations, then a simplex; blind) on "
                  f"the first {anchor['lenses']} lenses: {anchor['seconds_per_lens']:.0f} s per lens; median "
                  "absolute errors " + ", ".join(f"{n} {v:.3f}" for n, v in anchor["abs_error"].items()) + "."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=96)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--restarts", type=int, default=8, help="starts per lens of the seeded fit")
    parser.add_argument("--blind-restarts", type=int, default=32, help="starts per lens of the blind fit; 0: no blind fit")
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--chunk", type=int, default=16, help="lenses fitted together")
    parser.add_argument("--lenstronomy", type=int, default=0, help="lenses also fitted by lenstronomy (slow)")
    parser.add_argument("--pixelated", nargs="*", default=["real"], choices=SOURCE_TYPES,
                        help="source kinds also fitted with the pixelated source (slow) [real]")
    parser.add_argument("--n-side", type=int, default=16, help="pixels per side of the pixelated source")
    parser.add_argument("--name", default="refine_cpu", help="results/NAME.json and .md [refine_cpu]")
    args = parser.parse_args(argv)
    predictor = load_pretrained()
    result = run(predictor, args.num, args.seed, args.restarts, args.blind_restarts, args.max_iter, args.chunk,
                 tuple(args.pixelated), args.n_side)
    if args.lenstronomy:
        config = model_simulation_config(predictor.card)
        batch, _ = next(simulated_chunks(config.for_split("test"), args.lenstronomy, args.seed, torch.device("cpu"),
                                         progress=False))
        prior = [torch.tensor([predictor.card[key][n] for n in PARAM_NAMES]) for key in ("target_mean", "target_std")]
        result["lenstronomy"] = lenstronomy_fits(batch, PixelGrid(config.n_pix, config.pixel_scale), args.lenstronomy,
                                                 *prior)
    argv_text = " ".join(f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items())
    write(result, argv_text, args.name)
    print((RESULTS / f"{args.name}.md").read_text())
    return result


if __name__ == "__main__":
    main()
