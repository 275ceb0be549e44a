"""The library call behind ``lensnet evaluate``: load a model, run the seeded test set, write the results."""

from __future__ import annotations

from pathlib import Path

from lensnet.device import resolve_device
from lensnet.errors import LensnetValueError
from lensnet.evaluate.report import write_results
from lensnet.evaluate.testset import TEST_SET, EvaluationResult, evaluate_predictor, model_simulation_config
from lensnet.inference import DEFAULT_PRETRAINED, LensPredictor, load_pretrained
from lensnet.io.atomic import output_folder
from lensnet.simulate.config import SimulationConfig
from lensnet.training.checkpoint import read_checkpoint

__all__ = ["load_model", "run_evaluation"]


def load_model(spec: str | Path, device: str | None = "auto") -> LensPredictor:
    """A trained model from the name of a shipped model or the path of a training checkpoint."""
    device = resolve_device(device)
    if Path(spec).suffix == ".ckpt" or Path(spec).is_file():
        return read_checkpoint(spec).predictor().to(device)
    return load_pretrained(str(spec), device=device)


def run_evaluation(weights: str | None = None, checkpoint: str | Path | None = None,
                   preset: str | SimulationConfig | None = None,
                   num: int = TEST_SET["num"], seed: int = TEST_SET["seed"], batch_size: int = TEST_SET["batch_size"],
                   device: str | None = "auto", output_dir: str | Path = "lensnet_evaluation", progress: bool = True,
                   symmetrize: bool = False) -> tuple[EvaluationResult, list[Path]]:
    """Load a model, evaluate it and write the results.

    Parameters
    ----------
    weights : str, optional
        Name of a shipped model [``DEFAULT_PRETRAINED`` unless ``checkpoint`` is given].
    checkpoint : str or Path, optional
        A training checkpoint to evaluate instead of shipped weights.
    preset : str or SimulationConfig, optional
        Simulation preset or config of the test set [the one the model was trained on, from its card].
    num, seed, batch_size : int
        As in :func:`lensnet.evaluate.testset.evaluate_predictor`.
    device : str, optional
        Where to simulate and predict ['auto': cuda if available, else cpu].
    output_dir : str or Path
        Folder for :func:`lensnet.evaluate.report.write_results`, checked before the work starts.
    progress : bool
        Show a progress bar [True].
    symmetrize : bool
        Average every estimate over the eight rotations and reflections of the image [False].

    Returns
    -------
    result : EvaluationResult
    paths : list of Path
        The JSON, Markdown, PNG and FITS files written.

    Raises
    ------
    LensnetValueError
        If both ``weights`` and ``checkpoint`` are given, or ``device`` cannot be used.
    LensnetIOError
        If the model cannot be loaded or ``output_dir`` cannot be written.
    """
    if weights and checkpoint:
        raise LensnetValueError("give weights or checkpoint, not both")
    output_folder(output_dir)
    predictor = load_model(checkpoint or weights or DEFAULT_PRETRAINED, device)
    config = preset or model_simulation_config(predictor.card)
    result = evaluate_predictor(predictor, config, num=num, seed=seed, batch_size=batch_size, progress=progress,
                                symmetrize=symmetrize)
    return result, write_results(result, output_dir)
