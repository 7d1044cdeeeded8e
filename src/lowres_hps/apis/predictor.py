"""Top-down 2D keypoints on whole images: person boxes -> low-resolution protocol crops -> estimator -> image px.

:class:`Predictor` drives any :class:`~lowres_hps.apis.estimator.PoseEstimator`. Each person box is cropped
by :class:`~lowres_hps.imaging.protocol.LowResProtocol` with the estimator's input size and scale factor
(setting ``"upsample"``): without ``person_height`` the crop goes straight to the input size; with it the
crop is taken at the source resolution, degraded so the person is ``person_height`` px tall, then resized
to the input size. The people of all images are batched together, and the keypoints are mapped back to
the image with the inverse of each crop's affine.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lowres_hps.apis.detector import Detector
from lowres_hps.apis.estimator import PoseEstimator
from lowres_hps.geometry.transforms import apply_affine, invert_affine
from lowres_hps.imaging.protocol import LowResCrop, LowResProtocol

__all__ = ["PersonPrediction", "Predictor"]


@dataclass(frozen=True)
class PersonPrediction:
    """Keypoints of one person in image coordinates.

    Attributes:
        bbox: (4,) float64 person box ``x, y, w, h`` the crop was made from (given or detected).
        keypoints: (K, 3) float64 ``x, y, score`` in image pixels (pixel centres at integers), in the
            estimator's convention.
        score: person score: the mean keypoint score times ``box_score``.
        box_score: the detector's score of the box; 1 for given boxes.
    """

    bbox: np.ndarray
    keypoints: np.ndarray
    score: float
    box_score: float = 1.0


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))} "
                         f"{getattr(image, 'dtype', '')}")


def _check_boxes(boxes, scores) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if not np.isfinite(boxes).all() or (boxes[:, 2:] <= 0).any():
        raise ValueError(f"boxes must be finite x, y, w, h with positive w and h, got {boxes.tolist()}")
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(boxes),):
        raise ValueError(f"expected {len(boxes)} box scores, got {scores.shape[0]}")
    return boxes, scores


class Predictor:
    """Keypoints of every person in images, from given boxes or a detector.

    Args:
        estimator: the 2D pose model (its ``input_size``, ``scale_factor`` and ``convention`` are used).
        detector: finds the people when no boxes are given; its scores multiply the person scores.
        person_height: ``R`` in px: each crop is degraded so the person box is ``R`` px tall before the
            estimator sees it (the low-resolution protocol, upsample setting). None: no degradation.
        batch_size: people per estimator call.
        device: where the crops go before the estimator call; None leaves them on the CPU.
    """

    def __init__(self, estimator: PoseEstimator, detector: Detector | None = None,
                 person_height: float | None = None, batch_size: int = 32,
                 device: torch.device | str | None = None) -> None:
        if not isinstance(estimator, PoseEstimator):
            raise TypeError(f"estimator must have input_size, scale_factor, convention and be callable "
                            f"(PoseEstimator), got {type(estimator).__name__}")
        if person_height is not None and not person_height > 0:
            raise ValueError(f"person_height must be positive, got {person_height}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.estimator = estimator
        self.detector = detector
        self.person_height = None if person_height is None else float(person_height)
        self.batch_size = int(batch_size)
        self.device = None if device is None else torch.device(device)
        self.protocol = LowResProtocol(tuple(estimator.input_size), float(estimator.scale_factor), "upsample")

    def crop(self, image: np.ndarray, bbox: np.ndarray) -> LowResCrop:
        """The estimator's input for one person box (what :meth:`predict_images` feeds it)."""
        return self.protocol(image, bbox, self.person_height)

    def predict_image(self, image: np.ndarray, boxes: np.ndarray | None = None,
                      box_scores: np.ndarray | None = None) -> list[PersonPrediction]:
        """People of one (H, W, 3) uint8 RGB image; ``boxes`` (N, 4) xywh, or None to run the detector."""
        return self.predict_images([image], None if boxes is None else [boxes],
                                   None if box_scores is None else [box_scores])[0]

    def predict_images(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray] | None = None,
                       box_scores: Sequence[np.ndarray] | None = None) -> list[list[PersonPrediction]]:
        """People of several images, batched together across images.

        Args:
            images: (H, W, 3) uint8 RGB images.
            boxes: per image, (N_i, 4) person boxes ``x, y, w, h``; None runs the detector on every image.
            box_scores: per image, (N_i,) box scores (default 1); only with ``boxes``.

        Returns:
            per image, one :class:`PersonPrediction` per box, in box order (detector order when detected).
        """
        for image in images:
            _check_image(image)
        if boxes is None:
            if box_scores is not None:
                raise ValueError("box_scores need boxes")
            if self.detector is None:
                raise ValueError("no boxes given and the predictor has no detector")
            detections = [self.detector(image) for image in images]
            boxes, box_scores = [d[0] for d in detections], [d[1] for d in detections]
        if len(boxes) != len(images) or (box_scores is not None and len(box_scores) != len(images)):
            raise ValueError(f"expected boxes for {len(images)} images, got {len(boxes)}")
        checked = [_check_boxes(b, None if box_scores is None else box_scores[i]) for i, b in enumerate(boxes)]

        people = [(i, j) for i, (image_boxes, _) in enumerate(checked) for j in range(len(image_boxes))]
        results: list[list[PersonPrediction | None]] = [[None] * len(b) for b, _ in checked]
        for start in range(0, len(people), self.batch_size):
            batch = people[start:start + self.batch_size]
            crops = [self.crop(images[i], checked[i][0][j]) for i, j in batch]
            keypoints = self._keypoints(crops)
            for (i, j), person in zip(batch, keypoints):
                box, score = checked[i][0][j], float(checked[i][1][j])
                results[i][j] = PersonPrediction(bbox=box.copy(), keypoints=person,
                                                 score=float(person[:, 2].mean()) * score, box_score=score)
        return results  # type: ignore[return-value]

    def _keypoints(self, crops: list[LowResCrop]) -> np.ndarray:
        """(B, K, 3) float64 ``x, y, score`` in image pixels of a batch of crops, from one estimator call."""
        inputs = torch.stack([c.image for c in crops])
        if self.device is not None:
            inputs = inputs.to(self.device)
        with torch.inference_mode():
            points, scores = self.estimator(inputs)
        batch = len(crops)
        if points.ndim != 3 or points.shape[0] != batch or points.shape[2] != 2:
            raise ValueError(f"estimator returned keypoints of shape {tuple(points.shape)}, expected ({batch}, K, 2)")
        if tuple(scores.shape) != tuple(points.shape[:2]):
            raise ValueError(f"estimator returned scores of shape {tuple(scores.shape)}, "
                             f"expected {tuple(points.shape[:2])}")
        to_image = invert_affine(torch.stack([c.affine for c in crops]).to(torch.float64))
        image_points = apply_affine(points.detach().to("cpu", torch.float64), to_image)
        combined = torch.cat([image_points, scores.detach().to("cpu", torch.float64)[..., None]], dim=-1)
        return combined.numpy()
