"""The library call behind ``lensnet calibrate``: fit a model's calibration on held-out lenses, store it.

The temperatures and 95% widths (:mod:`lensnet.inference.calibration`) are fitted on ``num`` lenses
simulated with the bank's ``val`` galaxies (never used in training, nor in the test set), then the model
is evaluated on the seeded test set (``test`` galaxies) before and after. For a shipped model the card's ``calibration`` and
``evaluation`` entries and its Markdown are rewritten; the weights are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lensnet.conventions import PARAM_NAMES
from lensnet.errors import LensnetValueError
from lensnet.evaluate.testset import TEST_SET, evaluate_predictor, model_simulation_config, simulated_chunks
from lensnet.inference import DEFAULT_PRETRAINED, card_markdown, load_pretrained, weights_directory
from lensnet.inference.calibration import CALIBRATION_PROBABILITY, fit_interval_width, fit_temperature
from lensnet.io.atomic import atomic_output

__all__ = ["run_calibration"]


def run_calibration(name: str = DEFAULT_PRETRAINED, num: int = 2000, seed: int = 2025, test_num: int = TEST_SET["num"],
                    test_seed: int = TEST_SET["seed"], directory: str | Path | None = None, write: bool = True,
                    progress: bool = True) -> dict:
    """Fit and store the temperatures of a shipped model; returns them with the coverage before and after.

    Raises
    ------
    LensnetValueError
        If the model predicts no per-lens uncertainty (a mean-only network) or ``num`` < 10.
    """
    folder = Path(directory) if directory is not None else weights_directory()
    predictor = load_pretrained(name, directory=folder).calibrate([1.0] * len(PARAM_NAMES))
    if not predictor.predicts_variance:
        raise LensnetValueError(f"{name} predicts no per-lens uncertainty: there is nothing to calibrate")
    if num < 10:
        raise LensnetValueError(f"num = {num}: a temperature needs at least 10 held-out lenses")
    config = model_simulation_config(predictor.card)
    residuals, sigmas = [], []
    device = next(predictor.parameters()).device
    for batch, _ in simulated_chunks(config.for_split("val"), int(num), int(seed), device, progress):
        mean, std = predictor.predict(batch.images, normalized=True)
        residuals.append((mean - batch.targets).double().cpu())
        sigmas.append(std.double().cpu())
    residuals, sigmas = torch.cat(residuals), torch.cat(sigmas)
    temperature = fit_temperature(residuals, sigmas)
    z95 = fit_interval_width(residuals, sigmas * temperature, 0.95)
    before = evaluate_predictor(predictor, config, num=test_num, seed=test_seed, progress=progress)
    predictor.calibrate(temperature.tolist(), z95.tolist())
    after = evaluate_predictor(predictor, config, num=test_num, seed=test_seed, progress=progress)
    calibration = {"method": "temperature and 95% width", "probability": CALIBRATION_PROBABILITY,
                   "temperature": dict(zip(PARAM_NAMES, temperature.tolist())),
                   "z95": dict(zip(PARAM_NAMES, z95.tolist())),
                   "fit_set": {"num": int(num), "seed": int(seed), "simulation": config.name, "source_split": "val"}}
    if write:
        card = {**predictor.card, "calibration": calibration, "evaluation": after.to_dict()}
        for path, text in ((folder / f"{name}.json", json.dumps(card, indent=2, allow_nan=False) + "\n"),
                           (folder / f"{name}.md", card_markdown(card))):
            with atomic_output(path, overwrite=True) as tmp:
                tmp.write_text(text)
    return {"calibration": calibration, "before": before, "after": after}
