"""The training configs read through core.config: defaults, suggestions, overrides, checks, round trip."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lowres_hps.core.config import dump_config, load_config, save_config
from lowres_hps.engine.config import OptimConfig, TrainConfig, TrainerConfig


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_defaults_and_dict_source():
    assert load_config({"task": "m:f"}, TrainConfig).trainer == TrainerConfig()


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = _write(tmp_path, {"task": "m:f", "trainer": {"optim": {"lrr": 0.1}}})
    with pytest.raises(ValueError, match=r"'trainer.optim.lrr'.*did you mean 'lr'"):
        load_config(path, TrainConfig)


def test_missing_required_key(tmp_path):
    with pytest.raises(ValueError, match="missing required key 'task'"):
        load_config({}, TrainConfig)


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

