"""What a user of a trained model needs, and nothing of training: predictors, model cards, the shipped
weights, the 8-view symmetrized estimate and the combined network.

>>> from lensnet.inference import load_pretrained
>>> predictor = load_pretrained()                      # doctest: +SKIP
>>> mean, std = predictor.predict(images)              # doctest: +SKIP
"""

from lensnet.inference.card import CARD_FORMAT, CARD_VERSION, card_markdown, read_card, training_images
from lensnet.inference.combined import CombinedNetwork
from lensnet.inference.predictor import LOGVAR_RANGE, LensPredictor
from lensnet.inference.pretrained import (DEFAULT_PRETRAINED, list_pretrained, load_pretrained, pretrained_card,
                                          weights_directory)
from lensnet.inference.symmetry import symmetrized_estimate

__all__ = [
    "CARD_FORMAT",
    "CARD_VERSION",
    "DEFAULT_PRETRAINED",
    "LOGVAR_RANGE",
    "CombinedNetwork",
    "LensPredictor",
    "card_markdown",
    "list_pretrained",
    "load_pretrained",
    "pretrained_card",
    "read_card",
    "symmetrized_estimate",
    "training_images",
    "weights_directory",
]
