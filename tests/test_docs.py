"""The documentation builds without a warning, and its API reference has a page for every public name."""

import importlib
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")


def test_the_documentation_builds_with_warnings_as_errors_and_documents_every_public_name(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "dummy", "-W", "--keep-going", "-q", str(DOCS),
                           str(tmp_path / "out"), "-d", str(tmp_path / "doctrees")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    packages = runpy.run_path(str(DOCS / "conf.py"))["API_PACKAGES"]
    generated = DOCS / "api" / "generated"
    missing = [f"{package}.{name}" for package in packages[1:]
               for name in importlib.import_module(package).__all__
               if not (generated / f"{package}.{name}.rst").is_file()]
    assert not missing, f"public names without a page in the API reference: {missing}"
    top = (DOCS / "api" / "lensnet.rst").read_text()
    assert all(f"``lensnet.{name}``" in top for name in importlib.import_module("lensnet").__all__)
    packaged = {p.name for p in (ROOT / "src" / "lensnet").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {f"lensnet.{p}" for p in packaged} <= set(packages), "a package is missing from the API reference"


def test_the_readme_front_page_is_short_and_names_no_issue():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "issue" not in text.lower()
