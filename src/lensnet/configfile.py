"""Configuration: typed, declared fields; YAML or TOML files in, validated frozen dataclasses out.

Every configuration of lensnet (simulation, lens prior, sources, each observational effect,
training) is a frozen dataclass deriving from :class:`Config`, its fields declared with
:func:`setting`: type (the annotation), default, allowed range and a one-line help text. The one
mechanism here then does, for all of them:

- construction checks every field's type and range (``__post_init__``), coercing integers given for
  floats and lists given for tuples; a class adds cross-field checks in :meth:`Config.validate`;
- :meth:`Config.from_dict` builds a config from a (partial) mapping over a base config, nested
  configs field by field, and rejects unknown fields;
- :func:`load_config_file` reads a file into it;

and every error is a :class:`~lensnet.errors.LensnetConfigError` that names the file, the dotted
field (``observation.psf.sigma_range``) and the allowed range.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lensnet.errors import LensnetConfigError, LensnetIOError

__all__ = ["Config", "setting", "read_config_file", "load_config_file", "to_dict"]

C = TypeVar("C", bound="Config")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory=None, min: float | None = None,
            max: float | None = None, min_open: bool = False, max_open: bool = False,
            choices: tuple[str, ...] | None = None):
    """A declared config field: its default, one-line help and allowed range (dataclass ``metadata``).

    Parameters
    ----------
    default
        The default value; a dict or list default is copied for every instance.
    help : str
        One line for ``--help`` and :meth:`Config.describe`.
    factory : callable, optional
        Builds the default instead (nested configs: ``setting(factory=LensPrior)``).
    min, max : float, optional
        Bounds of a number, or of both ends of a (low, high) pair; ``min_open``/``max_open`` exclude them.
    choices : tuple of str, optional
        Allowed values when the value is a string (for fields such as ``int | str`` with 'auto').
    """
    meta = {"help": help, "min": min, "max": max, "min_open": min_open, "max_open": max_open, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Config:
    """Base of lensnet's frozen config dataclasses: validated on construction, built from mappings."""

    def __post_init__(self):
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _check_type(getattr(self, f.name), hints[f.name], f.name)
            _check_range(f, value)
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks across fields, beyond each field's type and range; raise LensnetConfigError."""

    @classmethod
    def from_dict(cls: type[C], data: dict, where: str = "", base: C | None = None) -> C:
        """Build from a (partial) mapping: fields left out keep the value of ``base`` [the defaults].

        Nested configs are merged field by field (``{"psf": {"probability": 1}}`` changes one field of
        the PSF); a nested config given as None keeps its base. ``where`` is the dotted path of this
        config inside a larger one, used in error messages.

        Raises
        ------
        LensnetConfigError
            For an unknown field, a wrong type or a value out of range; the message names the field.
        """
        prefix = f"{where}." if where else ""
        if not isinstance(data, dict):
            raise LensnetConfigError(f"{where or cls.__name__}: expected a mapping of fields, got {data!r}")
        base = base if base is not None else cls()
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
                raise LensnetConfigError(f"unknown field {prefix}{name}{hint}; the fields of "
                                         f"{where or cls.__name__} are: {', '.join(known)}")
        hints = _type_hints(cls)
        changes = {}
        for name, value in data.items():
            current, annotation = getattr(base, name), hints[name]
            if isinstance(current, Config) and (value is None or isinstance(value, dict)):
                changes[name] = current if value is None else type(current).from_dict(value, prefix + name, current)
            else:
                changes[name] = _check_type(value, annotation, prefix + name)
        try:
            return dataclasses.replace(base, **changes)
        except LensnetConfigError as exc:
            message = str(exc)
            raise LensnetConfigError(message if message.startswith(prefix) else prefix + message) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (tuples as lists), readable back by :meth:`from_dict`; YAML, TOML, JSON-ready."""
        return to_dict(self)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name to its help text, in declaration order."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def field_range(cls, name: str) -> str:
        """The allowed range of field ``name`` in words ('' when any value of its type is allowed)."""
        return _range_text(next(f for f in dataclasses.fields(cls) if f.name == name))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml, .yml) or TOML (.toml) file into a dict, with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LensnetIOError(f"configuration file not found: {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LensnetIOError(f"cannot read the configuration file {path}: {exc}") from None
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


def load_config_file(cls: type[C], path: str | Path, base: C | None = None, data: dict | None = None) -> C:
    """Build ``cls`` from the file ``path`` over ``base`` [the defaults]; errors start with the file name.

    ``data`` is the file's contents when the caller has already read it (and taken entries out).
    """
    data = read_config_file(path) if data is None else data
    try:
        return cls.from_dict(data, base=base)
    except LensnetConfigError as exc:
        raise LensnetConfigError(f"{path}: {exc}") from None


def to_dict(obj) -> Any:
    """A plain copy of ``obj``: dataclasses as dicts, tuples as lists (YAML, TOML, JSON, HDF5 attributes)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(x) for k, x in obj.items()}
    return obj


