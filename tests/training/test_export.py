"""export_model writes weights, card and Markdown that load back into the checkpoint's exact predictor."""

import json

import pytest
import torch

from lensnet.errors import LensnetIOError, LensnetValueError
from lensnet.networks import create_model
from lensnet.networks.pretrained import LensPredictor, list_pretrained, load_pretrained
from lensnet.simulate.config import get_preset
from lensnet.training.config import TrainConfig
from lensnet.training.export import MAX_WEIGHTS_BYTES, checkpoint_card, export_model, main
from lensnet.training.module import LensRegressor
from lensnet.training.train import CHECKPOINT_KEY, load_regressor

SMALL_KWARGS = {"widths": [8, 16, 16, 16], "stem_width": 8}


def write_tiny_checkpoint(path, preset: str = "tiny", steps: int = 7, seed: int = 0):
    """A randomly initialised lensnet_resnet_small checkpoint in the format of run_training.

    Every weight and normalisation statistic is perturbed so that a round trip that dropped or
    mixed up any tensor would change the predictions.
    """
    config = TrainConfig(model="lensnet_resnet_small", model_kwargs=dict(SMALL_KWARGS), simulation=preset,
                         batch_size=4, seed=seed, devices=1, precision="32-true")
    torch.manual_seed(seed)
    backbone = create_model(config.model, in_chans=1, num_outputs=5, **config.model_kwargs)
    module = LensRegressor(backbone, target_mean=[1.0, 0.0, 0.0, 0.0, 0.0], target_std=[0.5, 0.2, 0.2, 0.1, 0.1])
    with torch.no_grad():
        for name, tensor in module.backbone.state_dict().items():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
                if "running_var" in name:
                    tensor.abs_()
        module.residual_rms.copy_(torch.tensor([0.1, 0.05, 0.05, 0.02, 0.02]))
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "global_step": steps,
            CHECKPOINT_KEY: {"train_config": config.to_dict(), "in_chans": 1, "lensnet_version": "0.1.0",
                             "simulation": get_preset(preset).to_dict()}}
    torch.save(ckpt, path)
    return path


@pytest.fixture
def tiny_ckpt(tmp_path):
    return write_tiny_checkpoint(tmp_path / "last.ckpt")


def test_export_round_trip_gives_identical_predictions(tiny_ckpt, tmp_path):
    exported = export_model(tiny_ckpt, tmp_path / "weights", name="tiny_model",
                            card={"hardware": "test CPU", "training_time_s": 12.5, "description": "a test"})
    assert list_pretrained(tmp_path / "weights") == ["tiny_model"]
    loaded = load_pretrained("tiny_model", directory=tmp_path / "weights")
    module = load_regressor(tiny_ckpt)
    images = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want_mean, want_std = module(images)
    mean, std = loaded.predict(images, normalized=True)
    torch.testing.assert_close(mean, want_mean, rtol=0, atol=0)
    torch.testing.assert_close(std, want_std, rtol=0, atol=0)
    from_ckpt = LensPredictor.from_checkpoint(tiny_ckpt)
    torch.testing.assert_close(from_ckpt.predict(images, normalized=True)[0], want_mean, rtol=0, atol=0)
    assert exported.weights_path.stat().st_size <= MAX_WEIGHTS_BYTES


def test_card_records_provenance(tiny_ckpt, tmp_path):
    exported = export_model(tiny_ckpt, tmp_path, name="m", card={"hardware": "test CPU", "training_time_s": 3600.0,
                                                                  "evaluation": None})
    card = json.loads(exported.card_path.read_text())
    assert card == exported.card
    assert card["model"] == {"name": "lensnet_resnet_small", "kwargs": SMALL_KWARGS, "in_chans": 1, "num_outputs": 5,
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
    assert checkpoint_card(tiny_ckpt)["training"]["steps"] == 7


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


def test_command_line_evaluates_into_the_card(tiny_ckpt, tmp_path, capsys):
    main([str(tiny_ckpt), str(tmp_path / "w"), "--name", "m", "--hardware", "test CPU", "--evaluate", "10"])
    card = json.loads((tmp_path / "w" / "m.json").read_text())
    assert card["evaluation"]["test_set"] == {"num": 10, "simulation": "tiny", "source_split": "test", "seed": 2024}
    assert "paper: combined" in (tmp_path / "w" / "m.md").read_text()
    assert "wrote" in capsys.readouterr().out
