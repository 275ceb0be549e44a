"""The package is layered: importing a layer loads no module of a later one, and `import lensnet` is light."""

import json
import subprocess
import sys

import pytest

#: Each layer imports only the ones before it (docs/design.md).
LAYERS = [
    ["errors", "conventions", "configfile", "io", "metrics", "device", "plotting"],
    ["lensing", "sources", "observe", "preprocess", "deblend"],
    ["simulate", "networks"],
    ["inference"],
    ["refine"],
    ["training"],
    ["evaluate"],
    ["cli", "demo"],
]


def _loaded(module: str) -> list[str]:
    code = f"import sys, json, importlib; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("level", range(len(LAYERS) - 1))
def test_no_layer_imports_a_later_one(level):
    later = [f"lensnet.{name}" for layer in LAYERS[level + 1:] for name in layer]
    for name in LAYERS[level]:
        loaded = _loaded(f"lensnet.{name}")
        wrong = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in later)]
        assert not wrong, f"lensnet.{name} loads {wrong}"


def test_inference_does_not_load_training_or_lightning():
    loaded = _loaded("lensnet.inference")
    assert not [m for m in loaded if m.startswith(("lensnet.training", "lensnet.evaluate", "lightning"))]


def test_import_lensnet_is_light():
    """The top package holds the conventions and errors only: no Lightning, plotting, I/O stack or later layer."""
    loaded = _loaded("lensnet")
    heavy = ("lightning", "matplotlib", "astropy", "h5py", "lensnet.simulate", "lensnet.networks")
    assert not [m for m in loaded if m.startswith(heavy)]
