"""export_model writes weights, card and Markdown that load back into the checkpoint's exact predictor."""

import json

import pytest
import torch

from lensnet.errors import LensnetIOError, LensnetValueError
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.inference import list_pretrained, load_pretrained
from lensnet.training.checkpoint import read_checkpoint
from lensnet.training.export import MAX_WEIGHTS_BYTES, export_model


@pytest.fixture
def tiny_ckpt(tmp_path, write_tiny_checkpoint):
    return write_tiny_checkpoint(tmp_path / "last.ckpt")


def test_export_round_trip_gives_identical_predictions(tiny_ckpt, tmp_path):
    exported = export_model(tiny_ckpt, tmp_path / "weights", name="tiny_model",
                            card={"hardware": "test CPU", "training_time_s": 12.5, "description": "a test"})
    assert list_pretrained(tmp_path / "weights") == ["tiny_model"]
    loaded = load_pretrained("tiny_model", directory=tmp_path / "weights")
    module = read_checkpoint(tiny_ckpt).regressor()
    images = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want_mean, want_std = module(images)
    mean, std = loaded.predict(images, normalized=True)
    torch.testing.assert_close(mean, want_mean, rtol=0, atol=0)
    torch.testing.assert_close(std, want_std, rtol=0, atol=0)
    from_ckpt = read_checkpoint(tiny_ckpt).predictor()
    torch.testing.assert_close(from_ckpt.predict(images, normalized=True)[0], want_mean, rtol=0, atol=0)
    assert exported.weights_path.stat().st_size <= MAX_WEIGHTS_BYTES


def test_card_records_provenance(tiny_ckpt, tmp_path):
    exported = export_model(tiny_ckpt, tmp_path, name="m", card={"hardware": "test CPU", "training_time_s": 3600.0,
                                                                  "evaluation": None})
    card = json.loads(exported.card_path.read_text())
    assert card == exported.card
    assert card["model"] == {"name": "lensnet_resnet_small", "kwargs": {"widths": [8, 16, 16, 16], "stem_width": 8}, "in_chans": 1, "num_outputs": 5,
                             "num_parameters": card["model"]["num_parameters"]}
    assert card["input"]["image_shape"] == [1, 32, 32]
    assert card["input"]["normalization"] == "lensnet.preprocess.normalize_images"
    assert card["target_std"]["theta_E"] == pytest.approx(0.5)
    assert card["training"]["num_training_images"] == 7 * 4
    assert card["training"]["hardware"] == "test CPU" and card["training"]["training_time_s"] == 3600.0
    assert card["simulation"]["config"]["n_pix"] == 32
    assert card["weights"]["bytes"] == exported.weights_path.stat().st_size
    markdown = exported.markdown_path.read_text()
    assert "lensnet_resnet_small" in markdown and "1.00 h" in markdown and "Not evaluated" in markdown
    assert read_checkpoint(tiny_ckpt).card()["training"]["steps"] == 7


def test_export_refuses_to_overwrite_and_bad_extras(tiny_ckpt, tmp_path):
    export_model(tiny_ckpt, tmp_path, name="m")
    with pytest.raises(LensnetIOError, match="already exist"):
        export_model(tiny_ckpt, tmp_path, name="m")
    export_model(tiny_ckpt, tmp_path, name="m", overwrite=True)
    with pytest.raises(LensnetValueError, match="unknown entry 'hardwre'"):
        export_model(tiny_ckpt, tmp_path, name="n", card={"hardwre": "x"})
    with pytest.raises(LensnetValueError, match="plain file stem"):
        export_model(tiny_ckpt, tmp_path, name="../m")
    with pytest.raises(LensnetIOError):
        export_model(tmp_path / "missing.ckpt", tmp_path, name="x")


def test_export_command_evaluates_into_the_card(tiny_ckpt, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tiny_ckpt), "--output-dir", str(tmp_path / "w"), "--name", "m",
                                      "--hardware", "test CPU", "--evaluate", "10"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "w" / "m.json").read_text())
    assert card["evaluation"]["test_set"] == {"num": 10, "simulation": "tiny", "source_split": "test", "seed": 2024}
    assert "paper: combined" in (tmp_path / "w" / "m.md").read_text()
    assert "wrote" in result.output
