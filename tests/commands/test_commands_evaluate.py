import json
import math
from pathlib import Path

import numpy as np
import pytest

from lowres_hps import cli
from lowres_hps.body.keypoints import COCO17, H36M17
from lowres_hps.commands.evaluate import match_predictions

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def _predict_entries(keypoints, offset):
    """predict-style entries for the person of :func:`_coco_files`: 2D keypoints ``offset`` px off to the right,
    3D keypoints 5 m away whose projection is exactly the ground truth; the second entry is as written before
    ``keypoints_3d_projected`` existed, the third has no 3D."""
    focal, centre = 500.0, np.array([319.5, 239.5])
    points = np.column_stack([(keypoints[:, :2] - centre) * 5.0 / focal, np.full(len(keypoints), 5.0)])
    shifted = keypoints.copy()
    shifted[:, 0] += offset
    body = {"focal": focal, "principal_point": centre.tolist()}
    entry = {"image_id": 1, "category_id": 1, "keypoints": shifted.reshape(-1).tolist(), "score": 0.9,
             "bbox": [100.0, 100.0, 50.0, 100.0], "keypoints_3d": points.tolist(), "body": body,
             "keypoints_3d_projected": keypoints[:, :2].tolist()}
    older = {k: v for k, v in entry.items() if k != "keypoints_3d_projected"}
    plain = {k: v for k, v in entry.items() if k in ("image_id", "category_id", "keypoints", "score", "bbox")}
    return [entry, older, plain]


def test_kp2d_from_3d_scores_the_projected_3d_keypoints(tmp_path, capsys):
    g, p = _coco_files(tmp_path, offset=0.0)
    keypoints = np.asarray(json.loads(Path(g).read_text())["annotations"][0]["keypoints"], float).reshape(-1, 3)
    entry, older, plain = _predict_entries(keypoints, offset=30.0)
    sigmas = ("--sigmas", "0.1,0.1,0.1")
    for entries in ([entry], [older]):
        Path(p).write_text(json.dumps(entries))
        code, out, _ = _run(capsys, "kp2d", "--gt", g, "--pred", p, *sigmas)
        assert code == 0 and json.loads(out)["AP"] == 0.0  # the 2D keypoints are 30 px off
        code, out, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, *sigmas, "--from", "3d")
        assert code == 0 and json.loads(out)["AP"] == pytest.approx(1.0) and err == ""
    # Entries without 3D are left out, with a note.
    Path(p).write_text(json.dumps([entry, plain]))
    code, out, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, *sigmas, "--from", "3d")
    assert code == 0 and json.loads(out)["AP"] == pytest.approx(1.0)
    assert "pred.json: 1 of 2 entries have no keypoints_3d" in err


@pytest.mark.parametrize("case, message", [
    ("no_3d", "has no keypoints_3d (1 entries): --from 3d"),
    ("no_camera", "entry 0 (image 1): no keypoints_3d_projected, and no body focal"),
    ("bad_shape", "entry 0 (image 1): projected keypoints of shape (6,)"),
])
def test_kp2d_from_3d_errors_name_the_file(tmp_path, capsys, case, message):
    g, p = _coco_files(tmp_path, offset=0.0)
    keypoints = np.asarray(json.loads(Path(g).read_text())["annotations"][0]["keypoints"], float).reshape(-1, 3)
    entry, older, plain = _predict_entries(keypoints, offset=0.0)
    chosen = {"no_3d": plain, "no_camera": {**older, "body": {"body_model": "anny"}},
              "bad_shape": {**entry, "keypoints_3d_projected": keypoints[:, :2].reshape(-1).tolist()}}[case]
    Path(p).write_text(json.dumps([chosen]))
    code, out, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, "--sigmas", "0.1,0.1,0.1", "--from", "3d")
    assert code == 2 and out == ""
    assert "pred.json" in err and message in err and len(err.strip().splitlines()) == 1


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


# ---------------------------------------------------------------------------------------------
# kp3d: SynthLR ground truth against the predictions.json of `lowres-hps predict`


