"""Shape checks shared by the geometry modules (kornia-style: clear ValueError at the API boundary)."""
from __future__ import annotations

import torch


def check_trailing(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``x`` is a tensor whose last dimensions are ``shape``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        expected = "(..., " + ", ".join(map(str, shape)) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


def check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    """Validate an image size ``(h, w)`` of two positive integers."""
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"{name} must be two positive integers (h, w), got {tuple(size)}")
    return int(size[0]), int(size[1])
