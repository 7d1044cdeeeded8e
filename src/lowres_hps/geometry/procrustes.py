"""Similarity (Procrustes) alignment of point sets, through roma's Umeyama solver."""
from __future__ import annotations

import roma
import torch

__all__ = ["similarity_transform", "procrustes_align"]


def similarity_transform(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best ``s, R, t`` with ``s * source @ R.T + t ~= target`` in the (weighted) least-squares sense.

    Args:
        source, target: (..., N, 3) corresponding points.
        weights: optional (..., N) non-negative weights (e.g. a visibility mask).

    Returns:
        ``(scale (...), rotation (..., 3, 3), translation (..., 3))``.
    """
    if source.shape != target.shape or source.shape[-1] != 3 or source.ndim < 2:
        raise ValueError(f"expected two (..., N, 3) tensors of the same shape, got {tuple(source.shape)} and {tuple(target.shape)}")
    if weights is not None:
        if weights.shape != source.shape[:-1]:
            raise ValueError(f"weights must be (..., N) = {tuple(source.shape[:-1])}, got {tuple(weights.shape)}")
        weights = weights.to(source.dtype)
    rotation, translation, scale = roma.rigid_points_registration(source, target, weights=weights, compute_scaling=True)
    return scale, rotation, translation


def procrustes_align(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``source`` after the similarity transform that best aligns it to ``target``. Shapes as above."""
    scale, rotation, translation = similarity_transform(source, target, weights)
    return scale[..., None, None] * source @ rotation.transpose(-1, -2) + translation[..., None, :]
