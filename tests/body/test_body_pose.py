"""Regression pose vector: 6D rotations, specs, vector <-> native round trips, random poses."""
from __future__ import annotations

import math

import pytest
import roma
import torch

from lowres_hps.body.keypoints import ANNY104
from lowres_hps.body.pose import (
    ANNY_BODY_BONES,
    ANNY_POSE_SPEC,
    ANNY_SHAPE_RANGES,
    JOINT_RANGES_DEG,
    SMPL_POSE_SPEC,
    SMPLX_POSE_SPEC,
    RegressionPoseSpec,
    native_to_pose_vector,
    pose_vector_to_native,
    sample_random_pose,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def _random_native(spec: RegressionPoseSpec, batch: int, dtype, device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Native pose with random rotations on the regressed joints only, and a random shape."""
    g = torch.Generator().manual_seed(seed)
    rotations = roma.rotvec_to_rotmat(torch.randn(batch, spec.num_joints, 3, generator=g, dtype=torch.float64))
    pose = torch.eye(4 if spec.homogeneous else 3, dtype=torch.float64).repeat(batch, spec.num_native_joints, 1, 1)
    pose[:, list(spec.native_indices), :3, :3] = rotations
    shape = torch.rand(batch, spec.shape_size, generator=g, dtype=torch.float64)
    return pose.to(dtype=dtype, device=device), shape.to(dtype=dtype, device=device)


def test_vector_layout():
    vector = ANNY_POSE_SPEC.rest_vector(1)[0]
    assert vector[:12].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] * 2  # 6D identity: first two columns of I
    assert vector[-6:].tolist() == [0.5] * 6
    rotations = roma.random_rotmat((2, 20), dtype=torch.float64)
    vector = ANNY_POSE_SPEC.join(rotations, torch.zeros(2, 6, dtype=torch.float64))
    torch.testing.assert_close(vector[:, 6:12], rotations[:, 1, :, :2].reshape(2, 6), atol=0, rtol=0)
    # Any non-degenerate 6D vector gives proper rotations.
    noisy, _ = ANNY_POSE_SPEC.split(torch.randn(100, 126, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert roma.is_rotation_matrix(noisy, epsilon=1e-9)


def test_spec_sizes():
    assert ANNY_POSE_SPEC.num_joints == 1 + len(ANNY_BODY_BONES) == 20
    assert ANNY_POSE_SPEC.vector_size == (1 + 19) * 6 + 6 == 126
    assert SMPL_POSE_SPEC.vector_size == 24 * 6 + 10 == 154
    assert SMPLX_POSE_SPEC.vector_size == 22 * 6 + 10 == 142
    assert ANNY_POSE_SPEC.joint_names[0] == "root"
    # Native indices point at the same bones in Anny's rig (ANNY104 renames only "head").
    for name, index in zip(ANNY_POSE_SPEC.joint_names, ANNY_POSE_SPEC.native_indices):
        assert ANNY104.names[index] == ("head_anny" if name == "head" else name)
    # Fingers, toes, eyes and twist bones stay at rest.
    assert not any(b.startswith(("finger", "toe", "eye", "metacarpal")) or "02" in b for b in ANNY_BODY_BONES)


def test_spec_validation():
    with pytest.raises(ValueError, match="same length"):
        RegressionPoseSpec("m", ("a", "b"), ("root",), (0, 1), 2, (), ())
    with pytest.raises(ValueError, match="distinct"):
        RegressionPoseSpec("m", ("a", "b"), ("root", "neck"), (0, 0), 2, (), ())
    with pytest.raises(ValueError, match="rest_shape"):
        RegressionPoseSpec("m", ("a",), ("root",), (0,), 1, ("s",), ())
    with pytest.raises(ValueError, match="126"):
        ANNY_POSE_SPEC.split(torch.zeros(2, 125))


@pytest.mark.parametrize("spec", [ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC], ids=lambda s: s.model)
def test_rest_vector_is_identity(spec):
    pose, shape = pose_vector_to_native(spec.rest_vector(3), spec)
    size = 4 if spec.homogeneous else 3
    assert pose.shape == (3, spec.num_native_joints, size, size)
    torch.testing.assert_close(pose, torch.eye(size).expand_as(pose), atol=0, rtol=0)
    torch.testing.assert_close(shape, torch.tensor(spec.rest_shape).expand(3, -1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", [ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC], ids=lambda s: s.model)
def test_native_round_trip_is_exact(spec, dtype, device):
    pose, shape = _random_native(spec, 4, dtype, device)
    vector = native_to_pose_vector(pose, shape, spec)
    assert vector.shape == (4, spec.vector_size) and vector.dtype == dtype and vector.device == pose.device
    pose_back, shape_back = pose_vector_to_native(vector, spec)
    torch.testing.assert_close(pose_back, pose, atol=TOL[dtype] * 10, rtol=0)
    torch.testing.assert_close(shape_back, shape, atol=0, rtol=0)
    torch.testing.assert_close(native_to_pose_vector(pose_back, shape_back, spec), vector, atol=TOL[dtype] * 10, rtol=0)


def test_round_trip_drops_bones_outside_the_spec():
    pose, shape = _random_native(ANNY_POSE_SPEC, 2, torch.float64, "cpu")
    finger = ANNY104.index("finger2-1.L")
    pose[:, finger, :3, :3] = roma.rotvec_to_rotmat(torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64))
    pose_back, _ = pose_vector_to_native(native_to_pose_vector(pose, shape, ANNY_POSE_SPEC), ANNY_POSE_SPEC)
    torch.testing.assert_close(pose_back[:, finger], torch.eye(4, dtype=torch.float64).expand(2, 4, 4))


def test_anny_rotations_are_in_canonical_axes():
    # A yaw about the canonical up axis (+Y) is a rotation about Anny's up axis (+Z).
    angle = 0.7
    rotations = torch.eye(3).repeat(1, ANNY_POSE_SPEC.num_joints, 1, 1)
    rotations[0, 0] = roma.rotvec_to_rotmat(torch.tensor([0.0, angle, 0.0]))
    pose, _ = pose_vector_to_native(ANNY_POSE_SPEC.join(rotations, torch.full((1, 6), 0.5)), ANNY_POSE_SPEC)
    torch.testing.assert_close(roma.rotmat_to_rotvec(pose[0, 0, :3, :3]), torch.tensor([0.0, 0.0, angle]))


def test_pose_vector_any_batch_shape():
    vector = sample_random_pose(6, torch.Generator().manual_seed(0)).reshape(2, 3, -1)
    pose, shape = pose_vector_to_native(vector, ANNY_POSE_SPEC)
    assert pose.shape == (2, 3, 104, 4, 4) and shape.shape == (2, 3, 6)
    torch.testing.assert_close(native_to_pose_vector(pose, shape, ANNY_POSE_SPEC), vector, atol=1e-6, rtol=0)


def test_native_shape_errors():
    with pytest.raises(ValueError, match="104"):
        native_to_pose_vector(torch.zeros(2, 24, 3, 3), torch.zeros(2, 6), ANNY_POSE_SPEC)
    with pytest.raises(ValueError, match="shape"):
        native_to_pose_vector(torch.eye(3).repeat(2, 24, 1, 1), torch.zeros(2, 6), SMPL_POSE_SPEC)


@pytest.mark.parametrize("spec", [ANNY_POSE_SPEC, SMPL_POSE_SPEC], ids=lambda s: s.model)
def test_pose_vector_to_native_gradcheck(spec):
    vector = sample_random_pose(1, torch.Generator().manual_seed(1), spec, dtype=torch.float64).requires_grad_()
    # Non-orthonormal 6D inputs exercise the Gram-Schmidt normalisation too.
    vector = (vector + 0.1 * torch.randn(vector.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)).detach()
    assert torch.autograd.gradcheck(lambda v: pose_vector_to_native(v, spec)[0], (vector.requires_grad_(),), fast_mode=True)


def test_sample_random_pose_is_reproducible():
    a = sample_random_pose(4, torch.Generator().manual_seed(3))
    b = sample_random_pose(4, torch.Generator().manual_seed(3))
    c = sample_random_pose(4, torch.Generator().manual_seed(4))
    assert a.shape == (4, 126) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("spec", [ANNY_POSE_SPEC, SMPL_POSE_SPEC], ids=lambda s: s.model)
def test_sample_random_pose_respects_ranges(spec):
    vector = sample_random_pose(500, torch.Generator().manual_seed(0), spec, dtype=torch.float64)
    rotations, shape = spec.split(vector)
    rotvec = torch.rad2deg(roma.rotmat_to_rotvec(rotations))
    torch.testing.assert_close(rotvec[:, 0], torch.zeros_like(rotvec[:, 0]), atol=1e-9, rtol=0)  # upright root
    for j, part in enumerate(spec.joint_parts[1:], start=1):
        ranges = JOINT_RANGES_DEG[part.removeprefix("left_").removeprefix("right_")]
        for axis, (low, high) in enumerate(ranges):
            if part.startswith("right_") and axis > 0:  # mirror image of the left side
                low, high = -high, -low
            values = rotvec[:, j, axis]
            assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, (part, axis)
            assert values.max() - values.min() > 0.8 * (high - low), (part, axis)  # covers the range
    if spec.model == "anny":
        for k, name in enumerate(spec.shape_names):
            low, high = ANNY_SHAPE_RANGES[name]
            assert low <= shape[:, k].min() and shape[:, k].max() <= high
    else:
        assert shape.abs().max() <= 2.0


def test_sample_random_pose_options():
    g = torch.Generator().manual_seed(0)
    vector = sample_random_pose(200, g, root_yaw_deg=180.0, random_shape=False, scale=0.0)
    rotations, shape = ANNY_POSE_SPEC.split(vector)
    torch.testing.assert_close(shape, torch.full_like(shape, 0.5))
    torch.testing.assert_close(rotations[:, 1:], torch.eye(3).expand_as(rotations[:, 1:]), atol=1e-6, rtol=0)
    yaw = roma.rotmat_to_rotvec(rotations[:, 0])
    assert yaw[:, [0, 2]].abs().max() < 1e-6 and yaw[:, 1].abs().max() > math.radians(150)
    custom = sample_random_pose(50, g, shape_ranges={"age": (0.9, 1.0)})
    assert (custom[:, -5] >= 0.9).all() and (custom[:, -6] == 0.5).all()  # age set, gender at rest
    with pytest.raises(ValueError, match="unknown shape"):
        sample_random_pose(1, g, shape_ranges={"size": (0.0, 1.0)})
