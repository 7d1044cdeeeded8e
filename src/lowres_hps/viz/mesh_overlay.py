"""Body meshes drawn over images with the package's z-buffer rasterizer (:mod:`lowres_hps.render`).

Each mesh is rasterized only over the image window its projection covers (the principal point shifted
into the window), so the cost follows the person's size, not the frame's. The windows share one depth
buffer, so nearer people hide farther ones, and the shaded meshes are alpha-blended over the image.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lowres_hps.core.checks import check_image
from lowres_hps.render import DEFAULT_ALBEDO, lambert_shading, rasterize, vertex_normals

__all__ = ["MESH_COLORS", "mesh_window", "draw_meshes"]

MESH_COLORS: tuple[tuple[float, float, float], ...] = (
    DEFAULT_ALBEDO,
    (0.55, 0.70, 0.90),
    (0.60, 0.85, 0.60),
    (0.90, 0.75, 0.45),
    (0.80, 0.60, 0.85),
    (0.55, 0.85, 0.85),
)
"""RGB albedos in [0, 1] cycled over the people of an image (the first is the renderer's skin-like grey)."""
_Z_NEAR = 1e-2  # the rasterizer's default: faces closer than this are dropped


def mesh_window(pixels: np.ndarray, depth: np.ndarray, image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixel window ``(x0, y0, x1, y1)`` (exclusive ends) holding the projections ``pixels`` (V, 2) of
    the vertices in front of the camera (``depth`` (V,) > 1 cm), clipped to an ``(H, W)`` image; None when
    nothing lands in the image."""
    height, width = image_size
    front = depth > _Z_NEAR
    if not front.any():
        return None
    low = np.floor(pixels[front].min(0)).astype(np.int64)
    high = np.ceil(pixels[front].max(0)).astype(np.int64) + 1
    x0, y0 = max(0, int(low[0])), max(0, int(low[1]))
    x1, y1 = min(width, int(high[0])), min(height, int(high[1]))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def draw_meshes(
    image: np.ndarray,
    vertices_list: Sequence[np.ndarray | torch.Tensor],
    faces: np.ndarray | torch.Tensor,
    focal: float | tuple[float, float],
    principal_point: tuple[float, float] | np.ndarray,
    alpha: float = 0.6,
    colors: Sequence[tuple[float, float, float]] | None = None,
) -> np.ndarray:
    """Draw camera-frame meshes over a copy of ``image``, shaded (Lambert, vertex normals) and blended.

    Args:
        image: (H, W, 3) uint8 RGB.
        vertices_list: per mesh, (V, 3) vertices in the image's camera (OpenCV axes: x right, y down,
            z forward; metres), all sharing ``faces``. Faces with a vertex closer than 1 cm are dropped.
        faces: (F, 3) triangle indices, outward-oriented (back faces are culled).
        focal: focal length in pixels, or ``(fx, fy)``.
        principal_point: ``(cx, cy)`` in pixels (pixel centres at integer coordinates).
        alpha: opacity of the meshes, in [0, 1].
        colors: RGB albedo in [0, 1] per mesh (default: :data:`MESH_COLORS`, cycled).

    Returns:
        (H, W, 3) uint8: ``image`` where no mesh is visible, ``(1 - alpha) image + alpha shaded`` elsewhere.
    """
    check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    faces_t = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    if faces_t.ndim != 2 or faces_t.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces_t.shape)}")
    if colors is not None and len(colors) < len(vertices_list):
        raise ValueError(f"got {len(colors)} colors for {len(vertices_list)} meshes")
    out = image.copy()
    if not vertices_list or alpha == 0.0:
        return out
    height, width = image.shape[:2]
    fx, fy = (float(focal), float(focal)) if np.isscalar(focal) else (float(focal[0]), float(focal[1]))
    cx, cy = (float(v) for v in np.asarray(principal_point, dtype=np.float64).reshape(2))

    depth_buffer = np.full((height, width), np.inf, dtype=np.float32)
    shaded = np.zeros((height, width, 3), dtype=np.float32)
    with torch.inference_mode():
        for index, vertices in enumerate(vertices_list):
            vertices = torch.as_tensor(np.asarray(vertices, dtype=np.float32))
            if vertices.ndim != 2 or vertices.shape[1] != 3:
                raise ValueError(f"mesh {index}: vertices must be (V, 3), got {tuple(vertices.shape)}")
            if not torch.isfinite(vertices).all():
                raise ValueError(f"mesh {index}: vertices must be finite")
            depth = vertices[:, 2].numpy()
            safe_depth = np.where(depth > _Z_NEAR, depth, 1.0)
            pixels = np.stack([fx * vertices[:, 0].numpy() / safe_depth + cx,
                               fy * vertices[:, 1].numpy() / safe_depth + cy], axis=-1)
            window = mesh_window(pixels, depth, (height, width))
            if window is None:
                continue
            x0, y0, x1, y1 = window
            albedo = colors[index] if colors is not None else MESH_COLORS[index % len(MESH_COLORS)]
            vertex_colors = lambert_shading(vertex_normals(vertices, faces_t), vertices.new_tensor(albedo))
            fragments = rasterize(vertices[None], faces_t, vertices.new_tensor([fx, fy])[None],
                                  vertices.new_tensor([cx - x0, cy - y0]), (y1 - y0, x1 - x0), "hard",
                                  vertex_colors=vertex_colors[None], cull_backfaces=True, z_near=_Z_NEAR)
            window_depth = depth_buffer[y0:y1, x0:x1]
            nearer = (fragments.alpha[0].numpy() > 0) & (fragments.depth[0].numpy() < window_depth)
            window_depth[nearer] = fragments.depth[0].numpy()[nearer]
            shaded[y0:y1, x0:x1][nearer] = fragments.rgb[0].numpy()[nearer]
    covered = np.isfinite(depth_buffer)
    blended = (1.0 - alpha) * out[covered].astype(np.float32) + alpha * 255.0 * np.clip(shaded[covered], 0.0, 1.0)
    out[covered] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out