def _synthlr(root, people_per_image=(2, 1), seed=0):
    """A SynthLR folder (the layout of ``lowres-hps synth``, no image files needed) with random 3D people;
    returns it with the ground truth ``[(image_id, bbox, keypoints3d (17, 3))]``."""
    from lowres_hps.data.synth.writer import coco_categories, save_npz_deterministic

    rng = np.random.default_rng(seed)
    root.mkdir()
    images, annotations, people = [], [], []
    for image_id, count in enumerate(people_per_image, start=1):
        images.append({"id": image_id, "file_name": f"{image_id:09d}.jpg", "width": 640, "height": 480,
                       "focal": 800.0, "principal_point": [319.5, 239.5]})
        for n in range(count):
            bbox = [40.0 + 200.0 * n, 50.0, 100.0, 220.0]
            keypoints = np.column_stack([rng.uniform(bbox[0], bbox[0] + 100, 17), rng.uniform(50, 270, 17),
                                         np.full(17, 2.0)])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "area": 100.0, "bbox": bbox, "num_keypoints": 17,
                                "keypoints": keypoints.reshape(-1).tolist()})
            people.append((image_id, bbox, rng.normal([0.5 * n, 0.0, 5.0], 0.3, (17, 3)).astype(np.float32)))
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": coco_categories()}))
    count = len(people)
    save_npz_deterministic(root / "annotations_3d.npz", {
        "ann_id": np.arange(1, count + 1), "image_id": np.array([p[0] for p in people]),
        "keypoints3d": np.stack([p[2] for p in people]), "joints3d": np.zeros((count, 2, 3), np.float32),
        "pose_vector": np.zeros((count, 8), np.float32), "translation": np.zeros((count, 3), np.float32),
        "focal": np.full(count, 800.0, np.float32), "principal_point": np.full((count, 2), 300.0, np.float32)})
    return root, people


def _predictions(path, people, transform=lambda k: k):
    entries = [{"image_id": image_id, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0, "bbox": bbox,
                "keypoints_3d": np.round(transform(keypoints.astype(np.float64)), 6).tolist()}
               for image_id, bbox, keypoints in people]
    path.write_text(json.dumps(entries))
    return str(path)


def _hips(keypoints):
    return keypoints[[COCO17.index("left_hip"), COCO17.index("right_hip")]].mean(0)


def test_kp3d_synthlr_ground_truth_as_predictions_scores_zero(tmp_path, capsys):
    folder, people = _synthlr(tmp_path / "synth")
    pred = _predictions(tmp_path / "predictions.json", people[::-1])  # order does not matter
    code, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    metrics = json.loads(out)
    assert code == 0 and len(out.strip().splitlines()) == 1
    assert metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["pck3d"] == 1.0 and metrics["auc"] >= 30 / 31  # every threshold but 0 mm
    assert (metrics["num_samples"], metrics["num_gt"], metrics["num_missing"]) == (3, 3, 0)
    assert metrics["root"] == "hips" and metrics["num_unmatched_predictions"] == 0


def test_kp3d_synthlr_known_scale_and_offset(tmp_path, capsys):
    folder, people = _synthlr(tmp_path / "synth")
    offset = np.array([0.3, -0.1, 2.0])

    def moved(keypoints):  # 10 % larger about the mid-hip, then shifted: what a wrong depth does
        return _hips(keypoints) + 1.1 * (keypoints - _hips(keypoints)) + offset

    pred = _predictions(tmp_path / "predictions.json", people, moved)
    expected_root = np.mean([1000 * 0.1 * np.linalg.norm(k - _hips(k), axis=1).mean() for _, _, k in people])
    expected_none = np.mean([1000 * np.linalg.norm(moved(k.astype(np.float64)) - k, axis=1).mean()
                             for _, _, k in people])
    _, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    metrics = json.loads(out)
    assert metrics["mpjpe_mm"] == pytest.approx(expected_root, rel=1e-4)
    assert metrics["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # similarity transforms are aligned away
    _, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred, "--root", "none")
    assert json.loads(out)["mpjpe_mm"] == pytest.approx(expected_none, rel=1e-4)
    assert expected_none > 2000


def test_kp3d_synthlr_matches_by_box_and_counts_the_missing(tmp_path, capsys):
    folder, people = _synthlr(tmp_path / "synth")
    (image_1a, box_1a, kp_1a), (image_1b, box_1b, kp_1b), (image_2, box_2, kp_2) = people
    shifted = [box_1b[0] + 10, box_1b[1] - 5, box_1b[2], box_1b[3]]  # a detector's box, IoU ~0.8
    predicted = [(image_1a, shifted, kp_1b + [0.0, 0.0, 1.0]), (image_1a, box_1a, kp_1a),
                 (image_2, [400.0, 300.0, 50.0, 50.0], kp_2),  # a box nowhere near the person
                 (7, box_2, kp_2)]  # an image without ground truth
    pred = _predictions(tmp_path / "predictions.json", predicted)
    code, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    metrics = json.loads(out)
    assert code == 0 and metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # each matched to its own body
    assert (metrics["num_samples"], metrics["num_gt"], metrics["num_missing"]) == (2, 3, 1)
    assert metrics["num_unmatched_predictions"] == 2
    _, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred, "--min-iou", "0.9")
    assert json.loads(out)["num_missing"] == 2


