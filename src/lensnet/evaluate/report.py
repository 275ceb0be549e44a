"""The files an evaluation writes: its summary (JSON, Markdown), its Fig.-1 plot and every lens (FITS).

The Markdown summary is :func:`lensnet.metrics.report.format_evaluation`, the table that ``lensnet
evaluate`` prints and the model card embeds; the plot is :func:`lensnet.plotting.plot_estimates`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from astropy.table import Table

from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.evaluate.testset import EvaluationResult
from lensnet.io.atomic import atomic_output, output_folder
from lensnet.io.fits import write_table
from lensnet.metrics.report import format_evaluation
from lensnet.plotting import plot_calibration, plot_estimates

__all__ = ["lens_table", "write_results"]


def lens_table(result: EvaluationResult) -> Table:
    """Every test lens as an astropy table: true value, estimate and 1-sigma of each parameter.

    Columns ``<param>_true``, ``<param>`` and ``<param>_sigma`` for each of :data:`lensnet.PARAM_NAMES`
    (lensnet's convention, with units), and ``snr``, the arc peak's signal-to-noise, so that errors can be
    studied against any of them.
    """
    table = Table(meta={"MODEL": result.model, "SIMUL": result.simulation, "SEED": result.seed,
                        "SPLIT": "test"})
    for i, (name, unit) in enumerate(zip(PARAM_NAMES, PARAM_UNITS)):
        for column, values in ((f"{name}_true", result.truth), (name, result.mean), (f"{name}_sigma", result.std)):
            table[column] = values[:, i].detach().to("cpu", torch.float64).numpy()
            table[column].unit = unit or None
    if result.snr is not None:
        table["snr"] = result.snr.detach().to("cpu", torch.float64).numpy()
    return table


def write_results(result: EvaluationResult, output_dir: str | Path, name: str = "evaluation") -> list[Path]:
    """Write ``<name>.json``, ``<name>.md``, the Fig.-1-style ``<name>_estimates.png``, the per-lens
    FITS table ``<name>_lenses.fits`` (:func:`lens_table`) and the calibration curve
    ``<name>_calibration.png`` into ``output_dir``.

    Existing files are replaced. Returns the five paths.
    """
    out = output_folder(output_dir)
    paths = [out / f"{name}{ending}" for ending in (".json", ".md", "_estimates.png", "_lenses.fits", "_calibration.png")]
    with atomic_output(paths[0], overwrite=True) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    with atomic_output(paths[1], overwrite=True) as tmp:
        tmp.write_text(f"# Evaluation of {result.model}\n\n{format_evaluation(result.to_dict(), markdown=True)}\n")
    title = f"{result.model}: {result.truth.shape[0]} test lenses ({result.simulation}, seed {result.seed})"
    plot_estimates(result.truth, result.mean, result.std, paths[2], title=title)
    write_table(paths[3], lens_table(result), overwrite=True)
    plot_calibration(result.truth, result.mean, result.std, paths[4], title=f"{result.model}: calibration")
    return paths

