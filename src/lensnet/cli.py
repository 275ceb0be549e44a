"""The ``lensnet`` command line: one subcommand per stage, each a thin wrapper over a library call.

Usage::

    lensnet demo                      # the main job on built-in defaults
    lensnet simulate --preset paper --num 1000 --seed 7 --output set.h5
    lensnet train --model lensnet_resnet --config train.yaml
    lensnet evaluate                  # the shipped model on the seeded test set, beside Table 1
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import typing

import click

from lensnet import __version__
from lensnet.errors import LensnetError, LensnetInterrupted
from lensnet.refine.fit import RESTARTS, SOURCE_MODELS
from lensnet.refine.model import LENS_LIGHT_MODELS, MASS_MODELS
from lensnet.refine.pixelated import N_SIDE
from lensnet.simulate.config import PRESETS
from lensnet.simulate.seeds import TEST_SET
from lensnet.training.config import TrainConfig

__all__ = ["main", "cli"]


class _Group(click.Group):
    """Lists commands in the order of the pipeline, not alphabetically."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lensnet")
def cli():
    """lensnet: measure strong gravitational lenses with neural networks in milliseconds.

    Stages, in pipeline order: simulate training data, train networks, export a trained network as
    a shipped model, evaluate models on seeded test sets and combine several, predict lens
    parameters of real FITS images and refine them by a likelihood fit; `demo` runs the main job on
    built-in defaults.
    """


@cli.command()
@click.option("--preset", default="paper", show_default=True, type=click.Choice(list(PRESETS)),
              help="Simulation preset.")
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

    import yaml

    from lensnet.device import resolve_device
    from lensnet.io.atomic import check_writable
    from lensnet.simulate import LensSimulator, get_preset, load_simulation_config
    from lensnet.simulate.dataset import partial_path, write_dataset
    from lensnet.simulate.gallery import draw_effects, draw_gallery

    config = load_simulation_config(config_path, preset) if config_path else get_preset(preset)
    if print_config:
        click.echo(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return
    if not output and not gallery:
        raise click.UsageError("give --output (an HDF5 dataset), --gallery (a PNG) or both")
    device = resolve_device(device)
    for target in filter(None, (output, gallery)):  # before any work: no run may end failing to write
        check_writable(target)
    if output:
        if num is None:
            raise click.UsageError("--num is required to write a dataset")
        start = time.perf_counter()
        try:
            path = write_dataset(output, config, num, seed, batch_size=batch_size, device=device, overwrite=overwrite,
                                 resume=resume, progress=not no_progress_bar, extras=extra, compression=compression)
        except LensnetInterrupted:
            raise
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


#: Option names of TrainConfig fields whose plain name would read worse on the command line.
_TRAIN_OPTION_NAMES = {"simulation": "--preset", "val_every_n_steps": "--val-every",
                       "checkpoint_every_n_steps": "--checkpoint-every"}


def _train_options(command):
    """One option per scalar field of :class:`TrainConfig`, named, typed and explained by its declaration."""
    hints = typing.get_type_hints(TrainConfig)
    for f in reversed(dataclasses.fields(TrainConfig)):
        kind = hints[f.name]
        if kind is dict:  # model_kwargs, simulation_overrides: nested, set them in a config file
            continue
        if typing.get_origin(kind) is typing.Literal:
            click_type = click.Choice(typing.get_args(kind))
        elif f.metadata.get("choices") and kind is str:
            click_type = click.Choice(f.metadata["choices"])
        elif kind in (int, float):
            click_type = kind
        else:  # str, str | None, int | str ('devices': a count or 'auto')
            click_type = str
        allowed = TrainConfig.field_range(f.name)
        help_text = f.metadata["help"] + (f"; {allowed}" if allowed and not isinstance(click_type, click.Choice)
                                          else "") + f" [{f.default}]"
        name = _TRAIN_OPTION_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        command = click.option(name, f.name, type=click_type, default=None, help=help_text)(command)
    return command


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML/TOML training configuration; options given here override its fields.")
@_train_options
@click.option("--resume", help="'last' or a checkpoint path: continue exactly where a run stopped.")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration and exit.")
@click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs).")
def train(config_path, resume, print_config, no_progress_bar, **fields):
    """Train a network on lenses simulated on the fly (Lightning; checkpoints, resume, DDP)."""
    import yaml

    from lensnet.training.config import load_config
    from lensnet.training.train import resolve_config, run_training

    config = load_config(config_path) if config_path else TrainConfig()
    if isinstance(fields.get("devices"), str) and fields["devices"].isdigit():
        fields["devices"] = int(fields["devices"])
    config = config.with_overrides(**fields)
    if print_config:
        click.echo(yaml.safe_dump(resolve_config(config).to_dict(), sort_keys=False))
        return
    result = run_training(config, resume=resume, enable_progress_bar=not no_progress_bar)
    if result.interrupted:
        if result.checkpoint is None:
            click.echo("interrupted before the first step; nothing to resume: run the command again", err=True)
        else:
            click.echo(f"interrupted at step {result.global_step}; continue with "
                       f"`lensnet train --config {result.output_dir}/config.yaml --resume last`", err=True)
        sys.exit(130)
    click.echo(f"trained {result.global_step} steps; checkpoint {result.checkpoint}")


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--output-dir", default="lensnet_model", show_default=True,
              help="Folder for <name>.safetensors, <name>.json and <name>.md (src/lensnet/weights to ship it).")
