"""Registry of network constructors: every model is built by name through :func:`create_model`.

A family module decorates its entry points with :func:`register_model`; importing
:mod:`lensnet.networks` imports every family, so all names are registered. ``lensnet train --model
alexnet`` and the Python API resolve names through the same dictionary.

Examples
--------
>>> from lensnet.networks import create_model, list_models
>>> "alexnet" in list_models()
True
>>> model = create_model("lensnet_resnet_small", in_chans=1)
>>> model.predicts_variance
True
"""

from __future__ import annotations

import sys
import warnings
from typing import Callable

import torch.nn as nn

from lensnet.errors import LensnetValueError

__all__ = ["DEFAULT_MODEL", "register_model", "create_model", "list_models", "is_model"]

#: Name of lensnet's own default network (mean and log-variance per parameter).
DEFAULT_MODEL = "lensnet_resnet"

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Record ``fn`` under its function name and add it to its module's ``__all__``.

    Registering a name twice replaces the earlier entry point and warns (``UserWarning``).

    Parameters
    ----------
    fn : callable
        Entry point taking keyword arguments (``in_chans``, ``num_outputs``, ``drop_rate``, ...)
        and returning an ``nn.Module``.

    Returns
    -------
    callable
        ``fn`` itself, so the decorator leaves the function usable directly.
    """
    name = fn.__name__
    if name in _model_entrypoints:
        warnings.warn(f"model {name!r} is registered twice; the entry point from {fn.__module__} "
                      "replaces the earlier one", UserWarning, stacklevel=2)
    _model_entrypoints[name] = fn
    module_all = getattr(sys.modules.get(fn.__module__), "__all__", None)
    if module_all is not None and name not in module_all:
        module_all.append(name)
    return fn


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_model_entrypoints)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _model_entrypoints


def create_model(name: str = DEFAULT_MODEL, **kwargs) -> nn.Module:
    """Build the registered model ``name``, passing ``kwargs`` to its constructor.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` [``DEFAULT_MODEL``].
    **kwargs
        Constructor arguments, e.g. ``in_chans`` (input bands), ``num_outputs`` (regressed
        parameters), ``drop_rate`` (dropout probability before the output layers).

    Returns
    -------
    nn.Module
        The model, freshly initialised, on the CPU in float32.

    Raises
    ------
    LensnetValueError
        If ``name`` is not registered; the message lists the registered names.
    """
    if name not in _model_entrypoints:
        raise LensnetValueError(f"unknown model {name!r}; registered models are: "
                                f"{', '.join(list_models())}")
    return _model_entrypoints[name](**kwargs)
