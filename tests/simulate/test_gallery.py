"""Gallery and per-effect figures: files written, the right lenses shown, effects switched one at a time."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

from lensnet.cli import cli
from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.observe.pipeline import ObservationConfig
from lensnet.simulate import LensSimulator, SimulationConfig, get_preset
from lensnet.simulate.dataset import read_dataset, write_dataset
from lensnet.simulate.gallery import EFFECT_PANELS, _gallery_data, _only, draw_effects, draw_gallery

FAST = SimulationConfig.from_dict({"name": "tiny-analytic", "source": {"fractions": [0.0, 0.5, 0.5]}},
                                  base=get_preset("tiny"))


@pytest.fixture(scope="module")
def simulator():
    return LensSimulator(FAST)


def _png_shape(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path).shape


def test_gallery_and_effects_figures_are_written(simulator, tmp_path):
    gallery = draw_gallery(simulator, num=6, seed=3, output=tmp_path / "g.png")
    height, width, _ = _png_shape(gallery)
    assert width > height > 200  # 4 columns x 2 rows of panels
    effects = draw_effects(simulator, seed=3, output=tmp_path / "e.png")
    height, width, _ = _png_shape(effects)
    assert width > 2 * height
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png", "g.png"]


def test_gallery_shows_a_dataset_or_its_simulated_twin(simulator, tmp_path):
    path = write_dataset(tmp_path / "set.h5", FAST, num=5, seed=4, batch_size=5, progress=False, extras=("observed",))
    data = read_dataset(path)
    from_file = _gallery_data(path, 4, seed=0, device=None)
    np.testing.assert_array_equal(from_file.images, data.observed[:4])
    np.testing.assert_array_equal(from_file.targets, data.targets[:4])
    assert from_file.seed == 4 and from_file.kind == "observed images"
    # Simulated in one batch of num, the gallery shows the dataset written with that batch size.
    simulated = _gallery_data(simulator, 5, seed=4, device=None)
    np.testing.assert_array_equal(simulated.images, data.observed)
    np.testing.assert_array_equal(simulated.record["noise_rms"], data.record["noise_rms"])
    draw_gallery(data, num=3, output=tmp_path / "g.png")
    _png_shape(tmp_path / "g.png")


def test_effect_panels_switch_on_only_their_effects():
    base = ObservationConfig()
    names = [f.name for f in dataclasses.fields(base)]
    for label, on, colored in EFFECT_PANELS:
        cfg = _only(base, on, colored)
        for name in names:
            assert getattr(cfg, name).probability == (1.0 if name in on else 0.0), (label, name)
        assert cfg.gaussian_noise.colored_probability == (1.0 if colored else 0.0)
        assert cfg.psf.sigma_range == base.psf.sigma_range  # strengths keep the config's ranges
    assert {name for _, on, _ in EFFECT_PANELS for name in on} == set(names)


def test_bad_gallery_arguments(simulator, tmp_path):
    with pytest.raises(LensnetRangeError, match="num"):
        draw_gallery(simulator, num=0, output=tmp_path / "g.png")
    with pytest.raises(LensnetValueError, match="SimulationConfig"):
        draw_effects(42, output=tmp_path / "e.png")
    assert list(tmp_path.iterdir()) == []


def test_cli_gallery_writes_both_figures_with_the_tiny_preset(tmp_path):
    out = tmp_path / "gallery.png"
    result = CliRunner().invoke(cli, ["simulate", "--preset", "tiny", "--num", "4", "--seed", "3", "--device", "cpu",
                                      "--gallery", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.png", "gallery_effects.png"]
    _png_shape(out)
