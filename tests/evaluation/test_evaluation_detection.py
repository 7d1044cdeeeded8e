"""Person box AP through pycocotools."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lowres_hps.evaluation.detection import coco_box_ap, detections_to_coco


def ground_truth(boxes, crowd=()):
    anns = [{"id": i + 1, "image_id": 1, "bbox": list(b), "iscrowd": int(i in crowd), "category_id": 1,
             "area": b[2] * b[3]} for i, b in enumerate(boxes)]
    return {"images": [{"id": 1, "width": 400, "height": 300}], "annotations": anns,
            "categories": [{"id": 1, "name": "person"}]}


def as_results(boxes, scores):
    # COCO boxes (edges) -> our centre convention, so the round trip is exact.
    centre = np.asarray(boxes, dtype=float) - np.array([0.5, 0.5, 0, 0])
    return detections_to_coco(1, centre, scores)


def test_perfect_detections_score_one_and_a_miss_halves_ap50():
    gt = ground_truth([(10, 10, 20, 60), (100, 50, 30, 90)])
    stats = coco_box_ap(gt, as_results([(10, 10, 20, 60), (100, 50, 30, 90)], [0.9, 0.8]))
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP"] == pytest.approx(1.0)
    assert stats["num_people"] == 2 and stats["num_detections"] == 2
    stats = coco_box_ap(gt, as_results([(10, 10, 20, 60)], [0.9]))
    assert stats["AP50"] == pytest.approx(0.5, abs=0.01)


def test_a_box_overlapping_under_half_is_a_false_positive():
    gt = ground_truth([(10, 10, 20, 60)])
    # IoU of (10, 10, 20, 60) and (25, 10, 20, 60): 5 / 35.
    stats = coco_box_ap(gt, as_results([(25, 10, 20, 60)], [0.9]))
    assert stats["AP50"] == 0.0
    # Ranked above the true one, a false positive lowers AP50 below 1.
    stats = coco_box_ap(gt, as_results([(200, 10, 20, 60), (10, 10, 20, 60)], [0.9, 0.5]))
    assert 0.0 < stats["AP50"] < 1.0


def test_crowd_regions_are_ignored_and_no_detections_score_zero():
    gt = ground_truth([(10, 10, 20, 60), (200, 20, 100, 100)], crowd=(1,))
    stats = coco_box_ap(gt, as_results([(10, 10, 20, 60), (210, 30, 30, 60)], [0.9, 0.8]))
    assert stats["AP50"] == pytest.approx(1.0) and stats["num_people"] == 1
    assert coco_box_ap(gt, [])["AP50"] == 0.0


def test_size_ranges_without_people_are_nan():
    stats = coco_box_ap(ground_truth([(10, 10, 20, 60)]), as_results([(10, 10, 20, 60)], [0.9]))
    assert math.isnan(stats["APl"]) and stats["APm"] == pytest.approx(1.0)


def test_detections_need_one_score_per_box():
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        detections_to_coco(1, np.zeros((2, 4)), np.zeros(1))
    assert detections_to_coco(3, np.array([[0.0, 1.0, 4.0, 8.0]]), np.array([0.5]))[0]["bbox"] == [0.5, 1.5, 4.0, 8.0]