@click.option("--name", default="lensnet_resnet_paper", show_default=True, help="Name of the model (file stem).")
@click.option("--description", help="One line for the model card [what the checkpoint was trained on].")
@click.option("--hardware", help="What it was trained on, for the card (e.g. '2 CPU cores').")
@click.option("--training-time-s", type=float, help="Training time in seconds, for the card.")
@click.option("--evaluate", "num_eval", type=int, default=0, show_default=True, metavar="NUM",
              help="Evaluate on NUM seeded test lenses first and put the result in the card (0: do not).")
@click.option("--seed", default=TEST_SET["seed"], show_default=True, help="Seed of that test set.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier export.")
def export(checkpoint, output_dir, name, description, hardware, training_time_s, num_eval, seed, overwrite):
    """Export a training CHECKPOINT as a shipped model: float32 weights and a model card."""
    from lensnet.evaluate import evaluate_predictor, load_model, model_simulation_config
    from lensnet.metrics import format_evaluation
    from lensnet.training.export import export_model

    extras = {"hardware": hardware, "training_time_s": training_time_s}
    if description:
        extras["description"] = description
    if num_eval:
        predictor = load_model(checkpoint)
        result = evaluate_predictor(predictor, model_simulation_config(predictor.card), num=num_eval, seed=seed)
        click.echo(format_evaluation(result.to_dict()))
        extras["evaluation"] = result.to_dict()
    exported = export_model(checkpoint, output_dir, name, extras, overwrite=overwrite)
    for path in (exported.weights_path, exported.card_path, exported.markdown_path):
        click.echo(f"wrote {path}")


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
        click.option("--num", default=TEST_SET["num"], show_default=True, help="Number of test lenses."),
        click.option("--seed", default=TEST_SET["seed"], show_default=True, help="Seed of the test set."),
        click.option("--batch-size", default=TEST_SET["batch_size"], show_default=True,
                     help="Images per forward pass."),
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
@click.option("--preset", type=click.Choice(list(PRESETS)), help="Simulation preset of the test set [the model's own].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML/TOML simulation config of the test set; its fields override the preset it names or "
                   "--preset [paper] (an off-distribution test, say narrower noise).")
@click.option("--symmetrize", is_flag=True,
              help="Average each estimate over the 8 rotations and reflections of the image (8x the compute).")
@_test_set_options("lensnet_evaluation")
def evaluate(weights, checkpoint, preset, config_path, symmetrize, num, seed, batch_size, device, output_dir,
             no_progress_bar):
    """Evaluate a trained model on a seeded test set (the paper's Table 1 and Fig. 1)."""
    from lensnet.evaluate import run_evaluation
    from lensnet.metrics import format_evaluation
    from lensnet.simulate import load_simulation_config

    test_set = load_simulation_config(config_path, preset) if config_path else preset
    result, paths = run_evaluation(weights, checkpoint, test_set, num=num, seed=seed, batch_size=batch_size,
                                   device=device, output_dir=output_dir, progress=not no_progress_bar,
                                   symmetrize=symmetrize)
    click.echo(format_evaluation(result.to_dict()))
    for path in paths:
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--weights", default="lensnet_resnet_paper", show_default=True, help="Shipped model to calibrate.")
@click.option("--num", default=2000, show_default=True, help="Held-out lenses ('val' galaxies) to fit on.")
@click.option("--seed", default=2025, show_default=True, help="Seed of the fit set.")
@click.option("--dry-run", is_flag=True, help="Report the temperatures and coverage, leave the card as it is.")
@click.option("--ood", is_flag=True,
              help="Fit the out-of-distribution head instead (lenses vs simulated non-lenses; --num lenses, a "
                   "fifth as many deblended ones and of each kind of non-lens, seeds from --seed) and report the "
                   "fractions it flags.")
