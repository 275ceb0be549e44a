"""Networks: the four of Hezaveh et al. 2017 and lensnet's own, built by name from a registry.

Importing this package imports every family module, which registers its entry points:
``alexnet``, ``overfeat``, ``inception_v4``, ``hezaveh`` (the paper's own design) and
``lensnet_resnet`` / ``lensnet_resnet_small`` (lensnet's default, predicting means and
log-variances). Build one with ``create_model(name, in_chans=1, num_outputs=5, drop_rate=0.0)``.
Trained models, ready to predict, are in :mod:`lensnet.inference`.
"""

from lensnet.networks import alexnet, hezaveh, inception_v4, overfeat, resnet  # noqa: F401 - registers
from lensnet.networks.alexnet import AlexNet
from lensnet.networks.hezaveh import HezavehNet
from lensnet.networks.inception_v4 import InceptionV4
from lensnet.networks.overfeat import OverFeat
from lensnet.networks.registry import DEFAULT_MODEL, create_model, is_model, list_models, register_model
from lensnet.networks.resnet import LensResNet

__all__ = [
    "DEFAULT_MODEL",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
    "AlexNet",
    "HezavehNet",
    "InceptionV4",
    "LensResNet",
    "OverFeat",
]
