"""Throughput of every registered network: training and inference images per second.

Training is one forward pass, the backward pass and an SGD step on a batch of 192 x 192 images
(mean squared error on the means, or the Gaussian negative log-likelihood for models that predict
variances); inference is a forward pass in eval mode under ``torch.inference_mode``. Inputs are
random: throughput does not depend on image content. Results go to
``benchmarks/results/networks_<device>.json`` and ``.md``, with the hardware named.

Usage::

    python benchmarks/bench_networks.py                    # CPU, batch 32, every model
    python benchmarks/bench_networks.py --device cuda --amp
    python benchmarks/bench_networks.py --quick --models alexnet lensnet_resnet_small
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lensnet.networks import create_model, list_models

__all__ = ["benchmark_model", "hardware_name", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


def hardware_name(device: torch.device) -> str:
    """CPU model and thread count, or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(model, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if model.predicts_variance:
        k = target.shape[1]
        mean, log_var = output[:, :k], output[:, k:]  # K means, then K log-variances
        return F.gaussian_nll_loss(mean, target, log_var.exp())
    return F.mse_loss(output, target)


def _rate(step, n_images: int, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return n_images * steps / (time.perf_counter() - start)


def benchmark_model(name: str, device: torch.device, batch_size: int = 32, image_size: int = 192,
                    warmup: int = 2, steps: int = 5, amp: bool = False) -> dict:
    """Training and inference images per second of the registered model ``name``.

    Parameters
    ----------
    name : str
        Registered model name.
    device : torch.device
        Where to run.
    batch_size : int
        Images per step, for training and inference [32].
    image_size : int
        Image side in pixels [192].
    warmup, steps : int
        Untimed and timed steps [2, 5].
    amp : bool
        Run under bfloat16 autocast (CUDA only) [False].

    Returns
    -------
    dict
        ``model``, ``parameters``, ``train_images_per_s``, ``infer_images_per_s``.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    model = create_model(name).to(device)
    x = torch.randn(batch_size, 1, image_size, image_size, device=device, generator=gen)
    target = torch.randn(batch_size, model.num_outputs, device=device, generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = _loss(model, model(x), target)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.inference_mode(), autocast:
            model(x)

    model.train()
    train_rate = _rate(train_step, batch_size, warmup, steps, device)
    model.eval()
    infer_rate = _rate(infer_step, batch_size, warmup, steps, device)
    return dict(model=name, parameters=sum(p.numel() for p in model.parameters()),
                train_images_per_s=round(train_rate, 2), infer_images_per_s=round(infer_rate, 2))


def _markdown(report: dict) -> str:
    lines = [
        f"# Network throughput on {report['device']} ({report['hardware']})",
        "",
        f"torch {report['torch']}, batch {report['batch_size']}, {report['image_size']} px, one band, "
        f"{report['steps']} timed step(s) after {report['warmup']} warm-up, "
        f"amp={report['amp']}{', QUICK run (indicative only)' if report['quick'] else ''}; {report['date']}.",
        "",
        "| model | parameters (M) | training (images/s) | inference (images/s) |",
        "|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f} | {r['train_images_per_s']:.1f} "
                     f"| {r['infer_images_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(args: list[str] | None = None) -> dict:
    """Parse the command line, benchmark the models, write the JSON and Markdown reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    parser.add_argument("--models", nargs="+", default=None, help="registered names [all]")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step [32]")
    parser.add_argument("--image-size", type=int, default=192, help="image side in pixels [192]")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps [2]")
    parser.add_argument("--steps", type=int, default=5, help="timed steps [5]")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads [torch's default]")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    parser.add_argument("--quick", action="store_true", help="batch 4, 1 warm-up and 1 timed step")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where to write the reports")
    opts = parser.parse_args(args)
    if opts.quick:
        opts.batch_size, opts.warmup, opts.steps = 4, 1, 1
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    names = opts.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {list_models()}")

    results = []
    for name in names:
        r = benchmark_model(name, device, opts.batch_size, opts.image_size, opts.warmup, opts.steps,
                            opts.amp and device.type == "cuda")
        print(f"{name:22s} {r['parameters'] / 1e6:7.2f} M  train {r['train_images_per_s']:9.1f} img/s  "
              f"infer {r['infer_images_per_s']:9.1f} img/s", flush=True)
        results.append(r)
    report = dict(device=device.type, hardware=hardware_name(device), torch=torch.__version__,
                  batch_size=opts.batch_size, image_size=opts.image_size, warmup=opts.warmup,
                  steps=opts.steps, amp=opts.amp and device.type == "cuda", quick=opts.quick,
                  date=datetime.date.today().isoformat(), results=results,
                  command=" ".join(sys.argv if args is None else ["bench_networks.py", *args]))
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    stem = opts.out_dir / f"networks_{device.type}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(report))
    return report


if __name__ == "__main__":
    main()
