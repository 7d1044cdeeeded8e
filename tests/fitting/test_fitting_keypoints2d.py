"""Bodies fitted to 2D keypoints: convergence on known poses, the prior, who is fitted, left/right, shapes."""
from __future__ import annotations

import pytest
import roma
import torch

from lowres_hps.body.keypoints import get_convention
from lowres_hps.fitting import KeypointFitConfig, fit_body_to_keypoints, gmof
from lowres_hps.geometry.camera import project_to_crop
from lowres_hps.geometry.rotations import body_to_opencv_rotation

CANVAS, FOCAL = 128, 2857.0
COCO = get_convention("coco17")


def _start(body, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Rest bodies upright in camera axes, filling the crop."""
    spec = body.pose_spec
    rotations, shape = spec.split(spec.rest_vector(batch))
    rotations = rotations.clone()
    rotations[:, 0] = body_to_opencv_rotation(dtype=rotations.dtype)
    camera = torch.tensor([[1.07, 0.0, 0.0]]).repeat(batch, 1)
    return spec.join(rotations, shape), camera


def _bent(body, vector: torch.Tensor, angle: float = 0.5) -> torch.Tensor:
    """The pose with elbows and knees bent by ``angle`` radians."""
    spec = body.pose_spec
    rotations, shape = spec.split(vector)
    rotations = rotations.clone()
    for joint in ("lowerarm01.L", "lowerarm01.R", "lowerleg01.L", "lowerleg01.R"):
        j = spec.joint_names.index(joint)
        rotations[:, j] = rotations[:, j] @ roma.rotvec_to_rotmat(torch.tensor([angle, 0.0, 0.0]))
    return spec.join(rotations, shape)


def _project(body, vector: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    keypoints, _ = body.forward_vector(vector, keypoints_only=True).keypoints("coco17")
    return project_to_crop(keypoints, camera, CANVAS, FOCAL)[0]


def _fit(body, vector, camera, targets, scores, **settings):
    return fit_body_to_keypoints(body, vector, camera, targets, scores, canvas=CANVAS, crop_focal=FOCAL,
                                 convention="coco17", config=KeypointFitConfig(**settings))


def test_gmof_is_quadratic_near_zero_and_bounded():
    d2 = torch.tensor([0.0, 1e-6, 1.0, 1e6])
    values = gmof(d2, 0.1)
    assert values[0] == 0 and values[1] == pytest.approx(1e-6, rel=1e-3)
    assert bool((values <= 0.01).all()) and values[3] == pytest.approx(0.01, rel=1e-5)


def test_fit_brings_the_projection_onto_the_keypoints(anny_body):
    vector, camera = _start(anny_body)
    target_camera = camera + torch.tensor([0.05, 0.03, -0.02])
    targets = _project(anny_body, _bent(anny_body, vector), target_camera)
    scores = torch.ones(targets.shape[:2])
    fit = _fit(anny_body, vector, camera, targets, scores, steps=150, lr=0.03, pose_prior=0.0, camera_prior=0.0)
    assert bool(fit.fitted.all()) and not bool(fit.swapped.any())
    assert bool((fit.error_before > 3.0).all())
    assert bool((fit.error_after < 0.1 * fit.error_before).all()), (fit.error_before, fit.error_after)
    # the reported error is that of the returned body
    after = (_project(anny_body, fit.pose_vector, fit.camera) - targets).norm(dim=-1).mean(-1)
    torch.testing.assert_close(after, fit.error_after, atol=1e-3, rtol=1e-3)
    assert fit.pose_vector.shape == vector.shape and fit.camera.shape == camera.shape


def test_a_strong_prior_keeps_the_network_pose(anny_body):
    vector, camera = _start(anny_body, 1)
    targets = _project(anny_body, _bent(anny_body, vector, 0.8), camera)
    loose = _fit(anny_body, vector, camera, targets, torch.ones(1, 17), pose_prior=0.01)
    held = _fit(anny_body, vector, camera, targets, torch.ones(1, 17), pose_prior=1000.0)
    spec = anny_body.pose_spec

    def moved(fit) -> float:
        return float(roma.rotmat_geodesic_distance(spec.split(fit.pose_vector)[0], spec.split(vector)[0]).max())

    assert moved(held) < 0.1 * moved(loose)
    assert float(loose.error_after) < float(held.error_after)


def test_people_with_too_few_keypoints_keep_their_body(anny_body):
    vector, camera = _start(anny_body)
    targets = _project(anny_body, _bent(anny_body, vector), camera) + 2.0
    scores = torch.ones(2, 17)
    scores[1, 5:] = 0.05  # below min_score: 5 usable keypoints, min_keypoints 6
    fit = _fit(anny_body, vector, camera, targets, scores)
    assert fit.fitted.tolist() == [True, False]
    torch.testing.assert_close(fit.pose_vector[1], vector[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(fit.camera[1], camera[1])
    assert not torch.allclose(fit.pose_vector[0], vector[0])
    nothing = _fit(anny_body, vector, camera, targets, torch.zeros(2, 17))
    assert not bool(nothing.fitted.any()) and bool(nothing.error_before.isnan().all())


def test_zero_steps_is_the_network_body(anny_body):
    vector, camera = _start(anny_body)
    targets = _project(anny_body, vector, camera) + 3.0
    fit = _fit(anny_body, vector, camera, targets, torch.ones(2, 17), steps=0)
    torch.testing.assert_close(fit.pose_vector, vector, atol=1e-6, rtol=0)
    torch.testing.assert_close(fit.error_after, fit.error_before)


def test_left_right_swapped_targets_are_resolved_by_the_network(anny_body):
    vector, camera = _start(anny_body, 1)
    camera = camera + torch.tensor([0.0, 0.1, 0.0])
    rotations, shape = anny_body.pose_spec.split(vector)
    rotations = rotations.clone()
    rotations[:, 0] = rotations[:, 0] @ roma.rotvec_to_rotmat(torch.tensor([0.0, 0.6, 0.0]))  # turned: sides differ
    vector = anny_body.pose_spec.join(rotations, shape)
    truth = _project(anny_body, vector, camera)
    swapped_targets = truth[:, COCO.flip_permutation]
    kept = _fit(anny_body, vector, camera, swapped_targets, torch.ones(1, 17), steps=0)
    resolved = _fit(anny_body, vector, camera, swapped_targets, torch.ones(1, 17), steps=0, resolve_left_right=True)
    assert not bool(kept.swapped[0]) and bool(resolved.swapped[0])
    assert float(resolved.error_before) < 1e-3 < float(kept.error_before)


def test_keypoints_of_the_body_seen_the_other_way_round_are_met_by_the_turned_round_start(anny_body):
    from lowres_hps.body.flip import turn_round_pose_vector

    vector, camera = _start(anny_body, 2)
    rotations, shape = anny_body.pose_spec.split(vector)
    rotations = rotations.clone()
    rotations[:, 0] = rotations[:, 0] @ roma.rotvec_to_rotmat(torch.tensor([0.0, 0.6, 0.0]))  # turned: sides differ
    vector = anny_body.pose_spec.join(rotations, shape)
    targets = _project(anny_body, vector, camera)
    targets[1] = _project(anny_body, turn_round_pose_vector(vector[1:], anny_body.pose_spec), camera[1:])[0]
    plain = _fit(anny_body, vector, camera, targets, torch.ones(2, 17), steps=30)
    both = _fit(anny_body, vector, camera, targets, torch.ones(2, 17), steps=30, try_turned_round=True)
    assert both.turned_round.tolist() == [False, True]  # the first person's keypoints are its own body's
    assert float(both.error_after[1]) < 0.5 * float(plain.error_after[1])
    assert float(both.objective[1]) < float(plain.objective[1])
    # Adam turns float noise in zero gradients into steps, so the batch's make-up moves a fit a little.
    assert float(both.error_after[0]) < float(plain.error_after[0]) + 1.0  # px


def _moved(body, fit, vector, joint: str | None = None) -> float:
    spec = body.pose_spec
    angles = roma.rotmat_geodesic_distance(spec.split(fit.pose_vector)[0], spec.split(vector)[0])
    return float(angles[..., spec.joint_names.index(joint)].max() if joint else angles.max())


def test_a_joint_prior_scale_holds_that_joint(anny_body):
    vector, camera = _start(anny_body, 1)
    targets = _project(anny_body, _bent(anny_body, vector, 0.8), camera)
    free = _fit(anny_body, vector, camera, targets, torch.ones(1, 17), pose_prior=0.1)
    held = _fit(anny_body, vector, camera, targets, torch.ones(1, 17), pose_prior=0.1,
                joint_prior_scale={"lowerleg01.L": 1e4})
    assert _moved(anny_body, held, vector, "lowerleg01.L") < 0.1 * _moved(anny_body, free, vector, "lowerleg01.L")
    assert _moved(anny_body, held, vector, "lowerleg01.R") > 0.5 * _moved(anny_body, free, vector, "lowerleg01.R")
    with pytest.raises(ValueError, match="elbow.*not a joint.*lowerarm01.L"):
        _fit(anny_body, vector, camera, targets, torch.ones(1, 17), joint_prior_scale={"elbow": 2.0})


def test_a_keypoint_scale_of_zero_leaves_that_limb_to_the_prior(anny_body):
    vector, camera = _start(anny_body, 1)
    targets = _project(anny_body, _bent(anny_body, vector, 0.8), camera)
    ones = torch.ones(1, 17)
    free = _fit(anny_body, vector, camera, targets, ones, pose_prior=0.1)
    blind = _fit(anny_body, vector, camera, targets, ones, pose_prior=0.1,
                 keypoint_scale={"left_ankle": 0.0, "left_knee": 0.0})
    assert _moved(anny_body, blind, vector, "lowerleg01.L") < 0.1 * _moved(anny_body, free, vector, "lowerleg01.L")
    assert _moved(anny_body, blind, vector, "lowerleg01.R") > 0.5 * _moved(anny_body, free, vector, "lowerleg01.R")
    with pytest.raises(ValueError, match="left_foot.*not a keypoint of coco17"):
        _fit(anny_body, vector, camera, targets, ones, keypoint_scale={"left_foot": 2.0})
    with pytest.raises(ValueError, match="keypoint_scale"):
        KeypointFitConfig(keypoint_scale={"nose": -1.0})


def test_unsure_keypoints_pull_less_when_normalised_by_their_count(anny_body):
    vector, camera = _start(anny_body, 1)
    targets = _project(anny_body, _bent(anny_body, vector, 0.8), camera)
    unsure = torch.full((1, 17), 0.2)
    by_weight = [_fit(anny_body, vector, camera, targets, scores, pose_prior=0.3)
                 for scores in (unsure, torch.ones(1, 17))]
    # dividing by the total weight makes a person's confidence level irrelevant...
    torch.testing.assert_close(by_weight[0].pose_vector, by_weight[1].pose_vector, atol=1e-4, rtol=0)
    by_count = _fit(anny_body, vector, camera, targets, unsure, pose_prior=0.3, normalise_by="keypoints")
    # ...dividing by the number of keypoints lets the prior hold an unsure person nearer the network's body
    assert _moved(anny_body, by_count, vector) < 0.8 * _moved(anny_body, by_weight[0], vector)
    squared = _fit(anny_body, vector, camera, targets, unsure, pose_prior=0.3, normalise_by="keypoints", score_power=2)
    assert _moved(anny_body, squared, vector) < _moved(anny_body, by_count, vector)
    with pytest.raises(ValueError, match="normalise_by"):
        KeypointFitConfig(normalise_by="people")
    with pytest.raises(ValueError, match="score_power"):
        KeypointFitConfig(score_power=0)


def test_fitted_shape_stays_in_its_range(anny_body):
    vector, camera = _start(anny_body, 1)
    targets = _project(anny_body, vector, camera) * 1.3 - 0.3 * (CANVAS - 1) / 2  # a taller person
    fit = _fit(anny_body, vector, camera, targets, torch.ones(1, 17), fit_shape=True, shape_prior=0.0, lr=0.2)
    shape = anny_body.pose_spec.split(fit.pose_vector)[1]
    assert bool((shape >= 0).all() and (shape <= 1).all())
    assert not torch.allclose(shape, anny_body.pose_spec.split(vector)[1])
    kept = _fit(anny_body, vector, camera, targets, torch.ones(1, 17))
    torch.testing.assert_close(anny_body.pose_spec.split(kept.pose_vector)[1], anny_body.pose_spec.split(vector)[1])


def test_bad_inputs_name_the_argument(anny_body):
    vector, camera = _start(anny_body)
    targets, scores = torch.zeros(2, 17, 2), torch.ones(2, 17)
    with pytest.raises(ValueError, match="pose_vector"):
        _fit(anny_body, vector[:, :10], camera, targets, scores)
    with pytest.raises(ValueError, match="camera"):
        _fit(anny_body, vector, camera[:1], targets, scores)
    with pytest.raises(ValueError, match="keypoints2d"):
        _fit(anny_body, vector, camera, targets[..., :1], scores)
    with pytest.raises(ValueError, match="scores"):
        _fit(anny_body, vector, camera, targets, scores[:, :5])
    with pytest.raises(ValueError, match="keypoints"):
        _fit(anny_body, vector, camera, torch.zeros(2, 5, 2), torch.ones(2, 5))  # not COCO-17's 17
    for bad in ({"steps": -1}, {"lr": 0.0}, {"sigma": 0.0}, {"pose_prior": -1.0}, {"min_keypoints": 0}):
        with pytest.raises(ValueError, match="keypoint fit"):
            KeypointFitConfig(**bad)


def test_fit_runs_on_the_device_of_its_inputs(anny_body, device):
    body = anny_body.to(device)
    try:
        vector, camera = (t.to(device) for t in _start(body))
        targets = _project(body, _bent(body, vector), camera + torch.tensor([0.0, 0.05, 0.0], device=device))
        fit = _fit(body, vector, camera, targets, torch.ones(2, 17, device=device), steps=20)
        assert fit.pose_vector.device.type == device.type and bool((fit.error_after < fit.error_before).all())
    finally:
        anny_body.to("cpu")


def test_a_collapsed_camera_restarts_from_the_keypoints_upright_or_upside_down(anny_body):
    vector, camera = _start(anny_body)
    spec = anny_body.pose_spec
    rotations, shape = spec.split(vector)
    upside_down = rotations.clone()
    upside_down[1, 0] = torch.diag(torch.tensor([-1.0, -1.0, 1.0])) @ rotations[1, 0]  # person 1 stands on their head
    targets = _project(anny_body, spec.join(upside_down, shape), camera + torch.tensor([0.1, 0.05, -0.03]))
    scores = torch.ones(targets.shape[:2])
    collapsed = camera.clone()
    collapsed[:, 0] = torch.tensor([-0.3, 0.02])  # the network's scale gone through the floor: the body is a point
    fit = _fit(anny_body, vector, collapsed, targets, scores, steps=60, lr=0.03)
    assert fit.restarted.tolist() == [True, True]
    assert bool((fit.camera[:, 0] > 1.0).all()) and bool((fit.error_after < 1.0).all())  # crop px
    fitted_root = spec.split(fit.pose_vector)[0][:, 0]
    assert torch.allclose(fitted_root, upside_down[:, 0], atol=0.05)  # person 0 upright, person 1 upside down
    kept = _fit(anny_body, vector, collapsed, targets, scores, steps=60, lr=0.03, restart_collapsed=False)
    assert not kept.restarted.any() and bool((kept.error_after > 20).all())  # a point cannot grow back
