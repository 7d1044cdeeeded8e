"""Rotation representations: thin, shape-checked wrappers over roma, so the project has one import place."""
from __future__ import annotations

import math

import roma
import torch

from lowres_hps.core.checks import check_trailing

__all__ = [
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_about_axis",
    "body_to_opencv_rotation",
    "body_to_opencv",
]


def rotation_6d_to_matrix(rotation_6d: torch.Tensor) -> torch.Tensor:
    """Continuous 6D representation (Zhou et al., CVPR 2019) to rotation matrices.

    The 6 numbers are the FIRST TWO COLUMNS of the rotation matrix, laid out as a row-major (3, 2) block
    ``[R00, R01, R10, R11, R20, R21]`` (the HMR/SPIN ``x.view(-1, 3, 2)`` layout, not PyTorch3D's rows).
    roma's ``special_gramschmidt`` orthonormalises these two columns and completes the third by a
    cross product.

    Args:
        rotation_6d: (..., 6).

    Returns:
        (..., 3, 3) rotation matrices.
    """
    check_trailing(rotation_6d, (6,), "rotation_6d")
    return roma.special_gramschmidt(rotation_6d.unflatten(-1, (3, 2)))


def matrix_to_rotation_6d(rotation: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotation_6d_to_matrix`: (..., 3, 3) -> (..., 6), the first two columns."""
    check_trailing(rotation, (3, 3), "rotation")
    return rotation[..., :, :2].flatten(-2)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (axis times angle in radians, as in SMPL poses) to matrices: (..., 3) -> (..., 3, 3)."""
    check_trailing(axis_angle, (3,), "axis_angle")
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(rotation: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to rotation vectors with angle in [0, pi]: (..., 3, 3) -> (..., 3)."""
    check_trailing(rotation, (3, 3), "rotation")
    return roma.rotmat_to_rotvec(rotation)


def rotation_about_axis(
    axis: str | torch.Tensor,
    angle: torch.Tensor | float,
    degrees: bool = False,
) -> torch.Tensor:
    """Rotation by ``angle`` about ``axis`` (right-hand rule).

    Args:
        axis: ``"x"``, ``"y"``, ``"z"``, or a (..., 3) tensor (normalised here; need not be unit).
        angle: (...) tensor or a float, in radians (degrees if ``degrees``).

    Returns:
        (..., 3, 3), following the dtype and device of the tensor argument(s).
    """
    if isinstance(axis, str):
        if axis not in ("x", "y", "z"):
            raise ValueError(f"axis must be 'x', 'y', 'z' or a (..., 3) tensor, got {axis!r}")
        angle = torch.as_tensor(angle, dtype=angle.dtype if isinstance(angle, torch.Tensor) else torch.get_default_dtype())
        return roma.euler_to_rotmat(axis, [angle], degrees=degrees)
    check_trailing(axis, (3,), "axis")
    angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)
    if degrees:
        angle = angle * (math.pi / 180.0)
    unit_axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    return roma.rotvec_to_rotmat(unit_axis * angle[..., None])


def body_to_opencv_rotation(dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(3, 3) rotation by 180 degrees about X, ``diag(1, -1, -1)``, exactly.

    Body models here output a Y-up frame with the body facing +Z. Rotating by this matrix puts the body
    upright in OpenCV camera coordinates (y down) and facing the camera (towards -Z).
    """
    return torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=dtype, device=device))


def body_to_opencv(points: torch.Tensor) -> torch.Tensor:
    """Apply :func:`body_to_opencv_rotation` to (..., 3) points (flips the signs of y and z)."""
    check_trailing(points, (3,), "points")
    return points * points.new_tensor([1.0, -1.0, -1.0])
