"""Simulation configs: presets, files, field errors naming the file, the field and the range; held-out splits."""

import pytest

from lensnet.errors import LensnetConfigError
from lensnet.simulate import SimulationConfig, get_preset, load_simulation_config


def test_presets_and_config_round_trip(tmp_path):
    for name in ("paper", "hst-acs", "tiny"):
        cfg = get_preset(name)
        assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "sim.yaml"
    path.write_text("preset: tiny\nn_pix: 40\nobservation:\n  gaussian_noise:\n    rms_range: [0.02, 0.03]\n")
    cfg = load_simulation_config(path)
    assert cfg.n_pix == 40 and cfg.name == "tiny" and cfg.observation.gaussian_noise.rms_range == (0.02, 0.03)
    toml = tmp_path / "sim.toml"
    toml.write_text('preset = "paper"\n[lens]\ntheta_E_range = [0.5, 2.0]\n')
    assert load_simulation_config(toml).lens.theta_E_range == (0.5, 2.0)


@pytest.mark.parametrize("text, field", [
    ("n_pix: 4\n", "n_pix"),
    ("pixel_scale: -0.1\n", "pixel_scale"),
    ("supersample_threshold: 1.5\n", "supersample_threshold"),
    ("lens:\n  theta_E_range: [2, 1]\n", "theta_E_range"),
    ("source:\n  fractions: [0.5, 0.5, 0.5]\n", "fractions"),
    ("placement:\n  cut_shrink: 2\n", "cut_shrink"),
    ("bogus: 1\n", "bogus"),
    ("lens:\n  bogus: 1\n", "bogus"),
    ("observation:\n  psf:\n    probability: 2\n", "probability"),
    ("n_pix: many\n", "n_pix"),
])
def test_bad_config_fields_are_named(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LensnetConfigError, match=field):
        load_simulation_config(path)


def test_unknown_preset_lists_presets():
    with pytest.raises(LensnetConfigError, match="paper"):
        get_preset("nope")


def test_errors_name_the_file_the_field_and_the_range(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("observation:\n  psf:\n    sigma_range: [0, 1]\n")
    with pytest.raises(LensnetConfigError) as info:
        load_simulation_config(path)
    assert str(info.value) == (f"{path}: observation.psf.sigma_range = [0.0, 1.0]: expected [low, high] with "
                               "low <= high, both in (0, 50]")


def test_for_split_switches_real_galaxies_unless_all():
    paper = get_preset("paper")
    assert paper.for_split("test").source.split == "test" and paper.source.split == "train"
    everything = SimulationConfig.from_dict({"source": {"split": "all"}})
    assert everything.for_split("val") is everything
