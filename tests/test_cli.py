"""The command line: every built stage is listed, none that is not, and bad input gets one clear line."""

import os

import pytest
import torch
from click.testing import CliRunner

from lensnet.cli import cli, main


def test_help_lists_every_stage_and_no_stub():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1] + "\n"
    listed = [line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line.split()]
    stages = ("simulate", "train", "export", "models", "evaluate", "calibrate", "combine", "predict", "refine",
              "deblend", "demo")
    assert set(listed) <= set(stages)
    for stage in stages:
        assert stage in listed
    for name in listed:  # every listed command runs: its help works and promises no later issue
        text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "not built" not in text and "later" not in text


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_train_options_come_from_the_config():
    from lensnet.training.config import TrainConfig

    text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "--preset [paper|hst-acs|tiny]" in text and "--warmup-steps" in text and "--init-from" in text
    assert len([n for n, h in TrainConfig.describe().items() if h]) == len(TrainConfig.describe())


def _one_line_error(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code != 0 and message in err and "Traceback" not in err, err
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["simulate", "--preset", "tiny", "--num", "2", "--device", "cuda",
                             "--output", str(tmp_path / "x.h5")], "sees no CUDA GPU")
    _one_line_error(capsys, ["train", "--preset", "tiny", "--accelerator", "gpu", "--max-steps", "1",
                             "--output-dir", str(tmp_path / "run")], "sees no CUDA GPU")
    assert not (tmp_path / "run").exists()


def test_gallery_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: let the folder look read-only to the check as well
        real = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(folder) else real(path, mode))
    _one_line_error(capsys, ["simulate", "--preset", "tiny", "--gallery", str(folder / "g.png")], "not writable")


def test_gallery_into_a_missing_folder_is_one_line(tmp_path, capsys):
    _one_line_error(capsys, ["simulate", "--preset", "tiny", "--gallery", str(tmp_path / "no" / "g.png")],
                    "does not exist")


def test_evaluate_into_a_file_fails_before_the_work(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a folder")
    err = _one_line_error(capsys, ["evaluate", "--num", "4", "--output-dir", str(target), "--no-progress-bar"],
                          "it is a file, not a folder")
    assert "simulating" not in err


@pytest.mark.parametrize("args, message", [
    (["predict", "x.fits", "--batch-size", "0"], "--batch-size"),
    (["predict", "x.fits", "--workers", "-1"], "--workers"),
    (["predict", "x.fits", "--devices", "0"], "--devices"),
    (["predict", "x.fits", "--num-nodes", "0"], "--num-nodes"),
    (["refine", "x.fits", "--restarts", "0"], "--restarts"),
    (["refine", "x.fits", "--max-iter", "-5"], "--max-iter"),
    (["refine", "x.fits", "--resume", "--overwrite"], "not both"),
])
def test_bad_numbers_and_conflicts_are_one_line_naming_the_option(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, args, message)
    assert "=True" not in err and "torch" not in err


def test_refine_figures_into_a_read_only_folder_fail_before_the_work(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    real = os.access  # root may write anywhere: the folder looks read-only to the check as well
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(folder) and mode & os.W_OK
                        else real(path, mode))
    (tmp_path / "x.fits").write_text("never read")
    err = _one_line_error(capsys, ["refine", str(tmp_path / "x.fits"), "-o", str(tmp_path / "r.ecsv"), "--figures",
                                   str(folder), "--psf-fwhm", "0.1"], "not writable")
    assert "estimating" not in err and not (tmp_path / "r.ecsv.partial").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_an_unusable_device_is_lensnets_error_in_the_api_too():
    from lensnet.errors import LensnetValueError
    from lensnet.inference import load_pretrained

    with pytest.raises(LensnetValueError, match="cuda:7.*sees no CUDA GPU"):
        load_pretrained(device="cuda:7")
