"""Real lenses end to end: ``lensnet predict --refine`` on every lens of ``../shared/realdata/lenses/`` beside the
published models (``published.csv``), with the commands a user would type.

Each lens is one ``lensnet predict --refine`` call (run in this process through click, exactly as typed): the
network on the image with its lens light removed (a Sérsic fit, or ICA of two filters for SL2S J0219-0829), then the joint
model (SIE + external shear + Sérsic lens light + Sérsic source) on the image's own pixels with its noise and
PSF, its posterior sampled by emcee. The table gives, per lens, the published θE, q and position angle (east of
north) beside the network's θE and the refined values with their 95% intervals, the reduced χ², the lensing
test (``delta_bic``) and the seconds the call took; the targets of the issue are checked against the
Bolton et al. (2008) SIE values. A second table compares like with like: each published model beside
lensnet's fit of the same family (Bolton et al.'s SIE: ``--lens-light sersic`` without ``--shear``; Tan et
al. (2024)'s power-law ellipsoid + shear: ``--mass epl --shear``; the SIE + shear and free-form models: the
default fit above), because an SIE's axis ratio absorbs the external shear that an SIE + shear fit gives
separately (SDSS J0737+3216: q 0.64 alone, 0.81 beside a shear). A mosaic of the refined figures (data, model, residual, critical curve,
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

import lensnet.refine.catalog as catalog
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
#: Per published model family, lensnet's fit of the same family (the default one where absent).
MATCHED = {"SIE": ["--lens-light", "sersic", "--fit-size", "5"],
           "EPL+shear": ["--lens-light", "sersic", "--shear", "--mass", "epl", "--fit-size", "5"]}
#: published.csv's numeric columns.
NUMERIC = ("theta_E", "theta_E_err", "q", "pa_east_of_north", "slope", "shear")


def published() -> dict[str, list[dict]]:
    """published.csv's rows by lens, θE in lenstronomy's convention (PyAutoLens's converted)."""
    rows: dict[str, list[dict]] = {}
    with open(LENSES / "published.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            value = {k: (float(v) if v not in ("", None) and k in NUMERIC else v) for k, v in row.items()}
            if "PyAutoLens" in row["notes"] and value["q"] != "":
                fac = (1 - value["q"]) / (1 + value["q"])
                converted = autolens_to_params(torch.zeros(1, 2), torch.tensor([[0.0, fac]]),
                                               torch.tensor([value["theta_E"]]))
                value["theta_E_autolens"], value["theta_E"] = value["theta_E"], float(converted[0, 0])
            rows.setdefault(row["lens"], []).append(value)
    return rows


def run_lens(name: str, path: Path, options: list[str], workdir: Path, posterior: str, model: list[str] = MODEL
             ) -> dict:
    """One ``lensnet predict --refine`` call; its catalogue row, command line and seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / f"{path.stem}.ecsv"
    args = ["predict", str(path), *options, "--refine", *model, "--posterior", posterior, "--figures", str(workdir),
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
               "e1_refined_hi95", "e2_refined_lo95", "e2_refined_hi95", "gamma_ext", "phi_ext", "n_neighbours", "gamma_refined", "gamma_refined_lo95",
               "gamma_refined_hi95")
    out = {"lens": name, "command": command, "seconds": seconds, "error": str(row["error"]),
           **{c: float(row[c]) for c in columns if c in row.colnames}, "lensed": bool(row["lensed"])}
    figure = workdir / f"{path.stem}_refined.png"
    out["figure"] = str(figure) if figure.exists() else ""
    return out


def fit_through(path: Path, options: list[str], model: list[str], wrapper) -> None:
    """One ``lensnet predict --refine`` of ``path`` (catalogue thrown away) with the fit's entry point
    :func:`lensnet.refine.refine_lenses` replaced by ``wrapper(original)``: how the probes see or hold what the
    catalogue's fit does (the catalogue has no option to hold a parameter)."""
    original = catalog.refine_lenses
    catalog.refine_lenses = wrapper(original)
    try:
        with tempfile.TemporaryDirectory() as work:
            args = ["predict", str(path), *options, "--refine", *model, "-o", f"{work}/out.ecsv", "--no-progress-bar"]
            outcome = CliRunner().invoke(cli, args, catch_exceptions=False)
            if outcome.exit_code != 0:
                raise SystemExit(outcome.output)
    finally:
        catalog.refine_lenses = original


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
    pairs = [(next((p for p in models.get(r["lens"], []) if p["model"] == "SIE" and "Bolton" in p["reference"]),
                   (models.get(r["lens"]) or [None])[0]), r) for r in results]
    rows = compare_matched(pairs)
    sie_errors, inside, network_ok = [], [], []
    for row in rows:
        if "theta_E_error" not in row:
            continue
        row["network_error"] = row["theta_E"] / row["published"]["theta_E"] - 1
        inside.append(row["covered"])
        network_ok.append(abs(row["network_error"]) <= 0.10)
        if "Bolton" in row["published"]["reference"]:
            sie_errors.append(abs(row["theta_E_error"]))
    return {"rows": rows, "targets": {
        "bolton_lenses": len(sie_errors),
        "bolton_max_abs_theta_E_error": max(sie_errors) if sie_errors else math.nan,
        "bolton_median_abs_theta_E_error": float(np.median(sie_errors)) if sie_errors else math.nan,
        "published_inside_95": float(np.mean(inside)) if inside else math.nan,
        "network_within_10_percent": float(np.mean(network_ok)) if network_ok else math.nan}}


def compare_matched(pairs: list[tuple[dict, dict]]) -> list[dict]:
    """Each (published model, lensnet's fit of its family) pair: θE off, inside the 95% interval, PA offset."""
    rows = []
    for ref, r in pairs:
        if ref is None or "theta_E_refined" not in r:
            rows.append({**r, "published": ref})
            continue
        pa_off = math.nan
        if isinstance(ref["pa_east_of_north"], float) and math.isfinite(r.get("pa_refined", math.nan)):
            d = abs(r["pa_refined"] - ref["pa_east_of_north"]) % 180
            pa_off = min(d, 180 - d)
        rows.append({**r, "published": ref, "theta_E_error": r["theta_E_refined"] / ref["theta_E"] - 1,
                     "covered": r["theta_E_refined_lo95"] <= ref["theta_E"] <= r["theta_E_refined_hi95"],
                     "pa_offset": pa_off, "q_interval": q_interval(r)})
    return rows


def matched_targets(rows: list[dict]) -> dict:
    """The issue's θE targets on the like-against-like pairs."""
    bolton = [abs(r["theta_E_error"]) for r in rows if "theta_E_error" in r and r["published"]["model"] == "SIE"
              and "Bolton" in r["published"]["reference"]]
    covered = [r for r in rows if "covered" in r]
    lenses = sorted({r["lens"] for r in rows})
    return {"bolton_lenses": len(bolton), "bolton_max_abs_theta_E_error": max(bolton) if bolton else math.nan,
            "bolton_median_abs_theta_E_error": float(np.median(bolton)) if bolton else math.nan,
            "models": len(rows), "inside": sum(bool(r["covered"]) for r in covered), "lenses": len(lenses),
            "lenses_inside": sum(all(r.get("covered", False) for r in rows if r["lens"] == lens) for lens in lenses)}


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


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _failed_row(first: list[str], row: dict, blanks: int) -> str:
    """A lens whose run failed: its first cells, the error, empty cells and the seconds."""
    return _table_row(first + [f"failed: {row.get('error', '')[:80]}"] + [""] * blanks + [f"{row['seconds']:.0f}"])


def _theta_e(row: dict) -> str:
    return (f"{row['theta_E_refined']:.3f} [{row['theta_E_refined_lo95']:.3f}, "
            f"{row['theta_E_refined_hi95']:.3f}]")


def _q(row: dict) -> str:
    lo, hi = row["q_interval"]
    return f"{row['q_refined']:.2f} [{lo:.2f}, {hi:.2f}]"


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
            lines.append(_failed_row([r["lens"], pub, "–"], r, 5))
            continue
        lines.append(_table_row([r["lens"], pub, f"{r['theta_E']:.3f} ± {r['theta_E_sigma']:.3f}", _theta_e(r),
                                 f"{r['theta_E_error']:+.1%}", _q(r), f"{r.get('pa_refined', math.nan):.0f}",
                                 f"{r['reduced_chi2']:.2f}", f"{r['delta_bic']:.0f}", f"{r['seconds']:.0f}"]))
    t = result["comparison"]["targets"]
    lines += ["", f"Targets: refined θE within 3% of Bolton et al.'s SIE on {t['bolton_lenses']} lenses: largest "
              f"{t['bolton_max_abs_theta_E_error']:.1%}, median {t['bolton_median_abs_theta_E_error']:.1%} (target "
              f"≤ 3%, median ≤ 1.5%); published θE inside the refined 95% interval: "
              f"{t['published_inside_95']:.0%} (target ≥ 80%); network within 10% of the published θE: "
              f"{t['network_within_10_percent']:.0%} (target 100%).", "", "Commands:", ""]
    lines += [f"    {r['command']}" for r in result["comparison"]["rows"]]
    if result.get("matched"):
        lines += ["", "## Like against like", "",
                  "Each published model beside lensnet's fit of the same family: Bolton et al.'s SIE beside the SIE "
                  "without shear, Tan et al. (2024)'s power-law ellipsoid (EPL) + shear beside `--mass epl --shear` "
                  "(slope γ, 2 isothermal), the others beside the default SIE + shear above. PA east of north; "
                  "J2303's and J0219's orientation on the sky is not recorded.", "",
                  "| lens | published model | published θE / q / PA / γ / γ_ext | refined θE [95%] | θE off | q [95%] "
                  "| PA (off) | γ [95%] | γ_ext | reduced χ² | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]

        def value(v, fmt):
            return format(v, fmt) if isinstance(v, float) and math.isfinite(v) else "–"

        for r in result["matched"]["rows"]:
            p = r["published"]
            pub = " / ".join(value(p.get(k), f) for k, f in (("theta_E", ".3f"), ("q", ".2f"), ("pa_east_of_north",
                             ".0f"), ("slope", ".2f"), ("shear", ".3f")))
            ref = f"{p['model']}, {p['reference'].split(' (')[0]}"
            if "theta_E_refined" not in r:
                lines.append(_failed_row([r["lens"], ref, pub], r, 6))
                continue
            slope = (f"{r['gamma_refined']:.2f} [{r['gamma_refined_lo95']:.2f}, {r['gamma_refined_hi95']:.2f}]"
                     if "gamma_refined" in r else "2")
            lines.append(_table_row([r["lens"], ref, pub, _theta_e(r), f"{r['theta_E_error']:+.1%}", _q(r),
                                     f"{value(r.get('pa_refined'), '.0f')} ({value(r['pa_offset'], '.0f')})", slope,
                                     value(r.get("gamma_ext"), ".3f"), f"{r['reduced_chi2']:.2f}",
                                     f"{r['seconds']:.0f}"]))
        t = result["matched"]["targets"]
        lines += ["", f"Like against like: refined θE within 3% of Bolton et al.'s SIE on {t['bolton_lenses']} lenses: "
                  f"largest {t['bolton_max_abs_theta_E_error']:.1%}, median {t['bolton_median_abs_theta_E_error']:.1%}; "
                  f"published θE inside the refined 95% interval for {t['inside']} of {t['models']} models "
                  f"({t['lenses_inside']} of {t['lenses']} lenses with every published model inside).", "",
                  "Commands (the fits of another family than the default's):", ""]
        lines += [f"    {r['command']}" for r in result["matched"]["rows"] if r.get("command") and
                  r["published"]["model"] in MATCHED]
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
        models = published()
        comparison = compare(results, models)
        figure = mosaic(comparison["rows"], MOSAIC)
        pairs = []
        for (name, path, options), default in zip(cases, results):
            for ref in models.get(name, []):
                if ref["model"] not in MATCHED:
                    pairs.append((ref, default))
                    continue
                family = ref["model"].lower().replace("+", "_")
                pairs.append((ref, run_lens(name, path, options, workdir / family, args.posterior,
                                            MATCHED[ref["model"]])))
                print(f"{name} ({ref['model']}): {pairs[-1][1].get('theta_E_refined', 'failed')} in "
                      f"{pairs[-1][1]['seconds']:.0f} s", flush=True)
        matched = compare_matched(pairs)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(torch.device("cpu")), "posterior": args.posterior,
              "comparison": comparison, "matched": {"rows": matched, "targets": matched_targets(matched)}, "mosaic": str(figure.relative_to(ROOT)) if figure else ""}
    print(write(result, " ".join(argv if argv is not None else [])).read_text())
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
