"""Generic tests run on every registered network (timm's tests/test_models.py pattern)."""

import pytest
import torch

from lensnet.networks import create_model, list_models

# (min, max) parameters at one input band and five outputs, and whether the model predicts variances.
# REFERENCE.md gives 37-78 million for the paper's four (AlexNet's 36.77 million rounds to 37).
# A newly registered model must add its entry here.
EXPECTED = {
    "alexnet": (36.7e6, 36.8e6, False),
    "overfeat": (40.9e6, 41.0e6, False),
    "inception_v4": (41.1e6, 41.2e6, False),
    "hezaveh": (77.5e6, 77.6e6, False),
    "lensnet_resnet": (2e6, 5e6, True),
    "lensnet_resnet_small": (0.1e6, 0.5e6, True),
}
N_PARAMS = 5
MODELS = list_models()


def _means(model, output):
    if model.predicts_variance:
        assert output.shape[1] == 2 * N_PARAMS
        return output[:, :N_PARAMS]
    return output


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_and_output_kind(name):
    model = create_model(name)
    n = sum(p.numel() for p in model.parameters())
    assert name in EXPECTED, f"record the expected parameter count of {name} in EXPECTED"
    lo, hi, predicts_variance = EXPECTED[name]
    assert lo <= n <= hi, f"{name}: {n} parameters"
    assert model.predicts_variance is predicts_variance


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_one_band(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.randn(2, 1, 192, 192)
    out = model(x)
    assert out.shape == (2, 2 * N_PARAMS if model.predicts_variance else N_PARAMS)
    assert torch.isfinite(out).all()
    features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[0] == 2
    _means(model, out).square().mean().backward()
    first = next(model.parameters())  # constructors define the first convolution first
    assert first.ndim == 4 and first.shape[1] in (1, 3)  # in_chans, plus 2 coordinate channels
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", MODELS)
def test_three_bands_eval_deterministic(name):
    torch.manual_seed(0)
    model = create_model(name, in_chans=3, drop_rate=0.5).eval()
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert _means(model, a).shape == (1, N_PARAMS)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_other_image_size_and_outputs(name):
    model = create_model(name, num_outputs=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 128, 128))
    assert out.shape == (1, 6 if model.predicts_variance else 3)


def test_float64_and_head_split():
    model = create_model("lensnet_resnet_small").double().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 96, 96, dtype=torch.float64))
    mean, log_var = out[:, :N_PARAMS], out[:, N_PARAMS:]
    assert mean.dtype == torch.float64 and mean.shape == log_var.shape == (2, N_PARAMS)
    plain = create_model("lensnet_resnet_small", predict_variance=False)
    assert not plain.predicts_variance and plain(torch.randn(2, 1, 96, 96)).shape == (2, N_PARAMS)



def test_attention_pool_variant_and_its_errors():
    model = create_model("lensnet_resnet_small", pool="attention").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 96, 96)).shape == (2, 2 * N_PARAMS)
    with pytest.raises(ValueError, match="pool"):
        create_model("lensnet_resnet_small", pool="max")
