"""One-call renders of meshes in camera coordinates: silhouettes, depth maps and shaded colour images."""
from __future__ import annotations

import torch

from lowres_hps.render.rasterizer import rasterize
from lowres_hps.render.shading import DEFAULT_LIGHT_DIRECTION, face_normals, lambert_shading, vertex_normals

__all__ = ["DEFAULT_ALBEDO", "render_silhouette", "render_depth", "render_rgb"]

DEFAULT_ALBEDO = (0.78, 0.67, 0.59)
"""Skin-like grey used when no colours are given (the preview colour of :mod:`lowres_hps.viz.mesh_preview`)."""


def render_silhouette(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    focal: torch.Tensor | float,
    principal_point: torch.Tensor,
    image_size: tuple[int, int],
    mode: str = "soft",
    **kwargs,
) -> torch.Tensor:
    """(B, H, W) silhouettes of (B, V, 3) camera-frame meshes: SoftRas coverage (``mode="soft"``,
    differentiable) or a 0/1 mask (``"hard"``). ``kwargs`` go to
    :func:`lowres_hps.render.rasterize_screen` (``sigma``, ``cull_backfaces``, ...)."""
    return rasterize(vertices, faces, focal, principal_point, image_size, mode, **kwargs).alpha


def render_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    focal: torch.Tensor | float,
    principal_point: torch.Tensor,
    image_size: tuple[int, int],
    **kwargs,
) -> torch.Tensor:
    """(B, H, W) z-buffer: camera z of the nearest surface, ``+inf`` on the background; differentiable
    w.r.t. the vertices where a face is visible."""
    return rasterize(vertices, faces, focal, principal_point, image_size, "hard", **kwargs).depth


def render_rgb(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    focal: torch.Tensor | float,
    principal_point: torch.Tensor,
    image_size: tuple[int, int],
    mode: str = "hard",
    *,
    vertex_colors: torch.Tensor | None = None,
    face_colors: torch.Tensor | None = None,
    light_direction: torch.Tensor | tuple[float, float, float] = DEFAULT_LIGHT_DIRECTION,
    ambient: float = 0.35,
    diffuse: float = 0.65,
    background_color: torch.Tensor | float = 0.0,
    **kwargs,
) -> torch.Tensor:
    """(B, H, W, C) Lambert-shaded colour images of (B, V, 3) camera-frame meshes.

    Vertex colours (default :data:`DEFAULT_ALBEDO`) are shaded at the vertices with vertex normals and
    interpolated (Gouraud); face colours are shaded with face normals (flat). ``background_color`` is a
    float, (C,) or a (B, H, W, C) image to composite over. ``kwargs`` go to
    :func:`lowres_hps.render.rasterize_screen`.
    """
    if vertex_colors is not None and face_colors is not None:
        raise ValueError("give vertex_colors or face_colors, not both")
    faces = faces.to(device=vertices.device, dtype=torch.long)
    light = dict(light_direction=light_direction, ambient=ambient, diffuse=diffuse)
    if face_colors is not None:
        face_colors = lambert_shading(face_normals(vertices, faces), face_colors, **light)
    else:
        if vertex_colors is None:
            vertex_colors = vertices.new_tensor(DEFAULT_ALBEDO).expand(*vertices.shape[:-1], 3)
        vertex_colors = lambert_shading(vertex_normals(vertices, faces), vertex_colors, **light)
    fragments = rasterize(
        vertices, faces, focal, principal_point, image_size, mode,
        vertex_colors=vertex_colors, face_colors=face_colors, background_color=background_color, **kwargs,
    )
    return fragments.rgb
