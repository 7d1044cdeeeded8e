"""Predictor: crops through the low-resolution protocol, batching across images, exact mapping back to the image."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.apis.predictor import PersonPrediction, Predictor
from lowres_hps.body import load_body_model
from lowres_hps.body.keypoints import COCO17
from lowres_hps.imaging.crop import crop_box
from lowres_hps.imaging.protocol import LowResProtocol, input_range_index
from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model, project_to_crop

K = 17


class CropPointsEstimator:
    """Test double: the same crop-pixel points for every crop, and records what it was fed.

    Point 0 is the crop centre, point 1 the top-left edge corner (-0.5, -0.5) of the crop, point 2 its
    bottom-right edge corner (w - 0.5, h - 0.5); the others repeat the centre. Scores are 0.2, 0.4, ... .
    """

    def __init__(self, input_size=(64, 48), scale_factor=1.25, dtype=torch.float32):
        self.input_size = input_size
        self.scale_factor = scale_factor
        self.convention = "coco17"
        self.dtype = dtype
        self.calls: list[torch.Tensor] = []

    def __call__(self, crops, range_index=None):
        self.calls.append(crops.clone())
        h, w = self.input_size
        points = torch.full((K, 2), 0.0, dtype=self.dtype)
        points[:] = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=self.dtype)
        points[1] = torch.tensor([-0.5, -0.5], dtype=self.dtype)
        points[2] = torch.tensor([w - 0.5, h - 0.5], dtype=self.dtype)
        scores = torch.linspace(0.2, 0.9, K, dtype=self.dtype)
        batch = crops.shape[0]
        return points.expand(batch, K, 2).to(crops.device), scores.expand(batch, K).to(crops.device)


class BrightCentroidEstimator:
    """Test double that looks at the crop: every keypoint is the intensity centroid of the bright pixels."""

    input_size = (128, 96)
    scale_factor = 1.25
    convention = "coco17"

    def __call__(self, crops, range_index=None):
        weights = (crops.float().mean(1) - 128).clamp(min=0)  # (B, h, w)
        ys, xs = torch.meshgrid(torch.arange(crops.shape[2]), torch.arange(crops.shape[3]), indexing="ij")
        total = weights.sum((1, 2))
        centroid = torch.stack([(weights * xs).sum((1, 2)) / total, (weights * ys).sum((1, 2)) / total], -1)
        return centroid[:, None].expand(-1, K, 2), torch.ones(crops.shape[0], K)


def _image(height=240, width=320, square=((150, 100), 20)):
    (cx, cy), side = square
    image = np.full((height, width, 3), 30, np.uint8)
    image[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2] = 250
    return image


def test_doubles_satisfy_the_estimator_protocol():
    assert isinstance(CropPointsEstimator(), PoseEstimator)
    assert isinstance(BrightCentroidEstimator(), PoseEstimator)


@pytest.mark.parametrize("person_height", [None, 24.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keypoints_map_back_exactly_to_the_crop_region(person_height, dtype):
    estimator = CropPointsEstimator(dtype=dtype)
    predictor = Predictor(estimator, person_height=person_height)
    boxes = np.array([[40.0, 30.0, 50.0, 120.0], [200.5, 10.25, 90.0, 60.0]])
    people = predictor.predict_image(_image(), boxes)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-9
    for box, person in zip(boxes, people):
        region = crop_box(box, estimator.input_size, estimator.scale_factor)
        np.testing.assert_allclose(person.keypoints[0, :2], box[:2] + box[2:] / 2, atol=tolerance)
        np.testing.assert_allclose(person.keypoints[1, :2], region[:2], atol=tolerance)
        np.testing.assert_allclose(person.keypoints[2, :2], region[:2] + region[2:], atol=tolerance)
        np.testing.assert_allclose(person.keypoints[:, 2], np.linspace(0.2, 0.9, K), atol=1e-6)
        assert person.score == pytest.approx(np.linspace(0.2, 0.9, K).mean(), abs=1e-6)
        assert person.box_score == 1.0 and person.keypoints.dtype == np.float64
        np.testing.assert_array_equal(person.bbox, box)


@pytest.mark.parametrize("person_height", [None, 30.0])
def test_crops_are_the_protocol_crops(person_height):
    estimator = CropPointsEstimator()
    image, box = _image(), np.array([120.0, 60.0, 60.0, 80.0])
    Predictor(estimator, person_height=person_height).predict_image(image, box[None])
    expected = LowResProtocol(estimator.input_size, estimator.scale_factor, "upsample")(image, box, person_height)
    assert len(estimator.calls) == 1
    torch.testing.assert_close(estimator.calls[0][0], expected.image, rtol=0, atol=0)
    assert estimator.calls[0].dtype == torch.uint8 and estimator.calls[0].shape == (1, 3, 64, 48)


def test_person_height_degrades_what_the_estimator_sees():
    estimator = CropPointsEstimator(input_size=(128, 96))
    image, box = _image(), np.array([120.0, 60.0, 60.0, 80.0])
    Predictor(estimator).predict_image(image, box[None])
    Predictor(estimator, person_height=16).predict_image(image, box[None])
    sharp, degraded = (c[0].float() for c in estimator.calls)
    # A 16 px person has lost the square's sharp edges: the crops differ, and the degraded one is smoother.
    assert (sharp - degraded).abs().max() > 50
    assert degraded.diff(dim=2).abs().max() < sharp.diff(dim=2).abs().max()


@pytest.mark.parametrize("person_height", [None, 32.0])
def test_image_content_lands_where_it_was(person_height):
    # The double finds the bright square in its crop; mapped back, that is the square's centre in the image
    # (pixel centres at integers: the 20 px square spanning columns 140..159 is centred at x = 149.5).
    predictor = Predictor(BrightCentroidEstimator(), person_height=person_height)
    boxes = np.array([[110.0, 40.0, 70.0, 110.0], [125.0, 80.0, 40.0, 45.0]])
    for person in predictor.predict_image(_image(), boxes):
        np.testing.assert_allclose(person.keypoints[:, :2], np.tile([149.5, 99.5], (K, 1)), atol=0.1)


def test_people_are_batched_across_images_in_order():
    estimator = CropPointsEstimator()
    predictor = Predictor(estimator, batch_size=2)
    boxes = [np.array([[10.0, 10, 20, 40], [50, 10, 20, 40]]), np.zeros((0, 4)),
             np.array([[5.0, 5, 30, 30], [60, 20, 10, 50], [100, 100, 40, 80]])]
    results = predictor.predict_images([_image(), _image(100, 100, ((50, 50), 10)), _image()], boxes)
    assert [len(c) for c in estimator.calls] == [2, 2, 1]
    assert [len(r) for r in results] == [2, 0, 3]
    for image_boxes, people in zip(boxes, results):
        for box, person in zip(image_boxes, people):
            np.testing.assert_allclose(person.keypoints[0, :2], box[:2] + box[2:] / 2, atol=1e-4)


def test_detector_boxes_and_scores():
    class FixedDetector:
        def __call__(self, image):
            return np.array([[100.0, 50.0, 30.0, 90.0]]), np.array([0.5])

    estimator = CropPointsEstimator()
    [person] = Predictor(estimator, detector=FixedDetector()).predict_image(_image())
    assert isinstance(person, PersonPrediction)
    assert person.box_score == 0.5
    assert person.score == pytest.approx(0.5 * np.linspace(0.2, 0.9, K).mean(), abs=1e-6)
    np.testing.assert_allclose(person.keypoints[0, :2], [115.0, 95.0], atol=1e-4)
    # Given boxes win over the detector, with their own scores.
    [given] = Predictor(estimator, detector=FixedDetector()).predict_image(
        _image(), np.array([[0.0, 0, 10, 10]]), box_scores=np.array([0.25]))
    assert given.box_score == 0.25 and given.bbox.tolist() == [0, 0, 10, 10]


def test_device(device):
    estimator = CropPointsEstimator()
    [person] = Predictor(estimator, device=device).predict_image(_image(), np.array([[40.0, 30, 50, 120]]))
    assert estimator.calls[0].device.type == device.type
    np.testing.assert_allclose(person.keypoints[0, :2], [65.0, 90.0], atol=1e-4)


def test_errors_are_clear():
    estimator = CropPointsEstimator()
    with pytest.raises(TypeError, match="PoseEstimator"):
        Predictor(object())
    with pytest.raises(ValueError, match="person_height"):
        Predictor(estimator, person_height=0)
    with pytest.raises(ValueError, match="batch_size"):
        Predictor(estimator, batch_size=0)
    predictor = Predictor(estimator)
    with pytest.raises(ValueError, match="no detector"):
        predictor.predict_image(_image())
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict_image(_image().astype(np.float32), np.array([[0.0, 0, 10, 10]]))
    with pytest.raises(ValueError, match="positive w and h"):
        predictor.predict_image(_image(), np.array([[0.0, 0, 0, 10]]))
    with pytest.raises(ValueError, match="box scores"):
        predictor.predict_image(_image(), np.array([[0.0, 0, 10, 10]]), box_scores=np.array([1.0, 1.0]))

    class WrongShape(CropPointsEstimator):
        def __call__(self, crops, range_index=None):
            points, scores = super().__call__(crops)
            return points[..., :1], scores

    with pytest.raises(ValueError, match="expected"):
        Predictor(WrongShape()).predict_image(_image(), np.array([[0.0, 0, 10, 10]]))


# ---------------------------------------------------------------------------------------------
# 3D bodies


@pytest.fixture(scope="module")
def body_estimator(anny_body):
    """A small random 3D model (ResNet-18 on a 64 px canvas) with the real Anny body."""
    torch.manual_seed(0)
    return Body3DEstimator(build_body3d_model(Body3DConfig(canvas=64), pretrained=False), anny_body)


def _project(points, body):
    """Pixels of (N, 3) points in the camera of a person's ``body`` dict."""
    from lowres_hps.geometry.camera import perspective_project

    return perspective_project(torch.as_tensor(points)[None], body["focal"],
                               torch.tensor(body["principal_point"], dtype=torch.float64))[0].numpy()


