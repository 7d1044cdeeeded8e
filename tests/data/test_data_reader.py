"""The reader base class and the default image folder."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from lowres_hps.data import READERS, PersonReader, open_reader
from lowres_hps.data.reader import default_image_root
from lowres_hps.data.sample import PersonSample


class _ListReader(PersonReader):
    """A reader over in-memory (keypoints, bbox) pairs."""

    dataset = "toy"

    def __init__(self, people, image_root, check_images=False):
        super().__init__("lsp14", image_root, check_images)
        for index, (keypoints, bbox) in enumerate(people):
            if self._accept(index, keypoints, bbox, self.image_root / f"{index}.jpg"):
                self._handles.append((index, keypoints, bbox))

    def _load(self, handle):
        index, keypoints, bbox = handle
        return PersonSample(self.image_root / f"{index}.jpg", bbox, keypoints, self.convention, ann_id=index)


def _good():
    return np.zeros((14, 3), np.float32), np.array([0, 0, 10, 20], np.float32)


def test_sequence_protocol_and_skips(tmp_path, caplog):
    bad = (np.zeros((13, 3), np.float32), np.array([0, 0, 10, 20], np.float32))
    with caplog.at_level(logging.WARNING, logger="lowres_hps.data.reader"):
        reader = _ListReader([_good(), bad, _good()], tmp_path)
    assert len(reader) == 2 and reader.num_keypoints == 14 and reader.convention == "lsp14"
    assert [s.ann_id for s in reader] == [0, 2]
    assert reader[-1].ann_id == 2 and reader[1].ann_id == 2
    with pytest.raises(IndexError):
        reader[2]
    with pytest.raises(IndexError):
        reader[-3]
    assert reader.skipped == [(1, "expected (14, 3) keypoints, got shape (13, 3)")]
    assert "toy: skipping sample 1" in caplog.text
    assert "2 samples, 1 skipped" in repr(reader)


def test_a_fixed_random_subset_keeps_order_and_is_the_same_every_time(tmp_path):
    def subset(n):
        return [sample.ann_id for sample in _ListReader([_good()] * 10, tmp_path).keep_random_subset(n)]

    assert subset(4) == subset(4) and len(subset(4)) == 4 and subset(4) == sorted(subset(4))
    assert subset(40) == list(range(10))
    with pytest.raises(ValueError, match="max_people"):
        subset(0)


def test_check_images(tmp_path):
    (tmp_path / "1.jpg").write_bytes(b"")
    reader = _ListReader([_good(), _good()], tmp_path, check_images=True)
    assert [s.ann_id for s in reader] == [1]
    assert reader.skipped[0][0] == 0 and "0.jpg" in reader.skipped[0][1]


def test_default_image_root(tmp_path):
    ann = tmp_path / "annotations" / "person_keypoints_val2017.json"
    ann.parent.mkdir()
    assert default_image_root(ann, "val2017") == ann.parent  # nothing exists: the file's folder
    (tmp_path / "images").mkdir()
    assert default_image_root(ann, "val2017") == tmp_path / "images"
    (tmp_path / "val2017").mkdir()
    assert default_image_root(ann, "val2017") == tmp_path / "val2017"
    flat = tmp_path / "lsp" / "joints.mat"
    flat.parent.mkdir()
    assert default_image_root(flat) == flat.parent
    (flat.parent / "images").mkdir()
    assert default_image_root(flat) == flat.parent / "images"


def test_open_reader(tmp_path):
    assert sorted(READERS) == ["coco", "crowdpose", "lsp", "mpii", "ochuman", "spin", "synthlr"]
    with pytest.raises(ValueError, match="unknown dataset format 'voc'"):
        open_reader("voc", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="x.mat"):
        open_reader("lsp", tmp_path / "x.mat")
