"""YAML configs as typed, nested dataclasses: the one config system of the project.

``load_config(path_or_dict, cls, overrides)`` builds ``cls`` from YAML (or a dict), checks that every key
is known, converts values to the annotated types and applies ``"a.b=value"`` overrides (values parsed with
``yaml.safe_load``). ``dump_config(cfg)`` gives back plain YAML-safe data.

Type checking and nested construction are dacite's (``strict``, with casts to tuples and paths); this
module adds what dacite does not do: unknown keys reported by their dotted path with the closest known
key, numbers that PyYAML read as strings (``1e-4``), overrides, and messages that name the file.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

import dacite
import yaml

__all__ = ["load_config", "dump_config", "save_config", "parse_override"]

T = TypeVar("T")


class _NotANumber:
    """What a number hook returns for a bool, so that dacite reports the wrong type (bool is an int)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _to_number(kind: type) -> typing.Callable[[Any], Any]:
    """dacite type hook: numbers and numeric strings to ``kind``; anything else is left for dacite to reject."""

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            return _NotANumber(value)
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value
        if not isinstance(number, (int, float)):
            return value
        if kind is int:
            return int(number) if float(number).is_integer() else value
        return float(number)

    return convert


def _to_text(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


_DACITE = dacite.Config(strict=True, cast=[tuple, Path],
                        type_hooks={int: _to_number(int), float: _to_number(float), str: _to_text})


def load_config(
    source: str | os.PathLike | Mapping[str, Any],
    cls: type[T],
    overrides: Sequence[str] = (),
) -> T:
    """Build the dataclass ``cls`` from a YAML file (or a mapping) plus ``"a.b=value"`` overrides.

    Unknown keys and values of the wrong type raise ``ValueError`` naming the key and the file;
    a missing file raises ``FileNotFoundError``. Numbers written as strings (PyYAML reads ``1e-4``
    as a string) are converted to the annotated ``int``/``float``.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"cls must be a dataclass type, got {cls!r}")
    if isinstance(source, Mapping):
        where, data = "<dict>", _deep_copy_mapping(source)
    else:
        where = os.fspath(source)
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {where}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid YAML in {where}: {exc}") from None
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
        data = _deep_copy_mapping(data)
    for override in overrides:
        key_path, value = parse_override(override)
        _set_by_path(data, key_path, value, cls, f"override {override!r}")
    if overrides:
        where = f"{where} (with overrides {list(overrides)})"
    _check_keys(data, cls, "", where)
    try:
        return dacite.from_dict(cls, data, config=_DACITE)
    except dacite.MissingValueError as exc:
        raise ValueError(f"missing required key {exc.field_path!r} in {where}") from None
    except dacite.WrongTypeError as exc:
        raise ValueError(f"key {exc.field_path!r} in {where} must be {_type_name(exc.field_type)}, "
                         f"got {type(getattr(exc.value, 'value', exc.value)).__name__}: {exc.value!r}") from None
    except ValueError as exc:  # __post_init__ checks
        raise ValueError(f"{where}: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> ``(["a", "b"], yaml.safe_load("value"))``."""
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ValueError(f"override must look like 'key.subkey=value', got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # e.g. an unquoted string with a colon; kept verbatim
    return keys, value


def _set_by_path(data: dict, keys: list[str], value: Any, cls: type, where: str) -> None:
    """Set ``data[k0][k1]... = value``, checking each key against the dataclass schema."""
    tp: Any = cls
    node = data
    for depth, key in enumerate(keys):
        dotted = ".".join(keys[: depth + 1])
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            hints = _field_types(tp)
            if key not in hints:
                raise ValueError(f"unknown key {dotted!r} in {where}{_suggest(key, hints)}")
            tp = hints[key]
        elif _is_mapping_type(tp):
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else Any
        elif tp is not Any:
            raise ValueError(f"{dotted!r} in {where}: {'.'.join(keys[:depth])!r} is not a mapping")
        if depth == len(keys) - 1:
            node[key] = value
        else:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child


def _check_keys(data: Any, cls: type, prefix: str, where: str) -> None:
    """``ValueError`` naming the first key of ``data`` (by its dotted path) that ``cls`` does not have."""
    if not isinstance(data, Mapping):
        return  # dacite reports the wrong type
    hints = _field_types(cls)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise ValueError(f"unknown key {dotted!r} in {where}{_suggest(str(key), hints)}")
        inner = _strip_optional(hints[key])
        if dataclasses.is_dataclass(inner):
            _check_keys(value, inner, f"{dotted}.", where)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) is Union or isinstance(tp, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return tp


def _is_mapping_type(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _suggest(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (known keys: {', '.join(known)}){hint}"


def _deep_copy_mapping(data: Mapping) -> dict:
    return {k: _deep_copy_mapping(v) if isinstance(v, Mapping) else v for k, v in data.items()}


# ---------------------------------------------------------------------------------------------
# Dumping


def dump_config(cfg: Any) -> Any:
    """Plain YAML/JSON-safe data (dicts, lists, str, numbers, bools, None) of a config dataclass.

    ``load_config(dump_config(cfg), type(cfg)) == cfg``.
    """
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: dump_config(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {k: dump_config(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [dump_config(v) for v in cfg]
    if isinstance(cfg, os.PathLike):
        return os.fspath(cfg)
    return cfg


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write ``dump_config(cfg)`` as YAML (keys in declaration order)."""
    text = yaml.safe_dump(dump_config(cfg), sort_keys=False, default_flow_style=None)
    Path(path).write_text(text, encoding="utf-8")
