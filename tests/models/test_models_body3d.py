"""3D body regressor: config, mean start pose, crop camera projection, network outputs and the estimator."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.body.keypoints import get_convention
from lowres_hps.geometry.camera import SPIN_FOCAL_LENGTH, perspective_project, weak_perspective_project
from lowres_hps.geometry.transforms import normalized_to_pixels
from lowres_hps.models.body3d import (
    Body3DConfig,
    Body3DEstimator,
    Body3DNet,
    build_body3d_model,
    default_mean_params,
    project_to_crop,
)
from lowres_hps.models.estimator import BodyEstimator, BodyPrediction, PoseEstimator

COCO = get_convention("coco17")


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def tiny_config(**overrides) -> Body3DConfig:
    return Body3DConfig(**{"canvas": 64, "hidden": 32, "iterations": 2, **overrides})


def random_crops(batch: int, canvas: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, canvas, canvas), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_estimator(anny_body):
    torch.manual_seed(0)
    model = build_body3d_model(tiny_config())
    with torch.no_grad():  # a noticeably non-mean output, so projections are not trivially centred
        model.regressor.mlp[-1].weight.mul_(20.0)
    return Body3DEstimator(model, anny_body)


def test_config_validation_and_round_trip():
    cfg = tiny_config(backbone="resnet50", resolution_aware=False, mean=[0.5, 0.5, 0.5], pretrained="x.pth")
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.input_size == (64, 64)
    assert Body3DConfig.from_dict(cfg.to_dict()) == cfg
    assert Body3DConfig.from_dict({"canvas": 96}).canvas == 96
    assert cfg.crop_focal == pytest.approx(SPIN_FOCAL_LENGTH * 64 / 224)
    assert cfg.param_dim == cfg.pose_spec.vector_size + 3 == 129  # Anny: 20 joints x 6D + 6 shape values
    assert tiny_config(body_model="smpl").param_dim == 24 * 6 + 10 + 3
    with pytest.raises(ValueError, match="backbone must be one of"):
        Body3DConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="canvas must be an integer of at least 32"):
        Body3DConfig(canvas=16)
    with pytest.raises(ValueError, match="canvas must be an integer of at least 32"):
        Body3DConfig(canvas=64.5)
    with pytest.raises(ValueError, match="body_model must be one of"):
        Body3DConfig(body_model="star")
    with pytest.raises(KeyError, match="unknown keypoint convention"):
        Body3DConfig(convention="coco18")
    with pytest.raises(ValueError, match="unknown key 'stride'"):
        Body3DConfig.from_dict({"stride": 4})


def test_default_mean_params_give_an_upright_body_facing_the_camera(anny_body):
    mean = default_mean_params(tiny_config())
    assert mean.shape == (129,)
    # The box (1 / 1.25 of the crop) spans 1.5 m: s = 1.6 / 1.5, the mean of SynthLR's protocol crops (issue 11).
    torch.testing.assert_close(mean[-3:], torch.tensor([2 / (1.25 * 1.5), 0.0, 0.0]))
    assert default_mean_params(Body3DConfig(scale_factor=1.5))[-3] == pytest.approx(2 / (1.5 * 1.5))
    keypoints, _ = anny_body.forward_vector(mean[None, :-3]).keypoints("coco17")
    k = keypoints[0]
    nose, hips = k[COCO.index("nose")], k[[COCO.index("left_hip"), COCO.index("right_hip")]].mean(0)
    ankles = k[[COCO.index("left_ankle"), COCO.index("right_ankle")]].mean(0)
    # OpenCV axes: y down, so the head is above (smaller y than) the hips, the hips above the feet.
    assert nose[1] < hips[1] - 0.4 and hips[1] < ankles[1] - 0.4
    # Facing the camera (towards -z): the nose is nearer than the ears, and the person's left is on the image right.
    assert nose[2] < k[COCO.index("left_ear"), 2] - 0.05
    assert k[COCO.index("left_shoulder"), 0] > k[COCO.index("right_shoulder"), 0] + 0.2
    # The network starts at this mean.
    net = Body3DNet(tiny_config()).eval()
    torch.testing.assert_close(net.regressor.mean_params, mean)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_to_crop_root_follows_the_weak_perspective_formula(dtype):
    canvas, focal = 64, tiny_config().crop_focal
    camera = torch.tensor([[0.9, 0.0, 0.0], [0.5, 0.2, -0.1], [1.3, -0.4, 0.3]], dtype=dtype)
    points = torch.zeros(3, 1, 3, dtype=dtype)
    pixels, translation = project_to_crop(points, camera, canvas, focal)
    assert pixels.dtype == dtype and pixels.shape == (3, 1, 2) and translation.shape == (3, 3)
    centre = (canvas - 1) / 2
    s, tx, ty = camera.unbind(-1)
    # Weak perspective: normalised s * (x + tx) -> pixels n * S / 2 + (S - 1) / 2.
    expected = torch.stack([centre + s * tx * canvas / 2, centre + s * ty * canvas / 2], dim=-1)
    torch.testing.assert_close(pixels[:, 0], expected)
    torch.testing.assert_close(translation[:, 2], 2 * focal / (canvas * s))
    torch.testing.assert_close(translation[:, :2], camera[:, 1:])


def test_project_to_crop_agrees_with_weak_perspective_up_to_depth_effects(anny_body):
    canvas, focal = 64, tiny_config().crop_focal
    keypoints, _ = anny_body.forward_vector(default_mean_params(tiny_config())[None, :-3]).keypoints("coco17")
    keypoints = keypoints.double().expand(2, -1, -1)
    camera = torch.tensor([[0.9, 0.05, 0.1], [0.6, -0.1, 0.0]], dtype=torch.float64)
    pixels, translation = project_to_crop(keypoints, camera, canvas, focal)
    weak = normalized_to_pixels(weak_perspective_project(keypoints, camera), (canvas, canvas))
    # Perspective scales x + tx by tz / (z + tz): the gap is at most the weak offset times |z| / (z + tz).
    offset = (weak - (canvas - 1) / 2).abs()
    depth = keypoints[..., 2:]
    bound = offset * depth.abs() / (depth + translation[:, None, 2:]) + 1e-9
    gap = (pixels - weak).abs()
    assert (gap <= bound * 1.0001).all()
    assert gap.max() < 0.5 and gap.max() > 1e-4  # a real perspective effect, under half a pixel at tz ~ 50 m
    # A non-positive scale is clamped instead of putting the body behind the camera.
    _, clamped = project_to_crop(keypoints, torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).double(), canvas, focal)
    assert (clamped[:, 2] > 0).all() and torch.isfinite(clamped).all()


def test_project_to_crop_gradcheck():
    points = torch.randn(2, 3, 3, dtype=torch.float64) * 0.3
    camera = torch.tensor([[0.9, 0.1, -0.2], [0.7, 0.0, 0.1]], dtype=torch.float64, requires_grad=True)
    points.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, c: project_to_crop(p, c, 64, 1428.0)[0], (points, camera))


@pytest.mark.parametrize("resolution_aware", [True, False])
def test_network_outputs_and_input_types(resolution_aware):
    net = build_body3d_model(tiny_config(resolution_aware=resolution_aware)).eval()
    crops = random_crops(3)
    ranges = torch.tensor([0, 2, 4])
    with torch.no_grad():
        out = net(crops, ranges)
        as_float = net(crops.float(), ranges)
    assert out["pose_vector"].shape == (3, 126) and out["camera"].shape == (3, 3) and out["features"].shape == (3, 512)
    torch.testing.assert_close(out["pose_vector"], as_float["pose_vector"])
    assert (net.backbone.alpha is not None) == resolution_aware


def test_pretrained_path_is_ignored_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_body3d_model(tiny_config(pretrained=str(tmp_path / "none.pth")))
    net = build_body3d_model(tiny_config(pretrained=str(tmp_path / "none.pth")), pretrained=False)
    assert net.config.pretrained == str(tmp_path / "none.pth")


def test_estimator_runs_the_ranges_it_is_given_clipped_to_its_own(tiny_estimator):
    crops = random_crops(3)
    bodies = tiny_estimator.predict_bodies(crops, torch.tensor([0, 2, 4]), with_vertices=False)
    torch.testing.assert_close(bodies.range_index, torch.tensor([0, 2, 4]))
    # A network with fewer ranges clips to its last one.
    three = Body3DEstimator(build_body3d_model(tiny_config(num_ranges=3)), tiny_estimator.body)
    bodies = three.predict_bodies(crops, torch.tensor([0, 2, 4]), with_vertices=False)
    torch.testing.assert_close(bodies.range_index, torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match="needs the range_index"):
        tiny_estimator.predict_bodies(crops, None)
    with pytest.raises(ValueError, match="3 non-negative range indices"):
        tiny_estimator.predict_bodies(crops, torch.tensor([0, -1, 2]))


def test_a_collapsed_camera_gives_a_body_of_nominal_size_not_a_point(tiny_estimator, monkeypatch):
    crops = random_crops(2)
    pose_vector, camera, ranges = tiny_estimator._regress(crops, torch.tensor([1, 1]))
    collapsed = camera.clone()
    collapsed[0, 0] = -0.4
    monkeypatch.setattr(tiny_estimator, "_regress", lambda *_: (pose_vector, collapsed, ranges))
    bodies = tiny_estimator.predict_bodies(crops, torch.tensor([1, 1]), with_vertices=False)
    nominal = tiny_estimator.model.regressor.mean_params[-3:]
    torch.testing.assert_close(bodies.camera[0], nominal.float())
    torch.testing.assert_close(bodies.camera[1], camera[1].float())
    cfg = tiny_estimator.config  # the depth of a body of nominal size, not 1 / 0.05 = 20 times too far
    depth = 2 * cfg.crop_focal / (cfg.canvas * float(nominal[0]))
    assert float(bodies.translation[0, 2]) == pytest.approx(depth, rel=1e-4)


def test_predict_bodies_is_consistent_with_the_crop_camera(tiny_estimator):
    cfg = tiny_estimator.config
    crops = random_crops(2)
    bodies = tiny_estimator.predict_bodies(crops, torch.tensor([1, 4]))
    assert isinstance(bodies, BodyPrediction)
    assert bodies.pose_vector.shape == (2, 126) and bodies.camera.shape == (2, 3)
    assert bodies.keypoints3d.shape == (2, 17, 3) and bodies.keypoints2d.shape == (2, 17, 2)
    assert bodies.vertices.shape == (2, tiny_estimator.body.num_vertices, 3)
    assert bodies.faces.shape[1] == 3 and bodies.translation.shape == (2, 3)
    assert bodies.crop_focal == cfg.crop_focal and bodies.crop_size == cfg.canvas
    torch.testing.assert_close(bodies.range_index, torch.tensor([1, 4]))
    centre = torch.full((2, 2), (cfg.canvas - 1) / 2)
    reprojected = perspective_project(bodies.keypoints3d, cfg.crop_focal, centre)
    torch.testing.assert_close(bodies.keypoints2d, reprojected, atol=1e-3, rtol=0)
    assert (bodies.keypoints3d[..., 2] > 0).all()
    # The network really ran with those ranges: the same crops at range 0 differ once alpha rows differ.
    with torch.no_grad():
        tiny_estimator.model.backbone.alpha[4].fill_(0.5)
    try:
        low = tiny_estimator.predict_bodies(crops, torch.tensor([4, 4]), with_vertices=False)
        high = tiny_estimator.predict_bodies(crops, torch.tensor([0, 0]), with_vertices=False)
    finally:
        with torch.no_grad():
            tiny_estimator.model.backbone.alpha[4].fill_(1.0)
    assert low.vertices is None
    torch.testing.assert_close(high.range_index, torch.tensor([0, 0]))
    assert not torch.allclose(low.pose_vector, high.pose_vector)


def test_estimator_is_a_body_estimator(tiny_estimator):
    assert isinstance(tiny_estimator, PoseEstimator) and isinstance(tiny_estimator, BodyEstimator)
    assert tiny_estimator.input_size == (64, 64) and tiny_estimator.scale_factor == 1.25
    assert tiny_estimator.convention == "coco17"
    crops = random_crops(2)
    ranges = torch.tensor([1, 4])
    keypoints, scores = tiny_estimator(crops, ranges)
    assert keypoints.shape == (2, 17, 2) and torch.equal(scores, torch.ones(2, 17))
    torch.testing.assert_close(keypoints, tiny_estimator.predict_bodies(crops, ranges, with_vertices=False).keypoints2d)
    # Without a mesh the body model's keypoint-only forward runs: the same keypoints up to float32 rounding.
    with_mesh = tiny_estimator.predict_bodies(crops, ranges)
    assert with_mesh.vertices is not None
    torch.testing.assert_close(keypoints, with_mesh.keypoints2d, rtol=0, atol=2e-3)
    with pytest.raises(ValueError):
        tiny_estimator(random_crops(1, canvas=32), torch.tensor([0]))


def test_keypoints_run_at_the_crops_range_not_always_at_range_0(tiny_estimator):
    """Regression: ``Body3DEstimator.__call__`` ran every crop at range 0 whatever its person height."""
    crops = random_crops(2)
    with torch.no_grad():
        tiny_estimator.model.backbone.alpha[4].fill_(0.5)
    try:
        low, _ = tiny_estimator(crops, torch.tensor([4, 4]))
        high, _ = tiny_estimator(crops, torch.tensor([0, 0]))
    finally:
        with torch.no_grad():
            tiny_estimator.model.backbone.alpha[4].fill_(1.0)
    assert not torch.allclose(low, high)
    with pytest.raises(TypeError):
        tiny_estimator(crops)  # no silent default range
    assert "canvas=64" in repr(tiny_estimator)


def test_estimator_rejects_another_body_model(anny_body):
    with pytest.raises(ValueError, match="regresses smpl parameters, got a anny body model"):
        Body3DEstimator(build_body3d_model(tiny_config(body_model="smpl")), anny_body)


def test_training_after_prediction_in_the_same_process(anny_body):
    # roma caches a constant on first use; prediction must not create it as an inference tensor.
    estimator = Body3DEstimator(build_body3d_model(Body3DConfig(canvas=64), pretrained=False), anny_body)
    estimator.predict_bodies(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.tensor([0]), with_vertices=False)
    vector = anny_body.pose_spec.rest_vector(2).requires_grad_()
    anny_body.forward_vector(vector + 0).vertices.sum().backward()
    assert vector.grad is not None and torch.isfinite(vector.grad).all()


def test_flip_test_is_mirror_equivariant_and_off_by_default(tiny_estimator):
    """With the flip test the body of a mirrored crop is the mirror of the crop's body (exactly, in parameters)."""
    from lowres_hps.body.flip import flip_pose_vector

    assert tiny_estimator.flip_test is False and tiny_config().flip_test is False
    crops, ranges = random_crops(3), torch.tensor([0, 2, 4])
    plain = tiny_estimator.predict_bodies(crops, ranges, with_vertices=False)
    flipped = Body3DEstimator(tiny_estimator.model, tiny_estimator.body, flip_test=True)
    assert "flip_test=True" in repr(flipped)
    bodies = flipped.predict_bodies(crops, ranges, with_vertices=False)
    mirrored = flipped.predict_bodies(crops.flip(-1), ranges, with_vertices=False)
    spec = tiny_estimator.config.pose_spec
    torch.testing.assert_close(spec.split(mirrored.pose_vector)[0],
                               spec.split(flip_pose_vector(bodies.pose_vector, spec))[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(mirrored.camera, bodies.camera * torch.tensor([1.0, -1.0, 1.0]), atol=1e-5, rtol=0)
    assert not torch.allclose(bodies.pose_vector, plain.pose_vector, atol=1e-3)
    # The mirrored body's keypoints land on the mirror of the crop (Anny is mirror symmetric to ~mm).
    canvas = tiny_estimator.config.canvas
    swap = torch.tensor(COCO.flip_permutation)
    x_mirrored = (canvas - 1) - bodies.keypoints2d[:, swap, 0]
    torch.testing.assert_close(mirrored.keypoints2d[..., 0], x_mirrored, atol=0.05, rtol=0)
    # The card's setting, and an override, through the registry's constructor.
    net = build_body3d_model(tiny_config(flip_test=True))
    assert Body3DEstimator.from_network(net, body=tiny_estimator.body).flip_test is True
    assert Body3DEstimator.from_network(net, body=tiny_estimator.body, flip_test=False).flip_test is False
