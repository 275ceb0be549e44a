"""Figures are built without pyplot, and the estimate-vs-truth bands appear only where bins are well filled."""

import sys

import matplotlib
import torch

from lensnet.plotting import MIN_LENSES_PER_BAND_BIN, binned_quantiles, plot_estimates

PNG = b"\x89PNG\r\n\x1a\n"


def _estimates(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.rand(n, 5, generator=g)
    return truth, truth + 0.05 * torch.randn(n, 5, generator=g), torch.full((n, 5), 0.05)


def test_plot_leaves_the_backend_and_pyplot_alone(tmp_path):
    backend = matplotlib.get_backend()
    path = plot_estimates(*_estimates(64), tmp_path / "small.png", title="64 lenses")
    assert path.read_bytes()[:8] == PNG and matplotlib.get_backend() == backend
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()


def test_small_sets_get_no_bands_and_large_sets_bands_between_bin_medians(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    calls = []
    monkeypatch.setattr(Axes, "fill_between", lambda self, x, *a, **k: calls.append(len(x)))
    plot_estimates(*_estimates(64), tmp_path / "a.png")
    assert calls == []  # 64 lenses cannot fill two bins of MIN_LENSES_PER_BAND_BIN
    plot_estimates(*_estimates(4 * MIN_LENSES_PER_BAND_BIN), tmp_path / "b.png")
    assert calls and set(calls) == {4}  # four bins, drawn only between their medians


def test_binned_quantiles_are_exact():
    x = torch.arange(100.0).numpy()
    centres, bands = binned_quantiles(x, x, 2)
    assert list(centres) == [24.5, 74.5] and bands.shape == (4, 2)
