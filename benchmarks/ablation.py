"""Training ablation at equal CPU budget: which change makes lensnet learn more per CPU-minute.

Every arm trains ``lensnet_resnet`` from the same random weights (seed 31) on fresh ``paper`` lenses for
the same wall-clock budget, then is evaluated on the same seeded test set (1,000 lenses, seed 2024) in
the paper's convention. An arm is a set of :class:`~lensnet.training.TrainConfig` fields changed from
the base. To give every arm the same minutes and still end its learning-rate schedule, each arm first
runs a short probe whose steady steps/s set ``max_steps = budget x steps/s``; the minutes actually spent
are reported beside it.

The arms (``ARMS``): the base (the shipped model's recipe: AdamW, cosine, Gaussian NLL, batch 32, fp32);
throughput (channels-last, bf16 autocast); then, on top of the faster recipe, beta-NLL, an EMA of the
weights, attention pooling that keeps position, and a larger batch with a larger learning rate; the
8-view symmetrized estimate of the best arm costs no training and is evaluated too.

Each arm writes ``<out>/<arm>/result.json`` as it ends; a rerun skips finished arms and resumes an
interrupted one from its last checkpoint. Results: ``benchmarks/results/ablation_cpu.json`` and ``.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/ablation.py --minutes 6 --threads 1 --out runs/ablation
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from lensnet.evaluate.testset import evaluate_predictor
from lensnet.metrics import PAPER_PARAM_NAMES
from lensnet.metrics.report import PAPER_TABLE1
from lensnet.training import TrainConfig, read_checkpoint, run_training

try:
    from machine import machine_description
except ImportError:  # run from another folder
    from benchmarks.machine import machine_description

RESULTS = Path(__file__).resolve().parent / "results"
BASE = dict(model="lensnet_resnet", simulation="paper", batch_size=32, lr=2e-3, optimizer="adamw",
            weight_decay=1e-4, schedule="cosine", warmup_steps=100, loss="gaussian_nll", gradient_clip=5.0,
            num_val=256, num_test=16, num_stats=1000, seed=31, precision="32-true", accelerator="cpu", devices=1)
FAST = dict(channels_last=True, precision="bf16-mixed")
ARMS = {
    "base": {},
    "throughput": FAST,
    "beta_nll": {**FAST, "loss": "beta_nll", "beta": 0.5},
    "ema": {**FAST, "ema_decay": 0.995},
    "attention_pool": {**FAST, "model_kwargs": {"pool": "attention"}},
    "batch64_lr4e-3": {**FAST, "batch_size": 64, "lr": 4e-3},
}
PROBE_STEPS = 30


class _StepClock(Callback):
    """Wall-clock time of every optimizer step's end."""

    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter())


def probe_steps_per_s(config: TrainConfig, out: Path) -> float:
    clock = _StepClock()
    run_training(config.with_overrides(max_steps=PROBE_STEPS, val_every_n_steps=10 ** 6, num_val=16,
                                       checkpoint_every_n_steps=10 ** 6, output_dir=str(out)),
                 callbacks=[clock], enable_progress_bar=False)
    steady = clock.times[5:]  # after the first steps' warm-up
    return (len(steady) - 1) / (steady[-1] - steady[0])


def run_arm(name: str, overrides: dict, minutes: float, out: Path, num_test: int) -> dict:
    done = out / name / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    config = TrainConfig.from_dict({**BASE, **overrides})
    probe = out / name / "probe.json"
    if not probe.is_file():
        rate = probe_steps_per_s(config, out / name / "probe")
        probe.write_text(json.dumps({"steps_per_s": rate}))
    rate = json.loads(probe.read_text())["steps_per_s"]
    steps = max(100, int(minutes * 60 * rate))
    run_dir = out / name / "train"
    config = config.with_overrides(max_steps=steps, val_every_n_steps=max(50, steps // 4),
                                   checkpoint_every_n_steps=100, log_every_n_steps=25, output_dir=str(run_dir))
    resume = "last" if any((run_dir / "checkpoints").glob("*.ckpt")) else None
    t0 = time.perf_counter()
    result = run_training(config, resume=resume, enable_progress_bar=False)
    train_s = time.perf_counter() - t0
    predictor = read_checkpoint(result.checkpoint).predictor().eval()
    evaluation = {"": evaluate_predictor(predictor, num=num_test, progress=False)}
    if name == "base":
        evaluation[" (8 views)"] = evaluate_predictor(predictor, num=num_test, progress=False, symmetrize=True)
    row = {"arm": name, "changes": overrides, "steps": steps, "batch_size": config.batch_size,
           "probe_images_per_s": rate * config.batch_size, "train_minutes": train_s / 60,
           "resumed": resume is not None,
           "err68_paper": {k: v.metrics["paper"]["err68"] for k, v in evaluation.items()},
           "err68_lensnet": {k: v.metrics["lensnet"]["err68"] for k, v in evaluation.items()},
           "cover68": evaluation[""].metrics["lensnet"]["cover68"]}
    done.write_text(json.dumps(row, indent=2))
    return row


def write_tables(rows: list[dict], args, machine: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    (RESULTS / "ablation_cpu.json").write_text(json.dumps({"date": date, "machine": machine, "minutes": args.minutes,
                                                           "threads": args.threads,
                                                           "num_test": args.num_test, "arms": rows}, indent=2) + "\n")
    names = PAPER_PARAM_NAMES
    lines = [f"# Training ablation at equal CPU budget ({machine['cpu']}, {machine['cores']} cores, "
             f"torch {machine['torch']})", "",
             f"`python benchmarks/ablation.py --minutes {args.minutes} --threads {args.threads}`, {date}. Every arm from the same random "
             f"weights; 68% errors on {args.num_test} test lenses (seed 2024), the paper's convention.", "",
             "| arm | training images/s | minutes | lenses seen | " + " | ".join(names) + " |",
             "|---|---|---|---|" + "---|" * len(names)]
    for row in rows:
        for suffix, errors in row["err68_paper"].items():
            lines.append(f"| {row['arm']}{suffix} | {row['probe_images_per_s']:.0f} | {row['train_minutes']:.1f} | "
                         f"{row['steps'] * row['batch_size']:,} | " + " | ".join(f"{errors[n]:.3f}" for n in names)
                         + " |")
    lines.append("| paper, combined network | | | | " + " | ".join(f"{v:.2f}" for v in PAPER_TABLE1["combined"]) + " |")
    (RESULTS / "ablation_cpu.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="training minutes per arm")
    parser.add_argument("--out", default="runs/ablation", help="folder of the arms' runs")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run")
    parser.add_argument("--num-test", type=int, default=1000, help="test lenses")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (1 leaves the other cores free and the timing undisturbed by them)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    machine = machine_description(torch.device("cpu"))
    for name in args.arms.split(","):
        print(json.dumps(run_arm(name, ARMS[name], args.minutes, out, args.num_test)), flush=True)
        # Every finished arm, also those of an earlier invocation (a rerun of some arms keeps the others).
        rows = [json.loads((out / arm / "result.json").read_text()) for arm in ARMS
                if (out / arm / "result.json").is_file()]
        write_tables(rows, args, machine)
    return rows


if __name__ == "__main__":
    main()
