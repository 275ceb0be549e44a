"""TrainConfig: defaults, YAML/TOML round trips, and errors that name the bad field."""

import pytest

from lensnet.errors import LensnetConfigError, LensnetIOError
from lensnet.training.config import TrainConfig, load_config, save_config


def test_defaults_follow_the_paper_and_every_field_is_described():
    config = TrainConfig()
    assert config.batch_size == 50 and config.optimizer == "adamw"
    described = TrainConfig.describe()
    assert list(described) == list(config.to_dict())
    assert all(text.strip() for text in described.values())


def test_yaml_round_trip(tmp_path):
    config = TrainConfig(model="alexnet", model_kwargs={"drop_rate": 0.1}, lr=0.01, optimizer="sgd",
                         devices=2, simulation_overrides={"n_pix": 64})
    assert load_config(save_config(config, tmp_path / "train.yaml")) == config


def test_toml_keeps_defaults_for_missing_fields(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('model = "hezaveh"\nloss = "mse"\nmax_steps = 10\n[model_kwargs]\ndrop_rate = 0.2\n')
    config = load_config(path)
    assert (config.model, config.loss, config.max_steps) == ("hezaveh", "mse", 10)
    assert config.model_kwargs == {"drop_rate": 0.2} and config.batch_size == 50


@pytest.mark.parametrize("suffix, text, field", [
    (".yaml", "lr: fast\n", "lr"),
    (".yaml", "batch_size: 0\n", "batch_size"),
    (".yaml", "optimizer: adam\n", "optimizer"),
    (".yaml", "learning_rate: 0.1\n", "learning_rate"),
    (".yaml", "model_kwargs: 3\n", "model_kwargs"),
    (".toml", "max_steps = 1.5\n", "max_steps"),
    (".toml", "devices = \"many\"\n", "devices"),
    (".toml", "momentum = 1.5\n", "momentum"),
    (".toml", "schedule_name = \"cosine\"\n", "schedule_name"),
])
def test_bad_field_is_named(tmp_path, suffix, text, field):
    path = tmp_path / f"train{suffix}"
    path.write_text(text)
    with pytest.raises(LensnetConfigError, match=field) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unreadable_or_unparsable_files(tmp_path):
    with pytest.raises(LensnetIOError):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 1\n")
    with pytest.raises(LensnetConfigError, match="parse"):
        load_config(bad)
    other = tmp_path / "train.json"
    other.write_text("{}")
    with pytest.raises(LensnetConfigError, match="yaml"):
        load_config(other)


def test_overrides_ignore_unset_values_and_are_checked():
    config = TrainConfig().with_overrides(lr=0.5, model=None, devices=4)
    assert (config.lr, config.model, config.devices) == (0.5, None, 4)
    with pytest.raises(LensnetConfigError, match="num_nodes"):
        TrainConfig().with_overrides(num_nodes=0)
