"""Fixtures shared by the inference tests."""

import importlib.resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from lensnet.cli import cli


@pytest.fixture(scope="session")
def j0219_two_bands(tmp_path_factory):
    """``lensnet predict`` of the example SL2S J0219-0829 with its two filters (``--deblend F600LP``): the folder of
    its outputs (``j0219.ecsv``, ``j0219_arcs.fits``, ``j0219_arcs_sersic.fits``) and what it printed."""
    examples = Path(str(importlib.resources.files("lensnet") / "examples"))
    folder = tmp_path_factory.mktemp("j0219")
    result = CliRunner().invoke(cli, ["predict", str(examples / "sl2sj0219-0829_F475X.fits"), "--deblend",
                                      str(examples / "sl2sj0219-0829_F600LP.fits"), "-o", str(folder / "j0219.ecsv"),
                                      "--workers", "0", "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    return folder, result.output
