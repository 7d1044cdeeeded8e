"""MPII json-list reader."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.io

from lowres_hps.data import DatasetFileError, MpiiReader
from lowres_hps.data.mpii import MPII_HEAD_SIZE_FACTOR


def _entry(image="000001.jpg", offset=0.0, **fields):
    joints = (np.arange(32, dtype=float).reshape(16, 2) * 10 + 100 + offset).tolist()
    return {"image": image, "joints": joints, "joints_vis": [1] * 16, "center": [200.0, 150.0], "scale": 1.5,
            **fields}


def _write(tmp_path, entries, name="mpii_val.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def test_one_based_coordinates_box_and_visibility(tmp_path):
    entry = _entry()
    entry["joints_vis"][0] = 0
    entry["joints"][0] = [-1.0, -1.0]
    sample = MpiiReader(_write(tmp_path, [entry]))[0]
    assert sample.convention == "mpii16" and sample.dataset == "mpii"
    assert sample.image_path == tmp_path / "000001.jpg" and sample.image_id == "000001.jpg"
    np.testing.assert_array_equal(sample.keypoints2d[0], [0, 0, 0])
    np.testing.assert_allclose(sample.keypoints2d[1], [120 - 1, 130 - 1, 2])  # MATLAB 1-based -> 0-based
    assert (sample.keypoints2d[1:, 2] == 2).all()
    # centre (200, 150) -> 0-based (199, 149), moved down 15 * scale; square of side scale * 200
    side = 1.5 * 200
    np.testing.assert_allclose(sample.bbox, [199 - side / 2, 149 + 22.5 - side / 2, side, side])
    np.testing.assert_allclose(sample.extra["center"], [200, 150])
    assert sample.extra["scale"] == pytest.approx(1.5)


def test_head_size_from_head_top_and_neck(tmp_path):
    entry = _entry()
    entry["joints"][8] = [100.0, 100.0]
    entry["joints"][9] = [103.0, 104.0]
    sample = MpiiReader(_write(tmp_path, [entry]))[0]
    assert sample.extra["head_size"] == pytest.approx(5.0)
    assert sample.extra["head_size_source"] == "head_top-neck"
    entry["joints_vis"][9] = 0
    assert "head_size" not in MpiiReader(_write(tmp_path, [entry]))[0].extra


def test_head_size_from_head_boxes(tmp_path):
    path = _write(tmp_path, [_entry(), _entry(offset=50)])
    # headboxes_src[0] = top-left (x, y) per person, headboxes_src[1] = bottom-right (mpii_gt_val.mat layout).
    boxes = np.zeros((2, 2, 2))
    boxes[0, :, 0], boxes[1, :, 0] = [11, 21], [41, 61]
    boxes[0, :, 1], boxes[1, :, 1] = [1, 1], [7, 9]
    scipy.io.savemat(tmp_path / "mpii_gt_val.mat", {"headboxes_src": boxes})
    reader = MpiiReader(path, head_boxes=tmp_path / "mpii_gt_val.mat")
    np.testing.assert_allclose(reader[0].extra["head_box"], [10, 20, 40, 60])
    assert reader[0].extra["head_size"] == pytest.approx(MPII_HEAD_SIZE_FACTOR * 50.0)
    assert reader[1].extra["head_size"] == pytest.approx(MPII_HEAD_SIZE_FACTOR * 10.0)
    assert reader[1].extra["head_size_source"] == "head_box"
    scipy.io.savemat(tmp_path / "three.mat", {"headboxes_src": np.zeros((2, 2, 3))})
    with pytest.raises(DatasetFileError, match=r"three.mat.*\(2, 2, 2\)"):
        MpiiReader(path, head_boxes=tmp_path / "three.mat")


def test_bad_entries_are_reported_and_skipped(tmp_path, caplog):
    short = _entry()
    short["joints"], short["joints_vis"] = short["joints"][:15], short["joints_vis"][:15]
    nan = _entry()
    nan["joints"][3][1] = float("nan")
    entries = [_entry(), short, _entry(center=[-1, -1]), nan, _entry(scale=0.0), {"joints": []},
               _entry(joints_vis=[1] * 15)]
    with caplog.at_level(logging.WARNING):
        reader = MpiiReader(_write(tmp_path, entries))
    assert [s.ann_id for s in reader] == [0]
    reasons = dict(reader.skipped)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "(16, 3)" in reasons[1] and "(15, 3)" in reasons[1]
    assert "center" in reasons[2]
    assert "non-finite" in reasons[3]
    assert "zero size" in reasons[4]
    assert "image" in reasons[5]
    assert "(16, 3)" in reasons[6]
    assert len([r for r in caplog.records if "skipping sample" in r.message]) == 6


def test_check_images_and_default_root(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    path = _write(tmp_path / "annotations", [_entry("a.jpg"), _entry("b.jpg")])
    reader = MpiiReader(path, check_images=True)
    assert reader.image_root == tmp_path / "images"
    assert [s.image_id for s in reader] == ["a.jpg"] and "b.jpg" in reader.skipped[0][1]


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.json"):
        MpiiReader(tmp_path / "gone.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(DatasetFileError, match="broken.json"):
        MpiiReader(tmp_path / "broken.json")
    (tmp_path / "dict.json").write_text("{}")
    with pytest.raises(DatasetFileError, match="dict.json"):
        MpiiReader(tmp_path / "dict.json")
    with pytest.raises(FileNotFoundError, match="boxes.mat"):
        MpiiReader(_write(tmp_path, [_entry()]), head_boxes=tmp_path / "boxes.mat")


@pytest.mark.shared_data
def test_mmpose_mpii_sample(shared_data):
    path = shared_data / "mmpose_testdata" / "mpii" / "test_mpii.json"
    entries = json.loads(path.read_text())
    reader = MpiiReader(path, check_images=True)
    assert len(reader) == len(entries) == 5 and reader.skipped == []
    first = reader[0]
    assert first.image_path.name == "005808361.jpg"
    assert first.load_image().shape == (720, 1280, 3)
    np.testing.assert_allclose(first.keypoints2d[0], [803, 710, 2])  # right ankle (804, 711) 1-based
    # Entry 2 has both ankles unlabelled ((-1, -1) in the json).
    np.testing.assert_array_equal(reader[2].keypoints2d[[0, 5]], 0)
    assert (np.delete(reader[2].keypoints2d[:, 2], [0, 5]) == 2).all()
    head_top, neck = np.array(entries[0]["joints"][9]), np.array(entries[0]["joints"][8])
    assert first.extra["head_size"] == pytest.approx(np.linalg.norm(head_top - neck), rel=1e-5)
    assert first.extra["head_size_source"] == "head_top-neck"
    for sample in reader:
        x, y, w, h = sample.bbox
        points = sample.keypoints2d[sample.keypoints2d[:, 2] > 0, :2]
        assert (points >= [x, y]).all() and (points <= [x + w, y + h]).all()
