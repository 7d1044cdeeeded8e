"""Silhouettes of people from a static camera by background subtraction (OpenCV MOG2 / KNN).

The silhouette-topology self-adaptation (``lowres-hps adapt``; Rakesh et al., "Aligning Silhouette Topology for
Self-Adaptive 3D Human Pose Recovery") supervises a body model with foreground masks that classical background
subtraction gives on *static camera feeds*. This module makes those masks and says clearly when it cannot:

1. :class:`ForegroundExtractor` feeds frames to ``cv2.createBackgroundSubtractorMOG2`` / ``...KNN``; shadows
   (127 in OpenCV's mask) count as background; the mask is cleaned by an elliptic opening (speckle), a closing
   (holes) and by dropping small connected components. During ``warmup_frames`` and for frames with too much
   foreground (a light change, a flash) it returns None; ``max_bad_frames`` such frames in a row raise
   :class:`CameraMotionError`: the camera moved and background subtraction no longer applies.
2. :func:`person_silhouettes` splits a mask into one silhouette per person box.
3. :func:`warp_mask` crops a mask with the affine of :class:`lowres_hps.imaging.protocol.LowResCrop`.

Frames are (H, W, 3) uint8 RGB arrays (the subtractors treat the channels alike, so no BGR conversion); masks
are (H, W) uint8 with values 0/1. Boxes are ``x, y, w, h`` in the pixel-centre convention of
:mod:`lowres_hps.geometry.transforms` and :mod:`lowres_hps.imaging.crop`: pixel ``(i, j)`` has its centre at
``x = j, y = i``, and a box covers the pixels whose centres lie in ``[x, x + w) x [y, y + h)``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lowres_hps.core.checks import check_image, check_size

__all__ = [
    "ForegroundConfig",
    "CameraMotionError",
    "ForegroundExtractor",
    "foreground_masks",
    "person_silhouettes",
    "warp_mask",
]

_FOREGROUND = 255  # OpenCV's foreground value; shadows are 127 (detectShadows) and count as background


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class ForegroundConfig:
    """Settings of :class:`ForegroundExtractor`.

    Attributes:
        method: ``"mog2"`` (Gaussian mixture per pixel) or ``"knn"`` (nearest samples per pixel).
        history: frames the background model remembers (OpenCV's ``history``).
        var_threshold: MOG2 squared Mahalanobis distance above which a pixel is foreground.
        dist2_threshold: KNN squared distance above which a pixel is foreground.
        detect_shadows: mark shadows (a darker copy of the background) and count them as background.
        learning_rate: in [0, 1], or -1 for OpenCV's automatic rate (``1 / min(2 * frames, history)``).
        warmup_frames: frames learnt before masks are trusted (no mask is returned for them).
        open_kernel: size of the elliptic opening that removes speckle; odd, 0 or 1 for none.
        close_kernel: size of the elliptic closing that fills holes and joins nearby parts; odd, 0 or 1 for none.
        min_area: connected components (8-connected) smaller than this many px are dropped.
        max_foreground_fraction: a mask with a larger foreground fraction is not usable (the camera moved or
            the light changed): None is returned for it.
        max_bad_frames: that many unusable frames in a row raise :class:`CameraMotionError`.

    With the automatic learning rate, at frame ``n`` a colour that stays on a pixel for more than about ``n / 5``
    frames (MOG2; 50 frames once ``n`` reaches ``history / 2``) becomes background: early in a video a slow
    uniform region fades, and a person standing still always does (:func:`person_silhouettes` then reports a
    low fill).
    """

    method: str = "mog2"
    history: int = 500
    var_threshold: float = 16.0
    dist2_threshold: float = 400.0
    detect_shadows: bool = True
    learning_rate: float = -1.0
    warmup_frames: int = 25
    open_kernel: int = 3
    close_kernel: int = 5
    min_area: int = 20
    max_foreground_fraction: float = 0.4
    max_bad_frames: int = 10

    def __post_init__(self) -> None:
        if self.method not in ("mog2", "knn"):
            raise ValueError(f"method must be 'mog2' or 'knn', got {self.method!r}")
        if not _is_int(self.history) or self.history < 1:
            raise ValueError(f"history must be a positive integer (frames), got {self.history!r}")
        for name in ("var_threshold", "dist2_threshold"):
            value = getattr(self, name)
            if not (_is_real(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.detect_shadows, bool):
            raise ValueError(f"detect_shadows must be True or False, got {self.detect_shadows!r}")
        if not (_is_real(self.learning_rate) and (self.learning_rate == -1 or 0 <= self.learning_rate <= 1)):
            raise ValueError(f"learning_rate must be in [0, 1], or -1 for OpenCV's automatic rate, "
                             f"got {self.learning_rate!r}")
        if not _is_int(self.warmup_frames) or self.warmup_frames < 0:
            raise ValueError(f"warmup_frames must be a non-negative integer, got {self.warmup_frames!r}")
        for name in ("open_kernel", "close_kernel"):
            value = getattr(self, name)
            # An even kernel has no centre pixel: OpenCV's erosion and dilation would shift the mask.
            if not _is_int(value) or value < 0 or (value > 1 and value % 2 == 0):
                raise ValueError(f"{name} must be an odd kernel size in px, or 0 for none, got {value!r}")
        if not _is_int(self.min_area) or self.min_area < 0:
            raise ValueError(f"min_area must be a non-negative integer (px), got {self.min_area!r}")
        if not (_is_real(self.max_foreground_fraction) and 0 < self.max_foreground_fraction <= 1):
            raise ValueError(f"max_foreground_fraction must be in (0, 1], got {self.max_foreground_fraction!r}")
        if not _is_int(self.max_bad_frames) or self.max_bad_frames < 1:
            raise ValueError(f"max_bad_frames must be a positive integer, got {self.max_bad_frames!r}")


class CameraMotionError(RuntimeError):
    """Too many frames in a row had too much foreground: the camera is not static."""


def _ellipse(size: int) -> np.ndarray | None:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)) if size > 1 else None


class ForegroundExtractor:
    """Foreground masks of a static camera, one frame at a time.

    Attributes:
        config: the :class:`ForegroundConfig`.
        frames_seen: frames fed so far (warm-up included); the index of the next frame.
        last_fraction: foreground fraction of the last cleaned mask (None during warm-up).
    """

    def __init__(self, config: ForegroundConfig | None = None) -> None:
        self.config = config if config is not None else ForegroundConfig()
        if not isinstance(self.config, ForegroundConfig):
            raise ValueError(f"config must be a ForegroundConfig, got {type(self.config).__name__}")
        self._open = _ellipse(self.config.open_kernel)
        self._close = _ellipse(self.config.close_kernel)
        self.reset()

    def reset(self) -> None:
        """Forget the background (e.g. after the camera was moved on purpose): a new model and a new warm-up."""
        c = self.config
        if c.method == "mog2":
            self._subtractor = cv2.createBackgroundSubtractorMOG2(c.history, float(c.var_threshold), c.detect_shadows)
        else:
            self._subtractor = cv2.createBackgroundSubtractorKNN(c.history, float(c.dist2_threshold), c.detect_shadows)
        self.frames_seen = 0
        self.last_fraction: float | None = None
        self._size: tuple[int, int] | None = None
        self._bad_fractions: list[float] = []  # foreground fractions of the current run of unusable frames

    def _learn(self, frame: np.ndarray) -> np.ndarray:
        """Check ``frame``, feed it to the subtractor and return OpenCV's raw (H, W) uint8 mask (0/127/255)."""
        check_image(frame, "frame")
        size = frame.shape[:2]
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(f"all frames must have the same size: frame {self.frames_seen} is {size[0]} x {size[1]} "
                             f"(H x W) but the first frame was {self._size[0]} x {self._size[1]}")
        raw = self._subtractor.apply(np.ascontiguousarray(frame), learningRate=float(self.config.learning_rate))
        self.frames_seen += 1
        return raw

    def warm_up(self, frames: Iterable[np.ndarray]) -> int:
        """Learn the background from ``frames`` (e.g. the empty scene) without making masks or motion checks.

        They count towards ``warmup_frames``. Returns how many frames were fed.
        """
        count = 0
        for frame in frames:
            self._learn(frame)
            count += 1
        return count

    def clean(self, raw: np.ndarray) -> np.ndarray:
        """OpenCV's (H, W) uint8 mask -> (H, W) uint8 0/1: shadows dropped, opened, closed, small parts removed."""
        mask = (raw == _FOREGROUND).astype(np.uint8)
        if self._open is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        if self._close is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        if self.config.min_area > 1 and mask.any():
            _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            keep = stats[:, cv2.CC_STAT_AREA] >= self.config.min_area
            keep[0] = False  # label 0 is the background
            mask = keep[labels].astype(np.uint8)
        return mask

    def apply(self, frame: np.ndarray) -> np.ndarray | None:
        """Feed one frame and return its foreground mask.

        Args:
            frame: (H, W, 3) uint8 RGB, the size of the first frame.

        Returns:
            (H, W) uint8 0/1 mask, or None during warm-up and for an unusable frame (foreground fraction above
            ``max_foreground_fraction``).

        Raises:
            CameraMotionError: this is the ``max_bad_frames``-th unusable frame in a row.
            ValueError: ``frame`` is not (H, W, 3) uint8, or not the size of the first frame.
        """
        raw = self._learn(frame)
        index = self.frames_seen - 1
        if self.frames_seen <= self.config.warmup_frames:
            return None  # the model has not seen enough background yet: its masks are mostly noise
        mask = self.clean(raw)
        # Measured on the cleaned mask: sensor-noise speckle must not make a frame unusable.
        self.last_fraction = float(mask.mean())
        if self.last_fraction <= self.config.max_foreground_fraction:
            self._bad_fractions.clear()
            return mask
        self._bad_fractions.append(self.last_fraction)
        n = len(self._bad_fractions)
        if n >= self.config.max_bad_frames:
            low, high = f"{min(self._bad_fractions):.0%}", f"{max(self._bad_fractions):.0%}"
            raise CameraMotionError(
                f"background subtraction needs a static camera: {n} consecutive frames (frames {index - n + 1} to "
                f"{index}) had {low if low == high else f'{low} to {high}'} foreground, more than "
                f"max_foreground_fraction={self.config.max_foreground_fraction:.0%}, at frame {index}; the camera "
                f"moved (or the light changed for good): call reset() to learn the new background")
        return None


def foreground_masks(
    frames: Iterable[np.ndarray], config: ForegroundConfig | None = None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yield ``(index, mask)`` for each (H, W, 3) uint8 RGB frame; the mask is (H, W) uint8 0/1 or None.

    None during the warm-up and for unusable frames; raises :class:`CameraMotionError` as
    :meth:`ForegroundExtractor.apply` does.
    """
    extractor = ForegroundExtractor(config)
    for index, frame in enumerate(frames):
        yield index, extractor.apply(frame)


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as (H, W) uint8 0/1; accepts uint8 0/1 or bool."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype not in (np.uint8, np.bool_):
        got = f"{mask.shape} {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name} must be an (H, W) uint8 array of 0/1 (or bool), got {got}")
    if mask.dtype == np.uint8 and mask.size and mask.max() > 1:
        raise ValueError(f"{name} must hold 0/1, got values up to {mask.max()} (a 0/255 mask? divide by 255)")
    return mask.astype(np.uint8, copy=False)


def _pixel_range(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Indices of the pixels whose centres lie in ``[lo, hi)``, clipped to ``[0, limit)``."""
    return min(max(math.ceil(lo), 0), limit), min(max(math.ceil(hi), 0), limit)


def person_silhouettes(
    mask: np.ndarray, boxes: np.ndarray, margin: float = 0.1, min_fill: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Split a foreground mask into one silhouette per person box.

    A person's silhouette is the union of the 8-connected components of ``mask`` that reach into the central
    region of its box (the middle 50% of its width and height: a neighbour's arm at the box edge does not pull
    the neighbour in), kept only inside the box enlarged by ``margin`` of its size on each side (a component
    that merges two people is cut there). A pixel claimed by several boxes goes to the box whose centre is
    nearest (Euclidean, in px). Boxes may lie partly or wholly outside the image.

    Args:
        mask: (H, W) uint8 0/1 (or bool) foreground mask.
        boxes: (N, 4) float ``x, y, w, h`` in image px (pixel-centre convention, see the module docstring).
        margin: enlargement of each box on each side, as a fraction of its width / height.
        min_fill: silhouettes covering less than this fraction of their box are set to zero (a person standing
            still fades into the background; a missed person must not supervise the model with an empty mask
            that looks real).

    Returns:
        ``(silhouettes (N, H, W) uint8 0/1, fill (N,) float64)``; ``fill`` is the fraction of the box's pixels
        inside the image that the person's silhouette covers (before the ``min_fill`` test; 0 for a box wholly
        outside the image).
    """
    mask = _check_mask(mask)
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) as x, y, w, h, got shape {boxes.shape}")
    if not (np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()):
        raise ValueError(f"boxes must be finite with positive w and h, got {boxes.tolist()}")
    if not (_is_real(margin) and margin >= 0):
        raise ValueError(f"margin must be a non-negative fraction of the box size, got {margin!r}")
    if not (_is_real(min_fill) and 0 <= min_fill <= 1):
        raise ValueError(f"min_fill must be in [0, 1], got {min_fill!r}")
    height, width = mask.shape
    n = len(boxes)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    owner = np.full((height, width), -1, np.int64)
    best = np.full((height, width), np.inf)
    for i, (x, y, w, h) in enumerate(boxes):
        cx, cy = x + 0.5 * w, y + 0.5 * h
        x0, x1 = _pixel_range(cx - 0.25 * w, cx + 0.25 * w, width)
        y0, y1 = _pixel_range(cy - 0.25 * h, cy + 0.25 * h, height)
        components = np.unique(labels[y0:y1, x0:x1])
        components = components[components > 0]
        if components.size == 0:
            continue
        x0, x1 = _pixel_range(x - margin * w, x + (1 + margin) * w, width)
        y0, y1 = _pixel_range(y - margin * h, y + (1 + margin) * h, height)
        claimed = np.isin(labels[y0:y1, x0:x1], components)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        dist2 = (xs - cx) ** 2 + (ys - cy) ** 2
        nearer = claimed & (dist2 < best[y0:y1, x0:x1])  # ties go to the earlier box
        best[y0:y1, x0:x1][nearer] = dist2[nearer]
        owner[y0:y1, x0:x1][nearer] = i
    silhouettes = np.zeros((n, height, width), np.uint8)
    fill = np.zeros(n, np.float64)
    for i, (x, y, w, h) in enumerate(boxes):
        silhouettes[i] = owner == i
        x0, x1 = _pixel_range(x, x + w, width)
        y0, y1 = _pixel_range(y, y + h, height)
        if x1 > x0 and y1 > y0:
            fill[i] = silhouettes[i, y0:y1, x0:x1].mean()
        if fill[i] < min_fill:
            silhouettes[i] = 0
    return silhouettes, fill


def warp_mask(
    mask: np.ndarray, affine: np.ndarray | torch.Tensor, output_size: tuple[int, int], antialias: bool = True
) -> np.ndarray:
    """Crop a mask with an affine from image px to crop px, as :class:`~lowres_hps.imaging.protocol.LowResProtocol`.

    ``affine`` is ``LowResCrop.affine`` / the affine of :func:`lowres_hps.imaging.crop.crop_person` (pixel
    centres at integer coordinates, the ``cv2.warpAffine`` convention, so it is used unchanged). The 0/1 mask
    is warped as float with linear interpolation (0 outside the image) and thresholded at 0.5. When the crop
    shrinks the mask (the low-resolution case) and ``antialias`` is set, the mask is first reduced with
    ``cv2.INTER_AREA`` to about the crop's scale, as the protocol reduces the image, so that the threshold
    acts on the covered fraction of each crop pixel rather than on a sparse sample (which would alias).
    (:func:`lowres_hps.imaging.crop.warp_box` takes a box, not an affine, so it is not reused here.)

    Args:
        mask: (H, W) uint8 0/1 (or bool).
        affine: (2, 3) or (3, 3) (last row ``0 0 1``) numpy array or torch tensor, image px -> crop px.
        output_size: ``(h, w)`` of the crop.
        antialias: reduce by area before warping when the affine shrinks.

    Returns:
        (h, w) uint8 0/1.
    """
    mask = _check_mask(mask)
    out_h, out_w = check_size(output_size, "output_size")
    matrix = affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else np.asarray(affine)
    matrix = matrix.astype(np.float64)
    if matrix.shape == (3, 3):
        if not np.allclose(matrix[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"a (3, 3) affine must have the last row 0 0 1 (no perspective), got {matrix[2].tolist()}")
        matrix = matrix[:2]
    if matrix.shape != (2, 3) or not np.isfinite(matrix).all():
        raise ValueError(f"affine must be a finite (2, 3) or (3, 3) matrix, got shape {matrix.shape}")
    source = mask.astype(np.float32)
    height, width = mask.shape
    # Crop px per image px along the image's x and y axes (the lengths of the images of the unit steps).
    scale_x, scale_y = np.linalg.norm(matrix[:, 0]), np.linalg.norm(matrix[:, 1])
    if antialias and (scale_x < 1 - 1e-6 or scale_y < 1 - 1e-6):
        small_w = max(1, math.ceil(width * min(scale_x, 1.0)))
        small_h = max(1, math.ceil(height * min(scale_y, 1.0)))
        source = cv2.resize(source, (small_w, small_h), interpolation=cv2.INTER_AREA)
        # cv2.resize maps pixel centres as x' = (x + 0.5) * f - 0.5; compose so the warp still reads image px.
        fx, fy = small_w / width, small_h / height
        to_image = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5], [0.0, 1 / fy, 0.5 / fy - 0.5], [0.0, 0.0, 1.0]])
        matrix = matrix @ to_image
    warped = cv2.warpAffine(source, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return (warped >= 0.5).astype(np.uint8)
