"""Sphinx configuration of lensnet's documentation: `make docs` builds it into docs/_build/html."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import lensnet

project = "lensnet"
author = "The lensnet developers"
copyright = "2026, The lensnet developers"
release = version = lensnet.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon", "sphinx.ext.intersphinx",
              "sphinx.ext.mathjax", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_inventories", "api/generated/*.md"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # overridden Lightning and torch methods would bring their own markup

# Each project's inventory online; offline, the inventory shipped in _inventories/ of the names lensnet refers to.
_INVENTORIES = Path(__file__).parent / "_inventories"
intersphinx_mapping = {name: (url, (None, str(_INVENTORIES / f"{name}.inv"))) for name, url in {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "astropy": "https://docs.astropy.org/en/stable/",
    "torch": "https://pytorch.org/docs/stable/",
    "lenstronomy": "https://lenstronomy.readthedocs.io/en/latest/",
}.items()}
intersphinx_timeout = 5

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"lensnet {release}"

#: The packages whose ``__all__`` the API reference lists, in the order data flows through them.
API_PACKAGES = ["lensnet", "lensnet.conventions", "lensnet.errors", "lensnet.configfile", "lensnet.device",
                "lensnet.io", "lensnet.metrics", "lensnet.plotting", "lensnet.lensing", "lensnet.sources",
                "lensnet.observe", "lensnet.preprocess", "lensnet.deblend", "lensnet.simulate", "lensnet.networks",
                "lensnet.inference", "lensnet.refine", "lensnet.training", "lensnet.evaluate"]


def _write_api_pages(folder: Path) -> None:
    """docs/api/<package>.rst: an autosummary of every name in the package's ``__all__`` (one page each); the
    top-level package's names, re-exported from the packages below, link to their pages there."""
    folder.mkdir(exist_ok=True)
    for name in API_PACKAGES:
        module = importlib.import_module(name)
        title = f"``{name}``"
        lines = [title, "=" * len(title), "", f".. automodule:: {name}", "   :no-members:", ""]
        if name == "lensnet":
            lines += ["Shortcuts to names documented with their packages:", ""]
            lines += [f"- ``lensnet.{public}``: :py:obj:`{_canonical(public, getattr(module, public))}`"
                      for public in module.__all__ if public != "__version__"]
            lines += ["- ``lensnet.__version__``: the installed version (from the package metadata)"]
        else:
            lines += [f".. currentmodule:: {name}", "", ".. autosummary::", "   :toctree: generated", ""]
            lines += [f"   {public}" for public in module.__all__]
        text = "\n".join(lines) + "\n"
        page = folder / f"{name}.rst"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)


def _canonical(public: str, obj) -> str:
    """Where a top-level name is documented: the first API package below lensnet that exports it."""
    for package in API_PACKAGES[1:]:
        module = importlib.import_module(package)
        if public in getattr(module, "__all__", ()) and getattr(module, public) is obj:
            return f"{package}.{public}"
    raise ValueError(f"lensnet.{public} is exported by no package of the API reference")


def _no_type_docstring(app, what, name, obj, options, lines) -> None:
    """A constant without a docstring of its own gets none, not the docstring of its type (dict, tuple)."""
    doc = inspect.getdoc(type(obj))
    if what in ("data", "attribute") and doc and lines and lines[0].strip() == doc.splitlines()[0].strip():
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _no_type_docstring)


_write_api_pages(Path(__file__).parent / "api")  # before Sphinx looks for sources and autosummary for stubs
