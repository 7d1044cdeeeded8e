"""Cameras, rotations, 2D crop transforms and Procrustes alignment (torch, any batch shape).

Conventions used across the package:

- Camera coordinates are OpenCV: x right, y down, z forward (into the scene), in metres.
- Image coordinates are pixels with pixel CENTRES at integer coordinates (as ``cv2.warpAffine``); an image of
  width ``W`` spans ``[-0.5, W - 0.5]``.
- Body models output a Y-up frame with the body facing +Z. A body seen from the front by the camera needs
  the 180 degree rotation about X, :func:`body_to_opencv_rotation` (``diag(1, -1, -1)``), before its
  translation into the camera frame.
- The crop camera is SPIN's: fixed focal :data:`SPIN_FOCAL_LENGTH` (5000 px for a 224 x 224 crop),
  principal point at the crop centre, and a predicted translation ``(tx, ty, tz)``.
"""
from lowres_hps.geometry.camera import (
    SPIN_CROP_SIZE,
    SPIN_FOCAL_LENGTH,
    PerspectiveCamera,
    crop_to_full_translation,
    full_to_crop_translation,
    perspective_project,
    translation_to_weak_perspective,
    weak_perspective_project,
    weak_perspective_to_translation,
)
from lowres_hps.geometry.procrustes import procrustes_align, similarity_transform
from lowres_hps.geometry.rotations import (
    axis_angle_to_matrix,
    body_to_opencv,
    body_to_opencv_rotation,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
    rotation_about_axis,
)
from lowres_hps.geometry.transforms import (
    apply_affine,
    box_to_crop_affine,
    compose_affine,
    invert_affine,
    normalized_to_pixels,
    pixels_to_normalized,
)

__all__ = [
    "SPIN_CROP_SIZE",
    "SPIN_FOCAL_LENGTH",
    "PerspectiveCamera",
    "perspective_project",
    "weak_perspective_project",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "crop_to_full_translation",
    "full_to_crop_translation",
    "similarity_transform",
    "procrustes_align",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_about_axis",
    "body_to_opencv_rotation",
    "body_to_opencv",
    "box_to_crop_affine",
    "invert_affine",
    "compose_affine",
    "apply_affine",
    "pixels_to_normalized",
    "normalized_to_pixels",
]
