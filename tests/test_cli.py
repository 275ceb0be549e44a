"""The command line lists every stage and fails clearly on stages not built yet."""

from click.testing import CliRunner

from lensnet.cli import cli


def test_help_lists_every_stage():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for stage in ("simulate", "train", "evaluate", "predict", "deblend", "demo"):
        assert stage in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output
