"""One prepared run on a GPU machine: every throughput lensnet claims, then the shipped model trained further.

Steps, each timed on ``--device`` and written to ``<out>/device_check.json`` and ``.md`` as soon as it ends (a
step that fails records its error and the others go on):

1. simulation: images/s of the ``paper`` preset, every effect on (``--sim-batch`` lenses per call);
2. inference: images/s of the shipped network for batch sizes ``--batches``, in fp32 and bf16 autocast;
3. refine: lenses/s of the network-seeded likelihood fit (SIE + Sérsic, ``--refine-num`` test lenses);
4. training: the shipped model's training continued for ``--minutes`` minutes (checkpoints in
   ``<out>/train/checkpoints``; lenses/s of training with on-the-fly simulation), then
5. evaluation: the continued model on the seeded 1,000-lens test set (Table 1's errors), beside the shipped one.

``--tiny`` shrinks every step to seconds on a CPU (the test's settings). Usage::

    bash benchmarks/device_check.sh --out device_results --minutes 6
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from lensnet.evaluate.evaluation import run_evaluation
from lensnet.evaluate.testset import TEST_SET, evaluate_predictor, model_simulation_config, simulated_chunks
from lensnet.inference import DEFAULT_PRETRAINED, load_pretrained
from lensnet.lensing import PixelGrid
from lensnet.refine import refine_lenses
from lensnet.refine.simulated import simulated_image_data
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed
from lensnet.training import TrainConfig, run_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description  # noqa: E402


def _timed(fn, repeats: int, sync) -> float:
    """Seconds per call of ``fn`` after one untimed call."""
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def simulation(args, device, sync) -> dict:
    simulator = LensSimulator(get_preset("tiny" if args.tiny else "paper"), device=device)
    seconds = _timed(lambda: simulator.simulate(args.sim_batch, batch_seed(1, 0)), args.repeats, sync)
    return {"preset": simulator.config.name, "batch": args.sim_batch, "images_per_s": args.sim_batch / seconds}


def inference(args, device, sync) -> dict:
    predictor = load_pretrained(device=device)
    size = predictor.image_size
    out = {}
    for batch in args.batches:
        images = torch.randn(batch, 1, *size, device=device)
        for precision in ("fp32", "bf16"):
            def forward():
                with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                    predictor(images)
            out[f"{precision} batch {batch}"] = batch / _timed(forward, args.repeats, sync)
    return {"images_per_s": out}


def refine(args, device, sync) -> dict:
    predictor = load_pretrained(device=device)
    config = model_simulation_config(predictor.card)
    batch, _ = next(iter(simulated_chunks(config.for_split("test"), args.refine_num, 2024, device, progress=False)))
    data = simulated_image_data(batch, PixelGrid(config.n_pix, config.pixel_scale))
    mean, std = predictor.predict(batch.images, normalized=True)
    sync()
    t0 = time.perf_counter()
    result = refine_lenses(data, mean.double(), std.double(), restarts=args.restarts, max_iter=args.max_iter)
    sync()
    seconds = time.perf_counter() - t0
    error = (result.lens[:, 0].cpu() - batch.targets[:, 0].double().cpu()).abs().median().item()
    return {"lenses": args.refine_num, "restarts": args.restarts, "max_iter": args.max_iter,
            "lenses_per_s": args.refine_num / seconds, "median_abs_theta_E_error": error}


def training(args, device, sync) -> dict:
    from datetime import timedelta

    from lightning.pytorch.callbacks import Timer

    out_dir = Path(args.out) / "train"
    config = TrainConfig(simulation="tiny" if args.tiny else "paper", batch_size=args.train_batch,
                         lr=args.lr, warmup_steps=0 if args.tiny else 100, max_steps=args.max_steps,
                         val_every_n_steps=args.checkpoint_every, checkpoint_every_n_steps=args.checkpoint_every,
                         num_val=args.num_val, num_test=args.num_val, num_stats=64 if args.tiny else 1000,
                         accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, output_dir=str(out_dir),
                         init_from=None if args.tiny else f"pretrained:{DEFAULT_PRETRAINED}")
    if args.tiny:  # the shipped network is 192 x 192: the tiny preset trains the small ResNet from scratch
        config = config.with_overrides(model="lensnet_resnet_small")
    timer = Timer(duration=timedelta(minutes=args.minutes))
    t0 = time.perf_counter()
    result = run_training(config, callbacks=[timer], enable_progress_bar=False)
    seconds = timer.time_elapsed("train") or (time.perf_counter() - t0)
    return {"minutes": args.minutes, "steps": result.global_step, "batch": args.train_batch,
            "lenses_per_s": result.global_step * args.train_batch / seconds, "checkpoint": str(result.checkpoint),
            "run_test_err68": {k: v for k, v in result.metrics.items() if k.startswith("test_err68")}}


def evaluation(args, device, sync, checkpoint: str) -> dict:
    num = args.eval_num
    continued, _ = run_evaluation(checkpoint=checkpoint, num=num, seed=TEST_SET["seed"], device=str(device),
                                  output_dir=str(Path(args.out) / "evaluation"), progress=False)
    out = {"num": num, "seed": TEST_SET["seed"], "continued_err68": continued.metrics["lensnet"]["err68"]}
    if not args.tiny:  # the shipped model on the same test set, side by side
        shipped = load_pretrained(device=device)
        out["shipped_err68"] = evaluate_predictor(shipped, model_simulation_config(shipped.card), num=num,
                                                  seed=TEST_SET["seed"], device=device,
                                                  progress=False).metrics["lensnet"]["err68"]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="device_check", help="folder for every result [device_check]")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=6.0, help="training time [6]")
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for a CPU test")
    parser.add_argument("--steps", nargs="+", default=["simulation", "inference", "refine", "training", "evaluation"])
    args = parser.parse_args(argv)
    tiny = args.tiny
    args.repeats = 1 if tiny else 5
    args.sim_batch = 4 if tiny else 512
    args.batches = [2] if tiny else [64, 256, 1024]
    args.refine_num, args.restarts, args.max_iter = (2, 1, 5) if tiny else (128, 8, 300)
    args.train_batch, args.lr, args.max_steps = (4, 1e-3, 4) if tiny else (256, 2e-4, 100_000)
    args.checkpoint_every, args.num_val = (2, 8) if tiny else (500, 1000)
    args.eval_num = 8 if tiny else TEST_SET["num"]
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_description(device), "date": datetime.datetime.now(datetime.timezone.utc)
               .isoformat(timespec="seconds"), "argv": " ".join(sys.argv[1:] if argv is None else argv),
               "torch": torch.__version__, "steps": {}}
    steps = {"simulation": simulation, "inference": inference, "refine": refine, "training": training}
    checkpoint = None
    for name in args.steps:
        t0 = time.perf_counter()
        try:
            if name == "evaluation":
                if checkpoint is None:
                    raise RuntimeError("no checkpoint: the training step did not run or failed")
                entry = evaluation(args, device, sync, checkpoint)
            else:
                entry = steps[name](args, device, sync)
            if name == "training":
                checkpoint = entry["checkpoint"]
        except Exception as exc:  # one failed step must not cost the others on a one-shot machine
            entry = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
        entry["wall_s"] = time.perf_counter() - t0
        results["steps"][name] = entry
        _write(results, out)
        print(f"{name}: {json.dumps({k: v for k, v in entry.items() if k != 'traceback'})}", flush=True)
    return results


def _write(results: dict, out: Path) -> None:
    (out / "device_check.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# lensnet device check ({results['date']})", "", f"Machine: {results['machine']}; torch "
             f"{results['torch']}.", f"Command: `bash benchmarks/device_check.sh {results['argv']}`", "",
             "| step | result | wall s |", "|---|---|---|"]
    for name, entry in results["steps"].items():
        shown = {k: v for k, v in entry.items() if k not in ("traceback", "wall_s")}
        text = json.dumps(shown, default=str).replace("|", "/")
        lines.append(f"| {name} | {text} | {entry['wall_s']:.1f} |")
    (out / "device_check.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
