import contextlib
import copy
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lowres_hps.body.keypoints import COCO17, LSP14
from lowres_hps.evaluation.keypoints2d import (
    oks_keypoint_scale,
    COCO17_SIGMAS,
    bbox_size,
    coco_keypoint_ap,
    head_size,
    head_size_from_box,
    oks,
    pck,
    pckh,
    torso_size,
)


def _coco_dataset(people_per_image: dict[int, list[np.ndarray]], area: float = 10000.0) -> dict:
    """COCO keypoint ground truth; each person is a (K, 3) array x, y, visibility."""
    k = next(len(p) for people in people_per_image.values() for p in people)
    anns = []
    for image_id, people in people_per_image.items():
        for person in people:
            xy = person[person[:, 2] > 0, :2]
            x0, y0 = xy.min(0) if len(xy) else (0.0, 0.0)
            x1, y1 = xy.max(0) if len(xy) else (10.0, 10.0)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "area": area, "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                         "num_keypoints": int((person[:, 2] > 0).sum()),
                         "keypoints": person.reshape(-1).tolist()})
    return {"images": [{"id": i, "width": 640, "height": 480} for i in people_per_image],
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(k)]}],
            "annotations": anns}


def _result(image_id: int, keypoints_xy: np.ndarray, score: float) -> dict:
    kp = np.concatenate([keypoints_xy, np.ones((len(keypoints_xy), 1))], 1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": score}


def _person(rng: np.random.Generator, k: int = 17) -> np.ndarray:
    xy = rng.uniform(50, 400, size=(k, 2))
    return np.concatenate([xy, np.full((k, 1), 2.0)], 1)


def test_oks_matches_pycocotools_compute_oks():
    rng = np.random.default_rng(0)
    gts = [_person(rng) for _ in range(3)]
    gts[1][[0, 3, 4, 16], 2] = 0  # unlabelled keypoints must not count
    gts[2][[5, 6], 2] = 1  # labelled but occluded ones do
    dataset = _coco_dataset({1: gts})
    for ann, area in zip(dataset["annotations"], (12000.0, 3000.0, 800.0)):
        ann["area"] = area
    dets = [g[:, :2] + rng.normal(0, s, size=(17, 2)) for g, s in zip(gts, (3.0, 6.0, 12.0))]
    dets.append(gts[0][:, :2] + 40.0)
    scores = [0.9, 0.8, 0.7, 0.6]

    coco_gt = COCO()
    coco_gt.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([_result(1, d, s) for d, s in zip(dets, scores)])
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.evaluate()
    expected = evaluator.ious[(1, 1)]  # (dets sorted by score, gts)

    pred = torch.as_tensor(np.stack(dets), dtype=torch.float64)
    gt = torch.as_tensor(np.stack(gts), dtype=torch.float64)
    area = torch.tensor([a["area"] for a in dataset["annotations"]], dtype=torch.float64)
    got = oks(pred[:, None], gt[None, :, :, :2], gt[None, :, :, 2], area[None], torch.tensor(COCO17_SIGMAS, dtype=torch.float64))
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert 0.9 < got[0, 0] < 1 and got[3, 0] < 0.5


def test_oks_hand_case_and_numpy_input():
    gt = np.array([[0.0, 0.0], [10.0, 0.0]])
    pred = np.array([[3.0, 4.0], [100.0, 100.0]])
    # Only keypoint 0 is labelled: exp(-25 / (2 * 100 * (2 * 0.5)^2)) = exp(-0.125).
    value = oks(pred, gt, np.array([2, 0]), np.array(100.0), np.array([0.5, 0.5]))
    assert isinstance(value, torch.Tensor)
    assert value.item() == pytest.approx(math.exp(-0.125), rel=1e-6)
    assert oks(gt, gt, np.array([2, 1]), np.array(100.0), np.array([0.5, 0.5])).item() == pytest.approx(1.0)
    assert torch.isnan(oks(pred, gt, np.array([0, 0]), np.array(100.0), np.array([0.5, 0.5])))


def test_oks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sigmas"):
        oks(torch.zeros(5, 2), torch.zeros(5, 2), torch.ones(5), torch.tensor(1.0), torch.ones(4))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, 2\)"):
        oks(torch.zeros(5, 3), torch.zeros(5, 3), torch.ones(5), torch.tensor(1.0), torch.ones(5))


