"""Shape checks at API boundaries, in the spirit of kornia's ``KORNIA_CHECK_SHAPE``: a clear ``ValueError``
naming the argument and the expected layout instead of a broadcast error deep inside.

    check_shape(images, "B 3 H W", "images")   # a number is exact, a name is any size
    check_shape(points, "* 2", "points")       # a leading * is any number of batch dimensions
    check_image(image)                         # (H, W, 3) uint8 RGB numpy array
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_shape", "check_image", "check_trailing", "check_size"]


def _layout(spec: str) -> str:
    return "(" + ", ".join("..." if part == "*" else part for part in spec.split()) + ")"


def check_shape(x: Any, spec: str, name: str, dtype: Any = None) -> None:
    """Raise unless ``x`` (a torch tensor or numpy array) has the layout ``spec`` (and ``dtype``).

    Args:
        x: the tensor or array.
        spec: sizes separated by spaces; an integer must match exactly, any other word (``B``, ``C``,
            ``H``, ``W``, ``K`` ...) matches any size; a leading ``*`` matches any number of dimensions.
        name: the argument's name, for the message.
        dtype: the dtype ``x`` must have (``torch.uint8``, ``np.uint8`` ...); None accepts any.

    Raises:
        TypeError: ``x`` is neither a tensor nor an array.
        ValueError: another layout or dtype, e.g. ``images must be (B, 3, H, W), got (3, 64, 48)``.
    """
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a tensor or an array {_layout(spec)}, got {type(x).__name__}")
    parts = spec.split()
    any_leading = bool(parts) and parts[0] == "*"
    fixed = parts[1:] if any_leading else parts
    shape = tuple(x.shape)
    ok = len(shape) >= len(fixed) if any_leading else len(shape) == len(fixed)
    if ok:
        tail = shape[len(shape) - len(fixed):]
        ok = all(not part.isdigit() or size == int(part) for part, size in zip(fixed, tail))
    wanted = "" if dtype is None else f" {np.dtype(dtype).name if isinstance(x, np.ndarray) else dtype}"
    if ok and dtype is not None:
        ok = x.dtype == dtype
    if not ok:
        raise ValueError(f"{name} must be {_layout(spec)}{wanted}, got {shape}{' ' + str(x.dtype) if wanted else ''}")


def check_image(image: Any, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``image`` is an (H, W, 3) uint8 RGB numpy array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got {got}")


def check_trailing(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``x`` is a tensor whose last dimensions are ``shape``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_shape(x, " ".join(["*", *map(str, shape)]), name)


def check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    """Validate an image size ``(h, w)`` of two positive integers."""
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"{name} must be two positive integers (h, w), got {tuple(size)}")
    return int(size[0]), int(size[1])
