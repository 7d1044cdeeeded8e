"""Person crops: fix the box aspect ratio, enlarge it, and warp it out of the image.

Boxes are ``x, y, w, h`` in image pixels (numpy arrays or torch tensors, any batch shape ``(..., 4)``),
spanning ``[x, x + w] x [y, y + h]`` in the pixel-centre convention of
:mod:`lowres_hps.geometry.transforms` (the whole of a W x H image is ``[-0.5, -0.5, W, H]``). The same 2 x 3 affine warps the image (``cv2.warpAffine``) and maps
keypoints (:func:`lowres_hps.geometry.apply_affine`).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from lowres_hps.geometry.transforms import box_to_crop_affine

__all__ = ["fix_aspect_ratio", "enlarge_box", "crop_box", "warp_box", "crop_person"]

BoxLike = np.ndarray | torch.Tensor


def _check_box(bbox: BoxLike) -> None:
    if not isinstance(bbox, (np.ndarray, torch.Tensor)) or bbox.ndim < 1 or bbox.shape[-1] != 4:
        raise ValueError(f"bbox must be an array of shape (..., 4) as x, y, w, h, got {getattr(bbox, 'shape', bbox)!r}")


def _stack(parts: list, like: BoxLike) -> BoxLike:
    return torch.stack(parts, dim=-1) if isinstance(like, torch.Tensor) else np.stack(parts, axis=-1)


def _where(condition, a, b):
    return torch.where(condition, a, b) if isinstance(condition, torch.Tensor) else np.where(condition, a, b)


def fix_aspect_ratio(bbox: BoxLike, aspect: float) -> BoxLike:
    """Grow the short side of each box about its centre so that ``w / h == aspect`` (never shrinks a side).

    Args:
        bbox: (..., 4) ``x, y, w, h``.
        aspect: target width / height (e.g. 0.75 for a 256 x 192 input, 1 for 224 x 224).

    Returns:
        (..., 4) boxes with the same centres, same array type.
    """
    _check_box(bbox)
    if not aspect > 0:
        raise ValueError(f"aspect must be positive, got {aspect}")
    x, y, w, h = (bbox[..., i] for i in range(4))
    cx, cy = x + 0.5 * w, y + 0.5 * h
    too_wide = w > aspect * h
    new_w = _where(too_wide, w, aspect * h)
    new_h = _where(too_wide, w / aspect, h)
    return _stack([cx - 0.5 * new_w, cy - 0.5 * new_h, new_w, new_h], bbox)


def enlarge_box(bbox: BoxLike, factor: float = 1.25) -> BoxLike:
    """Scale each (..., 4) box about its centre by ``factor`` (1.25 is SPIN's / RSC-Net's context margin)."""
    _check_box(bbox)
    if not factor > 0:
        raise ValueError(f"factor must be positive, got {factor}")
    x, y, w, h = (bbox[..., i] for i in range(4))
    cx, cy = x + 0.5 * w, y + 0.5 * h
    return _stack([cx - 0.5 * factor * w, cy - 0.5 * factor * h, factor * w, factor * h], bbox)


def crop_box(bbox: BoxLike, output_size: tuple[int, int], scale_factor: float = 1.25) -> BoxLike:
    """The image region a person crop covers: the box with the output's aspect ratio, enlarged by ``scale_factor``."""
    out_h, out_w = output_size
    return enlarge_box(fix_aspect_ratio(bbox, out_w / out_h), scale_factor)


def warp_box(
    image: np.ndarray,
    box: np.ndarray,
    output_size: tuple[int, int],
    rotation_deg: float = 0.0,
    border_value: int = 0,
    antialias: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp the region ``box`` (used as given) of ``image`` onto an ``output_size`` crop.

    Outside the image the crop is filled with ``border_value``. When the crop shrinks the region and
    ``antialias`` is set, the region is first warped at its own pixel size and then reduced with
    ``cv2.INTER_AREA`` (a warp alone would alias); both steps follow the same pixel-centre convention,
    so the returned affine is exact either way.

    Args:
        image: (H, W, C) or (H, W) image.
        box: (4,) ``x, y, w, h``.
        output_size: ``(h, w)``.

    Returns:
        ``(crop (h, w[, C]) same dtype, affine (2, 3) float64 image px -> crop px)``.
    """
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not (box[2] > 0 and box[3] > 0):
        raise ValueError(f"box must be x, y, w, h with positive w and h, got {box.tolist()}")
    out_h, out_w = int(output_size[0]), int(output_size[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"output_size must be positive (h, w), got {output_size}")
    center = torch.tensor(box[:2] + 0.5 * box[2:], dtype=torch.float64)
    size = torch.tensor(box[2:], dtype=torch.float64)
    affine = box_to_crop_affine(center, size, (out_h, out_w), rotation_deg).numpy()
    border = (border_value,) * (image.shape[2] if image.ndim == 3 else 1)
    native_h, native_w = math.ceil(box[3]), math.ceil(box[2])
    if antialias and (native_h > out_h or native_w > out_w):
        native_affine = box_to_crop_affine(center, size, (native_h, native_w), rotation_deg).numpy()
        native = cv2.warpAffine(image, native_affine, (native_w, native_h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        crop = cv2.resize(native, (out_w, out_h), interpolation=cv2.INTER_AREA)
    else:
        crop = cv2.warpAffine(image, affine, (out_w, out_h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return crop, affine


def crop_person(
    image: np.ndarray,
    bbox: np.ndarray,
    output_size: tuple[int, int],
    scale_factor: float = 1.25,
    rotation_deg: float = 0.0,
    border_value: int = 0,
    antialias: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a person: box -> output aspect ratio -> enlarged by ``scale_factor`` -> warped to ``output_size``.

    Args:
        image: (H, W, 3) uint8.
        bbox: (4,) person box ``x, y, w, h`` in image pixels.
        output_size: ``(h, w)`` of the crop.
        scale_factor: context margin around the aspect-fixed box.
        rotation_deg: rotation augmentation about the box centre (counter-clockwise in the crop).
        border_value: fill value outside the image.
        antialias: see :func:`warp_box`.

    Returns:
        ``(crop (h, w, 3) uint8, affine (2, 3) float64 image px -> crop px)``.
    """
    _check_box(np.asarray(bbox))
    box = crop_box(np.asarray(bbox, dtype=np.float64), output_size, scale_factor)
    return warp_box(image, box, output_size, rotation_deg, border_value, antialias)
