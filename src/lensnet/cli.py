"""The ``lensnet`` command line: one subcommand per stage, each a thin wrapper over a library call.

Usage::

    lensnet demo                      # the main job on built-in defaults
    lensnet simulate --preset paper --num 1000 --seed 7 --output set.h5
    lensnet train --model lensnet_resnet --config train.yaml
"""

from __future__ import annotations

import sys

import click

from lensnet import __version__
from lensnet.errors import LensnetError

__all__ = ["main", "cli"]


class _Group(click.Group):
    """Lists commands in the order of the pipeline, not alphabetically."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lensnet")
def cli():
    """lensnet: measure strong gravitational lenses with neural networks in milliseconds.

    Stages, in pipeline order: simulate training data, train networks, evaluate them,
    predict lens parameters for real FITS images, deblend lens light with ICA; `demo` runs
    the main job on built-in defaults.
    """


def _not_built(stage: str, issue: str):
    raise click.ClickException(f"'lensnet {stage}' is not built yet ({issue}); see the README's roadmap.")


@cli.command()
@click.option("--preset", default="paper", show_default=True, help="Simulation preset: paper, hst-acs or tiny.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML/TOML simulation config; its fields override the preset.")
@click.option("--num", type=int, help="Number of lenses (gallery: 16 unless given).")
@click.option("--seed", default=0, show_default=True, help="Dataset seed.")
@click.option("--batch-size", default=64, show_default=True,
              help="Lenses per simulated batch (part of a dataset's identity).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ...; auto: cuda if available.")
@click.option("--output", type=click.Path(dir_okay=False), help="HDF5 dataset to write.")
@click.option("--extra", multiple=True, type=click.Choice(["observed", "clean"]),
              help="Also store observed and/or noiseless images (repeatable).")
@click.option("--compression", default="gzip", show_default=True, type=click.Choice(["gzip", "lzf", "none"]))
@click.option("--resume", is_flag=True, help="Continue an interrupted dataset (OUTPUT.partial).")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset.")
@click.option("--gallery", type=click.Path(dir_okay=False),
              help="PNG of --num simulated examples (with --output: the dataset's first 16); the per-effect "
                   "figure goes next to it as <name>_effects.png.")
@click.option("--print-config", is_flag=True, help="Print the resolved simulation config and exit.")
@click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs).")
def simulate(preset, config_path, num, seed, batch_size, device, output, extra, compression, resume, overwrite,
             gallery, print_config, no_progress_bar):
    """Simulate lenses with observational effects to an HDF5 dataset and/or a gallery PNG."""
    import time
    from pathlib import Path

    import torch
    import yaml

    from lensnet.simulate import LensSimulator, get_preset, load_simulation_config
    from lensnet.simulate.dataset import partial_path, write_dataset
    from lensnet.simulate.gallery import draw_effects, draw_gallery

    config = load_simulation_config(config_path, preset) if config_path else get_preset(preset)
    if print_config:
        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return
    if not output and not gallery:
        raise click.UsageError("give --output (an HDF5 dataset), --gallery (a PNG) or both")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise click.BadParameter(f"{device!r} is not a torch device (cpu, cuda, cuda:1, ...)", param_hint="--device")
    if output:
        if num is None:
            raise click.UsageError("--num is required to write a dataset")
        start = time.perf_counter()
        try:
            path = write_dataset(output, config, num, seed, batch_size=batch_size, device=device, overwrite=overwrite,
                                 resume=resume, progress=not no_progress_bar, extras=extra, compression=compression)
        except KeyboardInterrupt:
            click.echo(f"interrupted; {partial_path(output)} is kept: rerun the same command with --resume", err=True)
            sys.exit(130)
        elapsed = time.perf_counter() - start
        click.echo(f"wrote {num} lenses to {path} in {elapsed:.1f} s ({num / elapsed:.1f} lenses/s on {device})")
    if gallery:
        simulator = LensSimulator(config, device=device)
        path = draw_gallery(output, min(num, 16), output=gallery) if output else draw_gallery(
            simulator, num or 16, seed, gallery)
        effects = draw_effects(simulator, seed, Path(gallery).with_name(Path(gallery).stem + "_effects.png"))
        click.echo(f"wrote {path} and {effects}")


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML/TOML training configuration.")
@click.option("--model", help="Network name from the registry (see `lensnet models`).")
@click.option("--preset", help="Simulation preset: paper, hst-acs or tiny.")
@click.option("--batch-size", type=int, help="Lenses per step.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]))
@click.option("--loss", type=click.Choice(["auto", "gaussian_nll", "mse"]))
@click.option("--schedule", type=click.Choice(["cosine", "onecycle", "constant"]))
@click.option("--max-steps", type=int, help="Training steps (one fresh simulated batch each).")
@click.option("--val-every", type=int, help="Validate every N steps.")
@click.option("--checkpoint-every", type=int, help="Checkpoint every N steps.")
@click.option("--num-val", type=int, help="Size of the fixed seeded validation set.")
@click.option("--num-test", type=int, help="Size of the fixed seeded test set.")
@click.option("--seed", type=int, help="Seed of the whole run.")
@click.option("--precision", type=click.Choice(["auto", "32-true", "16-mixed", "bf16-mixed", "64-true"]))
@click.option("--accelerator", type=click.Choice(["auto", "cpu", "gpu", "cuda", "mps"]))
@click.option("--devices", help="Number of devices per node, or 'auto'.")
@click.option("--num-nodes", type=int, help="Number of nodes (DDP).")
@click.option("--output-dir", help="Folder for checkpoints, logs and the resolved config.")
@click.option("--resume", help="'last' or a checkpoint path: continue exactly where a run stopped.")
@click.option("--init-from", help="Checkpoint to start from (fine-tuning): its weights, a fresh schedule.")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration and exit.")
@click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs).")
def train(config_path, model, preset, batch_size, lr, optimizer, loss, schedule, max_steps, val_every,
          checkpoint_every, num_val, num_test, seed, precision, accelerator, devices, num_nodes, output_dir,
          resume, init_from, print_config, no_progress_bar):
    """Train a network on lenses simulated on the fly (Lightning; checkpoints, resume, DDP)."""
    import yaml

    from lensnet.training.config import TrainConfig, load_config
    from lensnet.training.train import resolve_config, run_training

    config = load_config(config_path) if config_path else TrainConfig()
    config = config.with_overrides(
        model=model, simulation=preset, batch_size=batch_size, lr=lr, optimizer=optimizer, loss=loss,
        schedule=schedule, max_steps=max_steps, val_every_n_steps=val_every,
        checkpoint_every_n_steps=checkpoint_every, num_val=num_val, num_test=num_test, seed=seed,
        precision=precision, accelerator=accelerator,
        devices=int(devices) if devices and devices.isdigit() else devices, num_nodes=num_nodes,
        output_dir=output_dir, init_from=init_from)
    if print_config:
        click.echo(yaml.safe_dump(resolve_config(config).to_dict(), sort_keys=False))
        return
    result = run_training(config, resume=resume, enable_progress_bar=not no_progress_bar)
    if result.interrupted:
        click.echo(f"interrupted at step {result.global_step}; continue with "
                   f"`lensnet train --config {result.output_dir}/config.yaml --resume last`", err=True)
        sys.exit(130)
    click.echo(f"trained {result.global_step} steps; checkpoint {result.checkpoint}")


@cli.command()
def models():
    """List the registered networks with their parameter counts."""
    from lensnet.networks import create_model, list_models

    for name in list_models():
        n = sum(p.numel() for p in create_model(name).parameters())
        click.echo(f"{name:24s} {n / 1e6:8.2f} M parameters")


def _test_set_options(output_dir: str):
    """The options of commands that score models on the seeded test set: size, seed, batching, device, output."""
    options = [
        click.option("--num", default=1000, show_default=True, help="Number of test lenses."),
        click.option("--seed", default=2024, show_default=True, help="Seed of the test set."),
        click.option("--batch-size", default=50, show_default=True, help="Images per forward pass."),
        click.option("--device", default="auto", show_default=True,
                     help="cpu, cuda, cuda:1, ...; auto: cuda if available."),
        click.option("--output-dir", default=output_dir, show_default=True,
                     help="Folder for the result files (JSON, Markdown, plots, FITS tables)."),
        click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs)."),
    ]

    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


@cli.command()
@click.option("--weights", help="Shipped model to evaluate [lensnet's default model].")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Evaluate a training checkpoint instead.")
@click.option("--preset", help="Simulation preset of the test set: paper, hst-acs or tiny [the model's own].")
@click.option("--symmetrize", is_flag=True,
              help="Average each estimate over the 8 rotations and reflections of the image (8x the compute).")
@_test_set_options("lensnet_evaluation")
def evaluate(weights, checkpoint, preset, symmetrize, num, seed, batch_size, device, output_dir, no_progress_bar):
    """Evaluate a trained model on a seeded test set (the paper's Table 1 and Fig. 1)."""
    from lensnet.evaluate import format_table, run_evaluation

    result, paths = run_evaluation(weights, checkpoint, preset, num=num, seed=seed, batch_size=batch_size,
                                   device=device, output_dir=output_dir, progress=not no_progress_bar,
                                   symmetrize=symmetrize)
    click.echo(format_table(result))
    for path in paths:
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("members", nargs=-1, required=True)
@click.option("--num-fit", default=2000, show_default=True, help="Held-out lenses ('val' galaxies) to fit the weights on.")
@click.option("--fit-seed", default=2025, show_default=True, help="Seed of the fit set.")
@_test_set_options("lensnet_combination")
def combine(members, num_fit, fit_seed, num, seed, batch_size, device, output_dir, no_progress_bar):
    """Fit the paper's combined network of MEMBERS (shipped names or checkpoints) and tabulate every row."""
    from lensnet.evaluate.combination import format_combination_table, run_combination

    report = run_combination(members, num_fit=num_fit, fit_seed=fit_seed, num=num, seed=seed, batch_size=batch_size,
                             device=device, output_dir=output_dir, progress=not no_progress_bar)
    click.echo(format_combination_table(report))
    for path in report["paths"]:
        click.echo(f"wrote {path}")


@cli.command()
def predict():
    """Estimate SIE parameters with uncertainties for FITS images."""
    _not_built("predict", "the real-images issue")


@cli.command()
def deblend():
    """Remove lens light from two-filter images with independent component analysis."""
    _not_built("deblend", "the real-images issue")


@cli.command()
@click.option("--num", default=6, show_default=True, help="Number of lenses to simulate.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--output", default="lensnet_demo.png", show_default=True, help="PNG to write.")
def demo(num: int, seed: int, output: str):
    """Run the main job on built-in defaults (simulated lenses; later, the shipped model)."""
    from lensnet.demo import run_demo

    run_demo(num=num, seed=seed, output=output)


def main(argv=None):
    """Entry point: run the CLI, turning lensnet errors into one clear line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="lensnet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LensnetError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
