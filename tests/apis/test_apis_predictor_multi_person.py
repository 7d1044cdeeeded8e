"""Predictor with a whole-image (multi-person) estimator: the predictor branches on the contract, adds 3D
bodies on the boxes the estimator found, and a new model kind of that contract goes through the registry."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

from lowres_hps.apis.predictor import Predictor
from lowres_hps.apis.registry import ModelCard, load_model, save_checkpoint
from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model
from lowres_hps.models.estimator import ImagePeople, MultiPersonEstimator, PoseEstimator
from lowres_hps.models.kinds import get_kind, register_kind

K = 17


class BrightPeople:
    """Test double: each bright (> threshold) rectangle of the image, found by its rows and columns, is a person
    whose keypoints are all at the rectangle's centre (score 0.9); the person score is 0.7."""

    convention = "coco17"

    def __init__(self, threshold: float = 200.0) -> None:
        self.threshold = threshold
        self.seen: list[int] = []

    def predict_people(self, images):
        self.seen.append(len(images))
        found = []
        for image in images:
            bright = image.mean(-1) > self.threshold
            boxes = []
            columns = np.flatnonzero(bright.any(0))
            # Split the bright columns into runs: one person per run (the test images put people side by side).
            for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else []:
                rows = np.flatnonzero(bright[:, run].any(1))
                boxes.append([run[0] - 0.5, rows[0] - 0.5, len(run), rows[-1] - rows[0] + 1.0])
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            centres = boxes[:, :2] + boxes[:, 2:] / 2
            keypoints = np.concatenate([np.repeat(centres[:, None], K, 1), np.full((len(boxes), K, 1), 0.9)], -1)
            found.append(ImagePeople(boxes=boxes, keypoints=keypoints, scores=np.full(len(boxes), 0.7)))
        return found


def _image(rectangles, size=(120, 160)):
    image = np.full((*size, 3), 40, np.uint8)
    for x, y, w, h in rectangles:
        image[y:y + h, x:x + w] = 250
    return image


PEOPLE = [(20, 10, 20, 60), (90, 30, 30, 80)]


def test_the_predictor_runs_a_multi_person_estimator_on_whole_images():
    estimator = BrightPeople()
    assert isinstance(estimator, MultiPersonEstimator) and not isinstance(estimator, PoseEstimator)
    predictor = Predictor(estimator, batch_size=1)
    found = predictor.predict_images([_image(PEOPLE), _image(PEOPLE[:1]), _image([])])
    assert estimator.seen == [3]  # whole images, in one call
    assert [len(people) for people in found] == [2, 1, 0]
    for person, (x, y, w, h) in zip(found[0], PEOPLE):
        np.testing.assert_allclose(person.bbox, [x - 0.5, y - 0.5, w, h])
        np.testing.assert_allclose(person.keypoints[:, :2], np.tile([x - 0.5 + w / 2, y - 0.5 + h / 2], (K, 1)))
        assert person.score == pytest.approx(0.7) and person.box_score == 1.0
        assert person.keypoints_3d is None and person.body is None and person.keypoints_3d_projected is None
    assert predictor.faces is None


def test_multi_person_errors_are_clear():
    predictor = Predictor(BrightPeople())
    with pytest.raises(ValueError, match="finds the people itself"):
        predictor.predict_image(_image(PEOPLE), np.array([[0.0, 0.0, 10.0, 10.0]]))
    with pytest.raises(ValueError, match="whole images"):
        Predictor(BrightPeople(), person_height=32.0)
    with pytest.raises(ValueError, match="not person crops"):
        predictor.crop(_image(PEOPLE), np.array([0.0, 0.0, 10.0, 10.0]))

    class Wrong(BrightPeople):
        def predict_people(self, images):
            return super().predict_people(images)[:-1]

    with pytest.raises(ValueError, match="one ImagePeople per image"):
        Predictor(Wrong()).predict_images([_image(PEOPLE), _image(PEOPLE)])
    with pytest.raises(ValueError, match=r"boxes \(N, 4\), keypoints \(N, K, 3\) and scores \(N,\)"):
        ImagePeople(boxes=np.zeros((2, 4)), keypoints=np.zeros((2, K, 3)), scores=np.zeros(3))
    with pytest.raises(TypeError, match="MultiPersonEstimator"):
        Predictor(object())


@pytest.fixture(scope="module")
def body_estimator(anny_body):
    torch.manual_seed(0)
    return Body3DEstimator(build_body3d_model(Body3DConfig(canvas=64), pretrained=False), anny_body)


def test_a_3d_model_adds_bodies_on_the_boxes_the_estimator_found(body_estimator):
    image = _image(PEOPLE)
    [people] = Predictor(BrightPeople(), body_estimator=body_estimator, batch_size=1).predict_images([image])
    # The same boxes given to a top-down run of the same 3D model give the same bodies.
    boxes = np.stack([p.bbox for p in people])
    expected = Predictor(body_estimator, batch_size=1).predict_image(image, boxes)
    assert len(people) == 2
    for person, reference in zip(people, expected):
        np.testing.assert_allclose(person.keypoints_3d, reference.keypoints_3d, rtol=0, atol=1e-6)
        assert person.body == reference.body
        np.testing.assert_allclose(person.keypoints_3d_projected, reference.keypoints_3d_projected, rtol=0, atol=1e-4)
        np.testing.assert_allclose(person.keypoints[:, 2], 0.9)  # 2D still from the multi-person estimator


# ---------------------------------------------------------------------------------------------
# A new model kind of the multi-person contract, registered here as a model module would register it.


@dataclass
class BrightConfig:
    input_size: tuple[int, int] = (1, 1)  # whole images of any size; the card still names an input size
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    convention: str = "coco17"
    scale_factor: float = 1.0
    extra: dict = field(default_factory=dict)


class BrightNet(nn.Module):
    """One learnt number: the brightness threshold."""

    def __init__(self, config: BrightConfig) -> None:
        super().__init__()
        self.config = config
        self.threshold = nn.Parameter(torch.tensor(128.0))


def build_bright(config: BrightConfig, pretrained: bool = True) -> BrightNet:
    return BrightNet(config)


@register_kind("bright_people_test", "test multi-person", config=BrightConfig, build=build_bright)
class BrightPeopleEstimator(BrightPeople):
    def __init__(self, model: BrightNet, card=None) -> None:
        super().__init__(float(model.threshold.detach()))
        self.model, self.card = model, card

    @classmethod
    def from_network(cls, network, card=None, device=None, **options):
        return cls(network.to(device or "cpu"), card)


def test_a_new_kind_goes_through_the_registry_and_the_predictor(tmp_path):
    network = build_bright(BrightConfig())
    with torch.no_grad():
        network.threshold.fill_(200.0)
    card = ModelCard.from_config("bright", network.config)
    assert card.task == "bright_people_test" and get_kind(card.task).estimator is BrightPeopleEstimator
    path = save_checkpoint(network, card, tmp_path / "bright.safetensors")
    estimator = load_model(path)
    assert isinstance(estimator, BrightPeopleEstimator) and estimator.threshold == 200.0
    [people] = Predictor(estimator).predict_images([_image(PEOPLE)])
    assert len(people) == 2
    with pytest.raises(ValueError, match="have no ONNX export"):
        from lowres_hps.apis.export import export_onnx

        export_onnx(estimator, tmp_path / "bright.onnx")
