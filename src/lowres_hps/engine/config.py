"""YAML configs as typed, nested dataclasses: the one config system of the project.

``load_config(path_or_dict, cls, overrides)`` builds ``cls`` from YAML (or a dict), checks that
every key is known, converts values to the annotated types and applies ``"a.b=value"`` overrides
(values parsed with ``yaml.safe_load``). ``dump_config(cfg)`` gives back plain YAML-safe data.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

__all__ = [
    "OptimConfig",
    "TrainerConfig",
    "TrainConfig",
    "load_config",
    "dump_config",
    "save_config",
    "parse_override",
]

T = TypeVar("T")
_NONE_TYPE = type(None)


# ---------------------------------------------------------------------------------------------
# Training configs


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule. The schedule is applied per optimizer step."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = 0  # linear warm-up from warmup_start_factor * lr to lr
    warmup_start_factor: float = 0.001
    min_lr_factor: float = 0.0  # cosine: final lr = min_lr_factor * lr
    milestones: tuple[int, ...] = ()  # step: epochs at which lr is multiplied by gamma
    gamma: float = 0.1  # step

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr must be > 0", self.lr)
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0", self.weight_decay)
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0", self.warmup_steps)
        _check(0 < self.warmup_start_factor <= 1, "optim.warmup_start_factor must be in (0, 1]",
               self.warmup_start_factor)
        _check(0 <= self.min_lr_factor <= 1, "optim.min_lr_factor must be in [0, 1]", self.min_lr_factor)
        _check(list(self.milestones) == sorted(self.milestones), "optim.milestones must be increasing", self.milestones)


@dataclass
class TrainerConfig:
    """What the shared training loop needs; the model and data come from the task."""

    out_dir: str = "runs/default"  # run folder: config.yaml, metrics.csv, last.pt, model.safetensors
    epochs: int = 1
    batch_size: int = 32  # GLOBAL batch size, split evenly over the processes
    num_workers: int = 0
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    shuffle: bool = True
    drop_last: bool = True
    optim: OptimConfig = field(default_factory=OptimConfig)
    amp: bool = False  # autocast: bfloat16 on CPU, float16 (+ GradScaler) on CUDA
    channels_last: bool = False  # NHWC weights: ~2x faster MobileNet steps on AVX-512 CPUs (benchmarks/)
    grad_clip: float | None = None  # max global gradient norm
    log_every: int = 10  # steps between metrics.csv rows
    ckpt_every_steps: int = 0  # 0: a checkpoint at the end of each epoch only
    val_every_epochs: int = 1  # 0: no validation
    progress_bar: bool = True  # shown only on rank 0 and when stderr is a terminal
    device: Literal["auto", "cpu", "cuda"] = "auto"
    find_unused_parameters: bool = False  # DistributedDataParallel option

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "trainer.epochs must be >= 0", self.epochs)
        _check(self.batch_size > 0, "trainer.batch_size must be > 0", self.batch_size)
        _check(self.num_workers >= 0, "trainer.num_workers must be >= 0", self.num_workers)
        _check(self.log_every > 0, "trainer.log_every must be > 0", self.log_every)
        _check(self.ckpt_every_steps >= 0, "trainer.ckpt_every_steps must be >= 0", self.ckpt_every_steps)
        _check(self.val_every_epochs >= 0, "trainer.val_every_epochs must be >= 0", self.val_every_epochs)
        _check(self.grad_clip is None or self.grad_clip > 0, "trainer.grad_clip must be > 0 or null", self.grad_clip)


@dataclass
class TrainConfig:
    """A training run: which task to build (``"package.module:function"`` and its keyword
    arguments) and how to train it."""

    task: str
    task_args: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        _check(":" in self.task, "task must be 'package.module:function' (or 'path/file.py:function')", self.task)


def _check(ok: bool, message: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Loading


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
        with open(path, encoding="utf-8") as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise ValueError(f"invalid YAML in {where}: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: the top level must be a mapping, got {type(data).__name__}")
        data = _deep_copy_mapping(data)
    for override in overrides:
        key_path, value = parse_override(override)
        _set_by_path(data, key_path, value, cls, f"override {override!r}")
    if overrides:
        where = f"{where} (with overrides {list(overrides)})"
    return _convert(data, cls, "", where)


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


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` converted to the annotated type ``tp``; ``key`` is its dotted path (for errors)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any or tp is object:
        return value
    if origin is Union or isinstance(tp, types.UnionType):
        if value is None and _NONE_TYPE in args:
            return None
        errors = []
        for option in args:
            if option is _NONE_TYPE:
                continue
            try:
                return _convert(value, option, key, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else _type_error(value, tp, key, where))
    if origin is Literal:
        for option in args:
            if value == option and type(value) is type(option):
                return option
        raise ValueError(f"{_name(key)} in {where} must be one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(value, tp, key, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, tp, key, where)
    if tp is int:
        if isinstance(value, bool):
            raise _type_error(value, tp, key, where)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _type_error(value, tp, key, where) from None
            if number.is_integer():
                return int(number)
        raise _type_error(value, tp, key, where)
    if tp is float:
        if isinstance(value, bool):
            raise _type_error(value, tp, key, where)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(value, tp, key, where)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _type_error(value, tp, key, where)
    if tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise _type_error(value, tp, key, where)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, tp, key, where)
        container = tuple if (origin or tp) is tuple else list
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValueError(f"{_name(key)} in {where} must have {len(args)} items, got {len(value)}: {value!r}")
            return tuple(_convert(v, a, f"{key}[{i}]", where) for i, (v, a) in enumerate(zip(value, args)))
        item_type = args[0] if args else Any
        return container(_convert(v, item_type, f"{key}[{i}]", where) for i, v in enumerate(value))
    if _is_mapping_type(tp):
        if not isinstance(value, Mapping):
            raise _type_error(value, tp, key, where)
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {
            _convert(k, key_type, f"{key}.{k}" if key else str(k), where):
            _convert(v, value_type, f"{key}.{k}" if key else str(k), where)
            for k, v in value.items()
        }
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _type_error(value, tp, key, where)
    raise TypeError(f"unsupported annotation {tp!r} for {_name(key)}")


def _build_dataclass(value: Any, cls: type, key: str, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{_name(key)} in {where} must be a mapping, got {type(value).__name__}: {value!r}")
    hints = _field_types(cls)
    for name in value:
        if name not in hints:
            dotted = f"{key}.{name}" if key else str(name)
            raise ValueError(f"unknown key {dotted!r} in {where}{_suggest(str(name), hints)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        dotted = f"{key}.{f.name}" if key else f.name
        if f.name in value:
            kwargs[f.name] = _convert(value[f.name], hints[f.name], dotted, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"missing required key {dotted!r} in {where}")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ checks
        raise ValueError(f"{where}: {exc}") from None


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) is Union or isinstance(tp, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not _NONE_TYPE]
        if len(options) == 1:
            return options[0]
    return tp


def _is_mapping_type(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _type_error(value: Any, tp: Any, key: str, where: str) -> ValueError:
    type_name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    return ValueError(f"{_name(key)} in {where} must be {type_name}, got {type(value).__name__}: {value!r}")


def _name(key: str) -> str:
    return f"key {key!r}" if key else "the config"


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
