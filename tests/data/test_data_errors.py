"""File loaders that name the file, and the per-person checks."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from lowres_hps.data.errors import (
    DatasetFileError,
    bbox_problem,
    keypoints_problem,
    load_json,
    load_mat,
    load_npz,
    require_file,
)


def test_require_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image list not found: .*x.txt"):
        require_file(tmp_path / "x.txt", "image list")
    with pytest.raises(FileNotFoundError, match="folder"):
        require_file(tmp_path)  # a folder is not a file
    (tmp_path / "x.txt").write_text("")
    assert require_file(str(tmp_path / "x.txt")) == tmp_path / "x.txt"


def test_dataset_file_error_is_a_value_error():
    assert issubclass(DatasetFileError, ValueError)  # the CLI reports ValueErrors as one line


def test_load_json(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert load_json(tmp_path / "ok.json") == {"a": [1, 2]}
    (tmp_path / "cut.json").write_text('{"a": [1, ')
    with pytest.raises(DatasetFileError, match="cut.json"):
        load_json(tmp_path / "cut.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetFileError, match="binary.json"):
        load_json(tmp_path / "binary.json")


def test_load_npz(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.arange(3), b=np.array(["x", "y"]))
    data = load_npz(tmp_path / "ok.npz")
    assert sorted(data) == ["a", "b"] and data["a"].tolist() == [0, 1, 2]
    np.savez(tmp_path / "big.npz", a=np.arange(10000))
    blob = (tmp_path / "big.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[: len(blob) - 200])
    with pytest.raises(DatasetFileError, match="cut.npz"):
        load_npz(tmp_path / "cut.npz")
    np.save(tmp_path / "single.npy", np.arange(3))
    with pytest.raises(DatasetFileError, match="single.npy"):
        load_npz(tmp_path / "single.npy")
    np.savez(tmp_path / "objects.npz", a=np.array([{"k": 1}], dtype=object))
    with pytest.raises(DatasetFileError, match="objects.npz"):
        load_npz(tmp_path / "objects.npz")  # pickled objects are refused


def test_load_mat(tmp_path):
    scipy.io.savemat(tmp_path / "ok.mat", {"joints": np.ones((2, 3))})
    assert load_mat(tmp_path / "ok.mat")["joints"].shape == (2, 3)
    (tmp_path / "junk.mat").write_bytes(b"MATLAB junk" * 20)
    with pytest.raises(DatasetFileError, match="junk.mat"):
        load_mat(tmp_path / "junk.mat")
    with pytest.raises(FileNotFoundError, match="no.mat"):
        load_mat(tmp_path / "no.mat")


def test_keypoints_problem():
    good = np.array([[1, 2, 2], [0, 0, 0], [3, 4, 1]], np.float32)
    assert keypoints_problem(good, 3) is None
    assert "(4, 3)" in keypoints_problem(good, 4)
    assert "(3, 2)" in keypoints_problem(good[:, :2], 3)
    nan = good.copy()
    nan[1, 0] = np.nan
    assert "non-finite" in keypoints_problem(nan, 3)
    bad_flag = good.copy()
    bad_flag[0, 2] = 0.5
    assert "0.5" in keypoints_problem(bad_flag, 3)


def test_bbox_problem():
    assert bbox_problem(np.array([0, 0, 1, 2], np.float32)) is None
    assert bbox_problem(np.array([-5, -5, 1, 2], np.float32)) is None  # boxes may start outside the image
    assert "zero size" in bbox_problem(np.array([0, 0, 0, 2], np.float32))
    assert "zero size" in bbox_problem(np.array([0, 0, 3, -1], np.float32))
    assert "non-finite" in bbox_problem(np.array([0, np.inf, 3, 1], np.float32))
    assert "(4,)" in bbox_problem(np.zeros(3, np.float32))
