from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from lowres_hps.engine.config import (
    OptimConfig,
    TrainConfig,
    TrainerConfig,
    dump_config,
    load_config,
    parse_override,
    save_config,
)


@dataclass
class Inner:
    size: tuple[int, int] = (64, 48)
    name: str = "inner"


@dataclass
class Outer:
    required: int
    ratio: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    widths: list[int] = field(default_factory=lambda: [1, 2])
    scales: tuple[float, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)
    maybe: Optional[Inner] = None
    inner: Inner = field(default_factory=Inner)
    path: Path = Path(".")
    limit: int | None = None


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_nested_dataclasses_and_type_conversion(tmp_path):
    path = _write(tmp_path, """
required: "3"
ratio: 1e-4          # PyYAML reads this as a string
flag: true
mode: b
widths: [4, 5.0]
scales: [1, 2.5]
weights: {kp: 2}
maybe: {size: [32, 24]}
inner: {name: 7}
path: runs/x
limit: 8
""")
    cfg = load_config(path, Outer)
    assert cfg == Outer(
        required=3, ratio=1e-4, flag=True, mode="b", widths=[4, 5], scales=(1.0, 2.5), weights={"kp": 2.0},
        maybe=Inner(size=(32, 24)), inner=Inner(name="7"), path=Path("runs/x"), limit=8,
    )
    assert type(cfg.ratio) is float and type(cfg.widths[1]) is int and type(cfg.weights["kp"]) is float
    assert isinstance(cfg.maybe, Inner) and cfg.maybe.name == "inner"  # defaults of nested dataclasses kept


def test_defaults_and_dict_source():
    cfg = load_config({"required": 1}, Outer)
    assert cfg == Outer(required=1)
    assert load_config({"task": "m:f"}, TrainConfig).trainer == TrainerConfig()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"required": 1, "ratioo": 2.0}, "'ratioo'"),
        ({"required": 1, "inner": {"sise": [1, 2]}}, "'inner.sise'"),
        ({"required": 1, "maybe": {"nam": "x"}}, "'maybe.nam'"),
    ],
)
def test_unknown_key_names_the_key_and_the_file(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match="unknown key") as info:
        load_config(path, Outer)
    assert message in str(info.value) and str(path) in str(info.value)


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = _write(tmp_path, {"task": "m:f", "trainer": {"optim": {"lrr": 0.1}}})
    with pytest.raises(ValueError, match=r"'trainer.optim.lrr'.*did you mean 'lr'"):
        load_config(path, TrainConfig)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"required": "three"}, "required"),
        ({"required": 1.5}, "required"),
        ({"required": True}, "required"),
        ({"required": 1, "flag": "yes please"}, "flag"),
        ({"required": 1, "flag": 1}, "flag"),
        ({"required": 1, "mode": "c"}, "mode"),
        ({"required": 1, "inner": {"size": [1, 2, 3]}}, "inner.size"),
        ({"required": 1, "widths": [1, "x"]}, r"widths\[1\]"),
        ({"required": 1, "inner": 3}, "inner"),
        ({"required": 1, "limit": "many"}, "limit"),
        ({"required": 1, "inner": {"name": False}}, "inner.name"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        load_config(data, Outer)


def test_missing_required_key(tmp_path):
    with pytest.raises(ValueError, match="missing required key 'required'"):
        load_config(_write(tmp_path, {"ratio": 1.0}), Outer)
    with pytest.raises(ValueError, match="missing required key 'task'"):
        load_config({}, TrainConfig)


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml", Outer)
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"), Outer)


def test_overrides(tmp_path):
    path = _write(tmp_path, {"task": "pkg.mod:make", "task_args": {"hidden": 4}, "trainer": {"epochs": 2}})
    cfg = load_config(path, TrainConfig, [
        "trainer.optim.lr=1e-2",
        "trainer.grad_clip=1",
        "trainer.optim.betas=[0.5, 0.9]",
        "task_args.hidden=8",
        "task_args.new.deep=x",
        "trainer.out_dir=runs/a=b",
    ])
    assert cfg.trainer.optim.lr == 0.01
    assert cfg.trainer.grad_clip == 1.0 and isinstance(cfg.trainer.grad_clip, float)
    assert cfg.trainer.optim.betas == (0.5, 0.9)
    assert cfg.task_args == {"hidden": 8, "new": {"deep": "x"}}
    assert cfg.trainer.out_dir == "runs/a=b"
    assert cfg.trainer.epochs == 2  # untouched keys of the file stay
    assert load_config(path, TrainConfig, ["trainer.grad_clip=null"]).trainer.grad_clip is None


def test_bad_overrides(tmp_path):
    path = _write(tmp_path, {"task": "pkg.mod:make"})
    with pytest.raises(ValueError, match=r"unknown key 'trainer.optim.lrr' in override"):
        load_config(path, TrainConfig, ["trainer.optim.lrr=1"])
    with pytest.raises(ValueError, match="key.subkey=value"):
        load_config(path, TrainConfig, ["trainer.epochs"])
    with pytest.raises(ValueError, match="'trainer.epochs'"):
        load_config(path, TrainConfig, ["trainer.epochs=many"])
    with pytest.raises(ValueError, match="not a mapping"):
        load_config(path, TrainConfig, ["trainer.epochs.x=1"])


def test_parse_override_uses_yaml_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a='3'") == (["a"], "3")


def test_post_init_checks_name_the_file(tmp_path):
    path = _write(tmp_path, {"task": "m:f", "trainer": {"batch_size": 0}})
    with pytest.raises(ValueError, match="batch_size must be > 0") as info:
        load_config(path, TrainConfig)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="milestones must be increasing"):
        OptimConfig(milestones=(5, 2))
    with pytest.raises(ValueError, match="package.module:function"):
        TrainConfig(task="no_colon")


def test_dump_and_reload_round_trip(tmp_path):
    cfg = load_config(
        {"task": "m:f", "task_args": {"a": [1, 2]}, "trainer": {"optim": {"milestones": [3, 6]}, "grad_clip": 2.0}},
        TrainConfig,
    )
    dumped = dump_config(cfg)
    assert dumped["trainer"]["optim"]["milestones"] == [3, 6]  # tuples become lists
    assert yaml.safe_load(yaml.safe_dump(dumped)) == dumped  # plain YAML data
    assert load_config(dumped, TrainConfig) == cfg
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml", TrainConfig) == cfg
    outer = Outer(required=2, maybe=Inner(), path=Path("a/b"))
    assert load_config(dump_config(outer), Outer) == outer