def test_match_predictions_is_one_to_one_and_greedy():
    gt = np.array([[0.0, 0, 10, 10], [5.0, 0, 10, 10], [100.0, 100, 10, 10]])
    pred = np.array([[5.0, 0, 10, 10], [1.0, 0, 10, 10]])
    # gt 1 takes pred 0 (IoU 1), so gt 0 gets pred 1 (IoU 0.82) though pred 0 also overlaps it.
    assert match_predictions(gt, pred).tolist() == [1, 0, -1]
    assert match_predictions(gt, pred, min_iou=0.9).tolist() == [-1, 0, -1]
    assert match_predictions(gt, np.zeros((0, 4))).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("case, message", [
    ("no_3d", "has no keypoints_3d"),
    ("npz_pred", "must be the predictions.json"),
    ("npz_gt", "--gt must then be a SynthLR folder"),
    ("joints", "keypoints_3d of image 1 is (14, 3), expected (17, 3)"),
    ("nothing_matched", "none of the 3 people"),
    ("convention", "SynthLR 3D keypoints are coco17, not h36m17"),
    ("missing_gt", "file not found"),
])
def test_kp3d_synthlr_errors(tmp_path, capsys, case, message):
    folder, people = _synthlr(tmp_path / "synth")
    gt, pred, extra = str(folder), _predictions(tmp_path / "predictions.json", people), []
    if case == "no_3d":
        entries = json.loads((tmp_path / "predictions.json").read_text())
        entries = [{k: v for k, v in e.items() if k != "keypoints_3d"} for e in entries]
        pred = _write_json(tmp_path / "p2d.json", entries)
    elif case == "npz_pred":
        pred = _write_npz(tmp_path / "pred.npz", keypoints3d=_poses(n=3))
    elif case == "npz_gt":
        gt = _write_npz(tmp_path / "gt.npz", keypoints3d=_poses(n=3))
    elif case == "joints":
        pred = _predictions(tmp_path / "predictions.json", people, lambda k: k[:14])
    elif case == "nothing_matched":
        pred = _predictions(tmp_path / "predictions.json", [(9, b, k) for _, b, k in people])
    elif case == "convention":
        extra = ["--convention", "h36m17"]
    else:
        gt = str(tmp_path / "nowhere")
    code, out, err = _run(capsys, "kp3d", "--gt", gt, "--pred", pred, *extra)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def _write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.skipif(not (REPO_ROOT / "data" / "synthlr" / "test_crops" / "annotations.json").is_file(),
                    reason="data/synthlr/test_crops not generated on this machine (scripts/make_synthlr.sh)")
def test_kp3d_on_the_synthlr_test_split(tmp_path, capsys):
    from lowres_hps.data.synthlr import SynthLRReader

    folder = REPO_ROOT / "data" / "synthlr" / "test_crops"
    people = [(s.image_id, s.bbox.tolist(), s.keypoints3d[:, :3]) for s in SynthLRReader(folder)]
    half = people[: len(people) // 2]  # the other half has no prediction
    pred = _predictions(tmp_path / "predictions.json", half, lambda k: k + [0.0, 0.0, 0.5])
    code, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    metrics = json.loads(out)
    assert code == 0 and metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["num_samples"] == len(half) and metrics["num_missing"] == len(people) - len(half)


# ---------------------------------------------------------------------------------------------
# Non-finite predictions never improve a score (issue 9)


def test_kp2d_nan_keypoints_score_zero_with_a_note(tmp_path, capsys):
    g, p = _coco_files(tmp_path, offset=0.0)
    entries = json.loads(Path(p).read_text())
    entries[0]["keypoints"] = [math.nan, math.nan, 1.0] * 3
    Path(p).write_text(json.dumps(entries))  # json writes NaN, as predict would
    code, out, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, "--sigmas", "0.1,0.1,0.1")
    assert code == 0 and json.loads(out)["AP"] == 0.0
    assert "pred.json: 1 of 1 results have non-finite keypoints" in err


