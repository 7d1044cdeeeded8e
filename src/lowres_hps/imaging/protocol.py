"""The low-resolution protocol: ONE way to turn a high-resolution person into a low-resolution input.

Used by training, evaluation, benchmarks and the CLI. ``R`` is the person height in pixels, i.e. the
height of the person box after the aspect-ratio fix (the crop height divided by ``scale_factor``).
:class:`LowResProtocol` does, for an image, a person box and an optional ``R``:

1. Crop region: the box grown to the input aspect ratio ``w / h``, then enlarged by ``scale_factor``
   (1.25) about its centre (:func:`lowres_hps.imaging.crop.crop_box`).
2. The region is warped out of the image at its own pixel size (``cv2.warpAffine``, zeros outside the
   image), so that no resampling below happens without antialiasing.
3. ``setting="upsample"`` (RSC-Net §4.1, MILI §4.2): antialiased bicubic down to the size where the person
   is ``R`` px tall, then bicubic back up to ``input_size`` (224 x 224). The intermediate exists only when it
   is the smallest image of the chain: if ``R`` is at least the person height of the input
   (``input_h / scale_factor``, 179.2 px for 224) or of the source, one bicubic resize goes straight to
   ``input_size`` (antialiased when shrinking). ``R=None`` is the original high resolution.
   ``setting="native"`` (CAL): the input itself is small (64 x 48, 128 x 96); one antialiased bicubic resize
   goes straight to it, and the person is about ``input_h / scale_factor`` px tall.
4. uint8 images are clamped to [0, 255] and rounded after every resize: a stored low-resolution image is
   uint8.

The returned affine maps image pixels to input pixels (pixel centres at integer coordinates) and so maps
keypoints. The effective person height is ``min(R, source person height)`` in the upsample setting and
``min(source person height, input_h / scale_factor)`` in the native setting: the resolution the person
really has, measured so that the ranges below are those of RSC-Net (``R=224`` -> range 0). RSC-Net
measures the side of its 224 x 224 crop; here ``R`` is the person height, so with a 224 input and a 1.25
margin every ``R`` from 179.2 to 224 gives the same input pixels.

Resolution ranges (RSC-Net §3.2, §4.1), in person-height px: range 0 is exactly 224 (the original high
resolution), ranges 1-4 are ``[128, 224)``, ``[64, 128)``, ``[40, 64)``, ``[24, 40)`` (the paper writes
them ``(224, 128]`` ...); evaluation uses their midpoints 176, 96, 52, 32.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from lowres_hps.core.checks import check_shape
from lowres_hps.geometry.transforms import box_to_crop_affine
from lowres_hps.imaging.crop import crop_box, warp_box

__all__ = [
    "HIGH_RESOLUTION",
    "RESOLUTION_RANGES",
    "EVAL_MIDPOINTS",
    "resolution_to_range_index",
    "input_range_index",
    "sample_resolution",
    "sample_resolutions_per_range",
    "resize_images",
    "resize_to_person_height",
    "degrade",
    "degrade_image",
    "LowResCrop",
    "LowResProtocol",
]

HIGH_RESOLUTION = 224
"""Person height (px) of the original high-resolution range 0."""
RESOLUTION_RANGES: tuple[tuple[int, int], ...] = ((224, 224), (128, 224), (64, 128), (40, 64), (24, 40))
"""``(low, high)`` per range index: range 0 is exactly 224; ranges 1-4 are half-open ``[low, high)``."""
EVAL_MIDPOINTS: tuple[int, ...] = (176, 96, 52, 32)
"""Evaluation person heights of ranges 1-4 (RSC-Net Tables 1-2); range 0 is evaluated at 224."""

# Ascending lower bounds of ranges 3, 2, 1, 0: the range index is 4 minus how many of them R reaches.
_ASCENDING_LOWER_BOUNDS = (40, 64, 128, 224)


def resolution_to_range_index(resolution):
    """Range index (0-4) of a person height ``R`` in px.

    ``R >= 224`` is range 0 (a person larger than the high-resolution input is still "original"), and
    ``R < 24`` is range 4 (the lowest range also serves heights below it). So 224 -> 0, 223 -> 1,
    128 -> 1, 127 -> 2, 64 -> 2, 63 -> 3, 40 -> 3, 39 -> 4, 24 -> 4.

    Args:
        resolution: a number, a numpy array or a torch tensor of heights (any shape).

    Returns:
        an int for a number, else an int64 array/tensor of the same shape (and device).
    """
    if isinstance(resolution, torch.Tensor):
        bounds = torch.tensor(_ASCENDING_LOWER_BOUNDS, dtype=resolution.dtype, device=resolution.device)
        return len(_ASCENDING_LOWER_BOUNDS) - torch.bucketize(resolution, bounds, right=True)
    reached = np.searchsorted(np.asarray(_ASCENDING_LOWER_BOUNDS), np.asarray(resolution), side="right")
    index = len(_ASCENDING_LOWER_BOUNDS) - reached
    return int(index) if np.ndim(index) == 0 else index.astype(np.int64)


def input_range_index(person_height, scale_factor: float = 1.25):
    """Range index of an input whose person is ``person_height`` px tall (a crop's effective height).

    Like :func:`resolution_to_range_index`, except that heights of at least ``HIGH_RESOLUTION /
    scale_factor`` (179.2 px) count as range 0: a 224 x 224 input with the 1.25 margin shows any such
    person at exactly the same pixels, i.e. at the original high resolution. A number gives an int,
    a tensor gives an int64 tensor.
    """
    full = HIGH_RESOLUTION / scale_factor
    if isinstance(person_height, torch.Tensor):
        return resolution_to_range_index(torch.where(person_height >= full, torch.full_like(person_height, HIGH_RESOLUTION),
                                                     person_height))
    heights = np.asarray(person_height, dtype=np.float64)
    return resolution_to_range_index(np.where(heights >= full, HIGH_RESOLUTION, heights))


def sample_resolution(range_index: int, generator: torch.Generator | None = None) -> int:
    """A person height drawn uniformly among the integers of range ``range_index`` (224 for range 0)."""
    if not 0 <= range_index < len(RESOLUTION_RANGES):
        raise ValueError(f"range_index must be in 0..{len(RESOLUTION_RANGES) - 1}, got {range_index}")
    low, high = RESOLUTION_RANGES[range_index]
    if range_index == 0:
        return high
    return int(torch.randint(low, high, (1,), generator=generator).item())


def sample_resolutions_per_range(generator: torch.Generator | None = None) -> list[int]:
    """One height per range, ``[224, R1, R2, R3, R4]``: RSC-Net's training step sees one image at all five."""
    return [sample_resolution(index, generator) for index in range(len(RESOLUTION_RANGES))]


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of (..., C, H, W) images to ``size = (h, w)``, antialiased when shrinking.

    Antialiasing (``antialias=True``, PIL-like) applies when either side shrinks; enlarging uses plain bicubic.
    uint8 images are processed in float32, then clamped to [0, 255] and rounded; float images are returned
    as computed (no clamping: their value range is the caller's). Images already of ``size`` are returned as is.
    """
    check_shape(images, "* C H W", "images")
    out_h, out_w = int(size[0]), int(size[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"size must be positive (h, w), got {size}")
    in_h, in_w = images.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    work = flat.float() if flat.dtype == torch.uint8 else flat
    resized = F.interpolate(work, size=(out_h, out_w), mode="bicubic", align_corners=False,
                            antialias=out_h < in_h or out_w < in_w)
    if images.dtype == torch.uint8:
        resized = resized.clamp(0, 255).round().to(torch.uint8)
    return resized.reshape(*images.shape[:-2], out_h, out_w)


def _check_heights(person_height: float, box_height: float) -> None:
    if not (person_height > 0 and box_height > 0):
        raise ValueError(f"person_height and box_height must be positive, got {person_height} and {box_height}")


def resize_to_person_height(images: torch.Tensor, person_height: float, box_height: float) -> torch.Tensor:
    """Resize (..., C, H, W) images so that a box ``box_height`` px tall becomes ``person_height`` px tall.

    Both sides scale by ``person_height / box_height``, rounded to whole pixels (at least 1), so the box
    ends within ``0.5 * box_height / H`` px of ``person_height``.
    """
    check_shape(images, "* C H W", "images")
    _check_heights(person_height, box_height)
    factor = person_height / box_height
    in_h, in_w = images.shape[-2:]
    return resize_images(images, (max(1, round(in_h * factor)), max(1, round(in_w * factor))))


def degrade(
    images: torch.Tensor, person_height: float, box_height: float, output_size: tuple[int, int],
    capture_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Simulate a person ``person_height`` px tall: antialiased bicubic down, then bicubic up to ``output_size``.

    Args:
        images: (..., C, H, W) uint8 or float crops (any device).
        person_height: target height ``R`` of the person box, px.
        box_height: height of the person box in ``images``, px.
        output_size: ``(h, w)`` of the result (the network input).
        capture_transform: applied once, to the smallest image of the chain (the one at ``R`` when there is
            one, else the smaller of ``images`` and the output), e.g. sensor noise, blur and JPEG as a camera
            would add at its resolution.

    Returns:
        (..., C, h, w), same dtype. When ``R`` is not below the smaller of the person's heights in
        ``images`` and in the output, going through ``R`` loses nothing: a single resize to ``output_size``.
    """
    check_shape(images, "* C H W", "images")
    _check_heights(person_height, box_height)
    transform = capture_transform if capture_transform is not None else (lambda x: x)
    output_person_height = box_height * output_size[0] / images.shape[-2]
    if person_height >= min(box_height, output_person_height):
        return _resize_with_capture(images, output_size, capture_transform)
    return resize_images(transform(resize_to_person_height(images, person_height, box_height)), output_size)


def _resize_with_capture(images: torch.Tensor, output_size: tuple[int, int],
                         capture_transform: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Resize to ``output_size``, applying ``capture_transform`` on the side of lower resolution."""
    if capture_transform is None:
        return resize_images(images, output_size)
    if images.shape[-2] < output_size[0]:  # a source smaller than the output: the camera worked at its size
        return resize_images(capture_transform(images), output_size)
    return capture_transform(resize_images(images, output_size))


def degrade_image(
    crop: np.ndarray, person_height: float, box_height: float, output_size: tuple[int, int]
) -> np.ndarray:
    """:func:`degrade` for one (H, W, C) uint8 numpy crop; returns (h, w, C) uint8."""
    check_shape(crop, "H W C", "crop", np.uint8)
    chw = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)
    return degrade(chw, person_height, box_height, output_size).permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class LowResCrop:
    """Output of :class:`LowResProtocol`.

    Attributes:
        image: (C, h, w) uint8 network input.
        affine: (2, 3) float64, image pixels -> input pixels (use with :func:`lowres_hps.geometry.apply_affine`).
        person_height: effective person height in px (see the module docstring).
        box: (4,) float64 ``x, y, w, h`` image region the input covers (aspect-fixed and enlarged box).
        range_index: the resolution range of the input (:func:`input_range_index` of ``person_height``), which a
            resolution-aware model runs it with.
    """

    image: torch.Tensor
    affine: torch.Tensor
    person_height: float
    box: np.ndarray
    range_index: int


@dataclass(frozen=True)
class LowResProtocol:
    """The low-resolution protocol (steps in the module docstring).

    Attributes:
        input_size: network input ``(h, w)``: 224 x 224 (RSC-Net), 64 x 48 or 128 x 96 (CAL).
        scale_factor: context margin around the aspect-fixed person box.
        setting: ``"upsample"`` (degrade to R, bicubic back to the input) or ``"native"`` (the small input
            is the resolution; ``person_height`` must be None).
    """

    input_size: tuple[int, int] = (HIGH_RESOLUTION, HIGH_RESOLUTION)
    scale_factor: float = 1.25
    setting: Literal["upsample", "native"] = "upsample"

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or any(int(s) != s or s <= 0 for s in self.input_size):
            raise ValueError(f"input_size must be two positive integers (h, w), got {self.input_size}")
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        if not self.scale_factor > 0:
            raise ValueError(f"scale_factor must be positive, got {self.scale_factor}")
        if self.setting not in ("upsample", "native"):
            raise ValueError(f"setting must be 'upsample' or 'native', got {self.setting!r}")

    @property
    def aspect(self) -> float:
        """Width / height of the input, hence of the crop region (square pixels)."""
        return self.input_size[1] / self.input_size[0]

    @property
    def input_person_height(self) -> float:
        """Height in px of the person box in the network input: ``input_h / scale_factor``."""
        return self.input_size[0] / self.scale_factor

    def __call__(
        self,
        image: np.ndarray,
        bbox: np.ndarray,
        person_height: float | None = None,
        rotation_deg: float = 0.0,
        capture_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> LowResCrop:
        """Crop and degrade one person.

        Args:
            image: (H, W, C) uint8 image.
            bbox: (4,) person box ``x, y, w, h`` in image pixels.
            person_height: target person height R in px; None keeps the source resolution.
            rotation_deg: rotation augmentation about the box centre (counter-clockwise in the input).
            capture_transform: (C, h, w) uint8 -> same, applied at the lowest resolution of the chain (see
                :func:`degrade`): training augmentation of the camera (noise, blur, compression).
        """
        check_shape(image, "H W C", "image", np.uint8)
        bbox = np.asarray(bbox, dtype=np.float64)
        if bbox.shape != (4,) or not (bbox[2] > 0 and bbox[3] > 0):
            raise ValueError(f"bbox must be x, y, w, h with positive w and h, got {bbox.tolist()}")
        if person_height is not None and not person_height > 0:
            raise ValueError(f"person_height must be positive, got {person_height}")
        if self.setting == "native" and person_height is not None:
            raise ValueError("the native setting takes no person_height: the input size sets the resolution")

        box = crop_box(bbox, self.input_size, self.scale_factor)
        source_person_height = float(box[3]) / self.scale_factor
        native_size = (max(1, math.ceil(box[3])), max(1, math.ceil(box[2])))
        native, _ = warp_box(image, box, native_size, rotation_deg, border_value=0, antialias=False)
        if native.ndim == 2:  # cv2 drops a single channel
            native = native[..., None]
        native = torch.from_numpy(native).permute(2, 0, 1)

        if person_height is None or self.setting == "native":
            crop = _resize_with_capture(native, self.input_size, capture_transform)
        else:
            crop = degrade(native, person_height, native_size[0] / self.scale_factor, self.input_size,
                           capture_transform)

        if self.setting == "native":
            effective = min(source_person_height, self.input_person_height)
        else:
            effective = source_person_height if person_height is None else min(float(person_height), source_person_height)
        center = torch.tensor(box[:2] + 0.5 * box[2:], dtype=torch.float64)
        affine = box_to_crop_affine(center, torch.tensor(box[2:], dtype=torch.float64), self.input_size, rotation_deg)
        return LowResCrop(image=crop, affine=affine, person_height=effective, box=box,
                          range_index=int(input_range_index(effective, self.scale_factor)))
