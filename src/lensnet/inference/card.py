"""Model cards: the JSON file that describes a trained model, read and rendered for people.

A card (``<name>.json`` beside ``<name>.safetensors``) records what a user needs to run or trust a
model: the registry name and keyword arguments of the network, the input bands, size, pixel scale
and normalisation, the target standardisation per parameter, the simulation and every training
stage that produced it, its evaluation, and the SHA-256 of the weights. It is written by
:func:`lensnet.training.export.export_model` and read by :func:`lensnet.inference.load_pretrained`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lensnet.errors import LensnetIOError
from lensnet.metrics.report import format_evaluation

__all__ = ["CARD_FORMAT", "CARD_VERSION", "card_image_size", "card_markdown", "read_card", "training_images"]

#: ``format`` entry of every model card, and the card version this lensnet reads and writes.
CARD_FORMAT = "lensnet-model-card"
CARD_VERSION = 1


def read_card(path: str | Path) -> dict:
    """The parsed model card at ``path``.

    Raises
    ------
    LensnetIOError
        If the file cannot be read or parsed, is not a lensnet model card, or has a newer card version.
    """
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LensnetIOError(f"cannot read the model card {path}: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise LensnetIOError(f"{path} is not a lensnet model card (no format: {CARD_FORMAT!r})")
    if card.get("format_version", 0) > CARD_VERSION:
        raise LensnetIOError(f"{path} has card version {card.get('format_version')}; this lensnet reads up to "
                             f"{CARD_VERSION}: upgrade lensnet")
    return card


def card_image_size(card: dict) -> tuple[int, int] | None:
    """(H, W) of the card's ``input.image_shape`` (C, H, W), or None where the model takes any size."""
    shape = card["input"]["image_shape"]
    return None if shape is None else (int(shape[1]), int(shape[2]))


def training_images(card: dict) -> int:
    """Simulated lenses a card's model was trained on, over all its training stages."""
    return card["training"]["num_training_images_all_stages"]


def card_markdown(card: dict) -> str:
    """The model card as Markdown: what the model is, its input, training and evaluation."""
    model, train, inp = card["model"], card["training"], card["input"]
    shape = inp["image_shape"]
    size = f"{shape[1]}x{shape[2]} pixels of {inp['pixel_scale_arcsec']}\", {shape[0]} band(s)" if shape else "any"
    norm = ", ".join(f"{k}={v}" for k, v in inp["normalization_kwargs"].items())
    hours = train.get("training_time_s")
    stages = train["stages"]
    lines = [
        f"# {card['name']}", "", card["description"], "",
        "| | |", "|---|---|",
        f"| network | `{model['name']}` {json.dumps(model['kwargs'])}, {model['num_parameters'] / 1e6:.2f} M "
        "parameters |",
        f"| input | {size}; normalised by `{inp['normalization']}({norm})` |",
        f"| output | {', '.join(card['parameters'])}: mean and 1-sigma ({card['output']['uncertainty']}) |",
        f"| simulation | preset `{card['simulation']['preset']}`, overrides "
        f"{json.dumps(card['simulation']['overrides'])}; test lenses from held-out source galaxies |",
        f"| training | {train['steps']:,} steps x {train['batch_size']} lenses x {train['devices']} device(s) = "
        f"{train['num_training_images']:,} fresh simulated lenses; seed {train['seed']}; {train['optimizer']}, "
        f"lr {train['lr']}, {train['schedule']}, loss {train['loss']}, precision {train['precision']} |",
        *([f"| stages | {len(stages)} runs, each starting from the previous one's weights: "
           + "; ".join(f"{st['steps']:,} steps x {st['batch_size'] * st['devices']} (seed {st['seed']}, lr {st['lr']})"
                       for st in stages)
           + f" = {train['num_training_images_all_stages']:,} lenses in all |"] if len(stages) > 1 else []),
        f"| hardware | {train.get('hardware') or 'not recorded'}; training time "
        f"{f'{hours / 3600:.2f} h' if hours is not None else 'not recorded'} |",
        f"| weights | `{card['weights']['file']}`, {card['weights']['bytes'] / 1e6:.1f} MB, sha256 "
        f"`{card['weights']['sha256'][:16]}...` |" if "weights" in card else "| weights | not written |",
        f"| lensnet | exported with {card['lensnet_version']}, trained with {card['trained_with_lensnet']} |",
        "", "## Target standardisation", "",
        "| parameter | unit | mean | std |", "|---|---|---|---|",
        *(f"| {n} | {card['units'][n] or '-'} | {card['target_mean'][n]:.4f} | {card['target_std'][n]:.4f} |"
          for n in card["parameters"]),
        "", "## Evaluation", "",
        format_evaluation(card["evaluation"], markdown=True) if card.get("evaluation") else "Not evaluated.",
    ]
    calibration = card.get("calibration")
    if calibration:
        fit = calibration.get("fit_set", {})
        z95 = calibration.get("z95") or {}
        lines += ["", "## Calibration", "",
                  f"{calibration.get('method', 'temperature')}, fitted on {fit.get('num', '?')} lenses "
                  f"(`{fit.get('source_split', '?')}` galaxies, seed {fit.get('seed', '?')}); applied on loading.", "",
                  "| | " + " | ".join(card["parameters"]) + " |", "|---|" + "---|" * len(card["parameters"]),
                  "| temperature of the 1-sigma | " + " | ".join(f"{calibration['temperature'][n]:.3f}"
                                                            for n in card["parameters"]) + " |"]
        if z95:
            lines.append("| 95% half-width (sigma) | " + " | ".join(f"{z95[n]:.3f}" for n in card["parameters"]) + " |")
    ood = card.get("ood")
    if ood:
        fit, flagged = ood.get("fit_set", {}), ood.get("flagged", {})
        lines += ["", "## Out-of-distribution flag", "",
                  f"{ood.get('method', '?')}, fitted on {fit.get('num', '?')} lenses"
                  + (f" and {fit['num_deblended']} deblended ones" if fit.get("num_deblended") else "") +
                  f" against {fit.get('num_per_kind', '?')} "
                  f"non-lenses of each kind (seed {fit.get('seed', '?')}); threshold {ood['threshold']:.3f}, the "
                  f"{100 * ood.get('quantile', 0):g}th percentile of held-out lenses. Fraction flagged on data the fit "
                  "never saw:", "", "| " + " | ".join(flagged) + " |", "|" + "---|" * len(flagged),
                  "| " + " | ".join(f"{100 * v:.1f}%" for v in flagged.values()) + " |"]
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    return "\n".join(lines) + "\n"
