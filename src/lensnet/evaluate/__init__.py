"""Evaluation of trained models on seeded simulated test sets: the paper's Table 1 and Fig. 1.

- :mod:`~lensnet.evaluate.testset`: the seeded test set and the estimates of models on it;
- :mod:`~lensnet.evaluate.report`: the files an evaluation writes (summary, plot, every lens);
- :mod:`~lensnet.evaluate.evaluation` and :mod:`~lensnet.evaluate.combination`: the library calls
  behind ``lensnet evaluate`` and ``lensnet combine``.

The metrics and the Table-1 formatter are in :mod:`lensnet.metrics`, the plots in :mod:`lensnet.plotting`.
"""

from lensnet.evaluate.combination import format_combination_table, run_combination
from lensnet.evaluate.evaluation import load_model, run_evaluation
from lensnet.evaluate.report import lens_table, write_results
from lensnet.evaluate.testset import (SIM_CHUNK, TEST_SET, EvaluationResult, evaluate_predictor, evaluate_predictors,
                                      model_simulation_config, simulated_chunks)

__all__ = [
    "SIM_CHUNK",
    "TEST_SET",
    "EvaluationResult",
    "evaluate_predictor",
    "evaluate_predictors",
    "format_combination_table",
    "lens_table",
    "load_model",
    "model_simulation_config",
    "run_combination",
    "run_evaluation",
    "simulated_chunks",
    "write_results",
]
