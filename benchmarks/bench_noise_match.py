"""Noise matching on test sets with correlated noise: the shipped model's errors and coverage with and without it.

Two test sets off the model's grid, brought to it as real images are (:func:`lensnet.preprocess.real.prepare_image`):
the ``hst-acs`` preset (0.05" pixels) and ``benchmarks/euclid_vis.yaml`` (Euclid VIS-like 0.1" pixels, whose
resampling to 0.04" correlates the noise over ~2.5 pixels). Each is evaluated twice on the same seeded lenses,
side by side: with the noise matched to a training spectrum (:mod:`lensnet.preprocess.whiten`, the default) and
without. Results go to ``benchmarks/results/noise_match_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_noise_match.py --num 500
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

from lensnet.evaluate.testset import TEST_SET, evaluate_predictors
from lensnet.inference import load_pretrained
from lensnet.simulate import get_preset, load_simulation_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAMES = ("theta_E", "e1", "e2", "center_x", "center_y")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=500, help="lenses per test set [500]")
    parser.add_argument("--seed", type=int, default=TEST_SET["seed"], help="seed of the test sets [2024]")
    args = parser.parse_args(argv)
    predictor = load_pretrained()
    sets = {"hst-acs": get_preset("hst-acs"),
            "euclid-vis": load_simulation_config(ROOT / "benchmarks" / "euclid_vis.yaml")}
    rows = []
    for label, config in sets.items():
        for matched in (True, False):
            result = next(iter(evaluate_predictors({"model": predictor}, config, args.num, args.seed,
                                                   match_noise_spectrum=matched).values()))
            m = result.metrics["lensnet"]
            rows.append({"set": label, "matched": matched, "err68": m["err68"], "cover68": m["cover68"],
                         "cover95": m["cover95"]})
            print(rows[-1], flush=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(torch.device("cpu")), "num": args.num, "seed": args.seed, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "noise_match_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [f"# Noise matching ({m['cpu']}, {m['cores']} cores, torch {m['torch']})", "",
             f"`python benchmarks/bench_noise_match.py --num {args.num}`, {result['date']}: the shipped model on "
             f"{args.num} test lenses of seed {args.seed} per set, brought to its grid as real images are, with and "
             "without the noise matched to a training spectrum (same lenses, side by side). 68% errors (arcsec for "
             "θE and the centre) and the coverage of the 68% / 95% intervals.", "",
             "| test set | noise matched | " + " | ".join(f"{n} err68" for n in NAMES) + " | coverage 68% | coverage 95% |",
             "|---|---|" + "---|" * (len(NAMES) + 2)]
    for row in rows:
        lines.append(f"| {row['set']} | {'yes' if row['matched'] else 'no'} | "
                     + " | ".join(f"{row['err68'][n]:.4f}" for n in NAMES) + " | "
                     + ", ".join(f"{row['cover68'][n]:.2f}" for n in NAMES) + " | "
                     + ", ".join(f"{row['cover95'][n]:.2f}" for n in NAMES) + " |")
    (RESULTS / "noise_match_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
