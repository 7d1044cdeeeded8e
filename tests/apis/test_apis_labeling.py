"""TeacherLabeler: score and disagreement filters, ground truth kept, people with too few joints dropped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.apis.labeling import LabelConfig, TeacherLabeler, coco_keypoints_categories
from lowres_hps.body.keypoints import COCO17, get_convention
from lowres_hps.geometry.transforms import apply_affine, invert_affine
from lowres_hps.imaging.protocol import LowResProtocol

K = 17
SIZE = (64, 64)
IMAGE = np.zeros((240, 320, 3), np.uint8)
# Square boxes: the crop region is 1.25 x 80 = 100 px for 64 crop px, so 1 crop px = 1.5625 image px.
BOXES = np.array([[50.0, 40.0, 80.0, 80.0], [180.0, 100.0, 80.0, 80.0]])
BASE = np.stack([np.linspace(8.0, 56.0, K), np.linspace(56.0, 8.0, K)], axis=1)  # crop px, distinct joints


class FixedTeacher:
    """A COCO-17 test teacher: the same crop-pixel joints for every person (plus ``shift``), scores per person."""

    input_size = SIZE
    scale_factor = 1.25
    convention = "coco17"

    def __init__(self, scores, shift=None, name="fixed"):
        self.scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))  # (people, K) or (1, K)
        self.shift = np.zeros((K, 2)) if shift is None else np.asarray(shift, dtype=np.float64)
        self.name = name
        self.calls = 0

    def __call__(self, crops, range_index=None):
        self.calls += 1
        assert crops.shape[1:] == (3, *SIZE) and crops.dtype == torch.uint8
        batch = crops.shape[0]
        points = torch.from_numpy(BASE + self.shift).float().expand(batch, K, 2)
        scores = torch.from_numpy(self.scores[np.arange(batch) % len(self.scores)])
        return points, scores


def _in_image(box, crop_points=BASE):
    """Where crop-pixel points of ``box``'s crop lie in the image (the protocol's inverse affine)."""
    affine = LowResProtocol(SIZE, 1.25)(IMAGE, box).affine
    return apply_affine(torch.from_numpy(np.asarray(crop_points, dtype=np.float64)), invert_affine(affine)).numpy()


def _keypoints(entry):
    return np.asarray(entry["keypoints"]).reshape(K, 3)


def test_fake_teacher_is_a_pose_estimator():
    assert isinstance(FixedTeacher(np.ones(K)), PoseEstimator)


def test_min_score_keeps_confident_joints_in_image_pixels():
    scores = np.linspace(0.05, 0.85, K)
    labeler = TeacherLabeler(FixedTeacher(scores), config=LabelConfig(min_score=0.3, min_keypoints=1))
    (person,) = labeler.label(IMAGE, BOXES[:1])
    keypoints = _keypoints(person)
    kept = scores >= 0.3
    assert 0 < kept.sum() < K
    np.testing.assert_array_equal(keypoints[:, 2], np.where(kept, 2, 0))
    np.testing.assert_allclose(keypoints[kept, :2], _in_image(BOXES[0])[kept], atol=0.006)  # rounded to 0.01
    assert (keypoints[~kept, :2] == 0).all()
    np.testing.assert_allclose(person["keypoint_scores"], scores, atol=1e-4)  # all teacher scores are kept
    assert person["num_keypoints"] == kept.sum()
    assert person["bbox"] == [50.0, 40.0, 80.0, 80.0] and person["area"] == 6400.0
    assert (person["iscrowd"], person["category_id"]) == (0, 1)


def test_second_teacher_disagreement_drops_joints():
    # Limit: 0.1 x box height = 8 image px = 5.12 crop px.
    shift = np.zeros((K, 2))
    shift[0:3] = (10.0, 0.0)    # 15.6 image px apart: dropped
    shift[3:5] = (0.0, -3.0)    # 4.7 image px apart: kept
    shift[5] = (4.0, 4.0)       # 8.8 image px apart: dropped
    first, second = FixedTeacher(np.full(K, 0.9), name="a"), FixedTeacher(np.full(K, 0.9), shift, name="b")
    labeler = TeacherLabeler(first, second, LabelConfig(max_disagreement=0.1, min_keypoints=1))
    assert labeler.names == ["a", "b"]
    people = labeler.label(IMAGE, BOXES)
    assert first.calls == 1 and second.calls == 1  # both people in one batch
    for person, box in zip(people, BOXES):
        flags = _keypoints(person)[:, 2]
        assert flags[[0, 1, 2, 5]].tolist() == [0, 0, 0, 0]
        assert (flags[3:5] == 2).all() and (flags[6:] == 2).all()
        # The first teacher's positions are the ones written.
        np.testing.assert_allclose(_keypoints(person)[3:5, :2], _in_image(box)[3:5], atol=0.006)
    # A looser limit keeps the 8.8 px joint.
    loose = TeacherLabeler(first, second, LabelConfig(max_disagreement=0.12, min_keypoints=1)).label(IMAGE, BOXES[:1])
    assert _keypoints(loose[0])[5, 2] == 2


def test_ground_truth_joints_win_over_the_teacher():
    scores = np.full(K, 0.9)
    scores[COCO17.index("left_ankle")] = 0.1  # the teacher is unsure here, the dataset is not
    labeler = TeacherLabeler(FixedTeacher(scores), config=LabelConfig(min_score=0.3, min_keypoints=1))
    truth = np.zeros((K, 3))
    truth[0] = (77.0, 55.0, 2)
    truth[COCO17.index("left_ankle")] = (60.0, 110.0, 1)
    (person,) = labeler.label(IMAGE, BOXES[:1], [truth])
    keypoints = _keypoints(person)
    ankle = COCO17.index("left_ankle")
    np.testing.assert_array_equal(keypoints[0], [77.0, 55.0, 2])
    np.testing.assert_array_equal(keypoints[ankle], [60.0, 110.0, 2])
    assert person["keypoint_scores"][0] == 1.0 and person["keypoint_scores"][ankle] == 1.0
    # Joints the dataset lacks come from the teacher.
    np.testing.assert_allclose(keypoints[1:ankle, :2], _in_image(BOXES[0])[1:ankle], atol=0.006)
    assert person["num_keypoints"] == K
    # None for a person means "no ground truth": all from the teacher.
    (plain,) = labeler.label(IMAGE, BOXES[:1], [None])
    assert _keypoints(plain)[ankle, 2] == 0


def test_people_with_too_few_joints_are_dropped():
    scores = np.full((2, K), 0.9)
    scores[1, 3:] = 0.0  # the second person keeps 3 joints
    labeler = TeacherLabeler(FixedTeacher(scores), config=LabelConfig(min_score=0.5, min_keypoints=4))
    first, second = labeler.label(IMAGE, BOXES)
    assert first is not None and first["num_keypoints"] == K
    assert second is None
    # Ground truth joints count towards the minimum.
    truth = np.zeros((K, 3))
    truth[10] = (200.0, 150.0, 2)
    assert labeler.label(IMAGE, BOXES, [None, truth])[1]["num_keypoints"] == 4
    assert labeler.label(IMAGE, np.zeros((0, 4))) == []


def test_bad_teachers_and_filters():
    teacher = FixedTeacher(np.ones(K))
    teacher.convention = "lsp14"
    with pytest.raises(ValueError, match="COCO-17"):
        TeacherLabeler(teacher)
    with pytest.raises(ValueError, match="min_score"):
        LabelConfig(min_score=1.5)
    with pytest.raises(ValueError, match="max_disagreement"):
        LabelConfig(max_disagreement=0)
    with pytest.raises(ValueError, match="min_keypoints"):
        LabelConfig(min_keypoints=-1)


def test_categories_are_coco17_with_a_one_based_skeleton():
    (category,) = coco_keypoints_categories()
    convention = get_convention("coco17")
    assert category["keypoints"] == list(convention.names) and len(category["keypoints"]) == K
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in convention.skeleton]
    assert min(min(pair) for pair in category["skeleton"]) == 1
