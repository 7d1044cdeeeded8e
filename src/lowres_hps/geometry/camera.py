"""Pinhole and weak-perspective cameras, and the crop <-> full-image camera conversion.

As in SPIN and RSC-Net, the network predicts a camera translation ``delta = (tx, ty, tz)`` for a FIXED
focal length (5000 px for a 224 x 224 crop) with the principal point at the crop centre. It is usually
regressed as a weak-perspective camera ``[s, tx, ty]`` and converted with ``tz = 2 f / (crop_size * s)``.
The crop centre is ``((w - 1) / 2, (h - 1) / 2)`` in this package's pixel-centre convention
(see :mod:`lowres_hps.geometry.transforms`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lowres_hps.core.checks import check_size, check_trailing

__all__ = [
    "SPIN_FOCAL_LENGTH",
    "SPIN_CROP_SIZE",
    "perspective_project",
    "weak_perspective_project",
    "weak_perspective_to_translation",
    "translation_to_weak_perspective",
    "crop_to_full_translation",
    "full_to_crop_translation",
    "PerspectiveCamera",
    "MIN_CAMERA_SCALE",
    "project_to_crop",
]

SPIN_FOCAL_LENGTH = 5000.0
"""Fixed focal length (px) of the crop camera in SPIN / RSC-Net, for a :data:`SPIN_CROP_SIZE` crop."""
SPIN_CROP_SIZE = 224
"""Crop side (px) the SPIN focal length refers to."""
MIN_CAMERA_SCALE = 0.05
"""Smallest weak-perspective scale used for projection (a person 1/20 of the crop)."""


def _focal_xy(focal: torch.Tensor | float, points: torch.Tensor) -> torch.Tensor:
    """Focal as (..., 2) ``fx, fy`` broadcastable to the batch of (..., N, 3) ``points``."""
    focal = torch.as_tensor(focal, dtype=points.dtype, device=points.device)
    batch_ndim = points.ndim - 2
    if focal.ndim == batch_ndim + 1:
        if focal.shape[-1] != 2:
            raise ValueError(f"a per-axis focal must be (..., 2), got {tuple(focal.shape)}")
        return focal
    if focal.ndim <= batch_ndim:
        return torch.stack([focal, focal], dim=-1)
    raise ValueError(
        f"focal must be (...) or (..., 2) for points of shape {tuple(points.shape)}, got {tuple(focal.shape)}"
    )


def _join_xy_z(xy: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(..., 2) and (...) -> (..., 3), broadcasting the batch dimensions."""
    batch = torch.broadcast_shapes(xy.shape[:-1], z.shape)
    return torch.cat([xy.expand(*batch, 2), z.expand(batch)[..., None]], dim=-1)