@functools.cache
def _type_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_type(value, annotation, where: str):
    """``value`` checked against ``annotation`` (and coerced: int to float, list to tuple), or an error."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if isinstance(annotation, type) and issubclass(annotation, Config):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return annotation.from_dict(value, where)
        raise LensnetConfigError(f"{where}: expected a mapping of fields, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check_type(value, option, where)
            except LensnetConfigError as exc:
                errors.append(str(exc))
        raise LensnetConfigError(errors[0] if len(errors) == 1 else
                                 f"{where} = {value!r}: expected {' or '.join(_type_name(o) for o in options)}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise LensnetConfigError(f"{where} = {value!r}: expected one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise LensnetConfigError(f"{where} = {value!r}: expected a list")
        args = typing.get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise LensnetConfigError(f"{where} = {list(value)!r}: expected {len(args)} values")
            return tuple(_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise LensnetConfigError(f"{where} = {value!r}: expected a mapping of names to values")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LensnetConfigError(f"{where} = {value!r}: expected a finite number")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise LensnetConfigError(f"{where} = {value!r}: expected an integer")
        return int(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise LensnetConfigError(f"{where} = {value!r}: expected true or false")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise LensnetConfigError(f"{where} = {value!r}: expected a string")
        return value
    return value


def _check_range(f: dataclasses.Field, value) -> None:
    meta = f.metadata
    if meta.get("choices") and isinstance(value, str) and value not in meta["choices"]:
        raise LensnetConfigError(f"{f.name} = {value!r}: expected {_range_text(f)}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None and hi is None:
        return
    if isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value):
        if value[0] > value[1] or not all(_in_range(v, meta) for v in value):
            raise LensnetConfigError(f"{f.name} = {list(value)}: expected {_range_text(f)}")
    elif _is_number(value) and not _in_range(value, meta):
        raise LensnetConfigError(f"{f.name} = {value!r}: expected {_range_text(f)}")


def _range_text(f: dataclasses.Field) -> str:
    meta = f.metadata
    lo, hi = meta.get("min"), meta.get("max")
    choices = "one of " + ", ".join(map(repr, meta["choices"])) if meta.get("choices") else ""
    if lo is None and hi is None:
        return choices
    interval = (("(" if meta["min_open"] or lo is None else "[") + ("-inf" if lo is None else f"{lo:g}") + ", "
                + ("inf" if hi is None else f"{hi:g}") + (")" if meta["max_open"] or hi is None else "]"))
    if str(f.type).startswith("tuple"):
        return f"[low, high] with low <= high, both in {interval}"
    return (f"{choices} or " if choices else "") + f"a value in {interval}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(value, meta) -> bool:
    lo, hi = meta.get("min"), meta.get("max")
    ok_lo = lo is None or (value > lo if meta["min_open"] else value >= lo)
    ok_hi = hi is None or (value < hi if meta["max_open"] else value <= hi)
    return ok_lo and ok_hi


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", str(annotation))
