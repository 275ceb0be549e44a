"""Registry: lookup by name, errors listing the known names, duplicate warnings."""

import pytest
import torch.nn as nn

from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.networks import DEFAULT_MODEL, create_model, is_model, list_models, register_model
from lensnet.networks import registry


def test_all_families_registered():
    names = list_models()
    for name in ("alexnet", "overfeat", "inception_v4", "hezaveh", "lensnet_resnet", "lensnet_resnet_small"):
        assert name in names
    assert names == sorted(names)
    assert DEFAULT_MODEL in names and is_model(DEFAULT_MODEL)


def test_unknown_name_lists_registered_ones():
    with pytest.raises(LensnetValueError, match="unknown model 'resnet9000'") as err:
        create_model("resnet9000")
    for name in list_models():
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)


def test_duplicate_registration_warns():
    def _test_dummy_net(**kwargs):
        return nn.Identity()

    try:
        register_model(_test_dummy_net)
        assert isinstance(create_model("_test_dummy_net"), nn.Identity)
        with pytest.warns(UserWarning, match="registered twice"):
            register_model(_test_dummy_net)
    finally:
        registry._model_entrypoints.pop("_test_dummy_net", None)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(in_chans=0), "in_chans"),
    (dict(num_outputs=0), "num_outputs"),
    (dict(drop_rate=1.0), "drop_rate"),
])
def test_constructor_arguments_checked(kwargs, arg):
    with pytest.raises(LensnetRangeError, match=arg):
        create_model("lensnet_resnet_small", **kwargs)
