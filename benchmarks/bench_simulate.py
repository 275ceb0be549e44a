"""Images/s of the full ``paper`` simulation (every effect on), lensnet vs lenstronomy, in one run.

lensnet: :class:`lensnet.simulate.simulator.LensSimulator` with the ``paper`` preset: 192x192 at
0.04", supersampling 2 (adaptive: pixels brighter than 3e-3 of the peak or next to one), real-galaxy/Sérsic/clumpy sources placed in the caustics with acceptance
cuts, PSF, Poisson and Gaussian (white/coloured) noise, cosmic rays, hot pixels, bias and masks.

lenstronomy: the closest it can do (it has no cosmic rays, hot pixels or masks): the same grid and
supersampling, an SIE, a real-galaxy stamp as source ('INTERPOL'), a Gaussian PSF of random width,
Poisson and Gaussian noise; one process per core, a fresh ImageModel per image (the PSF changes).

    python benchmarks/bench_simulate.py [--device cuda] [--num 512] [--batch-size 128]

Writes ``benchmarks/results/simulate_<device>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description  # noqa: E402

from lensnet.simulate.config import get_preset  # noqa: E402
from lensnet.simulate.simulator import LensSimulator  # noqa: E402
from lensnet.sources.banks import hubble_deep_field_bank  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_PIX, SCALE = 192, 0.04


def _lenstronomy_worker(args):
    seed, num, stamps = args
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.SimulationAPI.observation_api import SingleBand  # noqa: F401 - import cost counted once
    from lenstronomy.Util import image_util

    rng = np.random.default_rng(seed)
    lens_model, light_model = LensModel(["SIE"]), LightModel(["INTERPOL"])
    start = None
    for i in range(num + 1):  # the first image is a warm-up, not timed
        if i == 1:
            start = time.perf_counter()
        data = ImageData(image_data=np.zeros((N_PIX, N_PIX)), transform_pix2angle=np.diag([SCALE, SCALE]),
                         ra_at_xy_0=-(N_PIX - 1) / 2 * SCALE, dec_at_xy_0=-(N_PIX - 1) / 2 * SCALE)
        psf = PSF(psf_type="GAUSSIAN", fwhm=2.355 * rng.uniform(0.1, 2.0) * SCALE, truncation=4)
        model = ImageModel(data, psf, lens_model_class=lens_model, source_model_class=light_model,
                           kwargs_numerics={"supersampling_factor": 2})
        theta_E, q, phi = rng.uniform(0.1, 3.0), 1 - rng.uniform(0, 0.9), rng.uniform(0, np.pi)
        g = (1 - q) / (1 + q)
        kwargs_lens = [{"theta_E": theta_E, "e1": g * np.cos(2 * phi), "e2": g * np.sin(2 * phi),
                        "center_x": rng.uniform(-0.28, 0.28), "center_y": rng.uniform(-0.28, 0.28)}]
        stamp = stamps[rng.integers(len(stamps))]
        size = rng.uniform(0.4, 2.0)
        kwargs_source = [{"image": stamp, "amp": 1.0, "center_x": rng.uniform(-0.2, 0.2) * theta_E,
                          "center_y": rng.uniform(-0.2, 0.2) * theta_E, "phi_G": rng.uniform(0, 2 * np.pi),
                          "scale": size / stamp.shape[1]}]
        image = model.image(kwargs_lens, kwargs_source)
        image = image / max(image.max(), 1e-12)
        counts = rng.uniform(50, 1000)
        image = image + image_util.add_poisson(np.clip(image, 0, None) * counts, exp_time=1.0) / counts
        image = image + image_util.add_background(image, sigma_bkd=rng.uniform(0.01, 0.1))
    return num, time.perf_counter() - start


def bench_lenstronomy(num: int, processes: int, stamps: np.ndarray) -> float:
    per = max(1, num // processes)
    with mp.get_context("fork").Pool(processes) as pool:
        results = pool.map(_lenstronomy_worker, [(i, per, stamps) for i in range(processes)])
    return sum(n for n, _ in results) / max(dt for _, dt in results)


def _lensnet_worker(args):
    index, batches, batch_size = args
    torch.set_num_threads(1)
    sim = LensSimulator(get_preset("paper"))
    sim.simulate(batch_size, seed=10_000 + index)  # warm-up
    start = time.perf_counter()
    for k in range(batches):
        sim.simulate(batch_size, seed=1000 * (index + 1) + k)
    return batches * batch_size, time.perf_counter() - start


def bench_lensnet_processes(num: int, batch_size: int, processes: int) -> float:
    """lensnet on the CPU as lenstronomy is run: one single-threaded process per core."""
    batches = max(1, num // (batch_size * processes))
    with mp.get_context("fork").Pool(processes) as pool:
        results = pool.map(_lensnet_worker, [(i, batches, batch_size) for i in range(processes)])
    # Each worker times its own loop (start-up, imports and warm-up excluded, as for lenstronomy);
    # the slowest worker sets the wall time.
    return sum(n for n, _ in results) / max(dt for _, dt in results)


def bench_lensnet(num: int, batch_size: int, device: torch.device) -> float:
    sim = LensSimulator(get_preset("paper"), device=device)
    sim.simulate(batch_size, seed=0)  # warm-up: allocations, caches, kernels
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    done = 0
    for k in range(max(1, num // batch_size)):
        sim.simulate(batch_size, seed=k + 1)
        done += batch_size
    sync()
    return done / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num", type=int, default=512, help="lensnet images to simulate")
    parser.add_argument("--num-lenstronomy", type=int, default=128, help="lenstronomy images in all")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--skip-lenstronomy", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(os.cpu_count())
    report = {"benchmark": "paper preset, every effect, 192x192, supersampling 2 (adaptive, threshold 3e-3)",
              "machine": machine_description(device)}
    report["lensnet_images_per_s"] = bench_lensnet(args.num, args.batch_size, device)
    if device.type == "cpu":
        report["lensnet_processes_images_per_s"] = bench_lensnet_processes(args.num, args.batch_size, os.cpu_count())
    if not args.skip_lenstronomy:
        stamps = hubble_deep_field_bank(64).stamps.numpy().astype(np.float64)
        report["lenstronomy_processes"] = os.cpu_count()
        report["lenstronomy_images_per_s"] = bench_lenstronomy(args.num_lenstronomy, os.cpu_count(), stamps)
        report["ratio"] = report["lensnet_images_per_s"] / report["lenstronomy_images_per_s"]
        if "lensnet_processes_images_per_s" in report:
            report["ratio_processes"] = report["lensnet_processes_images_per_s"] / report["lenstronomy_images_per_s"]
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"simulate_{device.type}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# {report['benchmark']}", "", f"Machine: {report['machine']}", "",
             f"- lensnet: {report['lensnet_images_per_s']:.1f} images/s (one process, {torch.get_num_threads()} threads, "
             f"batch {args.batch_size}, {device})"]
    if "lensnet_processes_images_per_s" in report:
        lines.append(f"- lensnet: {report['lensnet_processes_images_per_s']:.1f} images/s ({os.cpu_count()} single-threaded "
                     f"processes, batch {args.batch_size})")
    if "ratio" in report:
        lines += [f"- lenstronomy: {report['lenstronomy_images_per_s']:.1f} images/s "
                  f"({report['lenstronomy_processes']} processes)", f"- ratio (one process): {report['ratio']:.1f}x"]
        if "ratio_processes" in report:
            lines.append(f"- ratio (one process per core, like lenstronomy): {report['ratio_processes']:.1f}x")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
