"""YAML to dataclasses: nested types, conversions, unknown keys and wrong types named with the file, dumping."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from lowres_hps.core.config import dump_config, load_config, parse_override, save_config


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
        ({"required": 1, "widths": [1, "x"]}, "widths"),  # dacite names the list; the message shows it whole
        ({"required": 1, "inner": 3}, "inner"),
        ({"required": 1, "limit": "many"}, "limit"),
        ({"required": 1, "inner": {"name": False}}, "inner.name"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(ValueError, match=f"'{key}'"):
        load_config(data, Outer)


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml", Outer)
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- 1\n- 2\n"), Outer)


def test_parse_override_uses_yaml_values():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a='3'") == (["a"], "3")


def test_defaults_dict_source_and_missing_required_key(tmp_path):
    assert load_config({"required": 1}, Outer) == Outer(required=1)
    with pytest.raises(ValueError, match="missing required key 'required'") as info:
        load_config(_write(tmp_path, {"ratio": 1.0}), Outer)
    assert str(tmp_path) in str(info.value)


def test_dump_and_reload_round_trip(tmp_path):
    outer = Outer(required=2, maybe=Inner(), path=Path("a/b"), scales=(1.0, 2.0))
    dumped = dump_config(outer)
    assert dumped["scales"] == [1.0, 2.0] and dumped["path"] == "a/b"  # plain YAML data
    assert load_config(dumped, Outer) == outer
    save_config(outer, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml", Outer) == outer
