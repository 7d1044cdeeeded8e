import json
import math

import numpy as np
import pytest

from lowres_hps import cli
from lowres_hps.body.keypoints import COCO17, H36M17


def _run(capsys, *argv):
    code = cli.main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _poses(n=4, k=17, seed=0):
    return np.random.default_rng(seed).normal(0, 0.3, size=(n, k, 3))


def test_kp3d_offset_root_none_and_pelvis(tmp_path, capsys):
    gt = _poses()
    pred = gt + [0.048, 0.0, 0.02]  # 52 mm everywhere
    g, p = _write_npz(tmp_path / "gt.npz", keypoints3d=gt), _write_npz(tmp_path / "pred.npz", keypoints3d=pred)

    code, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p)
    metrics = json.loads(out)
    assert code == 0 and metrics["root"] == "none"
    assert metrics["mpjpe_mm"] == pytest.approx(52.0)
    assert metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["pck3d"] == 1.0  # 52 mm <= 150 mm
    assert metrics["auc"] == pytest.approx(20 / 31)  # thresholds 55, 60, ..., 150 mm
    assert (metrics["num_samples"], metrics["num_joints"], metrics["pck_threshold_mm"]) == (4, 17, 150.0)

    code, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p, "--convention", "h36m17")
    metrics = json.loads(out)
    assert metrics["root"] == "pelvis" and metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-9)

    code, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p, "--pck-threshold", "0.05")
    assert json.loads(out)["pck3d"] == 0.0


def test_kp3d_root_choices(tmp_path, capsys):
    gt = _poses(n=2)
    pred = gt.copy()
    pred[:, COCO17.index("left_hip")] += [0.1, 0.0, 0.0]  # moves the mid-hip by 50 mm in x
    g, p = _write_npz(tmp_path / "gt.npz", keypoints3d=gt), _write_npz(tmp_path / "pred.npz", keypoints3d=pred)

    # COCO-17 has no pelvis: the default falls back to the mid-hip.
    _, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p, "--convention", "coco17")
    metrics = json.loads(out)
    assert metrics["root"] == "hips"
    assert metrics["mpjpe_mm"] == pytest.approx((16 * 50 + 50) / 17)

    _, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p, "--convention", "coco17", "--root", "nose")
    assert json.loads(out)["mpjpe_mm"] == pytest.approx(100 / 17)

    _, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p, "--root-index", str(COCO17.index("left_hip")))
    metrics = json.loads(out)
    assert metrics["root"] == "index 11" and metrics["mpjpe_mm"] == pytest.approx(16 * 100 / 17)


def test_kp3d_masks(tmp_path, capsys):
    gt = _poses(n=3, k=len(H36M17))
    pred = gt.copy()
    pred[:, 5] += [0.0, 0.0, 1.0]
    mask = np.ones(gt.shape[:2])
    mask[:, 5] = 0
    mask[2] = 0  # a sample without counted joints is left out
    g = _write_npz(tmp_path / "gt.npz", keypoints3d=gt)
    g_masked = _write_npz(tmp_path / "gt_mask.npz", keypoints3d=gt, mask=mask)
    p_masked = _write_npz(tmp_path / "pred_mask.npz", keypoints3d=pred, mask=mask)
    p = _write_npz(tmp_path / "pred.npz", keypoints3d=pred, mask=np.ones(gt.shape[:2]))

    _, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p_masked)  # the mask of pred is used
    metrics = json.loads(out)
    assert metrics["mpjpe_mm"] == pytest.approx(0.0) and metrics["num_samples"] == 2

    _, out, _ = _run(capsys, "kp3d", "--gt", g_masked, "--pred", p)  # the mask of gt wins
    assert json.loads(out)["mpjpe_mm"] == pytest.approx(0.0)

    _, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p)
    assert json.loads(out)["mpjpe_mm"] == pytest.approx(1000 / 17)