def test_coco_ap_single_person_hand_computed():
    # 3 keypoints, sigma 0.1, area 10000, every keypoint 16 px off: OKS = exp(-256 / (2 * 10000 * 0.04))
    # = exp(-0.32) = 0.726, a match at thresholds 0.50..0.70 (5 of 10) only.
    gt = np.array([[100.0, 100.0, 2], [150.0, 120.0, 2], [130.0, 200.0, 1]])
    dataset = _coco_dataset({1: [gt]})
    metrics = coco_keypoint_ap(dataset, [_result(1, gt[:, :2] + [16.0, 0.0], 1.0)], sigmas=[0.1, 0.1, 0.1])
    assert math.exp(-0.32) == pytest.approx(0.7261, abs=1e-4)
    assert metrics["AP"] == pytest.approx(0.5)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(0.0)
    assert metrics["APl"] == pytest.approx(0.5)
    assert metrics["AR"] == pytest.approx(0.5)
    assert math.isnan(metrics["APm"]) and math.isnan(metrics["ARm"])  # no medium-sized person
    assert dataset["annotations"][0].get("id") == 1  # the input dict is not modified


def test_coco_ap_false_positive_ranked_first():
    # Two exact detections behind a higher-scored false positive (in an image without people):
    # precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> interpolated precision 2/3 at every recall.
    rng = np.random.default_rng(1)
    a, b = _person(rng), _person(rng)
    dataset = _coco_dataset({1: [a, b], 2: []})
    results = [_result(2, a[:, :2], 0.9), _result(1, a[:, :2], 0.8), _result(1, b[:, :2], 0.7)]
    metrics = coco_keypoint_ap(dataset, results)
    assert metrics["AP"] == pytest.approx(2 / 3)
    assert metrics["AR"] == pytest.approx(1.0)
    assert coco_keypoint_ap(dataset, results[1:])["AP"] == pytest.approx(1.0)


def test_coco_ap_empty_results_score_zero():
    rng = np.random.default_rng(2)
    metrics = coco_keypoint_ap(_coco_dataset({1: [_person(rng)]}), [])
    assert metrics["AP"] == 0.0 and metrics["AR"] == 0.0 and metrics["APl"] == 0.0
    assert math.isnan(metrics["APm"])


def test_coco_ap_errors(tmp_path):
    rng = np.random.default_rng(3)
    person = _person(rng)
    dataset = _coco_dataset({1: [person]})
    with pytest.raises(ValueError, match="17 keypoints but 3 sigmas"):
        coco_keypoint_ap(dataset, [_result(1, person[:, :2], 1.0)], sigmas=[0.1] * 3)
    with pytest.raises(ValueError, match="image ids"):
        coco_keypoint_ap(dataset, [_result(7, person[:, :2], 1.0)])
    with pytest.raises(ValueError, match="expected 51"):
        coco_keypoint_ap(dataset, [_result(1, person[:5, :2], 1.0)])
    with pytest.raises(FileNotFoundError, match="missing.json"):
        coco_keypoint_ap(tmp_path / "missing.json", [])