def perspective_project(
    points: torch.Tensor,
    focal: torch.Tensor | float,
    principal_point: torch.Tensor,
    rotation: torch.Tensor | None = None,
    translation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection ``f * (x / z, y / z) + c`` of points (OpenCV camera frame, z > 0 in front).

    Args:
        points: (..., N, 3).
        focal: a float, (...) for ``fx = fy``, or (..., 2) ``fx, fy``. A trailing 2 is recognised when
            ``focal.ndim == points.ndim - 1``; so a shared ``(fx, fy)`` for a (B, N, 3) batch is (1, 2).
        principal_point: (..., 2) ``cx, cy`` in pixels.
        rotation: optional (..., 3, 3), applied before ``translation``: ``X_cam = R X + t``.
        translation: optional (..., 3).

    Returns:
        (..., N, 2) pixel coordinates. Points with z <= 0 give meaningless (or infinite) values.
    """
    check_trailing(points, (3,), "points")
    if points.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    check_trailing(principal_point, (2,), "principal_point")
    if rotation is not None:
        check_trailing(rotation, (3, 3), "rotation")
        points = points @ rotation.transpose(-1, -2)
    if translation is not None:
        check_trailing(translation, (3,), "translation")
        points = points + translation[..., None, :]
    focal_xy = _focal_xy(focal, points)
    principal_point = principal_point.to(points)
    return points[..., :2] / points[..., 2:] * focal_xy[..., None, :] + principal_point[..., None, :]


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Weak-perspective (scaled orthographic) projection ``s * (x + tx, y + ty)`` (HMR/SPIN).

    Args:
        points: (..., N, 3).
        cam: (..., 3) ``[s, tx, ty]``.

    Returns:
        (..., N, 2) normalised crop coordinates, -1 and 1 at the crop edges; see
        :func:`lowres_hps.geometry.transforms.normalized_to_pixels`.
    """
    check_trailing(points, (3,), "points")
    check_trailing(cam, (3,), "cam")
    if points.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    return cam[..., None, :1] * (points[..., :2] + cam[..., None, 1:])


def weak_perspective_to_translation(
    cam: torch.Tensor,
    focal: torch.Tensor | float = SPIN_FOCAL_LENGTH,
    crop_size: torch.Tensor | float = SPIN_CROP_SIZE,
    eps: float = 1e-9,
) -> torch.Tensor:
    """``[s, tx, ty]`` -> translation ``(tx, ty, 2 f / (crop_size * s + eps))`` (SPIN's formula and guard).

    At depth ``tz`` a pinhole camera of focal ``f`` scales metres to pixels by ``f / tz``; the weak
    perspective camera scales them by ``s * crop_size / 2``. Equating the two gives ``tz``.

    Args:
        cam: (..., 3).
        focal: float or (...) focal length in pixels of the crop camera.
        crop_size: float or (...) crop side in pixels (the side the normalised coordinates span).
        eps: added to the denominator so that ``s = 0`` stays finite, as in SPIN.

    Returns:
        (..., 3) translation in metres.
    """
    check_trailing(cam, (3,), "cam")
    focal = torch.as_tensor(focal, dtype=cam.dtype, device=cam.device)
    crop_size = torch.as_tensor(crop_size, dtype=cam.dtype, device=cam.device)
    depth = 2.0 * focal / (crop_size * cam[..., 0] + eps)
    return torch.stack(torch.broadcast_tensors(cam[..., 1], cam[..., 2], depth), dim=-1)


def translation_to_weak_perspective(
    translation: torch.Tensor,
    focal: torch.Tensor | float = SPIN_FOCAL_LENGTH,
    crop_size: torch.Tensor | float = SPIN_CROP_SIZE,
) -> torch.Tensor:
    """Inverse of :func:`weak_perspective_to_translation`: (..., 3) -> (..., 3) ``[2 f / (crop_size tz), tx, ty]``."""
    check_trailing(translation, (3,), "translation")
    focal = torch.as_tensor(focal, dtype=translation.dtype, device=translation.device)
    crop_size = torch.as_tensor(crop_size, dtype=translation.dtype, device=translation.device)
    scale = 2.0 * focal / (crop_size * translation[..., 2])
    return torch.stack(torch.broadcast_tensors(scale, translation[..., 0], translation[..., 1]), dim=-1)


def crop_to_full_translation(
    translation: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor | float,
    crop_size: torch.Tensor | float,
    full_focal: torch.Tensor | float,
    full_principal_point: torch.Tensor,
    crop_focal: torch.Tensor | float = SPIN_FOCAL_LENGTH,
) -> torch.Tensor:
    """Camera translation predicted for a crop -> translation for the full-image camera (CLIFF's ``cam_crop2full``).

    The crop camera has focal ``crop_focal`` and its principal point at the crop centre; the crop is an
    axis-aligned, square-pixel crop of the box (side ``box_size`` image px -> ``crop_size`` crop px, box
    centre -> crop centre), without rotation. The full camera has ``full_focal`` and
    ``full_principal_point``. The result keeps the image-plane scale of the body
    (``full_focal / tz_full = crop_focal * box_size / (crop_size * tz_crop)``) and puts the crop camera's
    optical centre ray through the box centre:

        tz_full  = tz * full_focal * crop_size / (crop_focal * box_size)
        txy_full = txy + (box_center - full_principal_point) * tz_full / full_focal

    Points in the plane ``z = 0`` of the body frame then project to the same image pixels with both
    cameras; points off that plane differ by the (small) perspective effect of the off-axis view.

    Args:
        translation: (..., 3) crop-camera translation in metres.
        box_center: (..., 2) box centre in image pixels.
        box_size: float or (...) box height in image pixels (the extent the crop height covers).
        crop_size: float or (...) crop height in pixels.
        full_focal: float or (...) focal of the full image in pixels.
        full_principal_point: (..., 2) in image pixels.
        crop_focal: float or (...) focal of the crop camera in pixels.

    Returns:
        (..., 3) translation for the full-image camera.
    """
    check_trailing(translation, (3,), "translation")
    check_trailing(box_center, (2,), "box_center")
    check_trailing(full_principal_point, (2,), "full_principal_point")
    like = dict(dtype=translation.dtype, device=translation.device)
    box_size, crop_size = torch.as_tensor(box_size, **like), torch.as_tensor(crop_size, **like)
    full_focal, crop_focal = torch.as_tensor(full_focal, **like), torch.as_tensor(crop_focal, **like)
    depth = translation[..., 2] * full_focal * crop_size / (crop_focal * box_size)
    offset = (box_center.to(translation) - full_principal_point.to(translation)) * (depth / full_focal)[..., None]
    return _join_xy_z(translation[..., :2] + offset, depth)


def full_to_crop_translation(
    translation: torch.Tensor,
    box_center: torch.Tensor,
    box_size: torch.Tensor | float,
    crop_size: torch.Tensor | float,
    full_focal: torch.Tensor | float,
    full_principal_point: torch.Tensor,
    crop_focal: torch.Tensor | float = SPIN_FOCAL_LENGTH,
) -> torch.Tensor:
    """Inverse of :func:`crop_to_full_translation` (same arguments, ``translation`` in the full camera)."""
    check_trailing(translation, (3,), "translation")
    check_trailing(box_center, (2,), "box_center")
    check_trailing(full_principal_point, (2,), "full_principal_point")
    like = dict(dtype=translation.dtype, device=translation.device)
    box_size, crop_size = torch.as_tensor(box_size, **like), torch.as_tensor(crop_size, **like)
    full_focal, crop_focal = torch.as_tensor(full_focal, **like), torch.as_tensor(crop_focal, **like)
    full_depth = translation[..., 2]
    offset = (box_center.to(translation) - full_principal_point.to(translation)) * (full_depth / full_focal)[..., None]
    depth = full_depth * crop_focal * box_size / (full_focal * crop_size)
    return _join_xy_z(translation[..., :2] - offset, depth)


@dataclass(frozen=True)
class PerspectiveCamera:
    """A pinhole camera; thin holder around :func:`perspective_project`.

    Attributes:
        focal: float, (...) or (..., 2) focal in pixels.
        principal_point: (..., 2) in pixels.
        rotation: optional (..., 3, 3) world -> camera rotation.
        translation: optional (..., 3) world -> camera translation (``X_cam = R X + t``).
    """

    focal: torch.Tensor | float
    principal_point: torch.Tensor
    rotation: torch.Tensor | None = None
    translation: torch.Tensor | None = None

    @classmethod
    def for_crop(
        cls,
        crop_size: tuple[int, int] = (SPIN_CROP_SIZE, SPIN_CROP_SIZE),
        focal: float = SPIN_FOCAL_LENGTH,
        translation: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> PerspectiveCamera:
        """The SPIN-style crop camera: fixed ``focal``, principal point at the centre of a ``(h, w)`` crop."""
        h, w = check_size(crop_size, "crop_size")
        if translation is not None:
            dtype, device = translation.dtype, translation.device
        center = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=dtype, device=device)
        return cls(focal=focal, principal_point=center, translation=translation)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """(..., N, 3) points -> (..., N, 2) pixels."""
        return perspective_project(points, self.focal, self.principal_point, self.rotation, self.translation)


def project_to_crop(points: torch.Tensor, camera: torch.Tensor, canvas: int,
                    crop_focal: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Project root-relative camera-axis points through the crop camera of ``camera = [s, tx, ty]``.

    Args:
        points: (B, K, 3) in metres, camera axes (x right, y down, z forward), root at the origin.
        camera: (B, 3) weak-perspective crop camera.
        canvas: crop side in px; the principal point is its centre ``(canvas - 1) / 2`` (pixel
            centres at integer coordinates).
        crop_focal: focal in px.

    Returns:
        ``(pixels (B, K, 2), translation (B, 3))``: crop pixels, and the root's position in the crop camera.
    """
    # Keep the scale positive: s <= 0 would put the body at or behind the camera.
    camera = torch.cat([camera[:, :1].clamp(min=MIN_CAMERA_SCALE), camera[:, 1:]], dim=1)
    translation = weak_perspective_to_translation(camera, crop_focal, float(canvas))
    centre = torch.full((points.shape[0], 2), (canvas - 1) / 2.0, dtype=points.dtype, device=points.device)
    pixels = perspective_project(points, crop_focal, centre, translation=translation)
    return pixels, translation