BOXES_3D = np.array([[40.0, 30.0, 50.0, 120.0], [200.5, 100.0, 30.0, 60.0]])


@pytest.mark.parametrize("person_height", [None, 32.0])
def test_a_3d_estimator_gives_bodies_in_the_full_image_camera(body_estimator, anny_body, person_height):
    image = _image()
    people = Predictor(body_estimator, person_height=person_height).predict_image(image, BOXES_3D)
    for box, person in zip(BOXES_3D, people):
        body = person.body
        assert json.loads(json.dumps(body)) == body  # JSON-ready
        assert body["body_model"] == "anny" and len(body["pose_vector"]) == anny_body.pose_spec.vector_size
        assert body["focal"] == pytest.approx(400.0)  # sqrt(320^2 + 240^2)
        assert body["principal_point"] == [159.5, 119.5]
        assert body["range_index"] == (4 if person_height else input_range_index(box[3]))
        assert person.keypoints_3d.shape == (K, 3) and person.keypoints_3d.dtype == np.float64
        assert (person.keypoints_3d[:, 2] > 0).all() and person.vertices is None
        # The body dict rebuilds the keypoints: body model at the translation.
        output = anny_body.forward_vector(torch.tensor([body["pose_vector"]]))
        rebuilt = output.keypoints("coco17")[0][0].double() + torch.tensor(body["translation"], dtype=torch.float64)
        # Float32 keypoints regressed over Anny's 13718 vertices, in batches of other sizes: round-off up to
        # ~sqrt(13718) * eps * 1 m (see test_body_anny.float32_sum_tolerance), on top of the translation's.
        np.testing.assert_allclose(person.keypoints_3d, rebuilt.numpy(), atol=1e-4)
        # The root is where the crop camera saw it: both cameras agree on the plane of the root.
        region = crop_box(box, (64, 64), 1.25)
        camera = torch.tensor([body["camera"]], dtype=torch.float64)
        root_crop, _ = project_to_crop(torch.zeros(1, 1, 3, dtype=torch.float64), camera, 64,
                                       body_estimator.config.crop_focal)
        root_image = region[:2] + (root_crop[0, 0].numpy() + 0.5) * region[3] / 64  # crop edge -0.5 = box edge
        np.testing.assert_allclose(_project(np.array([body["translation"]]), body)[0], root_image, atol=1e-6)
        # The 2D keypoints are the same body's projection: near the 3D keypoints seen by the full camera
        # (off the root plane the two cameras differ by perspective: a few % of the person).
        assert np.abs(_project(person.keypoints_3d, body) - person.keypoints[:, :2]).max() < 0.05 * box[3]
        np.testing.assert_array_equal(person.keypoints[:, 2], np.ones(K))


