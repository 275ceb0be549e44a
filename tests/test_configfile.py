"""The one declared-field config mechanism: types, ranges, partial merges, unknown fields, file errors."""

import re
from dataclasses import dataclass

import pytest

from lensnet.configfile import Config, load_config_file, setting
from lensnet.errors import LensnetConfigError


@dataclass(frozen=True)
class Inner(Config):
    probability: float = setting(0.5, "chance", min=0.0, max=1.0)
    width_range: tuple[float, float] = setting((1.0, 2.0), "widths", min=0.0, min_open=True)
    count: int = setting(3, "how many", min=1)


@dataclass(frozen=True)
class Outer(Config):
    name: str = setting("a", "label")
    devices: int | str = setting("auto", "a count or auto", min=1, choices=("auto",))
    inner: Inner = setting(factory=Inner, help="nested")


def test_construction_coerces_and_checks():
    cfg = Inner(probability=1, width_range=[0.5, 3], count=2.0)
    assert cfg.probability == 1.0 and isinstance(cfg.probability, float)
    assert cfg.width_range == (0.5, 3.0) and cfg.count == 2 and isinstance(cfg.count, int)
    for kwargs, message in (({"probability": 1.5}, "probability = 1.5: expected a value in [0, 1]"),
                            ({"width_range": (0, 1)}, "width_range = [0.0, 1.0]: expected [low, high] with low <= high, "
                                                      "both in (0, inf)"),
                            ({"width_range": (2.0, 1.0)}, "low <= high"),
                            ({"count": 1.5}, "count = 1.5: expected an integer"),
                            ({"probability": "x"}, "expected a finite number")):
        with pytest.raises(LensnetConfigError, match=re.escape(message)):
            Inner(**kwargs)


def test_partial_merge_keeps_the_base():
    base = Outer.from_dict({"inner": {"count": 7}})
    changed = Outer.from_dict({"inner": {"probability": 0.25}}, base=base)
    assert changed.inner == Inner(probability=0.25, count=7) and changed.name == "a"
    assert Outer.from_dict(changed.to_dict()) == changed and Outer.from_dict({"inner": None}, base=base) == base


def test_errors_name_the_dotted_field_and_suggest():
    with pytest.raises(LensnetConfigError, match=r"unknown field inner\.cont \(did you mean inner\.count\?\)"):
        Outer.from_dict({"inner": {"cont": 1}})
    with pytest.raises(LensnetConfigError, match=r"inner\.probability = 2\.0: expected a value in \[0, 1\]"):
        Outer.from_dict({"inner": {"probability": 2}})
    with pytest.raises(LensnetConfigError, match="devices = 'many': expected one of 'auto' or a value in"):
        Outer.from_dict({"devices": "many"})
    assert Outer.from_dict({"devices": 4}).devices == 4


def test_file_errors_start_with_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[inner]\ncount = 0\n")
    with pytest.raises(LensnetConfigError) as info:
        load_config_file(Outer, path)
    assert str(info.value) == f"{path}: inner.count = 0: expected a value in [1, inf)"
    path.write_text("[inner\n")
    with pytest.raises(LensnetConfigError, match="cannot parse"):
        load_config_file(Outer, path)


def test_describe_and_range():
    assert Inner.describe() == {"probability": "chance", "width_range": "widths", "count": "how many"}
    assert Inner.field_range("count") == "a value in [1, inf)"
