"""Pseudo-labels of real people from high-resolution teachers, for training low-resolution students.

A teacher (MoveNet Thunder by default) labels each person box at the source resolution. A joint is
kept (COCO flag ``v = 2``) when the teacher's score reaches ``min_score`` and, with a second teacher,
when both agree within ``max_disagreement`` of the person's box height; otherwise it is marked
unlabelled (``v = 0``) so the student's loss ignores it. Ground-truth joints, where a dataset has
them, always win over the teacher; the teacher fills the joints a dataset lacks (e.g. the face of
LSP people). The output is a plain COCO keypoints file, which every reader and ``lowres-hps train``
already take, with the teacher's per-joint ``keypoint_scores`` kept alongside.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.apis.predictor import Predictor
from lowres_hps.body.keypoints import get_convention

__all__ = ["LabelConfig", "TeacherLabeler", "coco_keypoints_categories"]


@dataclass
class LabelConfig:
    """Filters of the pseudo-labels.

    Attributes:
        min_score: smallest teacher score of a kept joint.
        max_disagreement: with a second teacher, largest distance between the two teachers' positions of a
            kept joint, as a fraction of the person's box height.
        min_keypoints: people with fewer kept joints are dropped.
    """

    min_score: float = 0.3
    max_disagreement: float = 0.1
    min_keypoints: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if not self.max_disagreement > 0:
            raise ValueError(f"max_disagreement must be > 0, got {self.max_disagreement}")
        if self.min_keypoints < 0:
            raise ValueError(f"min_keypoints must be >= 0, got {self.min_keypoints}")


def coco_keypoints_categories() -> list[dict]:
    """The COCO ``categories`` entry of a COCO-17 keypoints file (names and skeleton, 1-based)."""
    convention = get_convention("coco17")
    skeleton = [[a + 1, b + 1] for a, b in convention.skeleton]
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(convention.names),
             "skeleton": skeleton}]


def _model_name(model) -> str:
    """A teacher's name: its model card's (registered models), its own ``name`` (MoveNet), else its class."""
    card = getattr(model, "card", None)
    return getattr(card, "name", None) or getattr(model, "name", None) or type(model).__name__


class TeacherLabeler:
    """COCO-17 pseudo-labels of person boxes from one or two teachers.

    Args:
        teacher: a COCO-17 :class:`~lowres_hps.models.estimator.PoseEstimator` run at high resolution.
        second_teacher: optional second opinion for the disagreement filter.
        config: the filters.
        batch_size: people per teacher call.
    """

    def __init__(self, teacher: PoseEstimator, second_teacher: PoseEstimator | None = None,
                 config: LabelConfig | None = None, batch_size: int = 16) -> None:
        for model in (teacher, second_teacher):
            if model is not None and model.convention != "coco17":
                raise ValueError(f"teachers must predict COCO-17 keypoints, got {model.convention!r}")
        self.teacher = Predictor(teacher, batch_size=batch_size)
        self.second = Predictor(second_teacher, batch_size=batch_size) if second_teacher is not None else None
        self.config = config or LabelConfig()
        self.names = [_model_name(model) for model in (teacher, second_teacher) if model is not None]

    def label(self, image: np.ndarray, boxes: np.ndarray,
              ground_truth: Sequence[np.ndarray | None] | None = None) -> list[dict | None]:
        """Annotations (COCO fields, without ids) of the people in ``boxes`` of one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            boxes: (N, 4) person boxes ``x, y, w, h``.
            ground_truth: per person, None or (17, 3) COCO-17 ``x, y, v`` ground truth; joints with
                ``v > 0`` are kept as they are.

        Returns:
            One entry per box: ``{"bbox", "area", "keypoints" (51 numbers), "keypoint_scores" (17),
            "num_keypoints", "iscrowd", "category_id"}``, or None where fewer than ``min_keypoints`` joints
            survive the filters.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return []
        first = self.teacher.predict_image(image, boxes)
        second = self.second.predict_image(image, boxes) if self.second is not None else None
        out: list[dict | None] = []
        for index, person in enumerate(first):
            points = person.keypoints[:, :2].copy()
            scores = person.keypoints[:, 2].copy()
            keep = scores >= self.config.min_score
            if second is not None:
                distance = np.linalg.norm(points - second[index].keypoints[:, :2], axis=-1)
                keep &= distance <= self.config.max_disagreement * boxes[index, 3]
            flags = np.where(keep, 2.0, 0.0)
            truth = None if ground_truth is None else ground_truth[index]
            if truth is not None:
                truth = np.asarray(truth, dtype=np.float64)
                labelled = truth[:, 2] > 0
                points[labelled] = truth[labelled, :2]
                flags[labelled] = 2.0
                scores[labelled] = 1.0
            if int((flags > 0).sum()) < self.config.min_keypoints:
                out.append(None)
                continue
            points[flags == 0] = 0.0
            keypoints = np.concatenate([points, flags[:, None]], axis=1)
            x, y, w, h = (float(v) for v in boxes[index])
            out.append({
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                "area": round(w * h, 2),
                "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
                "keypoint_scores": [round(float(v), 4) for v in scores],
                "num_keypoints": int((flags > 0).sum()),
                "iscrowd": 0,
                "category_id": 1,
            })
        return out