def test_pck_hand_computed():
    gt = torch.zeros(2, 3, 2)
    pred = torch.zeros(2, 3, 2)
    pred[0, :, 0] = torch.tensor([1.0, 2.0, 3.0])  # normaliser 10, threshold 2 px: T, T (tie), F
    pred[1, :, 1] = torch.tensor([5.0, 0.0, 4.0])  # normaliser 20, threshold 4 px: F, -, T
    visible = torch.tensor([[1, 1, 1], [1, 0, 1]])
    overall, per_joint = pck(pred, gt, visible, torch.tensor([10.0, 20.0]), threshold=0.2)
    assert overall.item() == pytest.approx(3 / 5)
    torch.testing.assert_close(per_joint, torch.tensor([0.5, 1.0, 0.5]))


def test_pck_skips_samples_without_normaliser():
    gt = torch.zeros(2, 2, 2)
    pred = torch.zeros(2, 2, 2)
    pred[1] = 100.0  # wrong, but its normaliser is 0, so it must not count
    visible = torch.tensor([[1, 0], [1, 1]])
    overall, per_joint = pck(pred, gt, visible, torch.tensor([10.0, 0.0]))
    assert overall.item() == 1.0
    assert per_joint[0].item() == 1.0 and torch.isnan(per_joint[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pck_dtype_device_and_pckh(dtype, device):
    gt = torch.zeros(1, 2, 2, dtype=dtype, device=device)
    pred = torch.tensor([[[3.0, 0.0], [6.0, 0.0]]], dtype=dtype, device=device)
    head = torch.tensor([10.0], dtype=dtype, device=device)
    overall, per_joint = pckh(pred, gt, torch.ones(1, 2, device=device), head)  # 5 px threshold
    assert overall.dtype == dtype and per_joint.device.type == device.type
    assert overall.item() == 0.5
    assert pck(pred, gt, torch.ones(1, 2), head, threshold=0.5)[0].item() == 0.5


def test_pck_rejects_bad_shapes():
    with pytest.raises(ValueError, match="normaliser"):
        pck(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        pck(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3), torch.ones(1))


@pytest.mark.parametrize("convention", [COCO17, LSP14])
def test_torso_size(convention):
    kp = torch.zeros(2, len(convention), 2)
    kp[:, convention.index("right_shoulder")] = torch.tensor([10.0, 20.0])
    kp[:, convention.index("left_hip")] = torch.tensor([13.0, 24.0])
    kp[:, convention.index("left_shoulder")] = torch.tensor([90.0, 90.0])  # must not matter
    visible = torch.ones(2, len(convention))
    visible[1, convention.index("left_hip")] = 0
    torch.testing.assert_close(torso_size(kp, convention.name), torch.tensor([5.0, 5.0]))
    torch.testing.assert_close(torso_size(kp, convention, visible), torch.tensor([5.0, 0.0]))


def test_head_sizes():
    kp = np.zeros((len(LSP14), 2))
    kp[LSP14.index("head_top")] = [0.0, 0.0]
    kp[LSP14.index("neck")] = [6.0, 8.0]
    assert head_size(kp, "lsp14").item() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="coco17 has no head_top or neck"):
        head_size(np.zeros((17, 2)), "coco17")
    with pytest.raises(ValueError, match="expected"):
        head_size(np.zeros((17, 2)), "lsp14")
    torch.testing.assert_close(head_size_from_box(torch.tensor([[10.0, 10.0, 40.0, 50.0]])), torch.tensor([30.0]))


def test_bbox_size():
    torch.testing.assert_close(bbox_size(torch.tensor([[5.0, 5.0, 30.0, 40.0]])), torch.tensor([40.0]))
    torch.testing.assert_close(bbox_size(torch.tensor([10.0, 10.0, 40.0, 30.0]), "xyxy"), torch.tensor(30.0))
    with pytest.raises(ValueError, match="box_format"):
        bbox_size(torch.zeros(4), "cxcywh")


# --------------------------------------------------------------------------- non-finite results (issue 9)


def test_coco_ap_nan_keypoints_are_misses_not_matches():
    # pycocotools takes a NaN OKS as a match at every threshold: all-NaN results scored AP 1.0.
    rng = np.random.default_rng(4)
    a, b = _person(rng), _person(rng)
    dataset = _coco_dataset({1: [a, b]})
    nan_people = [_result(1, np.full((17, 2), np.nan), 0.9), _result(1, np.full((17, 2), np.inf), 0.8)]
    metrics = coco_keypoint_ap(dataset, nan_people)
    assert metrics["AP"] == 0.0 and metrics["AR"] == 0.0


def test_coco_ap_nan_detection_still_counts_as_a_false_positive():
    # A NaN person ranked above the exact one: a false positive first, then a match -> AP 1/2 at every
    # threshold (precision 1/2 at recall 1), not the NaN person taking the ground truth.
    rng = np.random.default_rng(5)
    a = _person(rng)
    dataset = _coco_dataset({1: [a]})
    results = [_result(1, np.full((17, 2), np.nan), 0.9), _result(1, a[:, :2], 0.8)]
    metrics = coco_keypoint_ap(dataset, results)
    assert metrics["AP"] == pytest.approx(0.5) and metrics["AR"] == pytest.approx(1.0)


def test_coco_ap_partly_nan_person_scores_each_nan_keypoint_as_zero_similarity():
    # 3 keypoints, one NaN, two exact: OKS 2/3 -> a match at thresholds 0.50..0.65 (4 of 10).
    gt = np.array([[100.0, 100.0, 2], [150.0, 120.0, 2], [130.0, 200.0, 2]])
    dataset = _coco_dataset({1: [gt]})
    predicted = gt[:, :2].copy()
    predicted[2] = np.nan
    metrics = coco_keypoint_ap(dataset, [_result(1, predicted, 1.0)], sigmas=[0.1, 0.1, 0.1])
    assert metrics["AP"] == pytest.approx(0.4)
    # Never better than a real (far off) prediction of that keypoint.
    predicted[2] = (1000.0, 1000.0)
    assert coco_keypoint_ap(dataset, [_result(1, predicted, 1.0)], sigmas=[0.1, 0.1, 0.1])["AP"] == pytest.approx(0.4)


def test_coco_ap_half_nan_never_beats_the_real_predictions():
    rng = np.random.default_rng(6)
    people = [_person(rng) for _ in range(6)]
    dataset = _coco_dataset({1: people[:3], 2: people[3:]})
    real = [_result(1 + n // 3, p[:, :2] + rng.normal(0, 25, (17, 2)), 0.5 + 0.05 * n) for n, p in enumerate(people)]
    half_nan = copy.deepcopy(real)
    for det in half_nan[::2]:
        det["keypoints"] = [math.nan] * 51
    assert coco_keypoint_ap(dataset, half_nan)["AP"] <= coco_keypoint_ap(dataset, real)["AP"]


def test_coco_ap_refuses_non_finite_scores():
    rng = np.random.default_rng(7)
    person = _person(rng)
    dataset = _coco_dataset({1: [person]})
    with pytest.raises(ValueError, match=r"pred\.json: 1 of 2 results have a non-finite or missing score"):
        coco_keypoint_ap(dataset, [_result(1, person[:, :2], 1.0), _result(1, person[:, :2], math.nan)],
                         results_name="pred.json")


def test_oks_keypoint_scale_weighs_a_pixel_as_oks_does():
    scale = oks_keypoint_scale()
    assert list(scale) == list(COCO17.names)
    assert scale["left_hip"] == 1.0 and scale["right_hip"] == 1.0
    # at equal OKS loss d^2 / sigma^2, the scaled squared distances are equal
    assert scale["nose"] * 0.026 ** 2 == pytest.approx(0.107 ** 2)
    assert oks_keypoint_scale(1.0)["left_eye"] == pytest.approx(0.107 / 0.025)
    assert set(oks_keypoint_scale(0.0).values()) == {1.0}
    with pytest.raises(ValueError, match="power"):
        oks_keypoint_scale(-1.0)
