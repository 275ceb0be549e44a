"""Evaluation of trained models on seeded simulated test sets: metrics, the paper's Table 1 and Fig. 1."""

from lensnet.evaluate.metrics import (PAPER_PARAM_NAMES, coverage, error68, error68_abs, paper_residuals,
                                      residual_std, rms, to_paper_convention)
from lensnet.evaluate.table import (PAPER_TABLE1, EvaluationResult, compute_metrics, evaluate_predictor,
                                    format_table, lens_table, model_simulation_config, plot_estimates,
                                    run_evaluation, write_results)

__all__ = [
    "PAPER_PARAM_NAMES",
    "PAPER_TABLE1",
    "EvaluationResult",
    "compute_metrics",
    "coverage",
    "error68",
    "error68_abs",
    "evaluate_predictor",
    "format_table",
    "lens_table",
    "model_simulation_config",
    "paper_residuals",
    "plot_estimates",
    "residual_std",
    "rms",
    "run_evaluation",
    "to_paper_convention",
    "write_results",
]