@click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs).")
def calibrate(weights, num, seed, dry_run, ood, no_progress_bar):
    """Calibrate a shipped model's uncertainties (a temperature and a 95% width per parameter) into its card;
    with --ood, its out-of-distribution flag."""
    from lensnet.conventions import PARAM_NAMES
    from lensnet.evaluate.calibration import run_calibration
    from lensnet.metrics import text_table

    if ood:
        from lensnet.evaluate.ood import run_ood_fit

        entry = run_ood_fit(weights, num=num, num_per_kind=max(num // 5, 10), num_deblended=max(num // 5, 2),
                            seed=seed, write=not dry_run, progress=not no_progress_bar)
        flagged = entry["flagged"]
        click.echo(text_table(["flagged", *flagged], [("fraction", *(f"{v:.3f}" for v in flagged.values()))]))
        click.echo("card unchanged (--dry-run)" if dry_run else f"wrote the OOD head into the card of {weights}")
        return

    report = run_calibration(weights, num=num, seed=seed, write=not dry_run, progress=not no_progress_bar)
    rows = [("temperature", *(f"{report['calibration']['temperature'][n]:.3f}" for n in PARAM_NAMES)),
            ("95% half-width (sigma)", *(f"{report['calibration']['z95'][n]:.3f}" for n in PARAM_NAMES))]
    for label, key in (("before", "before"), ("after", "after")):
        cover = report[key].metrics["lensnet"]
        rows += [(f"coverage 68% {label}", *(f"{cover['cover68'][n]:.3f}" for n in PARAM_NAMES)),
                 (f"coverage 95% {label}", *(f"{cover['cover95'][n]:.3f}" for n in PARAM_NAMES))]
    click.echo(text_table(["", *PARAM_NAMES], rows))
    click.echo("card unchanged (--dry-run)" if dry_run else f"wrote the calibration into the card of {weights}")


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


def _pair(text: str | None, option: str) -> tuple[float, float] | None:
    """'X,Y' to two floats, or a usage error naming the option."""
    if text is None:
        return None
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected two numbers separated by a comma", param_hint=option) from None
    return a, b


def _hdu(text: str | None) -> int | str | None:
    """An --hdu value: an index (digits), an EXTNAME, or None (lensnet's choice)."""
    return int(text) if text is not None and text.lstrip("-").isdigit() else text


def _deblended(inputs, deblend_with: str, output: str, hdu: str | None, pixel_scale, overwrite: bool):
    """``predict --deblend``: the arcs of the one input, written beside the catalogue as <catalogue>_arcs.fits;
    with ICA also the first band's Sérsic-fit arcs as <catalogue>_arcs_sersic.fits, for the network to choose.
    Returns the arcs files and the :class:`~lensnet.deblend.files.DeblendedImage` (its figure is drawn once the
    network has read the arcs, :func:`_deblending_figure`)."""
    from pathlib import Path

    from lensnet.deblend.files import deblend_fits, write_deblended

    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        raise click.UsageError("--deblend takes one input FITS file (the first band)")
    sersic = deblend_with == "sersic"
    deblended = deblend_fits(inputs[0], None if sersic else deblend_with, method="sersic" if sersic else "ica",
                             hdu=_hdu(hdu), pixel_scale=pixel_scale)
    stem = Path(output).with_suffix("")
    (arcs,) = write_deblended(deblended, f"{stem}_arcs.fits", overwrite=overwrite)
    click.echo(f"{deblended.summary}; wrote {arcs}")
    if deblended.alternative is None:
        return [str(arcs)], deblended
    (alternative,) = write_deblended(deblended.alternative, f"{stem}_arcs_sersic.fits", overwrite=overwrite)
    return [str(arcs), str(alternative)], deblended


def _deblending_figure(deblended, output: str, row, center, sky_center) -> None:
    """The deblending figure, <catalogue>_arcs.png, with the critical curve of the network's estimate ``row``
    where it has one."""
    from pathlib import Path

    from astropy.coordinates import SkyCoord

    from lensnet.conventions import PARAM_NAMES
    from lensnet.deblend.files import critical_map, deblended_figure
    from lensnet.preprocess.real import celestial_wcs

    figure = f"{Path(output).with_suffix('')}_arcs.png"
    if row["error"]:
        click.echo(f"wrote {deblended_figure(deblended, figure)}")
        return
    h, w = deblended.arcs.shape
    if sky_center is not None:
        center = celestial_wcs(deblended.header).world_to_pixel(SkyCoord(*sky_center, unit="deg"))
    offset = (0.0, 0.0) if center is None else tuple(
        (float(c) - (n - 1) / 2) * deblended.pixel_scale for c, n in zip(center, (w, h)))
    critical = critical_map(deblended, [row[name] for name in PARAM_NAMES], offset)
    path = deblended_figure(deblended, figure, critical, note="critical curve of the network's estimate")
    click.echo(f"wrote {path}")


def _surer(predictor, candidates: list[str], options: dict) -> str:
    """Of the deblended images of one lens, the one whose θE the network is surer of (said on the terminal)."""
    from pathlib import Path

    from lensnet.inference.catalog import most_certain

    if len(candidates) == 1:
        return candidates[0]
    best, table = most_certain(predictor, candidates, **options)
    sigmas = ", ".join(f"{Path(row['file']).name} {row['theta_E_sigma']:.3f}\"" for row in table if not row["error"])
    click.echo(f"the network reads {Path(candidates[best]).name}, the arcs whose θE it is surer of (1σ: {sigmas})")
    return candidates[best]


#: Options of how FITS inputs are read, shared by `predict` and `refine`.
_INPUT_OPTIONS = (
    click.option("--hdu", help="HDU of each file: an index or EXTNAME [SCI, else the first image that is not a "
                               "noise, weight, PSF or mask map]."),
    click.option("--plane", type=click.IntRange(0), help="Plane of each file's image cube (N, H, W) [2-D images]."),
    click.option("--pixel-scale", type=click.FloatRange(0, min_open=True),
                 help="arcsec/pixel of every input [from the WCS, else PIXSCALE]."),
    click.option("--center", help="Cutout centre X,Y in 0-based pixels [each image's centre]."),
    click.option("--mask", type=click.Path(exists=True, dir_okay=False),
                 help="FITS image, non-zero where pixels must be ignored."),
    click.option("--cosmic-rays/--no-cosmic-rays", default=None,
                 help="Mask cosmic rays with L.A.Cosmic (astroscrappy) [where neither the header (NCOMBINE, "
                      "NDRIZIM, COMBINET) nor a varying EXPTIME map says the image combines several exposures]."),
    click.option("--keep-neighbours", is_flag=True,
                 help="Leave companions, stars and foreground galaxies beyond 2.5\" of the centre unmasked."),
)
#: Options of the likelihood fit, shared by `predict --refine` and `refine`.
_FIT_OPTIONS = (
    click.option("--psf", help="PSF image FILE[:HDU] for the fit [a PSF or *_PSF HDU of each file, else --psf-fwhm]."),
    click.option("--psf-fwhm", type=float, help="FWHM in arcsec of a Gaussian PSF, for files without a PSF of their own."),
    click.option("--noise", help="1-sigma map: an HDU of each file, FILE or FILE:HDU [ERR/RMS/... HDUs, else sky + Poisson]."),
    click.option("--weight", help="Inverse-variance map: an HDU of each file, FILE or FILE:HDU [WHT/IVAR/... HDUs]."),
    click.option("--gain", type=float,
                 help="Counts per data unit, for the sources' Poisson noise without a noise map [EXPTIME: counts/s data]."),
    click.option("--mass", type=click.Choice(MASS_MODELS[:2]), default="sie", show_default=True,
                 help="Mass model: the SIE, or the power-law ellipsoid with its slope free."),
    click.option("--shear", is_flag=True, help="Add an external shear (gamma1, gamma2) to the mass."),
    click.option("--lens-light", type=click.Choice(list(LENS_LIGHT_MODELS)), default="none", show_default=True,
                 help="Lens light fitted with the lens and source: Sersic profiles sharing one centre."),
    click.option("--fit-size", type=float, help="Side in arcsec of the image's own pixels fitted [the network's field]."),
    click.option("--posterior", type=click.Choice(["laplace", "mcmc"]), default="laplace", show_default=True,
                 help="Refined uncertainties: Laplace at the optimum, or the posterior sampled by emcee (slower)."),
    click.option("--no-systematic-floor", is_flag=True,
                 help="Leave out the measured systematic error the refined intervals include (statistical only)."),
    click.option("--no-prior", is_flag=True, help="The network's estimate starts the fit but is no prior."),
    click.option("--restarts", default=RESTARTS, show_default=True, type=click.IntRange(1),
                 help="Starts per lens of the fit."),
    click.option("--max-iter", default=300, show_default=True, type=click.IntRange(1),
                 help="L-BFGS iterations of the fit (and at most of its unlensed comparison, delta_bic)."),
    click.option("--source", "source_model", type=click.Choice(SOURCE_MODELS), default="sersic", show_default=True,
                 help="Source model: a Sersic profile (fast), or pixelated for irregular sources (about 10x slower)."),
    click.option("--n-side", default=N_SIDE, show_default=True, type=click.IntRange(2),
                 help="Source pixels per side of the pixelated source."),
    click.option("--figures", type=click.Path(file_okay=False), help="Folder for data/model/residual figures."),
)


#: Where `predict` and `refine` run.
_RUN_OPTIONS = (
    click.option("--devices", default="1", show_default=True,
                 help="Processes (devices) per node, or 'auto'; > 1 runs DDP, each process its share of the files."),
    click.option("--num-nodes", default=1, show_default=True, type=click.IntRange(1), help="Machines (DDP)."),
    click.option("--device", default="auto", show_default=True, help="cpu, cuda, ... for one process."),
)
#: How `predict` and `refine` write their catalogue.
_OUTPUT_OPTIONS = (
    click.option("--resume", is_flag=True,
                 help="Continue an interrupted run from OUTPUT.partial, where each finished batch was kept."),
    click.option("--overwrite", is_flag=True, help="Replace an existing catalogue (and an unfinished OUTPUT.partial)."),
    click.option("--no-progress-bar", is_flag=True, help="Disable the progress bar (for logs)."),
)


def _with_options(*groups):
    """Apply groups of click options to a command, in the order listed."""
    def decorate(command):
        for option in reversed([o for group in groups for o in group]):
            command = option(command)
        return command
    return decorate


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="lensnet_catalog.ecsv", show_default=True,
              help="Catalogue to write: .ecsv, .csv or .fits (by the extension).")
