"""Person detection metrics: COCO box AP/AR through pycocotools, with AP at IoU 0.5 (AP50) as the headline.

Ground truth and detections are COCO dicts / lists in image px (``bbox`` = x, y, w, h, as COCO stores them);
crowd regions (``iscrowd``) are ignored as COCOeval does. Category 1 (person) only.
"""
from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["COCO_BOX_STATS", "coco_box_ap", "detections_to_coco"]

# Order of COCOeval.stats for iouType="bbox".
COCO_BOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def detections_to_coco(image_id: int, boxes: np.ndarray, scores: np.ndarray) -> list[dict]:
    """One image's detections (boxes (N, 4) x, y, w, h with pixel centres at integers, scores (N,)) as COCO
    results: COCO boxes run from pixel edges, so they start half a pixel lower."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    return [{"image_id": int(image_id), "category_id": 1, "score": float(s),
             "bbox": [float(x + 0.5), float(y + 0.5), float(w), float(h)]}
            for (x, y, w, h), s in zip(boxes, scores)]


def coco_box_ap(ground_truth: dict, detections: Sequence[dict], max_detections: int = 100) -> dict[str, float]:
    """COCO box AP/AR of ``detections`` against ``ground_truth`` (a COCO dataset dict with ``images``,
    ``annotations``, ``categories``). Returns :data:`COCO_BOX_STATS` by name (AP50 = AP at IoU 0.5, all sizes,
    up to ``max_detections`` per image; NaN for a size range without people), plus ``num_images``, ``num_people`` (non-crowd) and ``num_detections``.
    An empty detection list scores 0 (pycocotools would raise)."""
    gt = copy.deepcopy(ground_truth)
    for ann in gt["annotations"]:
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        ann.setdefault("category_id", 1)
    gt.setdefault("categories", [{"id": 1, "name": "person"}])
    people = sum(1 for a in gt["annotations"] if not a["iscrowd"])
    base = {"num_images": len(gt["images"]), "num_people": people, "num_detections": len(detections)}
    if not detections:
        return {**{name: 0.0 for name in COCO_BOX_STATS}, **base}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        results = coco.loadRes(copy.deepcopy(list(detections)))
        evaluator = COCOeval(coco, results, "bbox")
        evaluator.params.catIds = [1]
        evaluator.params.maxDets = [1, 10, max_detections]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # pycocotools writes -1 where a size range has no person: no number, rather than a zero.
    stats = {name: float(value) if value >= 0 else float("nan") for name, value in zip(COCO_BOX_STATS, evaluator.stats)}
    return {**stats, **base}