@pytest.mark.parametrize("case, message", [
    ("missing", "missing.npz"),
    ("key", "no 'keypoints3d'"),
    ("shape", "pred.npz is (2, 16, 3)"),
    ("mask", "mask must be (N, K)"),
    ("root", "needs --convention"),
    ("joint", "has no joint 'chin'"),
    ("convention", "lsp14 has 14 joints but"),
])
def test_kp3d_errors(tmp_path, capsys, case, message):
    g = _write_npz(tmp_path / "gt.npz", keypoints3d=_poses(n=2), mask=np.ones((2, 17)))
    p = _write_npz(tmp_path / "pred.npz", keypoints3d=_poses(n=2))
    extra = []
    if case == "missing":
        p = str(tmp_path / "missing.npz")
    elif case == "key":
        p = _write_npz(tmp_path / "pred.npz", joints=_poses(n=2))
    elif case == "shape":
        p = _write_npz(tmp_path / "pred.npz", keypoints3d=_poses(n=2, k=16))
    elif case == "mask":
        p = _write_npz(tmp_path / "pred.npz", keypoints3d=_poses(n=2), mask=np.ones((2, 3)))
    elif case == "root":
        extra = ["--root", "pelvis"]
    elif case == "joint":
        extra = ["--convention", "h36m17", "--root", "chin"]
    else:
        extra = ["--convention", "lsp14"]
    code, out, err = _run(capsys, "kp3d", "--gt", g, "--pred", p, *extra)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def _coco_files(tmp_path, offset):
    kp = np.array([[100.0, 100.0, 2], [150.0, 120.0, 2], [130.0, 200.0, 2]])
    gt = {"images": [{"id": 1, "width": 640, "height": 480}],
          "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b", "c"]}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 10000.0,
                           "bbox": [100.0, 100.0, 50.0, 100.0], "num_keypoints": 3,
                           "keypoints": kp.reshape(-1).tolist()}]}
    pred_kp = kp.copy()
    pred_kp[:, 0] += offset
    pred = [{"image_id": 1, "category_id": 1, "keypoints": pred_kp.reshape(-1).tolist(), "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    return str(tmp_path / "gt.json"), str(tmp_path / "pred.json")


def test_kp2d_custom_sigmas(tmp_path, capsys):
    g, p = _coco_files(tmp_path, offset=16.0)  # OKS exp(-0.32) = 0.726 with sigma 0.1
    code, out, _ = _run(capsys, "kp2d", "--gt", g, "--pred", p, "--sigmas", "0.1,0.1,0.1")
    metrics = json.loads(out)
    assert code == 0 and len(out.strip().splitlines()) == 1
    assert metrics["AP"] == pytest.approx(0.5) and metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == 0.0
    assert metrics["APm"] is None  # undefined: no medium-sized person


def test_kp2d_errors(tmp_path, capsys):
    g, p = _coco_files(tmp_path, offset=0.0)
    code, _, err = _run(capsys, "kp2d", "--gt", g, "--pred", p)
    assert code == 2 and "3 keypoints but 17 sigmas" in err
    code, _, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, "--sigmas", "0.1,x,0.1")
    assert code == 2 and "--sigmas" in err
    code, _, err = _run(capsys, "kp2d", "--gt", str(tmp_path / "nope.json"), "--pred", p)
    assert code == 2 and "nope.json" in err


@pytest.mark.shared_data
def test_kp2d_ground_truth_as_results_scores_one(shared_data, tmp_path, capsys):
    gt_path = shared_data / "mmpose_testdata" / "coco" / "test_coco.json"
    gt = json.loads(gt_path.read_text())
    # People without a labelled keypoint are ignored by COCOeval; as results they would be false positives.
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"] if a["num_keypoints"] > 0]
    assert len(results) == 12
    (tmp_path / "pred.json").write_text(json.dumps(results))
    code, out, _ = _run(capsys, "kp2d", "--gt", str(gt_path), "--pred", str(tmp_path / "pred.json"))
    metrics = json.loads(out)
    assert code == 0
    for name in ("AP", "AP50", "AP75", "AR"):
        assert metrics[name] == pytest.approx(1.0), name
    assert not math.isnan(metrics["APm"])
