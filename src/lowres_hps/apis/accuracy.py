"""Accuracy of a 2D keypoint estimator with ground-truth boxes, through the same path as `predict`.

* :func:`coco_ap_with_gt_boxes`: OKS AP/AR (pycocotools) on any COCO-format set, e.g. SynthLR-test.
* :func:`pck_with_gt_boxes`: PCK with the torso normaliser on any reader (e.g. the held-out part of
  LSP-extended), over the joints the estimator and the dataset share.
Both can degrade every person to a chosen height first (the low-resolution protocol).

With ``keypoints="3d"`` a 3D body model (a :class:`~lowres_hps.models.estimator.BodyEstimator`) is scored on
its 3D keypoints seen by the full-image camera it reports (:attr:`PersonPrediction.keypoints_3d_projected`,
what ``lowres-hps predict`` writes and ``lowres-hps evaluate kp2d --from 3d`` scores), not on its crop
camera's 2D keypoints. Every projected keypoint scores 1; the person scores as ``predict`` says
(:attr:`PersonPrediction.score`): the box score for a 3D model on its own, which gives no confidences, and the
2D keypoints' mean score times it when a 2D estimator runs next to the 3D model.
The 3D model is the estimator itself, or ``body_estimator`` next to a 2D estimator; with ``fit_keypoints``
its bodies are fitted to the 2D estimator's keypoints first (:class:`~lowres_hps.apis.predictor.Predictor`).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from lowres_hps.apis.predictor import PersonPrediction, Predictor
from lowres_hps.body.keypoints import get_mapping, map_keypoints
from lowres_hps.evaluation.keypoints2d import coco_keypoint_ap, pck, torso_size
from lowres_hps.fitting import KeypointFitConfig
from lowres_hps.models.estimator import BodyEstimator, PoseEstimator

__all__ = ["KEYPOINT_SOURCES", "coco_ap_with_gt_boxes", "pck_with_gt_boxes"]

KEYPOINT_SOURCES = ("2d", "3d")
"""What is scored: the estimator's 2D keypoints, or its 3D keypoints projected into the image."""


def _check_source(estimator, keypoints: str, body_estimator=None) -> None:
    if keypoints not in KEYPOINT_SOURCES:
        raise ValueError(f"keypoints must be one of {KEYPOINT_SOURCES}, got {keypoints!r}")
    if keypoints == "3d" and not isinstance(body_estimator or estimator, BodyEstimator):
        raise ValueError(f"keypoints='3d' scores a 3D body model's projected 3D keypoints; "
                         f"{type(body_estimator or estimator).__name__} is not a BodyEstimator")


def _scored_convention(estimator, keypoints: str, body_estimator=None) -> str:
    return (body_estimator or estimator).convention if keypoints == "3d" else estimator.convention


def _scored(person: PersonPrediction, keypoints: str) -> tuple[np.ndarray, float]:
    """(K, 3) ``x, y, score`` image px and the person score of what is scored."""
    if keypoints == "2d":
        return person.keypoints, float(person.score)
    # The person's score as `predict` reports it: its 2D keypoints' mean score times the box score when a 2D
    # model ran next to the 3D one, the box score alone for a 3D model on its own (it gives no confidences).
    pixels = person.keypoints_3d_projected
    return np.column_stack([pixels, np.ones(len(pixels))]), float(person.score)