def test_vertices_follow_the_keypoints(body_estimator, anny_body):
    predictor = Predictor(body_estimator, with_vertices=True)
    [person] = predictor.predict_image(_image(), BOXES_3D[:1])
    assert person.vertices.shape == (anny_body.num_vertices, 3) and person.vertices.dtype == np.float32
    faces = predictor.faces
    assert faces.shape == (anny_body.num_faces, 3) and faces.dtype == np.int64
    output = anny_body.forward_vector(torch.tensor([person.body["pose_vector"]]))
    expected = output.vertices[0].double() + torch.tensor(person.body["translation"], dtype=torch.float64)
    np.testing.assert_allclose(person.vertices, expected.numpy(), atol=1e-4)
    pixels = _project(person.vertices.astype(np.float64), person.body)
    box = crop_box(BOXES_3D[0], (64, 64), 1.25)
    assert (pixels.min(0) > box[:2] - 1).all() and (pixels.max(0) < box[:2] + box[2:] + 1).all()


def test_a_separate_3d_model_runs_on_its_own_crops(body_estimator, monkeypatch):
    estimator = CropPointsEstimator()
    seen = []
    original = body_estimator.predict_bodies
    monkeypatch.setattr(body_estimator, "predict_bodies",
                        lambda crops, range_index, with_vertices=True:
                        seen.append((crops, range_index)) or original(crops, range_index, with_vertices))
    image = _image()
    predictor = Predictor(estimator, person_height=30.0, body_estimator=body_estimator)
    people = predictor.predict_image(image, BOXES_3D)
    assert predictor.estimator is estimator and predictor.body_estimator is body_estimator
    # 2D from the 2D model, on its 64 x 48 crops; 3D from the 3D model, on 64 x 64 crops at the same R.
    assert estimator.calls[0].shape == (2, 3, 64, 48)
    expected = LowResProtocol((64, 64), 1.25, "upsample")(image, BOXES_3D[0], 30.0)
    torch.testing.assert_close(seen[0][0][0], expected.image, rtol=0, atol=0)
    assert seen[0][1].tolist() == [4, 4]  # the crops' ranges (R = 30 px)
    for person in people:
        np.testing.assert_allclose(person.keypoints[:, 2], np.linspace(0.2, 0.9, K), atol=1e-6)
        assert person.keypoints_3d.shape == (K, 3) and person.body["range_index"] == 4
    # Without a 3D model the 3D fields stay empty.
    [plain] = Predictor(estimator).predict_image(image, BOXES_3D[:1])
    assert plain.keypoints_3d is None and plain.body is None and plain.vertices is None
    assert Predictor(estimator).faces is None
    with pytest.raises(TypeError, match="BodyEstimator"):
        Predictor(estimator, body_estimator=CropPointsEstimator())


