"""run_training end to end on the toy problem: learning, outputs, exact resume, DDP on two CPU processes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lensnet.errors import LensnetConfigError, LensnetIOError
from lensnet.training.config import TrainConfig, load_config
from lensnet.inference import DEFAULT_PRETRAINED, card_markdown, list_pretrained, load_pretrained
from lensnet.training.checkpoint import read_checkpoint
from lensnet.training.train import run_training


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


class Interrupt(Callback):
    """Stops training at ``step`` with Ctrl-C (KeyboardInterrupt) or SIGTERM."""

    def __init__(self, step: int, how: str):
        self.step, self.how = step, how

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self.step:
            return
        if self.how == "keyboard":
            raise KeyboardInterrupt
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            raise RuntimeError("Lightning's SIGTERM handler is not installed; not sending SIGTERM")
        os.kill(os.getpid(), signal.SIGTERM)


class RecordProgressBar(Callback):
    """The training bar's (description, steps shown, total) at the end of the run."""

    def on_train_end(self, trainer, pl_module):
        bar = trainer.progress_bar_callback.train_progress_bar
        self.seen = (bar.desc.rstrip(": "), bar.n, bar.total)


def _mean(values):
    return sum(values) / len(values)


def test_loss_falls_and_the_run_leaves_a_usable_checkpoint(tiny_config, toy_factory):
    recorder = RecordLosses()
    result = run_training(tiny_config, simulator_factory=toy_factory, callbacks=[recorder],
                          enable_progress_bar=False)
    assert not result.interrupted and result.global_step == 300 and len(recorder.losses) == 300
    # Gaussian NLL on standardised targets: ~0.5 at the start, well below 0 once learnt.
    assert _mean(recorder.losses[-30:]) < _mean(recorder.losses[:10]) - 1.0
    assert result.metrics["test_err68/theta_E"] < 0.05  # the prior's standard deviation is 0.2"
    assert 0.4 < result.metrics["test_cover68/theta_E"] <= 1.0
    out = Path(tiny_config.output_dir)
    assert load_config(out / "config.yaml") == result.config
    assert result.config.model == "lensnet_resnet_small" and result.config.precision == "32-true"
    assert (out / "checkpoints" / "best.ckpt").is_file() and result.checkpoint == out / "checkpoints" / "last.ckpt"
    images = torch.randn(4, 1, 32, 32)
    loaded = read_checkpoint(result.checkpoint).regressor()
    expected = result.module.eval()(images)
    for a, b in zip(loaded(images), expected):
        assert torch.allclose(a, b, atol=1e-6)


def test_mean_only_network_with_the_papers_loss(tiny_config, toy_factory):
    config = tiny_config.with_overrides(model_kwargs={**tiny_config.model_kwargs, "predict_variance": False},
                                        loss="mse", optimizer="sgd", lr=0.05, schedule="onecycle", max_steps=150)
    recorder = RecordLosses()
    result = run_training(config, simulator_factory=toy_factory, callbacks=[recorder], enable_progress_bar=False)
    assert _mean(recorder.losses[-20:]) < 0.3 * _mean(recorder.losses[:10])
    mean, std = result.module.eval()(torch.randn(2, 1, 32, 32))
    assert torch.isfinite(std).all() and torch.equal(std[0], result.module.model.residual_rms)


def test_faster_recipe_with_an_average_of_the_weights_trains(tiny_config, toy_factory):
    """channels-last, bf16 autocast, beta-NLL and an EMA of the weights together: the loss falls, the
    exported weights are the average's, in the contiguous layout safetensors needs."""
    config = tiny_config.with_overrides(channels_last=True, precision="bf16-mixed", loss="beta_nll", ema_decay=0.9,
                                        max_steps=200)
    recorder = RecordLosses()
    result = run_training(config, simulator_factory=toy_factory, callbacks=[recorder], enable_progress_bar=False)
    assert _mean(recorder.losses[-20:]) < _mean(recorder.losses[:10])
    assert result.metrics["test_err68/theta_E"] < 0.1
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    assert "current_model_state" in checkpoint  # Lightning's EMA callback: state_dict holds the average
    weights = {k: v for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and v.ndim == 4}
    assert all(not torch.equal(v, checkpoint["current_model_state"][k]) for k, v in list(weights.items())[:3])
    assert all(p.is_contiguous() for p in result.module.parameters())


