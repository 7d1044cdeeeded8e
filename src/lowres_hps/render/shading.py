"""Mesh normals and Lambert shading (ambient + one directional light), differentiable, any batch shape.

The light is given as the direction it travels in camera coordinates, as in
:func:`lowres_hps.viz.mesh_preview.draw_meshes`: the default ``(0.3, 0.6, 1.0)`` comes from behind the
camera, slightly from above (y is down) and from the left.
"""
from __future__ import annotations

import torch

from lowres_hps.core.checks import check_trailing

__all__ = ["DEFAULT_LIGHT_DIRECTION", "face_normals", "vertex_normals", "lambert_shading"]

DEFAULT_LIGHT_DIRECTION = (0.3, 0.6, 1.0)


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> None:
    check_trailing(vertices, (3,), "vertices")
    if vertices.ndim < 2:
        raise ValueError(f"vertices must have shape (..., V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")


def _face_cross(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(..., F, 3) ``(v1 - v0) x (v2 - v0)``: the normal scaled by twice the face area."""
    corners = vertices.index_select(-2, faces.to(vertices.device).flatten()).unflatten(-2, (-1, 3))  # (..., F, 3, 3)
    return torch.linalg.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals (..., F, 3) of the faces of (..., V, 3) vertices, by the right-hand rule on the
    corner order (outward for trimesh, Anny and SMPL meshes). Degenerate faces get a zero normal."""
    _check_mesh(vertices, faces)
    cross = _face_cross(vertices, faces)
    return cross / cross.norm(dim=-1, keepdim=True).clamp_min(eps)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals (..., V, 3): the area-weighted mean of the normals of the faces around each vertex."""
    _check_mesh(vertices, faces)
    cross = _face_cross(vertices, faces)  # area-weighted face normals
    # One scatter over flattened (vertex, coordinate) slots: faster than index_add over rows of 3.
    faces = faces.to(vertices.device)
    slots = (faces[:, :, None] * 3 + torch.arange(3, device=faces.device)).flatten()  # (face, corner, xyz)
    values = cross[..., :, None, :].expand(*cross.shape[:-1], 3, 3).flatten(-3)
    summed = vertices.new_zeros(*vertices.shape[:-2], vertices.shape[-2] * 3)
    summed = summed.scatter_add(-1, slots.expand(*values.shape), values).view_as(vertices)
    return summed / summed.norm(dim=-1, keepdim=True).clamp_min(eps)


def lambert_shading(
    normals: torch.Tensor,
    albedo: torch.Tensor,
    light_direction: torch.Tensor | tuple[float, float, float] = DEFAULT_LIGHT_DIRECTION,
    ambient: float = 0.35,
    diffuse: float = 0.65,
) -> torch.Tensor:
    """Lambert shading ``albedo * (ambient + diffuse * max(0, n . l))``, ``l`` pointing to the light.

    Args:
        normals: (..., 3) unit normals (camera frame).
        albedo: (..., C) colours, broadcastable with ``normals[..., :1]``.
        light_direction: (3,) or (..., 3) direction the light travels (camera frame); normalised here.
        ambient, diffuse: light intensities; the defaults sum to 1 so a surface facing the light keeps
            its albedo.

    Returns:
        (..., C) shaded colours.
    """
    check_trailing(normals, (3,), "normals")
    light = torch.as_tensor(light_direction, dtype=normals.dtype, device=normals.device)
    check_trailing(light, (3,), "light_direction")
    towards_light = -light / light.norm(dim=-1, keepdim=True)
    cosine = (normals * towards_light).sum(-1, keepdim=True).clamp_min(0.0)
    return albedo * (ambient + diffuse * cosine)