def test_a_3d_model_that_crops_like_the_2d_model_reuses_its_crops(body_estimator, monkeypatch):
    """Same input size and margin (as lrmove_l_128 and the 3D default): each person is cropped once, and the
    bodies are those of the 3D model's own crops."""
    estimator = CropPointsEstimator(input_size=(64, 64))
    image = _image()
    own_crops = Predictor(CropPointsEstimator(), person_height=30.0, body_estimator=body_estimator)  # 64 x 48 2D
    reference = [p.keypoints_3d for p in own_crops.predict_image(image, BOXES_3D)]
    predictor = Predictor(estimator, person_height=30.0, body_estimator=body_estimator)
    calls = []
    monkeypatch.setattr(predictor, "body_crop", lambda *a: calls.append(a) or Predictor.body_crop(predictor, *a))
    people = predictor.predict_image(image, BOXES_3D)
    assert calls == []
    for person, expected in zip(people, reference):
        np.testing.assert_array_equal(person.keypoints_3d, expected)
    other = Predictor(CropPointsEstimator(), person_height=30.0, body_estimator=body_estimator)  # 64 x 48: its own
    monkeypatch.setattr(other, "body_crop", lambda *a: calls.append(a) or Predictor.body_crop(other, *a))
    other.predict_image(image, BOXES_3D)
    assert len(calls) == len(BOXES_3D)


