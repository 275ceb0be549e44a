"""`lensnet demo` writes its figures and prints the parameter tables, with and without shipped weights."""

import pytest
from click.testing import CliRunner

import lensnet.demo
import lensnet.inference.pretrained
from lensnet.cli import cli
from lensnet.inference import DEFAULT_PRETRAINED
from lensnet.training.export import export_model

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def fast_demo(monkeypatch):
    """8 test lenses, not 64."""
    monkeypatch.setattr(lensnet.demo, "DEMO_TEST_LENSES", 8)


def test_demo_writes_png_and_table(tmp_path):
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(cli, ["demo", "--num", "2", "--seed", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG
    assert "theta_E" in result.output and "center_x" in result.output
    if DEFAULT_PRETRAINED in lensnet.inference.list_pretrained():  # counts every training stage
        images = lensnet.inference.training_images(lensnet.inference.pretrained_card())
        assert f"trained on {images:,} simulated lenses" in result.output


def test_demo_rejects_bad_num(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--num", "0", "--output", str(tmp_path / "x.png")])
    assert result.exit_code != 0


def test_demo_without_weights_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(lensnet.demo, "list_pretrained", lambda: [])
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(cli, ["demo", "--num", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "No trained weights are installed" in result.output
    assert not (tmp_path / "demo_estimates.png").exists()


@pytest.fixture
def shipped_tiny_model(tmp_path, monkeypatch, write_tiny_checkpoint):
    """A random small network exported for the paper's 192 x 192 images, installed as the default model."""
    folder = tmp_path / "weights"
    ckpt = write_tiny_checkpoint(tmp_path / "last.ckpt", preset="paper")
    export_model(ckpt, folder, name=DEFAULT_PRETRAINED)
    monkeypatch.setattr(lensnet.inference.pretrained, "weights_directory", lambda: folder)
    return folder


def test_demo_estimates_test_lenses_with_shipped_weights(tmp_path, shipped_tiny_model):
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(cli, ["demo", "--num", "1", "--seed", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "estimate +- 1sig" in result.output and "68% errors over the 8 lenses" in result.output
    assert "paper: combined" in result.output and "prior mean (baseline)" in result.output
    for lens in ("SL2S J0219-0829", "SDSS J2303+1422"):  # the real chain on the built-in example lenses
        assert lens in result.output
    assert (tmp_path / "demo_sl2sj0219-0829.png").is_file() and (tmp_path / "demo_sdssj2303+1422_arcs.fits").is_file()
    assert (tmp_path / "demo_estimates.png").read_bytes()[:8] == PNG