@click.option("--weights", help="Shipped model [lensnet's default model].")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), help="A training checkpoint instead.")
@_with_options(_INPUT_OPTIONS)
@click.option("--sky-center", help="Cutout centre RA,DEC in degrees (needs a WCS).")
@click.option("--symmetrize", is_flag=True, help="Average over the 8 rotations and reflections (8x the compute).")
@click.option("--deblend", "deblend_with", metavar="BAND2|sersic",
              help="Remove the lens light first: ICA with this second band's FITS file (the network also reads the "
                   "first band's Sersic-fit arcs and keeps the estimate it is surer of), or 'sersic' (one input).")
@click.option("--lenstronomy", "lenstronomy_json", type=click.Path(dir_okay=False),
              help="Also write each lens as lenstronomy kwargs_lens (JSON).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0),
              help="DataLoader workers reading and preparing files.")
@_with_options(_RUN_OPTIONS)
@click.option("--refine", "refine_fit", is_flag=True,
              help="Refine each estimate by a likelihood fit seeded by it; see `lensnet refine`.")
@_with_options(_FIT_OPTIONS, _OUTPUT_OPTIONS)
def predict(inputs, output, weights, checkpoint, hdu, plane, pixel_scale, center, sky_center, mask, cosmic_rays,
            keep_neighbours, symmetrize,
            deblend_with, lenstronomy_json, batch_size, workers, devices, num_nodes, device, refine_fit, psf, psf_fwhm,
            noise, weight, gain, mass, shear, lens_light, fit_size, posterior, no_systematic_floor, no_prior, restarts,
            max_iter, source_model, n_side, figures, resume, overwrite, no_progress_bar):
    """Estimate SIE parameters with uncertainties for FITS images: files, folders or globs to a catalogue.

    Each finished batch is kept in OUTPUT.partial until the catalogue is written: after Ctrl-C, SIGTERM or a
    crash, the same command with --resume continues where the run stopped.
    """
    from pathlib import Path

    from lensnet.inference import DEFAULT_PRETRAINED, load_pretrained
    from lensnet.inference.catalog import predict_fits, write_catalog, write_lenstronomy
    from lensnet.io.atomic import check_writable, output_folder
    from lensnet.io.journal import journal_files, journal_path, output_lock

    if weights and checkpoint:
        raise click.UsageError("give --weights or --checkpoint, not both")
    if resume and overwrite:
        raise click.UsageError("give --resume (continue OUTPUT.partial) or --overwrite (start again), not both")
    if not (devices == "auto" or devices.isdigit() and int(devices) >= 1):
        raise click.BadParameter(f"{devices!r}: a number of processes >= 1, or auto", param_hint="--devices")
    distributed = devices != "1" or num_nodes > 1  # Lightning resolves 'auto' and counts
    if refine_fit and symmetrize:
        raise click.UsageError("--refine fits the network's estimate of the image as it is: drop --symmetrize")
    if center and sky_center:
        raise click.UsageError("give the cutout centre in pixels (--center) or on the sky (--sky-center), not both")
    # Beside the catalogue, the pixels each network estimate left out (NaN, masks, cosmic rays, neighbours).
    masks = None if refine_fit or distributed else str(Path(output).with_name(Path(output).stem + "_masks.fits"))
    for target in filter(None, (output, lenstronomy_json, masks)):  # every output checked before any work
        check_writable(target)
        if Path(target).exists() and not overwrite:
            raise click.UsageError(f"{target} exists; pass --overwrite to replace it")
    if figures:
        output_folder(figures)
    if journal_files(journal_path(output)) and not (resume or overwrite):
        raise click.UsageError(f"an unfinished catalogue {journal_path(output)} exists: continue it (--resume) or "
                               "start again (--overwrite)")
    # The processes a distributed run starts (LOCAL_RANK > 0) and other nodes' run under the first one's lock.
    started = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
    with contextlib.nullcontext() if started else output_lock(output):
        if checkpoint:
            from lensnet.evaluate import load_model

            predictor = load_model(checkpoint, "cpu" if distributed else device)
        else:  # a shipped model loads without importing training and evaluation (seconds at every start)
            predictor = load_pretrained(weights or DEFAULT_PRETRAINED, device="cpu" if distributed else device)
        fit_files = fit_hdu = None
        candidates = deblended = None
        if deblend_with:
            if refine_fit and lens_light != "none":  # the network sees the arcs, the joint fit the image itself
                fit_files, fit_hdu = list(inputs), _hdu(hdu)
            if plane is not None:
                raise click.UsageError("--deblend reads 2-D images: --plane cannot go with it")
            candidates, deblended = _deblended(inputs, deblend_with, output, hdu, pixel_scale, overwrite or resume)
            hdu = "0"
        options = dict(hdu=_hdu(hdu), plane=plane, pixel_scale=pixel_scale,
                       center=_pair(center, "--center"), sky_center=_pair(sky_center, "--sky-center"), mask=mask,
                       cosmic_rays=cosmic_rays, keep_neighbours=keep_neighbours)
        if candidates:
            inputs = [_surer(predictor, candidates, options)]
        run = dict(partial=journal_path(output), resume=resume, overwrite=overwrite, batch_size=batch_size,
                   progress=not no_progress_bar)
        fit = None
        if refine_fit:
            from lensnet.refine.model import ModelSpec

            fit = dict(psf=psf, psf_fwhm=psf_fwhm, noise=noise, weight=weight, gain=gain,
                       spec=ModelSpec(mass=mass, shear=shear, lens_light=lens_light), fit_size=fit_size,
                       posterior=posterior, systematic_floor=not no_systematic_floor, prior=not no_prior,
                       restarts=restarts, max_iter=max_iter, source=source_model, n_side=n_side, fit_files=fit_files,
                       fit_hdu=fit_hdu, figures=figures)
        if distributed:
            from lensnet.training.predict import predict_fits_distributed

            table = predict_fits_distributed(predictor, inputs, output, devices=int(devices) if devices.isdigit()
                                             else devices, num_nodes=num_nodes, num_workers=workers,
                                             symmetrize=symmetrize, refine=fit, **run, **options)
            if table is None:  # not rank 0
                return
        elif refine_fit:
            from lensnet.refine.catalog import refine_fits

            table = refine_fits(predictor, inputs, **fit, **run, **options)
        else:
            table = predict_fits(predictor, inputs, num_workers=workers, symmetrize=symmetrize, masks=masks, **run,
                                 **options)
        write_catalog(table, output, overwrite=overwrite)
        if deblended is not None:
            _deblending_figure(deblended, output, table[0], options["center"], options["sky_center"])
        if lenstronomy_json:
            write_lenstronomy(table, lenstronomy_json, overwrite=overwrite)
        for journal in journal_files(journal_path(output)):
            journal.unlink()
    failed = [(row["file"], row["error"]) for row in table if row["error"]]
    for file, reason in failed:
        click.echo(f"skipped {file}: {reason}", err=True)
    click.echo(f"wrote {output}: {len(table) - len(failed)} lens(es) estimated, {len(failed)} file(s) failed"
               + (f"; the pixels left out in {masks}" if masks else ""))
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="lensnet_refined.ecsv", show_default=True,
              help="Catalogue to write: .ecsv, .csv or .fits (by the extension).")
