"""`lensnet demo` writes its figure and prints the parameter table."""

from click.testing import CliRunner

from lensnet.cli import cli


def test_demo_writes_png_and_table(tmp_path):
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(cli, ["demo", "--num", "2", "--seed", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "theta_E" in result.output and "center_x" in result.output


def test_demo_rejects_bad_num(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--num", "0", "--output", str(tmp_path / "x.png")])
    assert result.exit_code != 0
