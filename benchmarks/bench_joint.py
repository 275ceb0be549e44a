"""The joint lens model (``lensnet refine --lens-light sersic --shear``) on lenses made by an independent
simulator: accuracy, coverage of the refined intervals, and time per lens.

Each lens is drawn from a seeded prior and rendered by lenstronomy (``ImageModel``: SIE + external shear,
Sersic lens light, Sersic source, a Gaussian pixel PSF, ``--sim-supersample`` sub-pixels per side, 21 by default:
as fine as any fit samples a pixel, as the sky is continuous; at 9 the pixel holding an n = 4.8 lens light's
centre was 8 sigma off its integral, at 3 the cusp pulled the fits' Sersic indices to their bound), in counts
per second with sky noise and the Poisson noise of an exposure; the fit gets the true noise map (what an
archive's ERR map holds) and the PSF, on the image's own pixels: 100 x 100 at 0.05" (HST-like) or 50 x 50 at 0.1"
(Euclid-like; ``--pixel-scale``). Methods:

(a) the network on the Sersic-deblended image (:func:`lensnet.deblend.sersic_fit.fit_lens_light`), resampled
    to its grid as ``lensnet predict`` does;
(b) deblend, then fit the arcs alone (SIE + shear + Sersic source), seeded by (a);
(c) the joint fit of lens light, mass and source on the image itself, seeded by (a);
(b) and (c) take (a)'s estimate as the start and, its 1-sigma widened ``--prior-width`` times (lensnet refine's
:data:`~lensnet.refine.catalog.PRIOR_WIDTH`), as the prior (``--no-prior``: the start only);
(d) with ``--mcmc N``: (c)'s posterior sampled by emcee on the first N lenses;
(e) with ``--lenstronomy N``: lenstronomy's ``FittingSequence`` of the same joint model (PSO then a short
    MCMC) on the first N lenses, as the peer anchor: started at the truth's neighbourhood, or, for lensnet's own
    lenses (whose source parameters are not recorded), where (b) ended (lens, source) and the deblend's lens light.

``--simulator multiband`` takes the lenses from lensnet's own two-band simulator instead
(:class:`lensnet.simulate.multiband.TwoBandSimulator`, its red band 1 where the lens light dominates: Sersic
sources, SIE without shear, ``--sim-supersample`` sub-pixels everywhere, a Gaussian PSF and white noise in units of the arcs'
peak, the true rms map given to the fits).

For each method and parameter (lensnet's convention, plus the shear): the 68% error, the fraction of lenses
whose truth lies inside the 68% and 95% intervals, and seconds per lens on this machine. Results go to
``benchmarks/results/joint_cpu_<scale>.json`` and ``.md``.

Usage::

    python benchmarks/bench_joint.py --num 48 --pixel-scale 0.05 --mcmc 8 --lenstronomy 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from lenstronomy.Data.imaging_data import ImageData as LenstronomyData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util.param_util import phi_q2_ellipticity

from lensnet.deblend.sersic_fit import fit_lens_light
from lensnet.inference import load_pretrained
from lensnet.lensing import PixelGrid
from lensnet.metrics import error68
from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.refine import ImageData, ModelSpec, refine_lenses, sample_posterior
from lensnet.refine.catalog import PRIOR_WIDTH, SYSTEMATIC_FLOOR
from lensnet.simulate.config import SimulationConfig
from lensnet.simulate.multiband import TwoBandSimulator
from lensnet.sources import hubble_deep_field_bank

try:
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("theta_E", "e1", "e2", "center_x", "center_y", "gamma1", "gamma2")
Z95 = 1.959963984540054
#: Exposure (s), sky rms (counts/s per pixel) and PSF FWHM (arcsec) of each pixel scale.
INSTRUMENTS = {0.05: (2000.0, 0.01, 0.10), 0.1: (1500.0, 0.01, 0.20)}
#: Sub-pixels per side of the simulated images.
SIM_SUPERSAMPLE = 21


def draw(rng: np.random.Generator, pixel_scale: float, bank=None) -> dict:
    """One lens's parameters (lenstronomy kwargs) and amplitudes; with a source ``bank``, the source is one of its
    galaxies (lenstronomy's ``INTERPOL``), 0.5-1.2" across, at the Sersic source's place."""
    theta_e = rng.uniform(0.6, 1.6)
    e1, e2 = phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.5, 0.95))
    cx, cy = rng.normal(0, 0.03, 2)
    g1, g2 = rng.normal(0, 0.03, 2)
    se1, se2 = phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.5, 0.95))
    radius = 0.35 * theta_e * math.sqrt(rng.uniform(0, 1))
    angle = rng.uniform(0, 2 * np.pi)
    le1, le2 = phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(0.6, 0.95))
    return {"lens": [{"theta_E": theta_e, "e1": e1, "e2": e2, "center_x": cx, "center_y": cy},
                     {"gamma1": g1, "gamma2": g2, "ra_0": 0.0, "dec_0": 0.0}],
            "source": [{"amp": rng.uniform(4, 15), "R_sersic": rng.uniform(0.1, 0.3), "n_sersic": rng.uniform(0.8, 2.5),
                        "e1": se1, "e2": se2, "center_x": cx + radius * math.cos(angle),
                        "center_y": cy + radius * math.sin(angle)}] if bank is None else
                      [_galaxy(bank, rng, cx + radius * math.cos(angle), cy + radius * math.sin(angle))],
            "light": [{"amp": rng.uniform(2, 8), "R_sersic": rng.uniform(0.5, 1.2), "n_sersic": rng.uniform(2.5, 4.5),
                       "e1": le1, "e2": le2, "center_x": cx, "center_y": cy}]}


def _galaxy(bank, rng: np.random.Generator, x: float, y: float) -> dict:
    """lenstronomy INTERPOL kwargs of a random galaxy of ``bank`` (peak-normalised stamps), 0.5-1.2" across."""
    stamp = bank.stamps[int(rng.integers(len(bank)))].double().numpy()
    side = rng.uniform(0.5, 1.2)
    # INTERPOL's amp is the surface brightness (per arcsec^2) of a stamp pixel of value 1, the peak: as bright
    # as the Sersic sources' centres (their amp at R_sersic times e^(b_n), about 10).
    scale = side / stamp.shape[0]
    return {"image": stamp, "amp": 10 * rng.uniform(4, 15), "center_x": x, "center_y": y,
            "phi_G": rng.uniform(0, 2 * np.pi), "scale": scale}


def simulate(kwargs: dict, pixel_scale: float, rng: np.random.Generator, supersample: int = SIM_SUPERSAMPLE):
    """The observed image, its true noise map, the noiseless lens light, and the PSF kernel."""
    exposure, sky, fwhm = INSTRUMENTS[pixel_scale]
    n = int(round(5.0 / pixel_scale))
    psf = gaussian_kernels(torch.tensor([fwhm / 2.3548 / pixel_scale], dtype=torch.float64), 6)[0].numpy()
    corner = -(n - 1) / 2 * pixel_scale
    data = LenstronomyData(image_data=np.zeros((n, n)), transform_pix2angle=np.diag([pixel_scale] * 2),
                           ra_at_xy_0=corner, dec_at_xy_0=corner)
    source = "INTERPOL" if "image" in kwargs["source"][0] else "SERSIC_ELLIPSE"
    model = ImageModel(data, PSF(psf_type="PIXEL", kernel_point_source=psf), lens_model_class=LensModel(["SIE", "SHEAR"]),
                       source_model_class=LightModel([source]),
                       lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": supersample})
    clean = model.image(kwargs_lens=kwargs["lens"], kwargs_source=kwargs["source"], kwargs_lens_light=kwargs["light"])
    light = model.image(kwargs_lens=kwargs["lens"], kwargs_source=kwargs["source"], kwargs_lens_light=kwargs["light"],
                        source_add=False)
    sigma = np.sqrt(sky ** 2 + np.clip(clean, 0, None) / exposure)
    return clean + sigma * rng.standard_normal(clean.shape), sigma, light, psf


def multiband_set(num: int, seed: int, pixel_scale: float, supersample: int = SIM_SUPERSAMPLE):
    """``num`` single-band lenses of lensnet's two-band simulator (band 1) on the 5" native grid of
    ``pixel_scale``, lens priors as :func:`draw`'s: the (image, noise map, lens light, PSF) of each and the truths."""
    n = int(round(5.0 / pixel_scale))
    config = SimulationConfig.from_dict({
        "name": "bench-joint", "n_pix": n, "pixel_scale": pixel_scale, "supersample": supersample,
        "supersample_threshold": 0.0, "source": {"fractions": [0.0, 1.0, 0.0]},
        "lens": {"theta_E_range": [0.6, 1.6], "one_minus_q_range": [0.05, 0.5], "center_range": 0.05}})
    simulator = TwoBandSimulator(config)
    batch = simulator.simulate(num, seed)
    sigma_pixels = batch.record["psf_sigma"][:, 1].double()
    half = int(math.ceil(4 * simulator.config.psf_sigma_pixels[1]))
    sims = []
    for i in range(num):
        kernel = gaussian_kernels(sigma_pixels[i:i + 1], half)[0].numpy()
        rms = float(batch.record["noise_rms"][i, 1])
        sims.append((batch.bands[i, 1].double().numpy(), np.full((n, n), rms), batch.lens_light[i, 1].double().numpy(),
                     kernel))
    truth = torch.cat([batch.targets.double(), torch.zeros(num, 2, dtype=torch.float64)], 1)
    return sims, truth


def _padded(indices: list[torch.Tensor]) -> list[torch.Tensor]:
    """Finely rendered pixels (B, K) of several batches padded to one K by repeating each row's first pixel."""
    k = max(i.shape[1] for i in indices)
    return [torch.cat([i, i[:, :1].expand(-1, k - i.shape[1])], 1) for i in indices]


def truth_vector(kwargs: dict) -> list[float]:
    lens, shear = kwargs["lens"]
    return [lens[k] for k in NAMES[:5]] + [shear["gamma1"], shear["gamma2"]]


def run(num: int, seed: int, pixel_scale: float, restarts: int, max_iter: int, mcmc: int, anchor: int,
        prior: bool = True, prior_width: float = PRIOR_WIDTH, source: str = "sersic", supersample: int = 1,
        adaptive: bool = True, sim_supersample: int = SIM_SUPERSAMPLE, simulator: str = "lenstronomy") -> dict:
    predictor = load_pretrained()
    grid_model = ModelGrid.from_card(predictor.card)
    if simulator == "multiband":
        lenses = None
        sims, truth = multiband_set(num, seed, pixel_scale, sim_supersample)
    else:
        rng = np.random.default_rng(seed)
        bank = hubble_deep_field_bank().split(seed=0)["test"] if source == "real" else None
        lenses = [draw(rng, pixel_scale, bank) for _ in range(num)]
        sims = [simulate(k, pixel_scale, rng, sim_supersample) for k in lenses]
        truth = torch.tensor([truth_vector(k) for k in lenses], dtype=torch.float64)
    n = sims[0][0].shape[0]
    grid = PixelGrid(n, pixel_scale)
    psf = torch.stack([torch.from_numpy(s[3]) for s in sims])
    image = torch.stack([torch.from_numpy(s[0]) for s in sims])
    sigma = torch.stack([torch.from_numpy(s[1]) for s in sims])
    no_mask = torch.zeros_like(image, dtype=torch.bool)
    seconds, results = {}, {}
    # (a) the network on the deblended, resampled image.
    t0 = time.perf_counter()
    arcs, prepared, masks, light_fits = [], [], [], []
    for img, sig, _, kernel in sims:
        fit = fit_lens_light(img, pixel_scale, noise=sig, psf=kernel)
        light_fits.append(fit.params)
        arcs.append(torch.from_numpy(fit.arcs))
        ready = prepare_image(fit.arcs, grid_model, pixel_scale)
        prepared.append(torch.from_numpy(ready.image)[None])
        masks.append(torch.from_numpy(ready.mask)[None])
    mean, std = predictor.predict(torch.stack(prepared), torch.stack(masks))
    mean, std = mean.double(), std.double()
    seconds["network"] = (time.perf_counter() - t0) / num
    zeros = torch.zeros(num, 2, dtype=torch.float64)
    results["network"] = (torch.cat([mean, zeros], 1), torch.cat([std, torch.full_like(zeros, math.nan)], 1), None)
    # (b) deblend, then fit the arcs; (c) the joint fit.
    for method, spec, pixels in (("deblend + fit", ModelSpec(shear=True), torch.stack(arcs)),
                                 ("joint fit", ModelSpec(shear=True, lens_light="sersic"), image)):
        data = ImageData(pixels, sigma, no_mask, psf, grid)
        t0 = time.perf_counter()
        fitted = [refine_lenses(data.take(torch.arange(i, min(i + 8, num))), mean[i:i + 8],
                                prior_width * std[i:i + 8], spec=spec,
                                prior=prior, restarts=restarts, max_iter=max_iter, supersample=supersample,
                                adaptive=adaptive, seed=seed)
                  for i in range(0, num, 8)]
        seconds[method] = (time.perf_counter() - t0) / num
        columns = [spec.index(k) for k in NAMES]
        params = torch.cat([f.params for f in fitted])[:, columns]
        errors = torch.cat([f.sigma for f in fitted])[:, columns]
        results[method] = (params, errors, None)
        if method == "deblend + fit":
            arcs_fit = torch.cat([f.params for f in fitted])
        print(f"{method}: {seconds[method]:.2f} s/lens, median reduced chi2 "
              f"{float(torch.cat([f.reduced_chi2 for f in fitted]).median()):.3f}", flush=True)
        if method == "joint fit" and mcmc:
            t0 = time.perf_counter()
            best = torch.cat([f.params for f in fitted])[:mcmc]
            cov = torch.cat([f.covariance for f in fitted])[:mcmc]
            fine = None if fitted[0].supersampled is None else torch.cat(_padded([f.supersampled for f in fitted]))
            final = ImageData(image[:mcmc], sigma[:mcmc], torch.cat([f.mask for f in fitted])[:mcmc], psf[:mcmc], grid,
                              None if fine is None else fine[:mcmc])
            fit_prior = None if fitted[0].prior is None else [torch.cat([f.prior[k] for f in fitted])[:mcmc]
                                                              for k in (0, 1)]
            post = sample_posterior(spec, final, best, cov, prior=fit_prior, supersample=supersample, seed=seed)
            seconds["joint fit, MCMC"] = (time.perf_counter() - t0) / mcmc + seconds[method]
            results["joint fit, MCMC"] = (post.median[:, columns], post.sigma[:, columns],
                                          (post.lo95[:, columns], post.hi95[:, columns]))
    out = {"num": num, "seed": seed, "simulator": simulator, "pixel_scale": pixel_scale, "n_pix": n,
           "restarts": restarts, "prior": prior, "source": source,
           "supersample": supersample, "adaptive": adaptive, "sim_supersample": sim_supersample,
           "prior_width": prior_width,
           "max_iter": max_iter, "instrument": dict(zip(("exposure_s", "sky_rms", "psf_fwhm"), INSTRUMENTS[pixel_scale])),
           "seconds_per_lens": seconds, "methods": {}}
    for method, (est, err, interval) in results.items():
        rows = len(est)
        residual = est - truth[:rows]
        inside68 = (residual.abs() <= err).double().mean(0)
        if interval is None:
            inside95 = (residual.abs() <= Z95 * err).double().mean(0)
        else:
            inside95 = ((truth[:rows] >= interval[0]) & (truth[:rows] <= interval[1])).double().mean(0)
        out["methods"][method] = {"lenses": rows, "error68": dict(zip(NAMES, error68(residual).tolist())),
                                  "coverage68": dict(zip(NAMES, inside68.tolist())),
                                  "coverage95": dict(zip(NAMES, inside95.tolist())),
                                  "median_abs_over_sigma": dict(zip(NAMES, (residual.abs() / err).median(0).values.tolist())),
                                  "residual": residual.tolist(), "sigma": err.tolist()}
        if method == "joint fit":
            # The floor, added in quadrature, that brings each 95% interval to cover 90% of these lenses, and
            # the coverage with lensnet refine's own floor.
            needed = ((residual.abs() / Z95) ** 2 - err ** 2).clamp_min(0.0).sqrt().quantile(0.9, dim=0)
            out["floor_for_90_percent"] = dict(zip(NAMES, needed.tolist()))
            floor = torch.tensor([SYSTEMATIC_FLOOR.get(k, 0.0) for k in NAMES], dtype=torch.float64)
            total = (err ** 2 + floor ** 2).sqrt()
            out["methods"]["joint fit + systematic floor"] = {
                "lenses": rows, "error68": dict(zip(NAMES, error68(residual).tolist())),
                "coverage68": dict(zip(NAMES, (residual.abs() <= total).double().mean(0).tolist())),
                "coverage95": dict(zip(NAMES, (residual.abs() <= Z95 * total).double().mean(0).tolist()))}
            seconds["joint fit + systematic floor"] = seconds[method]
    if anchor:
        if lenses is None:
            arcs_spec = ModelSpec(shear=True)
            lenses = [_kwargs_from_fits(arcs_spec, arcs_fit[i], light_fits[i]) for i in range(anchor)]
        out["lenstronomy"] = lenstronomy_fits(lenses[:anchor], sims[:anchor], truth[:anchor], pixel_scale)
    return out


def _kwargs_from_fits(spec: ModelSpec, params: torch.Tensor, light: dict) -> dict:
    """lenstronomy kwargs (the anchor's start) from a fit of the arcs and the deblend's lens light."""
    value = {k: float(params[spec.index(k)]) for k in spec.names}
    return {"lens": [{k: value[k] for k in NAMES[:5]}, {"gamma1": value["gamma1"], "gamma2": value["gamma2"],
                                                        "ra_0": 0.0, "dec_0": 0.0}],
            "source": [{"amp": 1.0, **{k: value[f"source_{k}"] for k in ("R_sersic", "n_sersic", "e1", "e2",
                                                                         "center_x", "center_y")}}],
            "light": [{"amp": 1.0, **{k: float(light[k]) for k in ("R_sersic", "n_sersic", "e1", "e2", "center_x",
                                                                   "center_y")}}]}


def lenstronomy_fits(lenses: list[dict], sims: list, truth: torch.Tensor, pixel_scale: float) -> dict:
    """lenstronomy's FittingSequence of the joint model (PSO, then a short emcee run) on a few lenses, started at
    ``lenses`` (kwargs), scored against ``truth`` (lensnet's columns and the shear)."""
    from lenstronomy.Workflow.fitting_sequence import FittingSequence

    seconds, errors = 0.0, []
    for kwargs, (image, sigma, _, psf), true in zip(lenses, sims, truth.tolist()):
        n = image.shape[0]
        corner = -(n - 1) / 2 * pixel_scale
        kwargs_data = {"image_data": image, "noise_map": sigma, "transform_pix2angle": np.diag([pixel_scale] * 2),
                       "ra_at_xy_0": corner, "dec_at_xy_0": corner}
        lens, shear = kwargs["lens"]
        src, light = kwargs["source"][0], kwargs["light"][0]
        drop = lambda d: {k: v for k, v in d.items() if k != "amp"}  # noqa: E731
        width = lambda d, s: {k: s for k in d}  # noqa: E731
        params = {"lens_model": [[lens, {"gamma1": 0.0, "gamma2": 0.0}], [width(lens, 0.05), width(shear, 0.03)],
                                 [{}, {"ra_0": 0.0, "dec_0": 0.0}],
                                 [{"theta_E": 0.1, "e1": -0.5, "e2": -0.5, "center_x": -0.5, "center_y": -0.5},
                                  {"gamma1": -0.3, "gamma2": -0.3}],
                                 [{"theta_E": 3.0, "e1": 0.5, "e2": 0.5, "center_x": 0.5, "center_y": 0.5},
                                  {"gamma1": 0.3, "gamma2": 0.3}]],
                  "source_model": [[drop(src)], [width(drop(src), 0.05)], [{}],
                                   [{"R_sersic": 0.01, "n_sersic": 0.5, "e1": -0.5, "e2": -0.5, "center_x": -2,
                                     "center_y": -2}],
                                   [{"R_sersic": 2.0, "n_sersic": 6.0, "e1": 0.5, "e2": 0.5, "center_x": 2,
                                     "center_y": 2}]],
                  "lens_light_model": [[drop(light)], [width(drop(light), 0.05)], [{}],
                                       [{"R_sersic": 0.05, "n_sersic": 0.5, "e1": -0.5, "e2": -0.5, "center_x": -1,
                                         "center_y": -1}],
                                       [{"R_sersic": 5.0, "n_sersic": 8.0, "e1": 0.5, "e2": 0.5, "center_x": 1,
                                         "center_y": 1}]]}
        fitting = FittingSequence(
            {"multi_band_list": [[kwargs_data, {"psf_type": "PIXEL", "kernel_point_source": psf},
                                  {"supersampling_factor": 1}]], "multi_band_type": "single-band"},
            {"lens_model_list": ["SIE", "SHEAR"], "source_light_model_list": ["SERSIC_ELLIPSE"],
             "lens_light_model_list": ["SERSIC_ELLIPSE"]}, {}, {}, params)
        t0 = time.perf_counter()
        fitting.fit_sequence([["PSO", {"sigma_scale": 1.0, "n_particles": 80, "n_iterations": 150}],
                              ["MCMC", {"n_burn": 50, "n_run": 50, "walkerRatio": 4, "sigma_scale": 0.1}]])
        seconds += time.perf_counter() - t0
        best = fitting.best_fit()["kwargs_lens"]
        fitted = [best[0][k] for k in NAMES[:5]] + [best[1]["gamma1"], best[1]["gamma2"]]
        errors.append([f - t for f, t in zip(fitted, true)])
    return {"lenses": len(lenses), "seconds_per_lens": seconds / len(lenses),
            "abs_error": dict(zip(NAMES, np.abs(np.asarray(errors)).mean(0).tolist()))}


def write(result: dict, argv: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    machine = machine_description(torch.device("cpu"))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
              **result}
    prefix = "joint_cpu_multiband_" if result.get("simulator") == "multiband" else "joint_cpu_"
    name = f"{prefix}{result['source']}_{str(result['pixel_scale']).replace('.', 'p')}{result['tag']}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    simulator = result.get("simulator", "lenstronomy")
    lines = [f"# Joint lens model on {simulator}-simulated lenses ({result['source']} sources), "
             f"{result['n_pix']}x{result['n_pix']} at "
             f"{result['pixel_scale']}\" ({machine['cpu']}, {machine['cores']} cores, torch {machine['torch']})", "",
             f"`python benchmarks/bench_joint.py {argv}`, {result['date']}. 68% error / coverage of the 68% interval / "
             "of the 95% interval, per parameter; seconds per lens.", "",
             "| method | lenses | s/lens | " + " | ".join(NAMES) + " |", "|---|---|---|" + "---|" * len(NAMES)]
    for method, row in result["methods"].items():
        cells = [f"{row['error68'][k]:.4f} / {row['coverage68'][k]:.0%} / {row['coverage95'][k]:.0%}" for k in NAMES]
        lines.append(f"| {method} | {row['lenses']} | {result['seconds_per_lens'][method]:.2f} | " + " | ".join(cells)
                     + " |")
    if "lenstronomy" in result:
        anchor = result["lenstronomy"]
        lines += ["", f"lenstronomy FittingSequence (PSO 80 x 150, then emcee 50 + 50 steps) of the same joint model "
                  f"on {anchor['lenses']} lenses: {anchor['seconds_per_lens']:.0f} s per lens; mean absolute errors "
                  + ", ".join(f"{k} {v:.4f}" for k, v in anchor["abs_error"].items()) + "."]
    if "floor_for_90_percent" in result:
        lines += ["", "Systematic floor (in quadrature) that would bring the joint fit's 95% intervals to 90% of these "
                  "lenses: " + ", ".join(f"{k} {v:.4f}" for k, v in result["floor_for_90_percent"].items())
                  + "; lensnet refine's floor: " + ", ".join(f"{k} {v:g}" for k, v in SYSTEMATIC_FLOOR.items()) + "."]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=48)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--pixel-scale", type=float, default=0.05, choices=sorted(INSTRUMENTS))
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--mcmc", type=int, default=0, help="lenses whose posterior is also sampled by emcee")
    parser.add_argument("--lenstronomy", type=int, default=0, help="lenses also fitted by lenstronomy (slow)")
    parser.add_argument("--no-prior", action="store_true", help="the network's estimate starts the fits, no prior")
    parser.add_argument("--prior-width", type=float, default=PRIOR_WIDTH,
                        help="the network's 1-sigma times this is the prior (lensnet refine's)")
    parser.add_argument("--supersample", type=int, default=1, help="sub-pixels per pixel side of the fit's model")
    parser.add_argument("--no-adaptive", action="store_true",
                        help="render every pixel at its centre (or --supersample), none finely")
    parser.add_argument("--sim-supersample", type=int, default=SIM_SUPERSAMPLE,
                        help="sub-pixels per side of the simulated images")
    parser.add_argument("--simulator", choices=("lenstronomy", "multiband"), default="lenstronomy",
                        help="lenstronomy's renderer (independent), or lensnet's two-band simulator (band 1)")
    parser.add_argument("--tag", default="", help="appended to the results' file name")
    parser.add_argument("--source", choices=("sersic", "real"), default="sersic",
                        help="Sersic sources, or real galaxies (the Hubble deep field's test split) the fit's Sersic "
                             "profile cannot describe")
    args = parser.parse_args(argv)
    if args.simulator == "multiband" and args.source != "sersic":
        parser.error("--simulator multiband draws Sersic sources only")
    torch.set_num_threads(2)
    result = run(args.num, args.seed, args.pixel_scale, args.restarts, args.max_iter, args.mcmc, args.lenstronomy,
                 not args.no_prior, args.prior_width, args.source, args.supersample, not args.no_adaptive,
                 args.sim_supersample, args.simulator)
    result["tag"] = args.tag
    print(write(result, " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())).read_text())
    return result


if __name__ == "__main__":
    main()
