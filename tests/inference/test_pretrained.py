"""Shipped-model loading (missing and corrupt files) and LensPredictor.predict's checks and batching."""

import hashlib
import json

import pytest
import torch

from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.networks import create_model
from lensnet.inference import LensPredictor, list_pretrained, load_pretrained, weights_directory
from lensnet.preprocess import normalize_images
from lensnet.training.export import export_model


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, write_tiny_checkpoint):
    folder = tmp_path_factory.mktemp("weights")
    export_model(write_tiny_checkpoint(folder / "tiny.ckpt"), folder, name="tiny_model")
    return folder


@pytest.fixture(scope="module")
def predictor(weights_dir):
    return load_pretrained("tiny_model", directory=weights_dir)


def _images(n=5, size=32, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) + 0.1


def test_package_folder_lists_only_complete_models():
    assert weights_directory().name == "weights"
    assert all(isinstance(name, str) for name in list_pretrained())


def test_missing_model_names_the_available_ones(weights_dir, tmp_path):
    with pytest.raises(LensnetIOError, match="tiny_model"):
        load_pretrained("other", directory=weights_dir)
    with pytest.raises(LensnetIOError, match="no trained weights are installed"):
        load_pretrained("other", directory=tmp_path)


def _copy_model(src, dst):
    for suffix in (".json", ".safetensors"):
        (dst / f"tiny_model{suffix}").write_bytes((src / f"tiny_model{suffix}").read_bytes())


def test_corrupt_weights_and_card_raise_io_errors(weights_dir, tmp_path):
    _copy_model(weights_dir, tmp_path)
    weights = tmp_path / "tiny_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(LensnetIOError, match="corrupt"):
        load_pretrained("tiny_model", directory=tmp_path)
    card_path = tmp_path / "tiny_model.json"
    card = json.loads(card_path.read_text())
    card["weights"]["sha256"] = None
    card_path.write_text(json.dumps(card))
    with pytest.raises(LensnetIOError, match="no weights.sha256"):
        load_pretrained("tiny_model", directory=tmp_path)
    garbage = b"not a safetensors file"  # with its own hash: the reader itself must fail cleanly
    card["weights"]["sha256"] = hashlib.sha256(garbage).hexdigest()
    card_path.write_text(json.dumps(card))
    weights.write_bytes(garbage)
    with pytest.raises(LensnetIOError, match="cannot read the weights"):
        load_pretrained("tiny_model", directory=tmp_path)
    card_path.write_text("{ truncated")
    with pytest.raises(LensnetIOError, match="cannot read the model card"):
        load_pretrained("tiny_model", directory=tmp_path)


def test_weights_of_another_network_are_rejected(weights_dir, tmp_path):
    _copy_model(weights_dir, tmp_path)
    card_path = tmp_path / "tiny_model.json"
    card = json.loads(card_path.read_text())
    card["model"]["kwargs"]["widths"] = [8, 16, 32, 32]
    card_path.write_text(json.dumps(card))
    with pytest.raises(LensnetIOError, match="do not fit"):
        load_pretrained("tiny_model", directory=tmp_path)


@pytest.mark.parametrize("shape", [(32, 32), (1, 32, 32), (2, 3, 32, 32), (2, 1, 16, 16), (0, 1, 32, 32)])
def test_predict_rejects_wrong_shapes(predictor, shape):
    with pytest.raises(LensnetShapeError, match=r"images has shape .* expected \(B, 1, 32, 32\)"):
        predictor.predict(torch.zeros(shape))


def test_predict_rejects_nan_integers_and_bad_masks(predictor):
    images = _images(3)
    images[1, 0, 4, 4] = float("nan")
    with pytest.raises(LensnetValueError, match="images contains 1 non-finite"):
        predictor.predict(images)
    with pytest.raises(LensnetValueError, match="floating point"):
        predictor.predict(torch.zeros(2, 1, 32, 32, dtype=torch.int64))
    with pytest.raises(LensnetShapeError, match="masks"):
        predictor.predict(_images(3), masks=torch.zeros(2, 1, 32, 32, dtype=torch.bool))


def test_predict_normalises_batches_and_keeps_dtype(predictor):
    images = 40.0 * _images(7) + 3.0
    masks = torch.zeros(7, 1, 32, 32, dtype=torch.bool)
    masks[:, :, 10:13, 10:13] = True
    mean, std = predictor.predict(images, masks, batch_size=3)
    want_mean, want_std = predictor.predict(normalize_images(images, masks), normalized=True)
    torch.testing.assert_close(mean, want_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std, want_std, rtol=1e-5, atol=1e-6)
    assert mean.shape == std.shape == (7, 5) and (std > 0).all()
    mean64, _ = predictor.predict(images.double(), masks)
    assert mean64.dtype == torch.float64
    torch.testing.assert_close(mean64, mean.double(), rtol=1e-4, atol=1e-5)
    assert not predictor.training


def test_mean_only_network_reports_residual_rms():
    backbone = create_model("lensnet_resnet_small", predict_variance=False, widths=(8, 8, 8, 8), stem_width=8)
    predictor = LensPredictor(backbone, [0.0] * 5, [1.0] * 5, residual_rms=[0.1, 0.2, 0.3, 0.4, 0.5], in_chans=1)
    _, std = predictor.predict(_images(2, size=24), normalized=True)
    torch.testing.assert_close(std, torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5]] * 2))
