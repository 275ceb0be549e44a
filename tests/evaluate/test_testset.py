"""evaluate_predictor on seeded test sets, the Table-1 report and its files, and `lensnet evaluate`."""

import json

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.table import Table
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.conventions import PARAM_NAMES
from lensnet.evaluate import evaluate_predictor, write_results
from lensnet.metrics import PAPER_TABLE1, compute_metrics, format_evaluation
from lensnet.networks import create_model
from lensnet.inference import DEFAULT_PRETRAINED, LensPredictor, list_pretrained, load_pretrained


@pytest.fixture(scope="module")
def toy_predictor():
    torch.manual_seed(0)
    backbone = create_model("lensnet_resnet_small", widths=(8, 8, 8, 8), stem_width=8)
    return LensPredictor(backbone, [0.8, 0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.1, 0.1], in_chans=1,
                         card={"name": "toy"})


@pytest.fixture(scope="module")
def tiny_result(toy_predictor):
    return evaluate_predictor(toy_predictor, "tiny", num=60, seed=3, batch_size=16, progress=False)


def test_evaluate_predictor_on_tiny_preset(tiny_result, toy_predictor):
    r = tiny_result
    assert r.truth.shape == r.mean.shape == r.std.shape == (60, 5)
    assert r.model == "toy" and r.simulation == "tiny" and r.inference_s > 0
    m = r.metrics
    assert set(m["lensnet"]) == {"err68", "err68_abs", "rms", "std", "bias", "cover68", "cover95", "prior_err68"}
    assert set(m["paper"]["err68"]) == {"theta_E", "eps_x", "eps_y", "x", "y"}
    again = evaluate_predictor(toy_predictor, "tiny", num=60, seed=3, batch_size=60, progress=False)
    torch.testing.assert_close(again.truth, r.truth)  # the set depends on (preset, num, seed) only
    torch.testing.assert_close(again.mean, r.mean, rtol=1e-5, atol=1e-6)
    json.dumps(r.to_dict())  # serialisable


def test_symmetrized_evaluation_is_labelled_and_differs(tiny_result, toy_predictor):
    r = evaluate_predictor(toy_predictor, "tiny", num=60, seed=3, batch_size=16, progress=False, symmetrize=True)
    assert r.model == "toy (8 views)" and "lensnet: toy (8 views)" in format_evaluation(r.to_dict())
    torch.testing.assert_close(r.truth, tiny_result.truth)
    assert not torch.allclose(r.mean, tiny_result.mean)


def test_perfect_estimates_have_zero_error(tiny_result):
    truth = tiny_result.truth
    m = compute_metrics(truth, truth.clone(), torch.full_like(truth, 0.01))
    assert max(m["lensnet"]["err68"].values()) == 0 and max(m["paper"]["err68"].values()) < 1e-12
    assert min(m["lensnet"]["cover68"].values()) == 1.0
    assert m["lensnet"]["prior_err68"]["theta_E"] > 0.05


def test_table_and_files(tiny_result, tmp_path):
    text = format_evaluation(tiny_result.to_dict())
    assert "paper: combined" in text and "lensnet: toy" in text and "prior mean" in text
    assert f"{PAPER_TABLE1['Inception-v4'][0]:.2f}" in text
    assert format_evaluation(tiny_result.to_dict(), markdown=True).count("| paper:") == len(PAPER_TABLE1)
    paths = write_results(tiny_result, tmp_path / "out")
    assert [p.name for p in paths] == ["evaluation.json", "evaluation.md", "evaluation_estimates.png",
                                       "evaluation_lenses.fits", "evaluation_calibration.png"]
    assert json.loads(paths[0].read_text())["test_set"]["num"] == 60
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_lens_fits_table(tiny_result, tmp_path):
    path = write_results(tiny_result, tmp_path)[3]
    lenses = Table.read(path)
    assert len(lenses) == 60 and lenses.meta["MODEL"] == tiny_result.model and lenses.meta["SEED"] == tiny_result.seed
    assert lenses["theta_E"].unit == u.arcsec and lenses["e1_sigma"].unit is None
    for i, name in enumerate(PARAM_NAMES):
        for column, values in ((f"{name}_true", tiny_result.truth), (name, tiny_result.mean),
                               (f"{name}_sigma", tiny_result.std)):
            np.testing.assert_allclose(lenses[column], values[:, i].double().numpy(), rtol=1e-7)


def test_cli_evaluate_checkpoint(tmp_path, write_tiny_checkpoint):
    ckpt = write_tiny_checkpoint(tmp_path / "last.ckpt")
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(ckpt), "--num", "12", "--seed", "1",
                                      "--device", "cpu", "--output-dir", str(out), "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    assert "paper: combined" in result.output and (out / "evaluation_estimates.png").is_file()
    assert json.loads((out / "evaluation.json").read_text())["test_set"]["simulation"] == "tiny"
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(ckpt), "--num", "12", "--seed", "1",
                                      "--symmetrize", "--device", "cpu", "--output-dir", str(out),
                                      "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "evaluation.json").read_text())["model"].endswith("(8 views)")


def test_shipped_weights_beat_prior_mean():
    """The shipped model (issue 4) must be far better than predicting the mean lens."""
    if DEFAULT_PRETRAINED not in list_pretrained():
        pytest.skip(f"no shipped weights: {DEFAULT_PRETRAINED} is not installed in lensnet/weights/ yet")
    predictor = load_pretrained()
    result = evaluate_predictor(predictor, "paper", num=64, seed=11, progress=False)
    err, prior = result.metrics["lensnet"]["err68"], result.metrics["lensnet"]["prior_err68"]
    assert err["theta_E"] < 0.6 * prior["theta_E"], (err, prior)


def test_cli_evaluate_on_a_config_file(tmp_path, write_tiny_checkpoint):
    ckpt = write_tiny_checkpoint(tmp_path / "last.ckpt")
    config = tmp_path / "narrow.yaml"
    config.write_text("preset: tiny\nname: tiny-narrow-noise\nobservation:\n  gaussian_noise: {rms_range: [0.01, 0.02]}\n")
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, ["evaluate", "--checkpoint", str(ckpt), "--config", str(config), "--num", "8",
                                      "--device", "cpu", "--output-dir", str(out), "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "evaluation.json").read_text())["test_set"]["simulation"] == "tiny-narrow-noise"


def test_a_test_set_on_another_grid_is_resampled_like_a_real_image():
    """tiny's 32 x 32 at 0.12" reaches a model of 40 x 40 at 0.1" through prepare_image, masks and all."""
    torch.manual_seed(0)
    backbone = create_model("lensnet_resnet_small", widths=(8, 8, 8, 8), stem_width=8)
    card = {"name": "toy", "input": {"image_shape": [1, 40, 40], "pixel_scale_arcsec": 0.1}}
    predictor = LensPredictor(backbone, [0.8, 0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.1, 0.1], in_chans=1,
                              image_size=(40, 40), card=card)
    seen = []
    original = predictor.predict

    def spy(images, masks=None, **kwargs):
        seen.append((tuple(images.shape), kwargs.get("normalized", False), masks is not None))
        return original(images, masks, **kwargs)

    predictor.predict = spy
    result = evaluate_predictor(predictor, "tiny", num=6, seed=3, progress=False)
    assert result.mean.shape == (6, 5) and torch.isfinite(result.mean).all()
    assert seen == [((6, 1, 40, 40), False, True)]  # raw images on the model's grid, normalised by predict