@click.option("--weights", help="Shipped model whose estimates seed the fit [lensnet's default model].")
@_with_options(_INPUT_OPTIONS)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1),
              help="Images estimated together; those sharing a pixel grid are fitted together.")
@_with_options(_RUN_OPTIONS, _FIT_OPTIONS, _OUTPUT_OPTIONS)
@click.pass_context
def refine(ctx, **options):
    """Network estimates refined by a likelihood fit, Sersic or pixelated source (`predict --refine`)."""
    ctx.invoke(predict, refine_fit=True, **options)


@cli.command()
@click.argument("band1", type=click.Path(exists=True, dir_okay=False))
@click.argument("band2", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("-o", "--output", default="lensnet_arcs.fits", show_default=True,
              help="FITS file: arcs (primary, the input's header and WCS), LENS and MASK extensions.")
@click.option("--method", type=click.Choice(["ica", "sersic"]), default=None,
              help="ica: two bands (the paper's); sersic: fit and subtract a Sérsic lens light [ica with two bands].")
@click.option("--hdu", help="HDU of the image in each file [SCI, else the first image HDU].")
@click.option("--psf1", type=click.Path(exists=True, dir_okay=False), help="PSF of BAND1 [its PSF HDU, if any].")
@click.option("--psf2", type=click.Path(exists=True, dir_okay=False), help="PSF of BAND2 [its PSF HDU, if any].")
@click.option("--pixel-scale", type=click.FloatRange(0, min_open=True),
              help="arcsec/pixel [from the WCS, else PIXSCALE].")
@click.option("--figure", type=click.Path(dir_okay=False), help="PNG of the inputs, the separated images and the arcs.")
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def deblend(band1, band2, output, method, hdu, psf1, psf2, pixel_scale, figure, overwrite):
    """Remove the lens light: ICA of two filters (BAND1 BAND2), or a Sérsic fit to one band."""
    from lensnet.deblend.files import deblend_fits, write_deblended

    method = method or ("ica" if band2 else "sersic")
    deblended = deblend_fits(band1, band2, method=method, hdu=_hdu(hdu), psf1=psf1,
                             psf2=psf2, pixel_scale=pixel_scale)
    click.echo(deblended.summary)
    for path in write_deblended(deblended, output, figure, overwrite=overwrite):
        click.echo(f"wrote {path}")


@cli.command()
@click.option("--num", default=6, show_default=True, help="Number of lenses to simulate.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--output", default="lensnet_demo.png", show_default=True, help="PNG to write.")
def demo(num: int, seed: int, output: str):
    """The main job on built-in defaults: simulated lenses with their caustics, then new test lenses
    estimated by the shipped model, beside the truth and the paper's Table 1."""
    from lensnet.demo import run_demo

    run_demo(num=num, seed=seed, output=output)


def main(argv=None):
    """Entry point: run the CLI, turning lensnet errors into one clear line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="lensnet", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, LensnetInterrupted):  # click turns every KeyboardInterrupt into Abort
            click.echo(f"Interrupted: {exc.__cause__}", err=True)
            sys.exit(128 + exc.__cause__.signum)
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LensnetError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except LensnetInterrupted as exc:
        click.echo(f"Interrupted: {exc}", err=True)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
