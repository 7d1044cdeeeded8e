"""MoveNet MultiPose as a person detector: resizing and padding, exact box mapping, scores, NMS."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.apis.detector import Detector, MultiPoseDetector
from lowres_hps.models.movenet import MoveNetMultiPose


class _FixedMultiPose(MoveNetMultiPose):
    """A tiny MultiPose whose output is fixed people (normalised boxes of the padded input, scores); records
    the input it was given."""

    def __init__(self, people):
        super().__init__(width_mult=0.35)
        self.people = torch.tensor(people, dtype=torch.float32).reshape(-1, 5)
        self.seen = None

    def forward(self, images):
        self.seen = tuple(images.shape)
        out = torch.zeros(images.shape[0], self.max_people, 56)
        n = min(len(self.people), self.max_people)
        out[:, :n, 51:] = self.people[:n]
        return out


def test_is_a_detector():
    assert isinstance(MultiPoseDetector(model=_FixedMultiPose([])), Detector)


def test_boxes_map_back_from_the_padded_upscaled_input():
    # A 100 x 150 image (h x w) upscaled 2x is 200 x 300, padded to 224 x 320.
    model = _FixedMultiPose([[0.25, 0.5, 0.75, 0.625, 0.9]])  # ymin, xmin, ymax, xmax (of 224 x 320), score
    boxes, scores = MultiPoseDetector(upscale=2.0, model=model)(np.zeros((100, 150, 3), np.uint8))
    assert model.seen == (1, 3, 224, 320)
    # Edges in the input: y 56 .. 168, x 160 .. 200 -> image edges / 2 -> centre convention (- 0.5).
    assert boxes.tolist() == [pytest.approx([80 - 0.5, 28 - 0.5, 20.0, 56.0])]
    assert scores.tolist() == pytest.approx([0.9])


def test_low_scores_and_duplicates_are_dropped():
    people = [[0.1, 0.1, 0.5, 0.3, 0.8], [0.11, 0.1, 0.5, 0.3, 0.6], [0.5, 0.6, 0.9, 0.8, 0.05], [0.5, 0.5, 0.9, 0.6, 0.3]]
    boxes, scores = MultiPoseDetector(min_score=0.1, model=_FixedMultiPose(people))(np.zeros((64, 64, 3), np.uint8))
    assert scores.tolist() == pytest.approx([0.8, 0.3])  # the overlapping 0.6 is suppressed, 0.05 too weak


def test_boxes_stay_inside_the_image():
    # The padded area right of a 40 px wide image (input 64 wide) is cut off.
    model = _FixedMultiPose([[0.0, 0.5, 1.0, 1.0, 0.9]])
    boxes, _ = MultiPoseDetector(upscale=1.0, model=model)(np.zeros((64, 40, 3), np.uint8))
    x, y, w, h = boxes[0]
    assert x == pytest.approx(31.5) and x + w == pytest.approx(39.5) and y == pytest.approx(-0.5) and h == 64


def test_automatic_upscale_brings_the_long_side_to_its_target():
    detector = MultiPoseDetector(model=_FixedMultiPose([]), target_long_side=1024, max_upscale=4.0)
    assert detector.factor(576, 768) == pytest.approx(1024 / 768)
    assert detector.factor(115, 154) == 4.0  # at most x4
    assert detector.factor(1080, 1920) == 1.0  # never reduced for the target (only by max_pixels)
    model = _FixedMultiPose([])
    MultiPoseDetector(model=model, target_long_side=128)(np.zeros((48, 64, 3), np.uint8))
    assert model.seen == (1, 3, 96, 128)
    assert "auto" in repr(detector)


def test_large_images_are_reduced_to_max_pixels():
    model = _FixedMultiPose([])
    MultiPoseDetector(upscale=2.0, max_pixels=64 * 64, model=model)(np.zeros((128, 128, 3), np.uint8))
    assert model.seen == (1, 3, 64, 64)


def test_bad_settings_and_images_are_clear_errors():
    model = _FixedMultiPose([])
    for kwargs, message in (({"upscale": 0}, "upscale"), ({"min_score": 1.0}, "min_score"),
                            ({"nms_iou": 0.0}, "nms_iou"), ({"max_people": 0}, "max_people")):
        with pytest.raises(ValueError, match=message):
            MultiPoseDetector(model=model, **kwargs)
    with pytest.raises(ValueError):
        MultiPoseDetector(model=model)(np.zeros((32, 32), np.uint8))


def test_a_whole_image_estimator_is_a_detector():
    from lowres_hps.apis.detector import PeopleDetector
    from lowres_hps.models.estimator import ImagePeople

    class Two:
        def predict_people(self, images):
            return [ImagePeople(boxes=np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]),
                                keypoints=np.zeros((2, 17, 3)), scores=np.array([0.9, 0.1]))]

    detector = PeopleDetector(Two(), min_score=0.5)
    assert isinstance(detector, Detector)
    boxes, scores = detector(np.zeros((20, 20, 3), np.uint8))
    assert boxes.tolist() == [[1.0, 2.0, 3.0, 4.0]] and scores.tolist() == [0.9]
