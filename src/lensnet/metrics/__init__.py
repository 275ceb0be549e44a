"""Accuracy and calibration metrics, and the reports that set them beside the paper's Table 1.

Below training and evaluation, which both use them: the 68% error that training logs is the one
that evaluation reports (:mod:`lensnet.metrics.accuracy`); every table of 68% errors beside the
paper's goes through one formatter (:mod:`lensnet.metrics.report`).
"""

from lensnet.metrics.accuracy import (PAPER_PARAM_NAMES, SNR_BINS, THETA_E_BINS, binned_coverage, compute_metrics, coverage,
                                      error68, error68_abs, paper_residuals, residual_std, rms, to_paper_convention)
from lensnet.metrics.report import (PAPER_TABLE1, format_beside_table1, format_evaluation, markdown_table,
                                    text_table)

__all__ = [
    "PAPER_PARAM_NAMES",
    "PAPER_TABLE1",
    "SNR_BINS",
    "THETA_E_BINS",
    "binned_coverage",
    "compute_metrics",
    "coverage",
    "error68",
    "error68_abs",
    "format_beside_table1",
    "format_evaluation",
    "markdown_table",
    "paper_residuals",
    "residual_std",
    "rms",
    "text_table",
    "to_paper_convention",
]
