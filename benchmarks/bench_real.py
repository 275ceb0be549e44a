"""Real lenses end to end: ``lensnet predict --refine`` on every lens of ``../shared/realdata/lenses/`` beside the
published models (``published.csv``), with the commands a user would type.

Each lens is one ``lensnet predict --refine`` call (run in this process through click, exactly as typed): the
network on the image with its lens light removed (a Sérsic fit, or ICA of two filters for SL2S J0219-0829), then the joint
model (SIE + external shear + Sérsic lens light + Sérsic source) on the image's own pixels with its noise and
PSF, its posterior sampled by emcee. The table gives, per lens, the published θE, q and position angle (east of
north) beside the network's θE and the refined values with their 95% intervals, the reduced χ², the lensing
test (``delta_bic``) and the seconds the call took; the targets of the issue are checked against the
Bolton et al. (2008) SIE values. A mosaic of the refined figures (data, model, residual, critical curve,
north/east arrows) goes to ``docs/figures/real_lenses.png``.

Results: ``benchmarks/results/real_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_real.py [--lenses J0029,J0737] [--posterior laplace]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import shlex
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.table import Table
from click.testing import CliRunner
from PIL import Image

from lensnet.cli import cli
from lensnet.conventions import autolens_to_params, e1e2_to_qphi
from lensnet.io.atomic import atomic_output

try:
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.machine import machine_description

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realdata"
LENSES = REAL / "lenses"
EXAMPLES = ROOT / "src" / "lensnet" / "examples"
RESULTS = ROOT / "benchmarks" / "results"
MOSAIC = ROOT / "docs" / "figures" / "real_lenses.png"
TINYTIM = REAL / "psf" / "tinytim_acs_wfc_f814w.fits"
#: Per lens: name in published.csv, the input a user gives, and the options the file needs.
CASES = (
    ("SDSS J0029-0055", LENSES / "sdssj0029-0055" / "SDSSJ0029-0055_198x198.fits",
     ["--deblend", "sersic", "--psf", str(TINYTIM)]),
    ("SDSS J0737+3216", LENSES / "sdssj0737+3216" / "SDSSJ0737+3216_198x198.fits",
     ["--deblend", "sersic", "--psf", str(TINYTIM)]),
    ("SDSS J0753+3416", LENSES / "sdssj0753+3416" / "SDSSJ0753+3416_198x198.fits",
     ["--deblend", "sersic", "--psf", str(TINYTIM)]),
    ("SDSS J1051+4439", LENSES / "sdssj1051+4439" / "SDSSJ1051+4439_198x198.fits",
     ["--deblend", "sersic", "--psf", str(TINYTIM)]),
    ("SDSS J2303+1422", EXAMPLES / "sdssj2303+1422.fits", ["--deblend", "sersic"]),
    ("SL2S J0219-0829", EXAMPLES / "sl2sj0219-0829_F475X.fits",
     ["--deblend", str(EXAMPLES / "sl2sj0219-0829_F600LP.fits")]),
    ("Euclid Q1 102018665 NEG576731213511114485", LENSES / "euclid-q1-102018665-neg576731" / "vis.fits",
     ["--deblend", "sersic"]),
)
#: The joint model, as the README's real-lens commands give it.
MODEL = ["--lens-light", "sersic", "--shear", "--fit-size", "5"]


def published() -> dict[str, list[dict]]:
    """published.csv's rows by lens, θE in lenstronomy's convention (PyAutoLens's converted)."""
    rows: dict[str, list[dict]] = {}
    with open(LENSES / "published.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            value = {k: (float(v) if v not in ("", None) and k in ("theta_E", "theta_E_err", "q", "pa_east_of_north")
                         else v) for k, v in row.items()}
            if "PyAutoLens" in row["notes"] and value["q"] != "":
                fac = (1 - value["q"]) / (1 + value["q"])
                converted = autolens_to_params(torch.zeros(1, 2), torch.tensor([[0.0, fac]]),
                                               torch.tensor([value["theta_E"]]))
                value["theta_E_autolens"], value["theta_E"] = value["theta_E"], float(converted[0, 0])
            rows.setdefault(row["lens"], []).append(value)
    return rows


