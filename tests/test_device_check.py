"""benchmarks/device_check.sh, the one prepared GPU run, on the CPU with tiny settings: every step ends and
writes its figures under one folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.sh"


@pytest.mark.skipif(DEFAULT_PRETRAINED not in list_pretrained(), reason="needs the shipped model")
def test_the_device_script_runs_every_step_with_tiny_settings(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(SCRIPT), "--tiny", "--device", "cpu", "--minutes", "0.2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={"PYTHON": sys.executable,
                                                                            "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "device_check.json").read_text())
    steps = results["steps"]
    assert list(steps) == ["simulation", "inference", "refine", "training", "evaluation"]
    assert not [name for name, entry in steps.items() if "error" in entry], {n: e.get("error") for n, e in steps.items()}
    assert steps["simulation"]["images_per_s"] > 0 and steps["refine"]["lenses_per_s"] > 0
    assert set(steps["inference"]["images_per_s"]) == {"fp32 batch 2", "bf16 batch 2"}
    assert steps["training"]["steps"] >= 1 and Path(steps["training"]["checkpoint"]).is_file()
    assert set(steps["evaluation"]["continued_err68"]) == {"theta_E", "e1", "e2", "center_x", "center_y"}
    assert "| training |" in (out / "device_check.md").read_text()
