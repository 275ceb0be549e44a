"""Rendering speed: noiseless lensed Sersic images with lensnet and with lenstronomy, same run.

Both render the same SIE + elliptical Sersic systems (lens prior of the paper: theta_E ~ U[0.1, 3]'',
1 - q ~ U[0, 0.9]; Sersic R_e ~ U[0.05, 0.3]'', n ~ U[0.5, 4]) on a 192 x 192 grid of 0.04'' pixels
with 2 x 2 supersampling and no PSF. lensnet renders batches in float32 with torch using every core;
lenstronomy (``ImageModel``, one image per call) runs one worker process per core. Start-up (process
spawn, imports, the first batch) is excluded from both timings. The largest difference between the
two over the images both rendered is reported as a check. Results go to
``benchmarks/results/render_<device>_<host>.json`` and ``.md``, with the hardware named.

Usage::

    python benchmarks/bench_render.py                   # CPU, batch 128
    python benchmarks/bench_render.py --device cuda --batch-size 256
    python benchmarks/bench_render.py --quick           # seconds, to check that it works
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lensnet.conventions import LensParams, qphi_to_e1e2
from lensnet.lensing import SIE, PixelGrid
from lensnet.simulate import render
from lensnet.sources import Sersic

__all__ = ["draw_systems", "bench_lensnet", "bench_lenstronomy", "hardware", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


def draw_systems(n: int, seed: int = 0, device="cpu") -> tuple[SIE, Sersic]:
    """n random lens + source systems in float32 (see the module docstring for the priors).

    Drawn on the CPU, then moved, so a seed gives the same systems on every device.
    """
    gen = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float32)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen, **kw)

    e1, e2 = qphi_to_e1e2(1 - uniform(0.0, 0.9), uniform(0.0, math.pi))
    lens = LensParams(uniform(0.1, 3.0), e1, e2, uniform(-0.3, 0.3), uniform(-0.3, 0.3))
    s1, s2 = qphi_to_e1e2(uniform(0.5, 1.0), uniform(0.0, math.pi))
    source = Sersic(uniform(0.5, 2.0), uniform(0.05, 0.3), uniform(0.5, 4.0), s1, s2,
                    uniform(-0.3, 0.3), uniform(-0.3, 0.3))
    return SIE(lens.to(device)), source.to(device)


def bench_lensnet(grid: PixelGrid, supersample: int, batch_size: int, steps: int, device: torch.device):
    """Images per second of :func:`lensnet.simulate.render`, and the images of the first batch."""
    batches = [draw_systems(batch_size, seed, device) for seed in range(steps + 1)]
    first = render(*batches[0], grid, supersample)  # warm-up: caches the grid
    _sync(device)
    start = time.perf_counter()
    for lens, source in batches[1:]:
        render(lens, source, grid, supersample)
    _sync(device)
    return batch_size * steps / (time.perf_counter() - start), first.cpu().numpy()


_MODEL = None


def _init_worker(n_pix: int, pixel_scale: float, supersample: int) -> None:
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    global _MODEL
    torch.set_num_threads(1)
    corner = -(n_pix - 1) / 2 * pixel_scale
    data = ImageData(image_data=np.zeros((n_pix, n_pix)), transform_pix2angle=np.diag([pixel_scale] * 2),
                     ra_at_xy_0=corner, dec_at_xy_0=corner)
    _MODEL = ImageModel(data, PSF(psf_type="NONE"), lens_model_class=LensModel(["SIE"]),
                        source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                        kwargs_numerics={"supersampling_factor": supersample})


def _lenstronomy_image(kwargs: tuple[dict, dict]) -> np.ndarray:
    return _MODEL.image(kwargs_lens=[kwargs[0]], kwargs_source=[kwargs[1]])


def bench_lenstronomy(grid: PixelGrid, supersample: int, lens: SIE, source: Sersic, workers: int):
    """Images per second of lenstronomy's ImageModel over ``workers`` processes, and the images."""
    jobs = list(zip(lens.params.to_lenstronomy(), source.to_lenstronomy()))
    context = multiprocessing.get_context("spawn")  # no fork of a process holding OpenMP threads
    with context.Pool(workers, _init_worker, (grid.n_pix, grid.pixel_scale, supersample)) as pool:
        pool.map(_lenstronomy_image, jobs[:workers], chunksize=1)  # warm-up: spawn and imports
        start = time.perf_counter()
        images = pool.map(_lenstronomy_image, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
        elapsed = time.perf_counter() - start
    return len(jobs) / elapsed, np.stack(images)


def hardware(device: torch.device) -> dict:
    """CPU model and core count from /proc/cpuinfo and the OS, versions, and the GPU if used."""
    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import lenstronomy

    return dict(host=socket.gethostname(), cpu=cpu, cores=len(os.sched_getaffinity(0)),
                load_average_1min=round(os.getloadavg()[0], 2),
                torch_threads=torch.get_num_threads(), torch=torch.__version__, numpy=np.__version__,
                lenstronomy=lenstronomy.__version__, python=platform.python_version(),
                gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _markdown(r: dict) -> str:
    hw = r["hardware"]
    where = hw["gpu"] or f"{hw['cpu']}, {hw['torch_threads']} threads"
    return "\n".join([
        f"# Rendering speed: lensnet on {r['device']} vs lenstronomy on CPU",
        "",
        f"Host {hw['host']}: {hw['cpu']}, {hw['cores']} cores; torch {hw['torch']}, lenstronomy "
        f"{hw['lenstronomy']}, numpy {hw['numpy']}, Python {hw['python']}. {r['date']}"
        f"{' (QUICK run: indicative only)' if r['quick'] else ''}. Load average before the run: "
        f"{hw['load_average_1min']} (other processes on the cores slow multithreaded torch far more than "
        "one-process-per-core lenstronomy: measure on an idle machine).",
        "",
        f"Noiseless SIE + elliptical Sersic, {r['image_size']} x {r['image_size']} px of {r['pixel_scale']}'', "
        f"supersampling {r['supersample']}, no PSF.",
        "",
        "| renderer | where | images/s |",
        "|---|---|---|",
        f"| lensnet (float32, batch {r['batch_size']}, {r['steps']} batches) | {where} | "
        f"{r['lensnet_images_per_s']:.1f} |",
        f"| lenstronomy ImageModel ({r['lenstronomy_images']} images) | {r['workers']} processes | "
        f"{r['lenstronomy_images_per_s']:.1f} |",
        "",
        f"Speed-up: **{r['speedup']:.1f}x**. Largest difference between the two images of a system: "
        f"{r['max_abs_diff_over_peak']:.1e} of its peak (float32 vs float64).",
        "",
        f"Command: `{r['command']}`",
        "",
    ])


def main(args: list[str] | None = None) -> dict:
    """Parse the command line, time both renderers, write the JSON and Markdown reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where lensnet runs: cpu or cuda [cpu]")
    parser.add_argument("--batch-size", type=int, default=128, help="lensnet images per batch [128]")
    parser.add_argument("--steps", type=int, default=5, help="timed lensnet batches [5]")
    parser.add_argument("--per-worker", type=int, default=20, help="lenstronomy images per worker [20]")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="lenstronomy processes [all cores]")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads [all cores]")
    parser.add_argument("--image-size", type=int, default=192, help="pixels per side [192]")
    parser.add_argument("--pixel-scale", type=float, default=0.04, help="arcsec per pixel [0.04]")
    parser.add_argument("--supersample", type=int, default=2, help="sub-pixels per side [2]")
    parser.add_argument("--quick", action="store_true", help="batch 64, 2 timed batches, 4 images per worker")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where to write the reports")
    opts = parser.parse_args(args)
    if opts.quick:
        opts.batch_size, opts.steps, opts.per_worker = 64, 2, 4
    torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    grid = PixelGrid(opts.image_size, opts.pixel_scale)

    hw = hardware(device)  # before the runs, so that the load average is that of other processes
    # lenstronomy first: its worker processes are gone before torch starts its threads here.
    n_lt = min(opts.per_worker * opts.workers, opts.batch_size)
    lens, source = draw_systems(opts.batch_size, 0)
    lt_rate, lt_images = bench_lenstronomy(grid, opts.supersample, *_head(lens, source, n_lt), opts.workers)
    print(f"lenstronomy: {lt_rate:9.1f} images/s ({opts.workers} processes, {n_lt} images)", flush=True)
    ln_rate, ln_images = bench_lensnet(grid, opts.supersample, opts.batch_size, opts.steps, device)
    print(f"lensnet:     {ln_rate:9.1f} images/s ({device}, batch {opts.batch_size})", flush=True)
    diff = np.abs(ln_images[:n_lt] - lt_images).max((1, 2)) / lt_images.max((1, 2))

    report = dict(device=str(device), hardware=hw, image_size=opts.image_size,
                  pixel_scale=opts.pixel_scale, supersample=opts.supersample, batch_size=opts.batch_size,
                  steps=opts.steps, workers=opts.workers, lenstronomy_images=n_lt,
                  lensnet_images_per_s=round(ln_rate, 2), lenstronomy_images_per_s=round(lt_rate, 2),
                  speedup=round(ln_rate / lt_rate, 2), max_abs_diff_over_peak=float(diff.max()),
                  quick=opts.quick, date=datetime.date.today().isoformat(),
                  command=" ".join(sys.argv if args is None else ["bench_render.py", *args]))
    print(f"speed-up:    {report['speedup']:9.2f}x; max |difference| / peak {diff.max():.1e}")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    stem = opts.out_dir / f"render_{device.type}_{report['hardware']['host']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(report))
    return report


def _head(lens: SIE, source: Sersic, n: int) -> tuple[SIE, Sersic]:
    """The first n systems (the first lensnet batch is seed 0 too, so the images can be compared)."""
    p = lens.params
    lens_n = SIE(LensParams(p.theta_E[:n], p.e1[:n], p.e2[:n], p.center_x[:n], p.center_y[:n]))
    return lens_n, Sersic(*(getattr(source, f)[:n] for f in
                            ("amplitude", "R_sersic", "n_sersic", "e1", "e2", "center_x", "center_y")))


if __name__ == "__main__":
    main()
