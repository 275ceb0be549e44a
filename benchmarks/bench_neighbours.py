"""Sources near a lens that :func:`lensnet.preprocess.neighbours.neighbour_mask` masks within its keep radius (an
unresolved one, or one beyond the arcs): how often it masks a star, and how often it takes a piece of the arcs
instead.

Lenses as ``bench_joint.py`` draws and renders them (lenstronomy: SIE + shear, Sersic lens light, a Sersic or a
real-galaxy source (Hubble deep field ``test`` galaxies, 0.5-1.2" across, knots and all), Gaussian PSF, sky and
Poisson noise), at 0.05" (PSF FWHM 0.1") and 0.1" (0.2"). For each lens, two images: as drawn, and with a star
(the PSF) 1-2.3" from the centre, its peak 10-300 times the sky rms. Each is given to the rule as the likelihood
fit's input (lens light in, PSF known) and as the network's (lens light removed, no PSF). Reported per pixel scale
and source: the fraction of lenses whose image without a star has any source within the keep radius masked (arcs
taken), the fraction of stars masked, and the arcs' flux that the rule masked (percent of the arcs' total flux
above the sky), for several values of :data:`~lensnet.preprocess.neighbours.POINT_FWHM_RATIO`,
:data:`~lensnet.preprocess.neighbours.POINT_ELONGATION` and :data:`~lensnet.preprocess.neighbours.ARC_RADIUS_FACTOR`.
Results go to ``benchmarks/results/neighbours_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_neighbours.py --num 100
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np
import torch

import lensnet.preprocess.neighbours as neighbours
from lensnet.sources import hubble_deep_field_bank

try:
    from bench_joint import INSTRUMENTS, draw, simulate
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.bench_joint import INSTRUMENTS, draw, simulate
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
#: (input, FWHM ratio, largest elongation, arcs' radius factor) of the rule: the likelihood fit's input (lens light
#: in, PSF known) or the network's (lens light removed, no PSF); an infinite factor turns the cut beyond the arcs off.
VARIANTS = (("fit", 1.25, math.inf, 1.5), ("fit", 1.5, math.inf, 1.5), ("fit", 1.5, 1.3, 1.5), ("fit", 2.0, 1.3, 1.5),
            ("fit", 1.5, 1.3, math.inf), ("network", 1.5, 1.3, 1.5), ("network", 1.5, 1.3, math.inf))


def with_star(image: np.ndarray, psf: np.ndarray, pixel_scale: float, rng: np.random.Generator):
    """``image`` with the PSF added 1-2.3" from the centre (inside the 5" field) at a peak 10-300 sky rms; the star's pixel (row, col)."""
    sky = INSTRUMENTS[pixel_scale][1]
    n, k = image.shape[0], psf.shape[0] // 2
    r, angle = rng.uniform(1.0, 2.3), rng.uniform(0, 2 * np.pi)
    col = int(round((n - 1) / 2 + r * math.cos(angle) / pixel_scale))
    row = int(round((n - 1) / 2 + r * math.sin(angle) / pixel_scale))
    star = np.zeros((n + 2 * k, n + 2 * k))
    star[row:row + 2 * k + 1, col:col + 2 * k + 1] = psf * rng.uniform(10, 300) * sky / psf.max()
    return image + star[k:n + k, k:n + k], (row, col)


def measure(num: int, seed: int, pixel_scale: float, source: str) -> dict:
    rng = np.random.default_rng(seed)
    bank = hubble_deep_field_bank().split(seed=0)["test"] if source == "real" else None
    counts = {variant: {"arcs taken": 0, "stars masked": 0, "arc flux masked": 0.0} for variant in VARIANTS}
    stars = 0
    for _ in range(num):
        kwargs = draw(rng, pixel_scale, bank)
        image, sigma, light, psf = simulate(kwargs, pixel_scale, rng)
        arcs = image - light
        n = image.shape[0]
        starred, (row, col) = with_star(image, psf, pixel_scale, rng)
        inside = 0 <= row < n and 0 <= col < n
        stars += inside
        valid = np.ones_like(image, bool)
        centre = ((n - 1) / 2, (n - 1) / 2)
        flux = np.clip(arcs - 3 * sigma, 0, None)
        for variant in VARIANTS:
            which, neighbours.POINT_FWHM_RATIO, neighbours.POINT_ELONGATION, neighbours.ARC_RADIUS_FACTOR = variant
            plain, given = (image, psf) if which == "fit" else (arcs, None)
            mask, _ = neighbours.neighbour_mask(plain, valid, centre, pixel_scale, psf=given)
            taken = mask & (np.hypot(*np.indices(mask.shape) - np.array(centre)[:, None, None]) * pixel_scale
                            <= neighbours.KEEP_RADIUS)
            counts[variant]["arcs taken"] += bool(taken.any())
            counts[variant]["arc flux masked"] += float((flux * taken).sum() / max(flux.sum(), 1e-30))
            if inside:
                mask, _ = neighbours.neighbour_mask(starred - image + plain, valid, centre, pixel_scale, psf=given)
                counts[variant]["stars masked"] += bool(mask[row, col])
    return {" ".join(map(str, variant)): {"arcs taken": c["arcs taken"] / num, "stars masked": c["stars masked"] / max(stars, 1),
                                          "arc flux masked": 100 * c["arc flux masked"] / num}
            for variant, c in counts.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=100, help="lenses per pixel scale and source [100]")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args(argv)
    default = neighbours.POINT_FWHM_RATIO, neighbours.POINT_ELONGATION, neighbours.ARC_RADIUS_FACTOR
    rows = {}
    try:
        for pixel_scale in (0.05, 0.1):
            for source in ("sersic", "real"):
                rows[f"{pixel_scale} {source}"] = measure(args.num, args.seed, pixel_scale, source)
                print(pixel_scale, source, rows[f"{pixel_scale} {source}"], flush=True)
    finally:
        neighbours.POINT_FWHM_RATIO, neighbours.POINT_ELONGATION, neighbours.ARC_RADIUS_FACTOR = default
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(torch.device("cpu")), "num": args.num, "seed": args.seed,
              "point_snr": neighbours.POINT_SNR, "shipped": {"fwhm_ratio": default[0], "elongation": default[1], "arc_radius_factor": default[2]},
              "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "neighbours_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Unresolved sources near lenses: stars masked, arcs taken ({result['machine']['cpu']})", "",
             f"`python benchmarks/bench_neighbours.py --num {args.num} --seed {args.seed}`, {result['date']}. "
             f"{args.num} lenses per row (bench_joint's priors, lens light included), each also with a star 1-2.3\" "
             f"out at 10-300 sky rms; the point-source rule needs a peak of {neighbours.POINT_SNR:g} sky rms. Input: "
             "the likelihood fit's (lens light in, PSF known) or the network's (lens light removed, no PSF). Shipped: "
             f"FWHM ratio {default[0]}, elongation {default[1]}, non-arcs masked beyond {default[2]} times the "
             f"outermost arc's radius (and {neighbours.MIN_CUT_RADIUS}\"); inf turns that cut off.", "",
             "| pixels, source | input, FWHM ratio, largest elongation, arcs' radius factor | lenses with arcs taken | "
             "stars masked | arc flux masked |",
             "|---|---|---|---|---|"]
    for name, by_ratio in rows.items():
        for variant, c in by_ratio.items():
            lines.append(f"| {name} | {variant} | {100 * c['arcs taken']:.0f}% | {100 * c['stars masked']:.0f}% | "
                         f"{c['arc flux masked']:.2f}% |")
    (RESULTS / "neighbours_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
