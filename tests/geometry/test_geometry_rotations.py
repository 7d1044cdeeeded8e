import math

import pytest
import roma
import torch

from lowres_hps.geometry.rotations import (
    axis_angle_to_matrix,
    body_to_opencv,
    body_to_opencv_rotation,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
    rotation_about_axis,
)

DTYPES = [torch.float32, torch.float64]


def _spin_rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """SPIN's reference implementation (x.view(-1, 3, 2), Gram-Schmidt on the two columns)."""
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_6d_matches_spin_and_round_trips(device, dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 6, generator=generator, dtype=dtype).to(device)
    rotation = rotation_6d_to_matrix(x)
    assert rotation.shape == (4, 5, 3, 3) and rotation.dtype == dtype and rotation.device.type == device.type
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(rotation.reshape(-1, 3, 3), _spin_rot6d_to_rotmat(x), atol=tol, rtol=0)
    assert roma.is_rotation_matrix(rotation, epsilon=1e-4 if dtype == torch.float32 else 1e-10)
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(rotation)), rotation, atol=tol, rtol=0)


def test_6d_layout_is_first_two_columns_row_major():
    rotation = roma.random_rotmat(3, dtype=torch.float64)
    six = matrix_to_rotation_6d(rotation)
    expected = torch.stack([rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0],
                            rotation[:, 1, 1], rotation[:, 2, 0], rotation[:, 2, 1]], dim=-1)
    torch.testing.assert_close(six, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis_angle_round_trip_and_known_value(device, dtype):
    quarter_turn_z = torch.tensor([0.0, 0.0, math.pi / 2], dtype=dtype, device=device)
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    torch.testing.assert_close(axis_angle_to_matrix(quarter_turn_z), expected, atol=1e-6, rtol=0)
    generator = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(2, 7, 3, generator=generator, dtype=dtype), dim=-1)
    angle = torch.rand(2, 7, 1, generator=generator, dtype=dtype) * 3.0  # below pi: the rotvec is unique
    rotvec = (axis * angle).to(device)
    torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(rotvec)), rotvec,
                               atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotation_about_axis(device, dtype):
    angle = torch.tensor([math.pi / 2, -math.pi / 3], dtype=dtype, device=device)
    about_x = rotation_about_axis("x", angle)
    assert about_x.shape == (2, 3, 3) and about_x.dtype == dtype
    y_axis = torch.tensor([0.0, 1.0, 0.0], dtype=dtype, device=device)
    torch.testing.assert_close(about_x[0] @ y_axis, torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device),
                               atol=1e-6, rtol=0)
    # A non-unit tensor axis gives the same rotation as the named axis; degrees convert.
    z_axis = torch.tensor([0.0, 0.0, 2.0], dtype=dtype, device=device).expand(2, 3)
    torch.testing.assert_close(rotation_about_axis(z_axis, angle), rotation_about_axis("z", angle), atol=1e-6, rtol=0)
    torch.testing.assert_close(rotation_about_axis("y", torch.rad2deg(angle), degrees=True),
                               rotation_about_axis("y", angle), atol=1e-6, rtol=0)
    torch.testing.assert_close(rotation_about_axis(z_axis, torch.rad2deg(angle), degrees=True),
                               rotation_about_axis("z", angle), atol=1e-6, rtol=0)


def test_body_to_opencv_puts_a_y_up_body_upright_and_facing_the_camera():
    rotation = body_to_opencv_rotation(dtype=torch.float64)
    torch.testing.assert_close(rotation, rotation_about_axis("x", torch.tensor(math.pi, dtype=torch.float64)),
                               atol=1e-12, rtol=0)
    # Head above the pelvis (+Y) and nose in front (+Z) in the body frame.
    head, nose = torch.tensor([0.0, 0.6, 0.0]), torch.tensor([0.0, 0.6, 0.1])
    head_cam, nose_cam = body_to_opencv(head), body_to_opencv(nose)
    assert head_cam[1] < 0  # up in the image (y down)
    assert nose_cam[2] < head_cam[2]  # nose closer to a camera looking along +Z
    torch.testing.assert_close(body_to_opencv(nose), rotation.float() @ nose)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        rotation_6d_to_matrix(torch.zeros(4, 9))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_axis_angle(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="axis"):
        rotation_about_axis("w", 1.0)
    with pytest.raises(TypeError):
        axis_angle_to_matrix([0.0, 0.0, 1.0])


def test_gradcheck_6d():
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (x,))
