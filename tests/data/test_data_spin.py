"""SPIN-style npz reader and the spin24 convention."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from lowres_hps.body.keypoints import get_convention, get_mapping
from lowres_hps.data import SPIN24, DatasetFileError, SpinNpzReader
from lowres_hps.data.spin import resolve_image_path


def _arrays(count: int = 3, joints: int = 24, imgname=None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    part = np.concatenate([rng.uniform(100, 300, (count, joints, 2)), np.ones((count, joints, 1))], axis=2)
    part[:, -1] = 0  # last joint unlabelled
    S = np.concatenate([rng.normal(0, 0.3, (count, joints, 3)) + [0, 0, 5], np.ones((count, joints, 1))], axis=2)
    return {
        "imgname": np.array(imgname or [f"images/frame_{i:03d}.jpg" for i in range(count)]),
        "center": np.tile([200.0, 150.0], (count, 1)),
        "scale": np.linspace(1.0, 2.0, count),
        "part": part,
        "S": S,
        "pose": rng.normal(0, 0.2, (count, 72)),
        "shape": rng.normal(0, 1, (count, 10)),
    }


def test_spin24_convention_matches_spin():
    assert get_convention("spin24") is SPIN24 and len(SPIN24) == 24
    # SPIN's constants.J24_FLIP_PERM.
    assert SPIN24.flip_permutation == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19,
                                       21, 20, 23, 22]
    # SPIN's J24_TO_J14: the first 14 joints are LSP's, in LSP's order.
    lsp = get_mapping("spin24", "lsp14")
    assert lsp.valid.all() and lsp.source_index.tolist() == list(range(14))
    # Every H36M-17 and MPI-INF-3DHP-17 joint has a spin24 joint of the same name.
    assert get_mapping("spin24", "h36m17").missing == []
    assert get_mapping("spin24", "mpi_inf_3dhp17").missing == []


def test_reads_boxes_keypoints_3d_and_smpl(tmp_path):
    arrays = _arrays()
    np.savez(tmp_path / "train.npz", **arrays, has_smpl=np.array([1, 0, 1]), gender=np.array(["m", "f", "m"]))
    reader = SpinNpzReader(tmp_path / "train.npz")
    assert len(reader) == 3 and reader.convention == "spin24" and reader.convention3d == "spin24"
    assert reader.has_3d and reader.has_smpl and not reader.has_mask
    sample = reader[2]
    assert sample.image_path == tmp_path / "images" / "frame_002.jpg"
    np.testing.assert_allclose(sample.bbox, [200 - 200, 150 - 200, 400, 400])  # scale 2.0: 400 px square
    np.testing.assert_allclose(sample.keypoints2d[:23, :2], arrays["part"][2, :23, :2], rtol=1e-6)
    assert (sample.keypoints2d[:23, 2] == 2).all()
    np.testing.assert_array_equal(sample.keypoints2d[23], [0, 0, 0])
    assert sample.keypoints3d.shape == (24, 4) and sample.keypoints3d.dtype == np.float32
    np.testing.assert_allclose(sample.keypoints3d, arrays["S"][2], rtol=1e-6)
    assert sample.body_model == "smpl"
    assert sample.body_params["pose"].shape == (72,) and sample.body_params["betas"].shape == (10,)
    np.testing.assert_allclose(sample.body_params["betas"], arrays["shape"][2], rtol=1e-6)
    assert reader[1].body_params is None and reader[1].body_model is None  # has_smpl == 0
    assert sample.extra["gender"] == "m" and sample.extra["scale"] == pytest.approx(2.0)
    assert sample.image_id == "images/frame_002.jpg" and sample.ann_id == 2


def test_rectangular_scale_and_3d_without_confidence(tmp_path):
    arrays = _arrays(2)
    arrays["scale"] = np.array([[1.0, 2.0], [0.5, 0.5]])
    arrays["S"] = arrays["S"][..., :3]
    np.savez(tmp_path / "x.npz", **arrays)
    reader = SpinNpzReader(tmp_path / "x.npz")
    np.testing.assert_allclose(reader[0].bbox, [100, -50, 200, 400])
    assert (reader[0].keypoints3d[:, 3] == 1).all()


def test_without_part_keypoints_are_unlabelled(tmp_path):
    arrays = {k: v for k, v in _arrays(2).items() if k not in ("part", "S")}
    np.savez(tmp_path / "3dpw_test.npz", **arrays)
    reader = SpinNpzReader(tmp_path / "3dpw_test.npz")
    assert len(reader) == 2 and not reader.has_3d and reader.has_smpl
    assert reader[0].keypoints2d.shape == (24, 3) and (reader[0].keypoints2d == 0).all()


def test_bad_rows_are_reported_and_skipped(tmp_path, caplog):
    arrays = _arrays(5)
    arrays["part"][1, 3, 0] = np.nan
    arrays["scale"][2] = 0.0
    arrays["S"][3, 0, 2] = np.inf
    arrays["pose"][4, 7] = np.nan
    np.savez(tmp_path / "bad.npz", **arrays)
    with caplog.at_level(logging.WARNING):
        reader = SpinNpzReader(tmp_path / "bad.npz")
    assert [s.ann_id for s in reader] == [0]
    reasons = dict(reader.skipped)
    assert "non-finite keypoint" in reasons[1]
    assert "zero size" in reasons[2]
    assert "3D" in reasons[3]
    assert "SMPL" in reasons[4]
    assert len([r for r in caplog.records if "skipping sample" in r.message]) == 4


def test_nan_in_an_unlabelled_joint_is_still_reported(tmp_path):
    arrays = _arrays(2)
    arrays["part"][1, 5, 2] = np.nan
    np.savez(tmp_path / "x.npz", **arrays)
    assert [key for key, _ in SpinNpzReader(tmp_path / "x.npz").skipped] == [1]


def test_check_images_and_h36m_layout(tmp_path):
    name = "S1_Directions_1.54138969_000001.jpg"
    nested = tmp_path / "S1" / "S1_Directions_1.54138969" / name
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"")
    assert resolve_image_path(tmp_path, name) == nested
    assert resolve_image_path(tmp_path, "S1/S1_Directions_1.54138969/" + name) == nested
    assert resolve_image_path(tmp_path, "images/" + name) == nested
    assert resolve_image_path(tmp_path, "nowhere.jpg") == tmp_path / "nowhere.jpg"
    np.savez(tmp_path / "h.npz", **_arrays(2, imgname=[name, "S9_Missing.1_000001.jpg"]))
    reader = SpinNpzReader(tmp_path / "h.npz", check_images=True)
    assert [s.image_path for s in reader] == [nested]
    assert "S9_Missing.1_000001.jpg" in reader.skipped[0][1]


def test_convention_of_17_joints(tmp_path):
    np.savez(tmp_path / "h36m_valid.npz", **_arrays(2, joints=17))
    assert SpinNpzReader(tmp_path / "h36m_valid.npz").convention == "h36m17"
    np.savez(tmp_path / "mpi_inf_3dhp_test.npz", **_arrays(2, joints=17))
    reader = SpinNpzReader(tmp_path / "mpi_inf_3dhp_test.npz")
    assert reader.convention == reader.convention3d == "mpi_inf_3dhp17"
    np.savez(tmp_path / "people.npz", **_arrays(2, joints=17))
    with pytest.raises(DatasetFileError, match="people.npz.*convention"):
        SpinNpzReader(tmp_path / "people.npz")
    assert SpinNpzReader(tmp_path / "people.npz", convention="h36m17").convention == "h36m17"
    with pytest.raises(DatasetFileError, match="people.npz.*17 joints.*spin24"):
        SpinNpzReader(tmp_path / "people.npz", convention="spin24")


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.npz"):
        SpinNpzReader(tmp_path / "none.npz")
    np.savez(tmp_path / "full.npz", **_arrays(50))
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFileError, match="truncated.npz"):
        SpinNpzReader(tmp_path / "truncated.npz")
    arrays = _arrays(3)
    arrays["center"] = arrays["center"][:2]
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(DatasetFileError, match="short.npz.*center"):
        SpinNpzReader(tmp_path / "short.npz")
    np.savez(tmp_path / "noname.npz", **{k: v for k, v in _arrays(2).items() if k != "imgname"})
    with pytest.raises(DatasetFileError, match="noname.npz.*imgname"):
        SpinNpzReader(tmp_path / "noname.npz")
    arrays = _arrays(2)
    arrays["pose"] = arrays["pose"][:, :69]
    np.savez(tmp_path / "pose.npz", **arrays)
    with pytest.raises(DatasetFileError, match=r"pose.npz.*\(2, 69\)"):
        SpinNpzReader(tmp_path / "pose.npz")


# --- shared data -------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_h36m_spin24(shared_data):
    import json

    folder = shared_data / "mmpose_testdata" / "h36m"
    reader = SpinNpzReader(folder / "test_h36m.npz", check_images=True)
    assert len(reader) == 4 and reader.skipped == [] and reader.convention == "spin24"
    sample = reader[0]
    # Flat image names are found in the S1/<sequence>/ folders.
    assert sample.image_path == folder / "S1" / "S1_Directions_1.54138969" / "S1_Directions_1.54138969_000001.jpg"
    assert sample.load_image().shape == (1002, 1000, 3)
    # The SPIN box (scale * 200 around center) is the box of the same person in h36m_coco.json.
    coco_boxes = [a["bbox"] for a in json.loads((folder / "h36m_coco.json").read_text())["annotations"]]
    np.testing.assert_allclose([s.bbox for s in reader], coco_boxes, rtol=1e-5)
    np.testing.assert_allclose(sample.keypoints2d[0], [506.218, 622.569, 2], atol=1e-3)  # right ankle
    assert sample.keypoints2d[13, 2] == 0  # LSP head top: not in H36M
    assert sample.body_params["pose"].shape == (72,) and sample.body_params["betas"].shape == (10,)
    pelvis, head = SPIN24.index("pelvis"), SPIN24.index("head")
    for s in reader:
        k3 = s.keypoints3d
        assert k3[pelvis, 3] == 1 and k3[head, 3] == 1 and k3[SPIN24.index("head_top"), 3] == 0
        assert 0.4 < np.linalg.norm(k3[pelvis, :3] - k3[head, :3]) < 0.9  # metres
        assert 0.3 < np.linalg.norm(k3[2, :3] - k3[1, :3]) < 0.6  # right thigh
        assert 2.0 < k3[pelvis, 2] < 10.0  # camera coordinates, person in front of the camera


@pytest.mark.shared_data
def test_h36m_17_joints_agree_with_spin24(shared_data):
    folder = shared_data / "mmpose_testdata" / "h36m"
    reader17 = SpinNpzReader(folder / "test_h36m_body3d.npz", check_images=True)
    reader24 = SpinNpzReader(folder / "test_h36m.npz")
    assert reader17.convention == reader17.convention3d == "h36m17" and len(reader17) == 4
    assert not reader17.has_smpl and reader17[0].body_params is None
    assert reader17[0].image_path == reader24[0].image_path
    to_h36m = get_mapping("spin24", "h36m17")
    for s17, s24 in zip(reader17, reader24):
        mapped, mask = to_h36m(s24.keypoints2d[:, :2], s24.keypoints2d[:, 2] > 0)
        assert mask.sum() == 16  # all but the thorax, which SPIN files under "Neck (LSP)"
        np.testing.assert_allclose(mapped[mask > 0], s17.keypoints2d[mask > 0, :2], atol=0.05)
        mapped3d, mask3d = to_h36m(s24.keypoints3d[:, :3], s24.keypoints3d[:, 3])
        np.testing.assert_allclose(mapped3d[mask3d > 0], s17.keypoints3d[mask3d > 0, :3], atol=1e-5)


@pytest.mark.shared_data
def test_mpi_inf_3dhp_17_joints(shared_data):
    folder = shared_data / "mmpose_testdata" / "mpi_inf_3dhp"
    for name in ("test_3dhp_test.npz", "test_3dhp_train.npz"):
        reader = SpinNpzReader(folder / name, check_images=True)
        assert reader.convention == "mpi_inf_3dhp17" and len(reader) == 2 and reader.skipped == []
        convention = get_convention("mpi_inf_3dhp17")
        for sample in reader:
            k3 = sample.keypoints3d
            np.testing.assert_array_equal(k3[:, 3] > 0, sample.keypoints2d[:, 2] > 0)
            top, pelvis = convention.index("head_top"), convention.index("pelvis")
            assert 0.6 < np.linalg.norm(k3[top, :3] - k3[pelvis, :3]) < 1.0
            hip, knee = convention.index("left_hip"), convention.index("left_knee")
            assert 0.3 < np.linalg.norm(k3[hip, :3] - k3[knee, :3]) < 0.65
    test_set = SpinNpzReader(folder / "test_3dhp_test.npz")
    # The second test frame has both wrists flagged invalid, in 2D and in 3D.
    np.testing.assert_array_equal(np.flatnonzero(test_set[1].keypoints2d[:, 2] == 0), [4, 7])
    np.testing.assert_array_equal(test_set[1].keypoints2d[[4, 7]], 0)
    sample = test_set[0]
    assert sample.image_path == folder / "TS1_002001.jpg"
    np.testing.assert_allclose(sample.keypoints2d[0], [1074.4, 503.148, 2], atol=1e-3)  # head top
    assert sample.load_image().shape == (2048, 2048, 3)
