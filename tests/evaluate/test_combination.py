"""`lensnet combine`: the paper's combined network fitted on held-out lenses, tabulated beside its members."""

import json

import pytest
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.errors import LensnetValueError
from lensnet.evaluate.combination import run_combination


@pytest.fixture(scope="module")
def members(tmp_path_factory, write_tiny_checkpoint):
    folder = tmp_path_factory.mktemp("members")
    return [str(write_tiny_checkpoint(folder / f"m{i}.ckpt", steps=7 + i, seed=i)) for i in range(2)]


def test_cli_combine_fits_weights_and_tabulates_every_row(members, tmp_path):
    out = tmp_path / "combo"
    result = CliRunner().invoke(cli, ["combine", *members, "--num-fit", "60", "--num", "30", "--seed", "1",
                                      "--device", "cpu", "--output-dir", str(out), "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    assert "paper: combined" in result.output and "lensnet: combined" in result.output
    report = json.loads((out / "combination.json").read_text())
    names = [m["name"] for m in report["members"]]
    assert names == ["lensnet_resnet_small@step7", "lensnet_resnet_small@step8"]
    assert set(report["weights"]) == set(names) and list(report["results"]) == [*names, "combined"]
    assert report["fit_set"] == {"num": 60, "seed": 2025, "simulation": "tiny", "source_split": "val"}
    # Every row is scored on the same test lenses; fitted on other lenses, the combination of two
    # untrained networks still beats both (it falls back on its bias, the mean lens).
    errors = {n: r["metrics"]["lensnet"]["err68"]["theta_E"] for n, r in report["results"].items()}
    assert errors["combined"] < min(errors[n] for n in names)
    assert (out / "combination.md").read_text().count("| lensnet:") == 3
    assert (out / "combination_estimates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_combination_needs_two_distinct_models(members):
    with pytest.raises(LensnetValueError, match="at least two"):
        run_combination(members[:1], device="cpu")
    with pytest.raises(LensnetValueError, match="must differ"):
        run_combination([members[0], members[0]], device="cpu")
    with pytest.raises(LensnetValueError, match="num_fit"):
        run_combination(members, num_fit=2, device="cpu")
