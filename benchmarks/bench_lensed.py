"""Is it lensed at all? ``delta_bic`` (:func:`lensnet.refine.fit.delta_bic`) on simulated non-lenses and lenses.

Images are 100 x 100 pixels at 0.05" with a Gaussian PSF (FWHM 0.1"), sky noise and Poisson noise, rendered by
lenstronomy. Non-lenses, in equal numbers: pure noise; a star (the PSF); a lone elliptical galaxy (a Sersic);
an elliptical with an unlensed companion 1-2.5" away. Lenses: SIE + shear, Sersic lens light, Sersic source
(``bench_joint.draw``), their arcs' peak at 10-50 times the sky rms (the lowest signal-to-noise of the
training set is 10). Each image is estimated by the network (after Sersic deblending), fitted by the joint
model (``--lens-light sersic --shear``, the network's estimate as the start) and tested against the unlensed
model. Reported: the fraction of each kind called lensed (``delta_bic`` above
:data:`lensnet.refine.fit.LENSED_DELTA_BIC`). Results go to ``benchmarks/results/lensed_cpu.json`` and ``.md``.

Usage::

    python benchmarks/bench_lensed.py --num 16
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np
import torch
from lenstronomy.Data.imaging_data import ImageData as LenstronomyData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util.param_util import phi_q2_ellipticity

from lensnet.deblend.sersic_fit import fit_lens_light
from lensnet.inference import load_pretrained
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.refine import ImageData, ModelSpec, refine_lenses
from lensnet.refine.fit import LENSED_DELTA_BIC, delta_bic

try:
    from bench_joint import draw, simulate
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.bench_joint import draw, simulate
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("noise", "star", "elliptical", "elliptical + companion", "lens")
N_PIX, SCALE, EXPOSURE, SKY = 100, 0.05, 2000.0, 0.01


def psf_kernel() -> np.ndarray:
    return gaussian_kernels(torch.tensor([0.1 / 2.3548 / SCALE], dtype=torch.float64), 6)[0].numpy()


def non_lens(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A noiseless non-lens image in counts/s."""
    corner = -(N_PIX - 1) / 2 * SCALE
    data = LenstronomyData(image_data=np.zeros((N_PIX, N_PIX)), transform_pix2angle=np.diag([SCALE] * 2),
                           ra_at_xy_0=corner, dec_at_xy_0=corner)
    kernel = psf_kernel()
    if kind == "noise":
        return np.zeros((N_PIX, N_PIX))
    if kind == "star":
        image = np.zeros((N_PIX, N_PIX))
        c, h = N_PIX // 2 + int(rng.integers(-2, 3)), kernel.shape[0] // 2
        image[c - h: c + h + 1, c - h: c + h + 1] = rng.uniform(5, 50) * kernel
        return image
    e1, e2 = phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.6, 0.95))
    galaxies = [{"amp": rng.uniform(2, 8), "R_sersic": rng.uniform(0.5, 1.2), "n_sersic": rng.uniform(2.5, 4.5),
                 "e1": e1, "e2": e2, "center_x": rng.normal(0, 0.03), "center_y": rng.normal(0, 0.03)}]
    if kind == "elliptical + companion":
        r, angle = rng.uniform(1.0, 2.5), rng.uniform(0, 2 * np.pi)
        ce1, ce2 = phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.4, 0.9))
        galaxies.append({"amp": rng.uniform(1, 5), "R_sersic": rng.uniform(0.1, 0.4), "n_sersic": rng.uniform(0.8, 2.5),
                         "e1": ce1, "e2": ce2, "center_x": r * math.cos(angle), "center_y": r * math.sin(angle)})
    model = ImageModel(data, PSF(psf_type="PIXEL", kernel_point_source=kernel),
                       lens_light_model_class=LightModel(["SERSIC_ELLIPSE"] * len(galaxies)),
                       kwargs_numerics={"supersampling_factor": 3})
    return model.image(kwargs_lens_light=galaxies, unconvolved=False, source_add=False, lens_light_add=True)