def coco_ap_with_gt_boxes(estimator: PoseEstimator, ann_file: str | Path, image_root: str | Path | None = None,
                          person_height: float | None = None, max_images: int | None = None,
                          batch_size: int = 64, keypoints: str = "2d", body_estimator: BodyEstimator | None = None,
                          fit_keypoints: KeypointFitConfig | None = None) -> dict[str, float]:
    """OKS AP/AR of ``estimator`` on the people of ``ann_file`` that have keypoints, from their GT boxes
    (the people :class:`~lowres_hps.data.coco.CocoPeople` keeps with ``min_keypoints=1``).

    Person scores are the mean keypoint score (box scores are 1), as in top-down COCO evaluation; 1 with
    ``keypoints="3d"`` (the module docstring). With ``max_images`` only the first images (by id) are scored,
    and the ground truth is cut to match.
    """
    from lowres_hps.apis.inputs import load_image
    from lowres_hps.data.coco import CocoPeople

    _check_source(estimator, keypoints, body_estimator)
    ann_file = Path(ann_file)
    data = json.loads(ann_file.read_text())
    image_root = Path(image_root) if image_root is not None else _default_root(ann_file)
    images = sorted(data["images"], key=lambda im: im["id"])[:max_images]
    keep = {im["id"] for im in images}
    by_image: dict[int, list[np.ndarray]] = {}
    for person in CocoPeople(data, ann_file, min_keypoints=1).people:
        if person.image["id"] in keep:
            by_image.setdefault(person.image["id"], []).append(person.bbox)
    predictor = Predictor(estimator, person_height=person_height, batch_size=batch_size, body_estimator=body_estimator,
                          fit_keypoints=fit_keypoints)
    results = []
    scored = [image for image in images if image["id"] in by_image]
    for start in range(0, len(scored), batch_size):
        chunk = scored[start:start + batch_size]
        rgbs = [load_image(image_root / image["file_name"])[0] for image in chunk]
        boxes = [np.stack(by_image[image["id"]]) for image in chunk]
        for image, people_of_image in zip(chunk, predictor.predict_images(rgbs, boxes)):
            for person in people_of_image:
                points, score = _scored(person, keypoints)
                results.append({"image_id": image["id"], "category_id": 1, "score": score,
                                "keypoints": [round(float(v), 3) for v in points.reshape(-1)]})
    subset = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(subset))
        metrics = coco_keypoint_ap(str(gt_path), results)
    metrics["num_people"] = len(results)
    return metrics


def _default_root(ann_file: Path) -> Path:
    from lowres_hps.data.reader import default_image_root

    return default_image_root(ann_file)


def pck_with_gt_boxes(estimator: PoseEstimator, reader, threshold: float = 0.2, person_height: float | None = None,
                      batch_size: int = 64, keypoints: str = "2d", body_estimator: BodyEstimator | None = None,
                      fit_keypoints: KeypointFitConfig | None = None) -> dict[str, float]:
    """PCK@``threshold`` (torso normaliser: right shoulder to left hip) of ``estimator`` on ``reader``.

    Predictions are mapped by joint name into the reader's convention; joints the estimator lacks
    are not counted. ``keypoints="3d"`` scores the projected 3D keypoints (the module docstring). Returns
    overall PCK, the number of people and of counted joints.
    """
    _check_source(estimator, keypoints, body_estimator)
    predictor = Predictor(estimator, person_height=person_height, batch_size=batch_size, body_estimator=body_estimator,
                          fit_keypoints=fit_keypoints)
    mapping = get_mapping(_scored_convention(estimator, keypoints, body_estimator), reader.convention)
    predictions, truths, visible = [], [], []
    samples = [reader[index] for index in range(len(reader))]
    people = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        found = predictor.predict_images([s.load_image() for s in chunk],
                                         [np.asarray(s.bbox, np.float64)[None] for s in chunk])
        people.extend(p[0] for p in found)
    for sample, person in zip(samples, people):
        mapped, available = map_keypoints(_scored(person, keypoints)[0][:, :2], mapping)
        predictions.append(mapped)
        truths.append(sample.keypoints2d[:, :2])
        visible.append((sample.keypoints2d[:, 2] > 0) & (available > 0))
    pred = torch.as_tensor(np.stack(predictions), dtype=torch.float64)
    gt = torch.as_tensor(np.stack(truths), dtype=torch.float64)
    vis = torch.as_tensor(np.stack(visible))
    normaliser = torso_size(gt, reader.convention, torch.as_tensor(np.stack([s > 0 for s in visible])))
    overall, per_joint = pck(pred, gt, vis, normaliser, threshold=threshold)
    return {f"pck@{threshold}": float(overall), "num_people": len(reader), "num_joints": int(vis.sum())}
