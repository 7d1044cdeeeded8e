from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from lowres_hps.engine import checkpoint as ckpt


def test_save_and_load_checkpoint_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "step": 7, "nested": {"names": ["a", "b"]}}
    ckpt.save_checkpoint(state, tmp_path / "last.pt")
    loaded = ckpt.load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["step"] == 7 and loaded["nested"] == {"names": ["a", "b"]}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_during_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, error):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)
    old_bytes = path.read_bytes()

    def crashing_save(obj, f):
        f.write(b"PARTIAL" * 100)  # half a file reaches the disk, then the process dies
        f.flush()
        raise error

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(type(error)):
        ckpt.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == old_bytes
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(ValueError):
        with ckpt.atomic_write(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("new but unfinished")
            raise ValueError("boom")
    assert path.read_text() == "old"
    with ckpt.atomic_write(path) as tmp:
        tmp.write_text("new")
        assert path.read_text() == "old"  # not visible before the block ends
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached gaussian in numpy's state
    ckpt.save_checkpoint({"rng": ckpt.capture_rng_state(torch.device("cpu"))}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.standard_normal(3), torch.rand(3))
    random.seed(10)
    np.random.seed(20)
    torch.manual_seed(30)
    ckpt.restore_rng_state(ckpt.load_checkpoint(tmp_path / "rng.pt")["rng"], torch.device("cpu"))
    assert random.random() == expected[0]
    np.testing.assert_array_equal(np.random.standard_normal(3), expected[1])
    assert torch.equal(torch.rand(3), expected[2])


def test_save_and_load_weights_with_metadata(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    config = {"task": "m:f", "trainer": {"epochs": 2}}
    ckpt.save_weights(model, tmp_path / "model.safetensors", {"config": json.dumps(config)})
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    metadata = ckpt.load_weights(other, tmp_path / "model.safetensors")
    assert json.loads(metadata["config"]) == config
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        ckpt.load_weights(other, tmp_path / "nothing.safetensors")


# ---------------------------------------------------------------------------------------------
# Damaged checkpoints and leftovers of killed saves (issue 9)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_checkpoint_is_a_clear_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a checkpoint" * 10}[damage])
    with pytest.raises(ckpt.CheckpointError, match="last.pt") as info:
        ckpt.load_checkpoint(path)
    assert isinstance(info.value, ValueError)  # the CLI reports ValueErrors in one line


def test_save_checkpoint_keeps_the_previous_one(tmp_path):
    path, previous = tmp_path / "last.pt", tmp_path / "previous.pt"
    ckpt.save_checkpoint({"step": 1}, path, previous=previous)
    assert not previous.exists()  # nothing to keep yet
    ckpt.save_checkpoint({"step": 2}, path, previous=previous)
    ckpt.save_checkpoint({"step": 3}, path, previous=previous)
    assert ckpt.load_checkpoint(path)["step"] == 3 and ckpt.load_checkpoint(previous)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "previous.pt"]


def test_remove_stale_temporaries_removes_only_leftovers_of_the_named_files(tmp_path):
    leftover = tmp_path / ".last.pt.k3j2h1.tmp"
    leftover.write_bytes(b"x" * 1000)
    others = [tmp_path / "last.pt", tmp_path / ".other.pt.abc.tmp", tmp_path / "notes.tmp"]
    for path in others:
        path.write_bytes(b"keep")
    removed = ckpt.remove_stale_temporaries(tmp_path, ["last.pt", "model.safetensors"])
    assert removed == [(leftover, 1000)]
    assert not leftover.exists() and all(p.exists() for p in others)
