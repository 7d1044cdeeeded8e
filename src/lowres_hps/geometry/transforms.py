"""2D affine transforms between image and crop pixel coordinates.

Pixel convention: pixel centres sit at integer coordinates (like ``cv2.warpAffine``), so an image of width
``W`` spans ``[-0.5, W - 0.5]``. Affines are (..., 2, 3) matrices ``[M | t]`` acting as ``p' = M p + t``;
the matrix returned by :func:`box_to_crop_affine` can be passed unchanged to ``cv2.warpAffine``.
"""
from __future__ import annotations

import math

import torch

from lowres_hps.core.checks import check_size, check_trailing

__all__ = [
    "box_to_crop_affine",
    "invert_affine",
    "compose_affine",
    "apply_affine",
    "pixels_to_normalized",
    "normalized_to_pixels",
]


def box_to_crop_affine(
    center: torch.Tensor,
    size: torch.Tensor,
    output_size: tuple[int, int],
    rotation_deg: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Affine mapping image pixels to the pixels of a crop of a box.

    The box extent ``center -/+ size / 2`` lands exactly on the crop extent ``[-0.5, w - 0.5] x
    [-0.5, h - 0.5]``; its centre goes to the crop centre ``((w - 1) / 2, (h - 1) / 2)``. Scales along x
    and y are ``w / size_x`` and ``h / size_y``: fix the box aspect ratio first for square pixels.

    Args:
        center: (..., 2) box centre ``x, y`` in image pixels.
        size: (..., 2) box size ``w, h`` in image pixels.
        output_size: crop size ``(h, w)``.
        rotation_deg: (...) or float; the image content appears rotated counter-clockwise by this angle in
            the crop (the ``cv2.getRotationMatrix2D`` sign convention).

    Returns:
        (..., 2, 3) affine, image px -> crop px, with the dtype and device of ``center``.
    """
    check_trailing(center, (2,), "center")
    check_trailing(size, (2,), "size")
    out_h, out_w = check_size(output_size, "output_size")
    size = size.to(center)
    angle = torch.as_tensor(rotation_deg, dtype=center.dtype, device=center.device) * (math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    scale_x, scale_y = out_w / size[..., 0], out_h / size[..., 1]
    # M = diag(scale) @ [[cos, sin], [-sin, cos]]; t = crop centre - M @ center.
    m00, m01 = scale_x * cos, scale_x * sin
    m10, m11 = -scale_y * sin, scale_y * cos
    m00, m01, m10, m11 = torch.broadcast_tensors(m00, m01, m10, m11)
    cx, cy = center[..., 0], center[..., 1]
    t0 = (out_w - 1) / 2.0 - (m00 * cx + m01 * cy)
    t1 = (out_h - 1) / 2.0 - (m10 * cx + m11 * cy)
    row0 = torch.stack(torch.broadcast_tensors(m00, m01, t0), dim=-1)
    row1 = torch.stack(torch.broadcast_tensors(m10, m11, t1), dim=-1)
    return torch.stack([row0, row1], dim=-2)


def invert_affine(affine: torch.Tensor) -> torch.Tensor:
    """Inverse of an invertible (..., 2, 3) affine: ``[M^-1 | -M^-1 t]``."""
    check_trailing(affine, (2, 3), "affine")
    matrix, translation = affine[..., :2], affine[..., 2:]
    inverse = torch.linalg.inv(matrix)
    return torch.cat([inverse, -inverse @ translation], dim=-1)


def compose_affine(second: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """The affine applying ``first`` then ``second`` (matrix product ``second @ first``): (..., 2, 3) each."""
    check_trailing(second, (2, 3), "second")
    check_trailing(first, (2, 3), "first")
    matrix = second[..., :2] @ first[..., :2]
    translation = second[..., :2] @ first[..., 2:] + second[..., 2:]
    return torch.cat([matrix, translation], dim=-1)


def apply_affine(points: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Map (..., N, 2) points by a (..., 2, 3) affine (cast to the points' dtype and device)."""
    check_trailing(points, (2,), "points")
    check_trailing(affine, (2, 3), "affine")
    if points.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 2), got {tuple(points.shape)}")
    affine = affine.to(points)
    return points @ affine[..., :2].transpose(-1, -2) + affine[..., None, :, 2]


def pixels_to_normalized(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop pixels to [-1, 1] coordinates (``align_corners=False`` convention, as ``grid_sample``).

    ``-1`` and ``1`` are the outer edges of the crop, ``0`` its centre ``((w - 1) / 2, (h - 1) / 2)``.

    Args:
        points: (..., 2) ``x, y`` pixels.
        size: crop size ``(h, w)``.
    """
    check_trailing(points, (2,), "points")
    h, w = check_size(size, "size")
    extent = points.new_tensor([w, h])
    return (points + 0.5) * (2.0 / extent) - 1.0


def normalized_to_pixels(points: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pixels_to_normalized`."""
    check_trailing(points, (2,), "points")
    h, w = check_size(size, "size")
    extent = points.new_tensor([w, h])
    return (points + 1.0) * (extent / 2.0) - 0.5