def test_kp2d_nan_score_is_an_error_naming_the_file(tmp_path, capsys):
    g, p = _coco_files(tmp_path, offset=0.0)
    entries = json.loads(Path(p).read_text())
    entries[0]["score"] = math.nan
    Path(p).write_text(json.dumps(entries))
    code, out, err = _run(capsys, "kp2d", "--gt", g, "--pred", p, "--sigmas", "0.1,0.1,0.1")
    assert code == 2 and out == ""
    assert "pred.json: 1 of 1 results have a non-finite" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_kp3d_npz_non_finite_predictions_are_an_error_naming_the_file(tmp_path, capsys, bad):
    gt = _poses(n=10)
    pred = gt + 0.01
    pred[::2, 3] = bad  # half the samples, one joint each: dropping them would score only the rest
    g, p = _write_npz(tmp_path / "gt.npz", keypoints3d=gt), _write_npz(tmp_path / "pred.npz", keypoints3d=pred)
    code, out, err = _run(capsys, "kp3d", "--gt", g, "--pred", p)
    assert code == 2 and out == ""
    assert "pred.npz: 5 of 10 samples have non-finite keypoints3d" in err and len(err.strip().splitlines()) == 1
    # A non-finite value at a joint that does not count (mask 0) is a placeholder, not a failure.
    mask = np.ones(gt.shape[:2])
    mask[:, 3] = 0
    g = _write_npz(tmp_path / "gt_mask.npz", keypoints3d=gt, mask=mask)
    code, out, _ = _run(capsys, "kp3d", "--gt", g, "--pred", p)
    assert code == 0 and json.loads(out)["num_samples"] == 10


def test_kp3d_npz_all_nan_blames_the_predictions_not_the_ground_truth(tmp_path, capsys):
    gt = _poses(n=4)
    g = _write_npz(tmp_path / "gt.npz", keypoints3d=gt)
    p = _write_npz(tmp_path / "pred.npz", keypoints3d=np.full_like(gt, np.nan))
    code, _, err = _run(capsys, "kp3d", "--gt", g, "--pred", p)
    assert code == 2 and "pred.npz: 4 of 4 samples" in err and "mask all zero" not in err


def test_kp3d_synthlr_nan_prediction_counts_as_missing(tmp_path, capsys):
    folder, people = _synthlr(tmp_path / "synth")
    pred = _predictions(tmp_path / "predictions.json", people)
    entries = json.loads(Path(pred).read_text())
    entries[1]["keypoints_3d"][0] = [math.nan, math.nan, math.nan]
    Path(pred).write_text(json.dumps(entries))
    code, out, _ = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    metrics = json.loads(out)
    assert code == 0 and metrics["mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert (metrics["num_samples"], metrics["num_gt"], metrics["num_missing"]) == (2, 3, 1)
    assert metrics["num_nonfinite_predictions"] == 1


def test_kp3d_synthlr_all_nan_blames_the_predictions(tmp_path, capsys):
    folder, people = _synthlr(tmp_path / "synth")
    pred = _predictions(tmp_path / "predictions.json", people, lambda k: np.full_like(k, np.nan))
    code, out, err = _run(capsys, "kp3d", "--gt", str(folder), "--pred", pred)
    assert code == 2 and out == ""
    assert "predictions.json: every prediction that matched" in err and "non-finite" in err
    assert "mask all zero" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("case, message", [
    ("empty", "pred.npz is empty (0 bytes)"),
    ("json", "pred.npz is not an npz file"),
    ("npy", "pred.npz is not an npz file"),
    ("truncated", "pred.npz is not an npz file"),
])
def test_kp3d_unreadable_npz_is_a_clear_error(tmp_path, capsys, case, message):
    g = _write_npz(tmp_path / "gt.npz", keypoints3d=_poses(n=2))
    p = tmp_path / "pred.npz"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "json":
        p.write_text('{"keypoints3d": []}')
    elif case == "npy":
        np.save(tmp_path / "pred.npy", _poses(n=2))
        (tmp_path / "pred.npy").rename(p)
    else:
        p.write_bytes(Path(g).read_bytes()[:300])
    code, out, err = _run(capsys, "kp3d", "--gt", g, "--pred", str(p))
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