def test_bodies_fitted_to_the_2d_keypoints_in_the_3d_crops(body_estimator):
    from lowres_hps.fitting import KeypointFitConfig

    estimator = CropPointsEstimator()
    image = _image()
    plain = Predictor(estimator, person_height=30.0, body_estimator=body_estimator).predict_image(image, BOXES_3D)
    fitting = Predictor(estimator, person_height=30.0, body_estimator=body_estimator,
                        fit_keypoints=KeypointFitConfig(steps=20))
    fitted = fitting.predict_image(image, BOXES_3D)
    for before, after in zip(plain, fitted):
        np.testing.assert_array_equal(after.keypoints, before.keypoints)  # the 2D model's keypoints stay
        assert "fitted_to_keypoints" not in before.body and after.body["fitted_to_keypoints"] is True
        usable = after.keypoints[:, 2] >= 0.1

        def distance(person):  # projected 3D keypoints to the 2D keypoints, image px
            return np.linalg.norm(person.keypoints_3d_projected[usable] - person.keypoints[usable, :2], axis=1).mean()

        assert distance(after) < distance(before)
    with pytest.raises(ValueError, match="fit_keypoints cannot run: the 3D model is also the 2D model"):
        Predictor(body_estimator, fit_keypoints=KeypointFitConfig())
    with pytest.raises(ValueError, match="fit_keypoints cannot run: no 3D model runs"):
        Predictor(estimator, fit_keypoints=KeypointFitConfig())


class FacingPointsEstimator(CropPointsEstimator):
    """Test double: a person facing the camera, the same for every crop: COCO-17 left keypoints on the crop's right
    (the image right), right keypoints on its left, all with score 0.9."""

    def __call__(self, crops, range_index=None):
        h, w = self.input_size
        rows = {"nose": 0.12, "eye": 0.1, "ear": 0.11, "shoulder": 0.25, "elbow": 0.4, "wrist": 0.52, "hip": 0.55,
                "knee": 0.75, "ankle": 0.95}
        points = torch.zeros(K, 2, dtype=self.dtype)
        for k, name in enumerate(COCO17.names):
            side = 0.0 if name == "nose" else 0.1 if name.startswith("left_") else -0.1
            part = name.split("_")[-1]
            points[k] = torch.tensor([(0.5 + side * (2 if part in ("shoulder", "elbow", "wrist") else 1)) * w,
                                      (0.1 + 0.8 * rows[part]) * h])
        batch = crops.shape[0]
        return points.expand(batch, K, 2).to(crops.device), torch.full((batch, K), 0.9, dtype=self.dtype)


def test_bodies_fitted_again_with_left_and_right_exchanged(body_estimator):
    from lowres_hps.fitting import KeypointFitConfig

    image = _image()
    fitting = Predictor(FacingPointsEstimator(), body_estimator=body_estimator,
                        fit_keypoints=KeypointFitConfig(steps=60, pose_prior=0.01))
    fitted = fitting.predict_image(image, BOXES_3D)
    again = fitting.refit_left_right(image, fitted)
    flip = COCO17.flip_permutation
    left, right = COCO17.index("left_shoulder"), COCO17.index("right_shoulder")
    for before, after in zip(fitted, again):
        np.testing.assert_array_equal(after.keypoints, before.keypoints[flip])
        np.testing.assert_array_equal(after.bbox, before.bbox)
        assert after.body["left_right_swapped"] is True and after.body["fitted_to_keypoints"] is True
        assert "left_right_swapped" not in before.body
        # Each body's projected shoulders follow the keypoints it was fitted to: left on the image right, then left.
        assert before.keypoints_3d_projected[left, 0] > before.keypoints_3d_projected[right, 0]
        assert after.keypoints_3d_projected[left, 0] < after.keypoints_3d_projected[right, 0]
    assert fitting.refit_left_right(image, []) == []
    with pytest.raises(ValueError, match="needs the keypoint fit"):
        Predictor(FacingPointsEstimator(), body_estimator=body_estimator).refit_left_right(image, fitted)


