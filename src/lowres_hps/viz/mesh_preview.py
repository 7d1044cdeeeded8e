"""Quick, non-differentiable mesh drawing for previews and overlays.

A painter's-algorithm rasteriser on OpenCV: back faces are culled, the rest are drawn far
to near with Lambert shading. It needs no OpenGL (none is available headless here) and is
fast enough for a few people at preview sizes. Exact depth-buffered and differentiable
rendering belongs to ``lowres_hps.render``.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["draw_meshes"]

_SUBPIXEL_BITS = 4  # cv2 fixed-point vertex precision: 1/16 px


def draw_meshes(
    image: np.ndarray,
    meshes: list[tuple[np.ndarray, np.ndarray]],
    focal: float | tuple[float, float],
    principal_point: tuple[float, float],
    colors: list[tuple[int, int, int]] | None = None,
    light_direction: tuple[float, float, float] = (0.3, 0.6, 1.0),
    ambient: float = 0.35,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw meshes given in OpenCV camera coordinates onto a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB background.
        meshes: list of ``(vertices (V, 3) metres, camera frame; faces (F, 3) int)``.
        focal: focal length(s) in pixels; principal_point: (cx, cy) in pixels.
        colors: RGB base colour per mesh.
        light_direction: direction the light travels, camera frame.

    Returns:
        ``(image, instance_map)``: the drawn RGB image and an (H, W) int32 map holding the
        index of the visible mesh per pixel, -1 for background.
    """
    out = image.copy()
    instance_map = np.full(image.shape[:2], -1, dtype=np.int32)
    if not meshes:
        return out, instance_map
    fx, fy = (focal, focal) if np.isscalar(focal) else focal
    cx, cy = principal_point
    light = -np.asarray(light_direction, dtype=np.float64)
    light /= np.linalg.norm(light)
    palette = colors or [(200, 170, 150)] * len(meshes)

    tri_xy, tri_depth, tri_rgb, tri_owner = [], [], [], []
    for index, (vertices, faces) in enumerate(meshes):
        vertices = np.asarray(vertices, dtype=np.float64)
        tri = vertices[np.asarray(faces)]  # (F, 3, 3)
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        centroid = tri.mean(axis=1)
        # Keep faces in front of the camera whose normal points towards it.
        keep = (tri[..., 2].min(axis=1) > 1e-3) & (np.einsum("fi,fi->f", normals, centroid) < 0)
        tri, normals, centroid = tri[keep], normals[keep], centroid[keep]
        xy = np.stack([fx * tri[..., 0] / tri[..., 2] + cx, fy * tri[..., 1] / tri[..., 2] + cy], axis=-1)
        shade = ambient + (1.0 - ambient) * np.clip(normals @ light, 0.0, 1.0)
        tri_xy.append(xy)
        tri_depth.append(centroid[:, 2])
        tri_rgb.append(np.clip(shade[:, None] * np.asarray(palette[index], np.float64), 0, 255))
        tri_owner.append(np.full(len(xy), index, dtype=np.int32))

    xy = np.concatenate(tri_xy)
    order = np.argsort(-np.concatenate(tri_depth), kind="stable")  # far to near
    points = np.round(xy[order] * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    rgb = np.concatenate(tri_rgb)[order].astype(np.int32)
    owner = np.concatenate(tri_owner)[order]
    for pts, colour, who in zip(points, rgb, owner):
        colour = (int(colour[0]), int(colour[1]), int(colour[2]))
        cv2.fillConvexPoly(out, pts, colour, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
        cv2.fillConvexPoly(instance_map, pts, int(who), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return out, instance_map
