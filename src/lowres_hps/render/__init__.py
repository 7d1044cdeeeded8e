"""Differentiable mesh rendering in plain PyTorch (CPU or GPU): hard z-buffer and SoftRas rasterization,
silhouettes, depth maps and Lambert-shaded colour images."""
from lowres_hps.render.rasterizer import RASTER_MODES, Fragments, project_vertices, rasterize, rasterize_screen
from lowres_hps.render.renderer import DEFAULT_ALBEDO, render_depth, render_rgb, render_silhouette
from lowres_hps.render.shading import DEFAULT_LIGHT_DIRECTION, face_normals, lambert_shading, vertex_normals

__all__ = [
    "RASTER_MODES",
    "Fragments",
    "project_vertices",
    "rasterize",
    "rasterize_screen",
    "render_silhouette",
    "render_depth",
    "render_rgb",
    "DEFAULT_ALBEDO",
    "DEFAULT_LIGHT_DIRECTION",
    "face_normals",
    "vertex_normals",
    "lambert_shading",
]