def test_3d_on_device(device, anny_body):
    torch.manual_seed(0)
    model = build_body3d_model(Body3DConfig(canvas=64), pretrained=False).to(device)
    # .to() would move the shared session body in place: another device gets a body of its own.
    body = anny_body if device.type == "cpu" else load_body_model("anny", device=device)
    estimator = Body3DEstimator(model, body)
    [person] = Predictor(estimator, device=device, with_vertices=True).predict_image(_image(), BOXES_3D[:1])
    assert isinstance(person.keypoints_3d, np.ndarray) and isinstance(person.vertices, np.ndarray)
    assert (person.keypoints_3d[:, 2] > 0).all()


# ---------------------------------------------------------------------------------------------
# A known body through the whole 3D path: crop camera -> full image camera -> projection (issue 11)


class GroundTruthNetwork(torch.nn.Module):
    """Test double of a Body3DNet: the given pose vectors (N, D) and crop cameras (N, 3) for a batch of N
    crops, in order, whatever the crops show."""

    def __init__(self, config: Body3DConfig, pose_vector: torch.Tensor, camera: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1))
        self.pose_vector, self.camera = pose_vector, camera

    def forward(self, images, range_index=None):
        assert images.shape[0] == len(self.camera)
        return {"pose_vector": self.pose_vector, "camera": self.camera, "features": torch.zeros(len(images), 1)}


KNOWN_IMAGE = (3000, 4000)  # (H, W): focal 5000 px, people ~55 m away: perspective stays sub-pixel
# Off the image centre (the conversion's offset term counts): upright and tall; lying (root turned 90
# degrees on screen) and wide, where the crop region follows the box width.
KNOWN_BOXES = np.array([[1950.0, 1440.0, 60.0, 150.0], [2000.0, 1560.0, 160.0, 90.0]])
CANVAS = 64


@pytest.fixture(scope="module")
def known_bodies(request):
    """Two Anny bodies, each with the crop camera that makes it fill its box of :data:`KNOWN_BOXES` in the
    network's output convention, and where the crop camera puts its keypoints and vertices in the image.

    The truth is computed here from the definition of the crop camera (focal 5000 px at 224, scaled to the
    canvas; principal point at the canvas centre; root at ``(tx, ty, 2 f / (canvas s))``) and of the protocol
    crop (the region's edges are the canvas edges), without the package's camera conversions.
    """
    pytest.importorskip("anny")
    anny_body = request.getfixturevalue("anny_body")
    from lowres_hps.geometry.rotations import body_to_opencv_rotation, matrix_to_rotation_6d, rotation_about_axis

    config = Body3DConfig(canvas=CANVAS)
    spec = config.pose_spec
    rest = spec.rest_vector(1)[0]
    focal = config.crop_focal
    poses, cameras, truths = [], [], []
    for box, turn in zip(KNOWN_BOXES, (0.0, 90.0)):
        root = rotation_about_axis("z", torch.tensor(turn, dtype=torch.float64), degrees=True) @ \
            body_to_opencv_rotation(torch.float64)
        pose = torch.cat([matrix_to_rotation_6d(root).reshape(6).float(), rest[6:]])
        output = anny_body.forward_vector(pose[None])
        keypoints = output.keypoints("coco17")[0][0].double()
        vertices = output.vertices[0].double()
        low, high = vertices[:, :2].amin(0), vertices[:, :2].amax(0)
        region = crop_box(box, (CANVAS, CANVAS), 1.25)
        # The body's long side spans the box's long side: 2 / 1.25 of the normalised crop.
        scale = (2.0 * box[2:].max() / region[3]) / float((high - low).max())
        shift = -(low + high) / 2
        depth = 2.0 * focal / (CANVAS * scale)

        def to_image(points, shift=shift, depth=depth, region=region):
            camera_points = points + torch.cat([shift, torch.tensor([depth], dtype=torch.float64)])
            crop = focal * camera_points[:, :2] / camera_points[:, 2:] + (CANVAS - 1) / 2
            return region[:2] + (crop.numpy() + 0.5) * region[2:] / CANVAS  # crop edge -0.5 = region edge

        poses.append(pose)
        cameras.append(torch.tensor([scale, float(shift[0]), float(shift[1])]))
        truths.append({"keypoints": to_image(keypoints), "vertices": to_image(vertices)})
    return config, anny_body, torch.stack(poses), torch.stack(cameras), truths


