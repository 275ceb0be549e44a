"""``lensnet predict`` throughput: FITS files on disk to the catalogue, and where the time goes.

Writes ``--num`` simulated lenses as FITS files, twice: at the model's own pixel scale (192 x 192 at
0.04", a plain cutout) and at HST ACS's (160 x 160 at 0.05", resampled by reproject). For each set it
times, side by side in one run:

- the whole job, ``predict_fits`` with 0 and with ``--workers`` DataLoader workers;
- reading and preparing alone (the dataset, in this process);
- the network alone, on the prepared tensors.

Reading never makes the network wait when the workers prepare images at least as fast as the network
consumes them, each on cores of its own. Both parts are also timed on one core (one torch thread), which
gives the cores that takes: one for the network and reading/network for the workers. On a machine with
fewer, the two share the cores and the whole job is bound by their sum. Results go to
``benchmarks/results/predict_<device>.json`` and ``.md``.

Usage::

    python benchmarks/bench_predict.py --num 256 --workers 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from lensnet.inference import load_pretrained
from lensnet.inference.catalog import fits_inputs, predict_fits
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed

try:
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"


def write_set(folder: Path, preset: str, num: int) -> list[Path]:
    config = get_preset(preset).for_split("test")
    simulator = LensSimulator(config)
    paths = []
    for k, start in enumerate(range(0, num, 64)):
        batch = simulator.simulate(min(64, num - start), batch_seed(7, k))
        for i, image in enumerate(batch.observed[:, 0].numpy()):
            path = folder / f"{preset}_{start + i:05d}.fits"
            header = fits.Header()
            header["PIXSCALE"] = (config.pixel_scale, "arcsec/pixel")
            fits.PrimaryHDU(image.astype(np.float32), header=header).writeto(path)
            paths.append(path)
    return paths


def time_set(predictor, paths: list[Path], workers: int, batch_size: int) -> dict:
    n = len(paths)
    t0 = time.perf_counter()
    predict_fits(predictor, paths, batch_size=batch_size, num_workers=0, progress=False)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    predict_fits(predictor, paths, batch_size=batch_size, num_workers=workers, progress=False)
    parallel = time.perf_counter() - t0
    dataset = fits_inputs(predictor, paths)
    t0 = time.perf_counter()
    items = [dataset[i] for i in range(n)]
    reading = time.perf_counter() - t0
    images = torch.stack([item[1] for item in items])
    masks = torch.stack([item[2] for item in items])
    t0 = time.perf_counter()
    predictor.predict(images, masks, batch_size=batch_size)
    network = time.perf_counter() - t0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    predictor.predict(images, masks, batch_size=batch_size)
    network_one_core = time.perf_counter() - t0
    torch.set_num_threads(threads)
    return {"files": n, "serial_s": serial, "workers": workers, "with_workers_s": parallel, "reading_s": reading,
            "network_s": network, "network_one_core_s": network_one_core,
            "lenses_per_s": n / parallel, "lenses_per_s_serial": n / serial,
            "reading_share_serial": reading / serial,
            "cores_to_keep_network_fed": 1 + math.ceil(reading / network_one_core)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    predictor = load_pretrained()
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine_description(torch.device("cpu")), "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("paper", "hst-acs"):
            paths = write_set(Path(tmp), preset, args.num)
            results["sets"][preset] = time_set(predictor, paths, args.workers, args.batch_size)
            print(preset, json.dumps(results["sets"][preset]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "predict_cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [f"# lensnet predict: FITS files to a catalogue ({m['cpu']}, {m['cores']} cores, torch {m['torch']})", "",
             f"`python benchmarks/bench_predict.py --num {args.num} --workers {args.workers}`, {results['date']}.", "",
             "| input | files | whole job, 0 workers | whole job, " + f"{args.workers} workers | lenses/s (best) "
             "| reading and preparing, per lens on 1 core | network, per lens on 1 core | network, per lens on "
             f"{m['torch_threads']} threads | cores for the network never to wait |",
             "|---|---|---|---|---|---|---|---|---|"]
    for preset, r in results["sets"].items():
        label = "192x192 at 0.04\" (cutout)" if preset == "paper" else "160x160 at 0.05\" (reprojected)"
        per_lens = 1e3 / r["files"]
        lines.append(f"| {label} | {r['files']} | {r['serial_s']:.1f} s | {r['with_workers_s']:.1f} s | "
                     f"{max(r['lenses_per_s'], r['lenses_per_s_serial']):.0f} | {r['reading_s'] * per_lens:.1f} ms | "
                     f"{r['network_one_core_s'] * per_lens:.1f} ms | {r['network_s'] * per_lens:.1f} ms | "
                     f"{r['cores_to_keep_network_fed']} |")
    (RESULTS / "predict_cpu.md").write_text("\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    main()
