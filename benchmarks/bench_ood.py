"""The out-of-distribution flag of the shipped model: what it flags on simulated non-lenses, on the paper's test
set, and on the real lenses of ``../shared/realdata/lenses/`` (which it must not flag).

The simulated fractions are those ``lensnet calibrate --ood`` measured on data its fit never saw (stored in the
model card). Each real lens is one ``lensnet predict`` call with the options of ``benchmarks/bench_real.py``
(the lens light removed first, as the network needs), and once more as the raw image, lens light included.
Results go to ``benchmarks/results/ood_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_ood.py
"""

from __future__ import annotations

import datetime
import json
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from astropy.table import Table
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.inference import load_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import CASES, ROOT  # noqa: E402
from machine import machine_description  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def real_scores(workdir: Path) -> list[dict]:
    """Each real lens's score, as prepared for the network (lens light removed) and raw."""
    rows = []
    for name, path, options in CASES:
        entry = {"lens": name}
        for label, extra in (("deblended", options), ("raw", [])):
            output = workdir / f"{path.stem}_{label}.ecsv"
            args = ["predict", str(path), *extra, "-o", str(output), "--overwrite", "--no-progress-bar",
                    "--workers", "0"]
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            if result.exit_code != 0:
                raise RuntimeError(f"{shlex.join(args)} failed: {result.output}")
            row = Table.read(output)[0]
            entry[label] = {"ood_score": float(row["ood_score"]), "ood": bool(row["ood"]),
                            "theta_E": float(row["theta_E"])}
        rows.append(entry)
    return rows


def main() -> dict:
    predictor = load_pretrained()
    ood = predictor.card["ood"]
    with tempfile.TemporaryDirectory() as tmp:
        real = real_scores(Path(tmp))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(torch.device("cpu")), "threshold": ood["threshold"],
              "simulated": ood["flagged"], "fit_set": ood["fit_set"], "test_set": ood["test_set"], "real": real}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ood_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    flagged = result["simulated"]
    non = [flagged[kind] for kind in ood["fit_set"]["kinds"]]
    lines = [f"# Out-of-distribution flag ({result['date']})", "",
             f"`python benchmarks/bench_ood.py`; threshold {ood['threshold']:.3f} (the {100 * ood['quantile']:g}th "
             f"percentile of held-out lenses' scores). Simulated: measured by `lensnet calibrate --ood` on sets its "
             f"fit never saw ({ood['test_set']['num']} test lenses of seed {ood['test_set']['seed']}, "
             f"{ood['fit_set'].get('num_deblended', 0) // 2} deblended test lenses, "
             f"{ood['fit_set']['num_per_kind']} non-lenses of each kind).", "",
             "| set | flagged |", "|---|---|"]
    lines += [f"| {k} | {100 * v:.1f}% |" for k, v in flagged.items()]
    lines += [f"| all non-lenses (equal numbers of each kind) | {100 * sum(non) / len(non):.1f}% |", "",
              "| real lens | score, lens light removed (flagged?) | score, raw image (flagged?) |", "|---|---|---|"]
    for row in real:
        d, r = row["deblended"], row["raw"]
        lines.append(f"| {row['lens']} | {d['ood_score']:.3f} ({'yes' if d['ood'] else 'no'}) | "
                     f"{r['ood_score']:.3f} ({'yes' if r['ood'] else 'no'}) |")
    (RESULTS / "ood_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
