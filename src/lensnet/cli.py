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
def simulate():
    """Simulate lenses with observational effects to an HDF5 dataset or a gallery PNG."""
    _not_built("simulate", "issue 3")


@cli.command()
def train():
    """Train a network on lenses simulated on the fly."""
    _not_built("train", "issue 4")


@cli.command()
def evaluate():
    """Evaluate trained networks on a seeded test set (the paper's Table 1 and Fig. 1)."""
    _not_built("evaluate", "the evaluation issue")


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
