"""Whole frames for whole-image networks (person detectors, MILI): the resize that makes small people large
enough, and the padding to the network's stride."""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["long_side_factor", "resize_and_pad"]


def long_side_factor(height: int, width: int, target_long_side: int = 1024, max_upscale: float = 4.0,
                     max_pixels: float = math.inf) -> float:
    """The factor that brings an image's long side to ``target_long_side``, between 1 (large frames keep their
    pixels) and ``max_upscale``, and at most the one that keeps ``max_pixels``."""
    wanted = min(max(target_long_side / max(height, width), 1.0), max_upscale)
    return min(wanted, math.sqrt(max_pixels / (width * height)))


def resize_and_pad(image: np.ndarray, factor: float, multiple: int = 32) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 resized by ``factor`` (bilinear up, area down), zero-padded right and bottom to multiples of
    ``multiple``. Returns ``(padded image, (resized height, resized width))``; a resized pixel centre ``u`` is
    image point ``(u + 0.5) * W / resized width - 0.5`` (cv2.resize's mapping)."""
    height, width = image.shape[:2]
    new_w, new_h = max(1, round(width * factor)), max(1, round(height * factor))
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if factor > 1 else cv2.INTER_AREA)
    padded = np.pad(image, ((0, -new_h % multiple), (0, -new_w % multiple), (0, 0)))
    return np.ascontiguousarray(padded), (new_h, new_w)
