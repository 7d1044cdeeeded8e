"""LSP / LSP-extended joints.mat reader."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.io

from lowres_hps.data import DatasetFileError, LspReader
from lowres_hps.data.lsp import bbox_from_keypoints


def _people(count: int) -> np.ndarray:
    """(count, 14, 2) joints spread over a 100 x 200 px box at an offset per person."""
    rng = np.random.default_rng(0)
    xy = rng.uniform([0, 0], [100, 200], size=(count, 14, 2))
    xy[:, 0] = [0, 0]
    xy[:, 13] = [100, 200]  # fixes the extent: (0, 0) to (100, 200)
    return xy + np.arange(count)[:, None, None] * 10


def _write_lsp(path, xy, occluded):
    """Original LSP layout: (3, 14, N), third row 1 = occluded."""
    joints = np.concatenate([xy, occluded[..., None].astype(float)], axis=2).transpose(2, 1, 0)
    scipy.io.savemat(path, {"joints": joints})
    return path


def _write_lspet(path, xy, visible):
    """LSP-extended layout: (14, 3, N), third column 1 = visible."""
    joints = np.concatenate([xy, visible[..., None].astype(float)], axis=2).transpose(1, 2, 0)
    scipy.io.savemat(path, {"joints": joints})
    return path


def test_bbox_from_keypoints():
    keypoints = np.array([[10, 20, 2], [30, 60, 1], [500, 500, 0]], np.float32)
    np.testing.assert_allclose(bbox_from_keypoints(keypoints, enlarge=1.0), [10, 20, 20, 40])
    np.testing.assert_allclose(bbox_from_keypoints(keypoints, enlarge=1.5), [5, 10, 30, 60])
    np.testing.assert_array_equal(bbox_from_keypoints(keypoints[2:]), np.zeros(4))


def test_lsp_original_visibility_is_inverted(tmp_path):
    xy = _people(3)
    occluded = np.zeros((3, 14), bool)
    occluded[1, 4] = True
    reader = LspReader(_write_lsp(tmp_path / "joints.mat", xy, occluded))
    assert reader.variant == "lsp" and len(reader) == 3
    sample = reader[1]
    assert sample.image_path == tmp_path / "im0002.jpg"  # 4-digit names, 1-based
    assert sample.keypoints2d[4, 2] == 1  # flagged 1: labelled but occluded, position kept
    np.testing.assert_allclose(sample.keypoints2d[4, :2], xy[1, 4], rtol=1e-6)
    assert (np.delete(sample.keypoints2d[:, 2], 4) == 2).all()
    assert sample.convention == "lsp14" and sample.dataset == "lsp"
    # extent (10, 10) to (110, 210) enlarged 1.2 about its centre (60, 110)
    np.testing.assert_allclose(sample.bbox, [0, -10, 120, 240], atol=1e-4)


def test_lspet_invisible_joints_become_unlabelled(tmp_path):
    xy = _people(2)
    visible = np.ones((2, 14), bool)
    visible[0, 3] = False
    xy[0, 3] = [0, -26.1]  # LSPET puts unannotated joints outside the image
    reader = LspReader(_write_lspet(tmp_path / "joints.mat", xy, visible))
    assert reader.variant == "lspet" and reader.dataset == "lspet"
    sample = reader[0]
    assert sample.image_path == tmp_path / "im00001.jpg"  # 5-digit names
    np.testing.assert_array_equal(sample.keypoints2d[3], [0, 0, 0])
    assert (np.delete(sample.keypoints2d[:, 2], 3) == 2).all()
    # The (0, -26.1) placeholder is not part of the box: extent (0, 0)-(100, 200), enlarged 1.2.
    np.testing.assert_allclose(sample.bbox, [-10, -20, 120, 240], atol=1e-4)


def test_indices_select_and_order(tmp_path):
    path = _write_lspet(tmp_path / "joints.mat", _people(5), np.ones((5, 14), bool))
    reader = LspReader(path, indices=range(3))
    assert [s.ann_id for s in reader] == [0, 1, 2]
    assert [s.image_path.name for s in LspReader(path, indices=[4, 3])] == ["im00005.jpg", "im00004.jpg"]
    with pytest.raises(IndexError, match="joints.mat"):
        LspReader(path, indices=[5])


def test_bad_people_are_reported_and_skipped(tmp_path, caplog):
    xy = _people(4)
    visible = np.ones((4, 14), bool)
    xy[1, 2, 0] = np.nan
    visible[2, 1:] = False  # a single labelled joint: zero-size box
    with caplog.at_level(logging.WARNING):
        reader = LspReader(_write_lspet(tmp_path / "joints.mat", xy, visible))
    assert [s.ann_id for s in reader] == [0, 3]
    reasons = dict(reader.skipped)
    assert "non-finite" in reasons[1] and "zero size" in reasons[2]
    assert len([r for r in caplog.records if "skipping sample" in r.message]) == 2


def test_nan_visibility_flag_is_reported_not_hidden(tmp_path):
    xy = _people(2)
    joints = np.concatenate([xy, np.ones((2, 14, 1))], axis=2).transpose(1, 2, 0)
    joints[5, 2, 1] = np.nan
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    reader = LspReader(tmp_path / "joints.mat")
    assert [key for key, _ in reader.skipped] == [1]


def test_check_images(tmp_path):
    path = _write_lspet(tmp_path / "joints.mat", _people(2), np.ones((2, 14), bool))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "im00002.jpg").write_bytes(b"")
    reader = LspReader(path, check_images=True)
    assert reader.image_root == tmp_path / "images"
    assert [s.ann_id for s in reader] == [1]
    assert "im00001.jpg" in reader.skipped[0][1]


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.mat"):
        LspReader(tmp_path / "absent.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DatasetFileError, match="junk.mat"):
        LspReader(tmp_path / "junk.mat")
    scipy.io.savemat(tmp_path / "other.mat", {"points": np.zeros((14, 3, 2))})
    with pytest.raises(DatasetFileError, match="other.mat.*'points'"):
        LspReader(tmp_path / "other.mat")
    scipy.io.savemat(tmp_path / "shape.mat", {"joints": np.zeros((16, 3, 2))})
    with pytest.raises(DatasetFileError, match=r"shape.mat.*\(16, 3, 2\)"):
        LspReader(tmp_path / "shape.mat")


@pytest.mark.shared_data
def test_lspet_400(shared_data):
    path = shared_data / "lspet_400" / "joints.mat"
    joints = scipy.io.loadmat(path)["joints"]
    reader = LspReader(path, check_images=True)
    assert reader.variant == "lspet" and len(reader) == 400 and reader.skipped == []
    labelled = np.stack([s.keypoints2d[:, 2] for s in reader])
    assert set(np.unique(labelled)) == {0.0, 2.0}
    assert int((labelled == 0).sum()) == int((joints[:, 2, :] == 0).sum()) == 734

    first = reader[0]
    assert first.image_path == shared_data / "lspet_400" / "images" / "im00001.jpg"
    np.testing.assert_array_equal(first.keypoints2d[0], [0, 0, 0])  # (0, -26.11) in the file, flag 0
    np.testing.assert_allclose(first.keypoints2d[1], [26.03, 86.41, 2], atol=0.01)
    assert first.load_image().shape == (105, 157, 3)
    for sample in reader:
        x, y, w, h = sample.bbox
        points = sample.keypoints2d[sample.keypoints2d[:, 2] > 0, :2]
        assert (points >= [x, y]).all() and (points <= [x + w, y + h]).all()

    train = LspReader(path, indices=range(300))
    assert len(train) == 300 and train[-1].image_path.name == "im00300.jpg"