def run_lens(name: str, path: Path, options: list[str], workdir: Path, posterior: str) -> dict:
    """One ``lensnet predict --refine`` call; its catalogue row, command line and seconds."""
    output = workdir / f"{path.stem}.ecsv"
    args = ["predict", str(path), *options, "--refine", *MODEL, "--posterior", posterior, "--figures", str(workdir),
            "-o", str(output), "--overwrite", "--no-progress-bar"]
    t0 = time.perf_counter()
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    seconds = time.perf_counter() - t0
    shown = [a.replace(f"{ROOT}/", "").replace(str(ROOT.parent), "..") for a in args[:-6]]
    command = "lensnet " + shlex.join(shown)
    if result.exit_code != 0 or not output.exists():
        return {"lens": name, "command": command, "seconds": seconds, "error": result.output.strip()[-400:]}
    row = Table.read(output)[0]
    columns = ("theta_E", "theta_E_sigma", "theta_E_refined", "theta_E_refined_lo95", "theta_E_refined_hi95",
               "q_refined", "pa_refined", "reduced_chi2", "delta_bic", "e1_refined", "e2_refined", "e1_refined_lo95",
               "e1_refined_hi95", "e2_refined_lo95", "e2_refined_hi95", "gamma_ext", "n_neighbours")
    out = {"lens": name, "command": command, "seconds": seconds, "error": str(row["error"]),
           **{c: float(row[c]) for c in columns if c in row.colnames}, "lensed": bool(row["lensed"])}
    figure = workdir / f"{path.stem}_refined.png"
    out["figure"] = str(figure) if figure.exists() else ""
    return out


def q_interval(row: dict) -> tuple[float, float]:
    """The range of q over the (e1, e2) 95% box: q falls with |e|, so its least is at the corner farthest from
    e = 0 and its greatest at the box's point nearest to it (inside the box, q = 1), not always a corner."""
    e1 = (row["e1_refined_lo95"], row["e1_refined_hi95"])
    e2 = (row["e2_refined_lo95"], row["e2_refined_hi95"])
    nearest = torch.tensor([min(max(0.0, e1[0]), e1[1]), min(max(0.0, e2[0]), e2[1])], dtype=torch.float64)
    farthest = max((torch.tensor([a, b], dtype=torch.float64) for a in e1 for b in e2), key=lambda e: float(e.norm()))
    q = [float(e1e2_to_qphi(e[0], e[1])[0]) for e in (farthest, nearest)]
    return q[0], q[1]


def compare(results: list[dict], models: dict[str, list[dict]]) -> dict:
    """Per lens the published SIE (else the first) model beside lensnet's, and the targets."""
    rows, sie_errors, inside, network_ok = [], [], [], []
    for r in results:
        pubs = models.get(r["lens"], [])
        ref = next((p for p in pubs if p["model"] == "SIE" and "Bolton" in p["reference"]), pubs[0] if pubs else None)
        if ref is None or "theta_E_refined" not in r:
            rows.append({**r, "published": ref})
            continue
        te = ref["theta_E"]
        error = r["theta_E_refined"] / te - 1
        covered = r["theta_E_refined_lo95"] <= te <= r["theta_E_refined_hi95"]
        net = r["theta_E"] / te - 1
        pa_off = math.nan
        if isinstance(ref["pa_east_of_north"], float) and math.isfinite(r.get("pa_refined", math.nan)):
            d = abs(r["pa_refined"] - ref["pa_east_of_north"]) % 180
            pa_off = min(d, 180 - d)
        rows.append({**r, "published": ref, "theta_E_error": error, "covered": covered, "network_error": net,
                     "pa_offset": pa_off, "q_interval": q_interval(r)})
        inside.append(covered)
        network_ok.append(abs(net) <= 0.10)
        if "Bolton" in ref["reference"]:
            sie_errors.append(abs(error))
    return {"rows": rows, "targets": {
        "bolton_lenses": len(sie_errors),
        "bolton_max_abs_theta_E_error": max(sie_errors) if sie_errors else math.nan,
        "bolton_median_abs_theta_E_error": float(np.median(sie_errors)) if sie_errors else math.nan,
        "published_inside_95": float(np.mean(inside)) if inside else math.nan,
        "network_within_10_percent": float(np.mean(network_ok)) if network_ok else math.nan}}


