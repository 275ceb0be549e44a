"""Configuration files: YAML or TOML in, validated dataclasses out.

Every command's configuration is a (possibly nested) dataclass with typed defaults. :func:`from_dict`
builds one from a mapping, rejecting unknown fields and wrong types with a
:class:`~lensnet.errors.LensnetConfigError` that names the dotted field path (``observation.psf.prob``);
range checks live in each dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lensnet.errors import LensnetConfigError, LensnetIOError

__all__ = ["read_config_file", "from_dict", "to_dict", "load_dataclass"]

T = TypeVar("T")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml, .yml) or TOML (.toml) file into a dict, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LensnetIOError(f"configuration file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise LensnetConfigError(f"{path}: unknown configuration format {path.suffix!r}; use .yaml, .yml or .toml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise LensnetConfigError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise LensnetConfigError(f"{path}: the top level must be a mapping of field names to values")
    return data


def _check_type(value, annotation, where: str):
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, dict):
            raise LensnetConfigError(f"{where}: expected a mapping of fields, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, option, where)
            except LensnetConfigError as exc:
                errors.append(str(exc))
        raise LensnetConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {annotation}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise LensnetConfigError(f"{where}: {value!r} is not one of {allowed}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise LensnetConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise LensnetConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise LensnetConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LensnetConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LensnetConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise LensnetConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise LensnetConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown fields and wrong types name their dotted path."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    prefix = f"{where}." if where else ""
    if unknown:
        raise LensnetConfigError(
            f"unknown configuration field {prefix}{unknown[0]}; known fields here: {', '.join(sorted(known))}")
    kwargs = {name: _check_type(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except LensnetConfigError as exc:
        raise LensnetConfigError(f"{prefix}{exc}" if prefix and not str(exc).startswith(prefix) else str(exc)) from None


def to_dict(obj) -> dict[str, Any]:
    """A plain dict (tuples as lists) suitable for YAML, TOML, JSON or HDF5 attributes."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(obj)


def load_dataclass(cls: type[T], path: str | Path) -> T:
    """Read a YAML/TOML file and build ``cls`` from it."""
    return from_dict(cls, read_config_file(path))