def images(num: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    """``num`` images of each kind, with noise, and their kinds."""
    out, kinds = [], []
    for kind in KINDS:
        for _ in range(num):
            if kind == "lens":
                kwargs = draw(rng, SCALE)
                snr = rng.uniform(10, 50)
                # Scale the source so that its arcs peak at snr sky rms (arcs alone, without lens light).
                arcs = simulate({**kwargs, "light": [{**kwargs["light"][0], "amp": 0.0}]}, SCALE, rng)[0]
                kwargs["source"][0]["amp"] *= snr * SKY / max(float(np.max(arcs)), 1e-12)
                out.append(simulate(kwargs, SCALE, rng)[0])
            else:
                clean = non_lens(kind, rng)
                sigma = np.sqrt(SKY ** 2 + np.clip(clean, 0, None) / EXPOSURE)
                out.append(clean + sigma * rng.standard_normal(clean.shape))
            kinds.append(kind)
    return out, kinds


def run(num: int, seed: int, restarts: int) -> dict:
    rng = np.random.default_rng(seed)
    pictures, kinds = images(num, rng)
    predictor = load_pretrained()
    grid_model = ModelGrid.from_card(predictor.card)
    kernel = psf_kernel()
    prepared, masks, sigmas = [], [], []
    for image in pictures:
        sigma = np.sqrt(SKY ** 2 + np.clip(image, 0, None) / EXPOSURE)  # as an ERR map from the data
        sigmas.append(torch.from_numpy(sigma))
        arcs = fit_lens_light(image, SCALE, noise=sigma, psf=kernel).arcs
        # On pure noise the lens-light fit has nothing to hold on to: the network then sees the image itself.
        ready = prepare_image(arcs if np.isfinite(arcs).all() else image, grid_model, SCALE)
        prepared.append(torch.from_numpy(ready.image)[None])
        masks.append(torch.from_numpy(ready.mask)[None])
    mean, std = predictor.predict(torch.stack(prepared), torch.stack(masks))
    image = torch.stack([torch.from_numpy(p) for p in pictures])
    data = ImageData(image, torch.stack(sigmas), torch.zeros_like(image, dtype=torch.bool),
                     torch.from_numpy(kernel)[None].expand(len(pictures), -1, -1).clone(), PixelGrid(N_PIX, SCALE))
    spec = ModelSpec(shear=True, lens_light="sersic")
    values = []
    for i in range(0, len(pictures), 8):
        part = torch.arange(i, min(i + 8, len(pictures)))
        chunk = data.take(part)
        result = refine_lenses(chunk, mean[part].double(), 3 * std[part].double(), spec=spec, restarts=restarts)
        values.append(delta_bic(chunk, result)[0])
        print(f"{min(i + 8, len(pictures))}/{len(pictures)}", flush=True)
    values = torch.cat(values)
    out = {"num_per_kind": num, "seed": seed, "threshold": LENSED_DELTA_BIC, "by_kind": {}}
    for kind in KINDS:
        sel = torch.tensor([k == kind for k in kinds])
        called = (values[sel] > LENSED_DELTA_BIC).double().mean()
        out["by_kind"][kind] = {"called_lensed": float(called), "correct": float(called if kind == "lens" else 1 - called),
                                "delta_bic_median": float(values[sel].median()),
                                "delta_bic": values[sel].tolist()}
    return out


def write(result: dict, argv: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    machine = machine_description(torch.device("cpu"))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
              **result}
    (RESULTS / "lensed_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Is it lensed? delta_bic > {result['threshold']:g} ({machine['cpu']}, {machine['cores']} cores)", "",
             f"`python benchmarks/bench_lensed.py {argv}`, {result['date']}.", "",
             "| kind | images | called lensed | correct | median delta_bic |", "|---|---|---|---|---|"]
    for kind, row in result["by_kind"].items():
        lines.append(f"| {kind} | {result['num_per_kind']} | {row['called_lensed']:.0%} | {row['correct']:.0%} | "
                     f"{row['delta_bic_median']:.1f} |")
    path = RESULTS / "lensed_cpu.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=16, help="images of each kind")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--restarts", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    result = run(args.num, args.seed, args.restarts)
    print(write(result, " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())).read_text())
    return result


if __name__ == "__main__":
    main()