def mosaic(rows: list[dict], output: Path) -> Path | None:
    """The refined figures of every lens, one above the other, at 60% of their size in 128 colours (a few
    hundred kB for the README)."""
    images = [Image.open(r["figure"]).convert("RGB") for r in rows if r.get("figure")]
    if not images:
        return None
    images = [i.resize((round(0.6 * i.width), round(0.6 * i.height)), Image.LANCZOS) for i in images]
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        sheet.paste(image, (0, top))
        top += image.height
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output, overwrite=True) as tmp:
        sheet.quantize(colors=128).save(tmp, format="PNG", optimize=True)
    return output


def write(result: dict, argv: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_cpu.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    m = result["machine"]
    lines = [f"# Real lenses end to end ({m['cpu']}, {m['cores']} cores, torch {m['torch']})", "",
             f"`python benchmarks/bench_real.py {argv}`, {result['date']}. Each lens is one `lensnet predict --refine` call "
             "(below); θE in arcsec (lenstronomy's convention; the Euclid model's PyAutoLens θE converted), PA east "
             "of north in degrees; refined values with their 95% intervals.", "",
             "| lens | published (model, reference) θE / q / PA | network θE | refined θE [95%] | θE off | refined q "
             "[95%] | refined PA | reduced χ² | delta_bic | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["comparison"]["rows"]:
        p = r.get("published") or {}
        pub = (f"{p.get('theta_E', math.nan):.3f} / {p.get('q', '') or '–'} / {p.get('pa_east_of_north', '') or '–'} "
               f"({p.get('model', '?')}, {p.get('reference', '?').split(' (')[0]})") if p else "–"
        if "theta_E_refined" not in r:
            lines.append(f"| {r['lens']} | {pub} | – | failed: {r.get('error', '')[:80]} | | | | | | {r['seconds']:.0f} |")
            continue
        lo, hi = r["q_interval"]
        lines.append(
            f"| {r['lens']} | {pub} | {r['theta_E']:.3f} ± {r['theta_E_sigma']:.3f} | {r['theta_E_refined']:.3f} "
            f"[{r['theta_E_refined_lo95']:.3f}, {r['theta_E_refined_hi95']:.3f}] | {r['theta_E_error']:+.1%} | "
            f"{r['q_refined']:.2f} [{lo:.2f}, {hi:.2f}] | {r.get('pa_refined', math.nan):.0f} | "
            f"{r['reduced_chi2']:.2f} | {r['delta_bic']:.0f} | {r['seconds']:.0f} |")
    t = result["comparison"]["targets"]
    lines += ["", f"Targets: refined θE within 3% of Bolton et al.'s SIE on {t['bolton_lenses']} lenses: largest "
              f"{t['bolton_max_abs_theta_E_error']:.1%}, median {t['bolton_median_abs_theta_E_error']:.1%} (target "
              f"≤ 3%, median ≤ 1.5%); published θE inside the refined 95% interval: "
              f"{t['published_inside_95']:.0%} (target ≥ 80%); network within 10% of the published θE: "
              f"{t['network_within_10_percent']:.0%} (target 100%).", "", "Commands:", ""]
    lines += [f"    {r['command']}" for r in result["comparison"]["rows"]]
    path = RESULTS / "real_cpu.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lenses", help="comma-separated parts of the lens names to run [all]")
    parser.add_argument("--posterior", choices=("mcmc", "laplace"), default="mcmc")
    parser.add_argument("--keep", help="folder to keep the catalogues and figures in [a temporary one]")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cases = [c for c in CASES if not args.lenses or any(k in c[0] for k in args.lenses.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for name, path, options in cases:
            results.append(run_lens(name, path, options, workdir, args.posterior))
            print(f"{name}: {results[-1].get('theta_E_refined', 'failed')} in {results[-1]['seconds']:.0f} s", flush=True)
        comparison = compare(results, published())
        figure = mosaic(comparison["rows"], MOSAIC)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(torch.device("cpu")), "posterior": args.posterior,
              "comparison": comparison, "mosaic": str(figure.relative_to(ROOT)) if figure else ""}
    print(write(result, " ".join(argv if argv is not None else [])).read_text())
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