@pytest.mark.parametrize("person_height", [None, 32.0])
def test_a_known_body_lands_on_its_keypoints_at_the_size_of_its_box(known_bodies, person_height):
    config, anny_body, poses, cameras, truths = known_bodies
    estimator = Body3DEstimator(GroundTruthNetwork(config, poses, cameras), anny_body)
    image = np.zeros((*KNOWN_IMAGE, 3), np.uint8)
    people = Predictor(estimator, person_height=person_height, with_vertices=True).predict_image(image, KNOWN_BOXES)
    for box, truth, person in zip(KNOWN_BOXES, truths, people):
        assert person.body["focal"] == pytest.approx(5000.0)
        seen = _project(person.keypoints_3d, person.body)
        np.testing.assert_allclose(person.keypoints_3d_projected, seen, atol=1e-9)
        # The reported 3D keypoints, seen by the reported camera, land on the body's keypoints ...
        assert np.abs(seen - truth["keypoints"]).max() < 1.0
        # ... and the reported mesh has the size of the box: a scale error of a few % fails here.
        mesh = _project(person.vertices.astype(np.float64), person.body)
        extent = mesh.max(0) - mesh.min(0)
        np.testing.assert_allclose(extent, truth["vertices"].max(0) - truth["vertices"].min(0), rtol=0.005)
        long_side = int(np.argmax(box[2:]))
        assert extent[long_side] == pytest.approx(box[2 + long_side], rel=0.01)
        np.testing.assert_allclose((mesh.max(0) + mesh.min(0)) / 2, box[:2] + box[2:] / 2, atol=1.0)


# ---------------------------------------------------------------------------------------------
# Bounded crops of huge people (issue 9)


@pytest.mark.parametrize("person_height", [None, 32.0])
def test_bounded_crop_of_a_huge_person_matches_the_direct_crop(person_height):
    from lowres_hps.apis.predictor import bounded_crop
    from lowres_hps.imaging.protocol import LowResProtocol

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (700, 500, 3), dtype=np.uint8), (0, 0), 6)
    box = np.array([60.3, 40.7, 300.0, 560.0])
    protocol = LowResProtocol((64, 48), 1.25, "upsample")
    direct = protocol(image, box, person_height)
    reduced = bounded_crop(protocol, image, box, person_height, max_side=200)  # reduced by 4 first
    assert reduced.image.shape == direct.image.shape and reduced.image.dtype == direct.image.dtype
    np.testing.assert_allclose(reduced.box, direct.box, atol=1e-9)
    assert reduced.person_height == pytest.approx(direct.person_height)
    np.testing.assert_allclose(reduced.affine.numpy(), direct.affine.numpy(), atol=1e-9)
    difference = (reduced.image.float() - direct.image.float()).abs().mean()
    assert difference < 2.0  # resampling only (grey levels)
    same = bounded_crop(protocol, image, box, person_height)  # below the bound: the protocol itself
    assert torch.equal(same.image, direct.image) and torch.equal(same.affine, direct.affine)


def test_person_height_must_be_finite():
    with pytest.raises(ValueError, match="finite"):
        Predictor(CropPointsEstimator(), person_height=float("inf"))