@pytest.fixture(scope="module")
def resume_setup(tmp_path_factory, tiny_model, toy_factory):
    config = TrainConfig(model=tiny_model["model"], model_kwargs={**tiny_model["model_kwargs"], "drop_rate": 0.2},
                         batch_size=16, max_steps=40, val_every_n_steps=10, checkpoint_every_n_steps=10,
                         num_val=32, num_test=16, num_stats=64, accelerator="cpu", devices=1)
    out = tmp_path_factory.mktemp("uninterrupted")
    reference = run_training(config.with_overrides(output_dir=str(out)), simulator_factory=toy_factory,
                             enable_progress_bar=False)
    return config, reference, toy_factory


@pytest.mark.parametrize("how", ["keyboard", "sigterm"])
def test_resume_after_interruption_reproduces_the_uninterrupted_run(resume_setup, tmp_path, how):
    config, reference, factory = resume_setup
    config = config.with_overrides(output_dir=str(tmp_path))
    stopped = run_training(config, simulator_factory=factory, callbacks=[Interrupt(17, how)],
                           enable_progress_bar=False)
    assert stopped.interrupted and stopped.checkpoint.name == "interrupted.ckpt"
    assert stopped.global_step == (17 if how == "keyboard" else 18)  # SIGTERM lets the step finish
    with pytest.raises(LensnetIOError, match="resume"):
        run_training(config, simulator_factory=factory, enable_progress_bar=False)
    bar = RecordProgressBar()
    resumed = run_training(config, resume="last", simulator_factory=factory, callbacks=[bar])
    assert not resumed.interrupted and resumed.global_step == 40
    assert bar.seen == ("Epoch 0", 40, 40)  # the resumed bar counts the whole run's steps
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()
    expected = reference.module.state_dict()
    for name, value in resumed.module.state_dict().items():
        assert torch.allclose(value.double(), expected[name].double(), rtol=0, atol=1e-6), name


def test_init_from_starts_with_the_checkpoints_weights_and_scaling(resume_setup, tmp_path):
    config, reference, factory = resume_setup
    config = config.with_overrides(output_dir=str(tmp_path), init_from=str(reference.checkpoint), max_steps=1,
                                   lr=1e-9, weight_decay=0.0, warmup_steps=0, seed=99, num_stats=2)
    tuned = run_training(config, simulator_factory=factory, enable_progress_bar=False)
    # One step at lr 1e-9 leaves the weights where they started (batch-norm statistics do move).
    expected = dict(reference.module.named_parameters())
    for name, value in tuned.module.named_parameters():
        assert torch.allclose(value, expected[name], rtol=0, atol=1e-6), name
    assert torch.equal(tuned.module.model.target_mean, reference.module.model.target_mean)
    assert torch.equal(tuned.module.model.target_std, reference.module.model.target_std)
    # The checkpoint knows both runs; its model card counts the lenses of both.
    first, second = read_checkpoint(tuned.checkpoint).stages()
    assert (first["steps"], first["seed"], second["steps"], second["seed"]) == (40, 0, 1, 99)
    assert first["checkpoint"] == str(reference.checkpoint) and second["num_training_images"] == 16
    card = read_checkpoint(tuned.checkpoint).card()
    assert card["training"]["num_training_images_all_stages"] == 41 * 16
    assert "656 lenses" in card["description"]
    assert "| stages | 2 runs" in card_markdown(card)


def test_init_from_a_shipped_model(resume_setup, tmp_path):
    if DEFAULT_PRETRAINED not in list_pretrained():
        pytest.skip("needs the shipped model")
    config, _, factory = resume_setup
    shipped = load_pretrained()
    config = config.with_overrides(output_dir=str(tmp_path), init_from=f"pretrained:{DEFAULT_PRETRAINED}",
                                   model=shipped.card["model"]["name"], model_kwargs={}, max_steps=1, lr=1e-9,
                                   weight_decay=0.0, warmup_steps=0, seed=98, num_stats=2, num_val=4, num_test=4,
                                   batch_size=4)
    tuned = run_training(config, simulator_factory=factory, enable_progress_bar=False)
    expected = dict(shipped.backbone.named_parameters())
    for name, value in tuned.module.model.backbone.named_parameters():
        assert torch.allclose(value, expected[name], rtol=0, atol=1e-6), name
    assert torch.equal(tuned.module.model.target_std, shipped.target_std)
    stages = read_checkpoint(tuned.checkpoint).stages()
    assert len(stages) == len(shipped.card["training"]["stages"]) + 1 and stages[-1]["seed"] == 98


def test_init_from_rejects_another_network(resume_setup, tmp_path):
    config, reference, factory = resume_setup
    with pytest.raises(LensnetConfigError, match="init_from.*lensnet_resnet_small"):
        run_training(config.with_overrides(output_dir=str(tmp_path / "a"), init_from=str(reference.checkpoint),
                                           model="lensnet_resnet", model_kwargs={}), simulator_factory=factory)
    with pytest.raises(LensnetConfigError, match="does not match model_kwargs"):
        run_training(config.with_overrides(output_dir=str(tmp_path / "b"), init_from=str(reference.checkpoint),
                                           model_kwargs={"widths": [8, 8, 8, 8]}), simulator_factory=factory)
    with pytest.raises(LensnetIOError, match="does not exist"):
        run_training(config.with_overrides(output_dir=str(tmp_path / "c"), init_from=str(tmp_path / "nope.ckpt")),
                     simulator_factory=factory)


def test_resume_needs_a_checkpoint(tiny_config, toy_factory):
    with pytest.raises(LensnetIOError, match="last.ckpt"):
        run_training(tiny_config, resume="last", simulator_factory=toy_factory)
    with pytest.raises(LensnetIOError, match="does not exist"):
        run_training(tiny_config, resume=str(Path(tiny_config.output_dir) / "nope.ckpt"),
                     simulator_factory=toy_factory)


def test_two_process_ddp_on_cpu_trains_one_model(tmp_path):
    script = Path(__file__).with_name("ddp_train.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for name, value in ranks[0]["state"].items():
        assert torch.allclose(value.double(), ranks[1]["state"][name].double(), rtol=0, atol=1e-6), name
    seeds = [set(r["seeds"]) for r in ranks]
    assert len(seeds[0]) == len(seeds[1]) == 6 and not seeds[0] & seeds[1]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("damage", ["truncated", "random", "foreign"])
def test_a_corrupt_checkpoint_stops_the_resume_before_anything_is_written(resume_setup, tmp_path, damage):
    config, reference, factory = resume_setup
    config = config.with_overrides(output_dir=str(tmp_path))
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    good = reference.checkpoint.read_bytes()
    bad = {"truncated": good[: len(good) // 2], "random": bytes(range(256)) * 64,
           "foreign": b"PK\x03\x04" + b"\x00" * 100}[damage]
    if damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, ckpt_dir / "last.ckpt")
    else:
        (ckpt_dir / "last.ckpt").write_bytes(bad)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(LensnetIOError, match="last.ckpt") as info:
        run_training(config, resume="last", simulator_factory=factory, enable_progress_bar=False)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no interrupted.ckpt, no logs, no config


def test_resume_last_takes_the_latest_step_whatever_the_file_times(resume_setup, tmp_path):
    from lensnet.training.train import find_resume_checkpoint

    config, reference, factory = resume_setup
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    contents = torch.load(reference.checkpoint, weights_only=True)
    torch.save(contents, ckpt_dir / "last.ckpt")  # step 40
    early = {**contents, "global_step": 0}
    torch.save(early, ckpt_dir / "interrupted.ckpt")  # newer file, earlier step
    torch.save(early, ckpt_dir / "last-v1.ckpt")
    assert find_resume_checkpoint(ckpt_dir, "last") == ckpt_dir / "last.ckpt"
