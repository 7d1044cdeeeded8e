"""Flip-test utilities: mirror keypoints, and bring heatmaps and offsets of a flipped input back.

With the UDP mapping (pixel centres at integers, ``x_in = x_hm (w_in - 1) / (w_hm - 1)``) a horizontal
flip is ``x -> w - 1 - x`` at both resolutions, so the flipped-back outputs align with the unflipped ones
exactly and are averaged without the one-pixel shift older heatmap pipelines needed.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["flip_keypoints", "flip_back_heatmaps", "flip_back_offsets", "merge_flip"]


def _permutation(flip_permutation: Sequence[int] | torch.Tensor, num_keypoints: int, device) -> torch.Tensor:
    perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=device)
    if perm.ndim != 1 or perm.numel() != num_keypoints \
            or not torch.equal(perm.sort().values, torch.arange(num_keypoints, device=device)):
        raise ValueError(f"flip_permutation must be a permutation of range({num_keypoints}), got {perm.tolist()}")
    return perm


def flip_keypoints(
    keypoints: torch.Tensor, width: int, flip_permutation: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Keypoints of the horizontally flipped image: ``x -> width - 1 - x``, left/right swapped.

    Args:
        keypoints: (..., K, 2) ``x, y`` in pixels of an image ``width`` pixels wide.
        width: image width in pixels.
        flip_permutation: (K,) e.g. ``get_convention("coco17").flip_permutation``.

    Returns:
        (..., K, 2); apply it again to get ``keypoints`` back. Reorder visibilities with the same permutation.
    """
    if keypoints.ndim < 2 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., K, 2), got {tuple(keypoints.shape)}")
    perm = _permutation(flip_permutation, keypoints.shape[-2], keypoints.device)
    mirrored = torch.stack([(width - 1) - keypoints[..., 0], keypoints[..., 1]], dim=-1)
    return mirrored.index_select(-2, perm)


def flip_back_heatmaps(heatmaps: torch.Tensor, flip_permutation: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Heatmaps (..., K, h, w) predicted on a flipped input, mirrored and reordered to the original."""
    if heatmaps.ndim < 3:
        raise ValueError(f"heatmaps must have shape (..., K, h, w), got {tuple(heatmaps.shape)}")
    perm = _permutation(flip_permutation, heatmaps.shape[-3], heatmaps.device)
    return heatmaps.flip(-1).index_select(-3, perm)


def flip_back_offsets(offsets: torch.Tensor, flip_permutation: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Offset fields (..., K, 2, h, w) predicted on a flipped input, back to the original (x negated)."""
    if offsets.ndim < 4 or offsets.shape[-3] != 2:
        raise ValueError(f"offsets must have shape (..., K, 2, h, w), got {tuple(offsets.shape)}")
    perm = _permutation(flip_permutation, offsets.shape[-4], offsets.device)
    sign = offsets.new_tensor([-1.0, 1.0])[:, None, None]
    return (offsets.flip(-1) * sign).index_select(-4, perm)


def merge_flip(
    heatmaps: torch.Tensor,
    flipped_heatmaps: torch.Tensor,
    flip_permutation: Sequence[int] | torch.Tensor,
    offsets: torch.Tensor | None = None,
    flipped_offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Average the outputs of an input and of its mirror image (flip test), ready for ``codec.decode``.

    Args:
        heatmaps: (..., K, h, w) outputs on the input.
        flipped_heatmaps: (..., K, h, w) outputs on the horizontally flipped input.
        flip_permutation: (K,) left/right permutation of the keypoint convention.
        offsets, flipped_offsets: (..., K, 2, h, w) offset fields, both or neither.

    Returns:
        ``(heatmaps, offsets or None)``, each the mean of the output and the flipped-back output.
    """
    if heatmaps.shape != flipped_heatmaps.shape:
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and flipped {tuple(flipped_heatmaps.shape)} differ")
    merged = 0.5 * (heatmaps + flip_back_heatmaps(flipped_heatmaps, flip_permutation))
    if (offsets is None) != (flipped_offsets is None):
        raise ValueError("pass both offsets and flipped_offsets, or neither")
    if offsets is None:
        return merged, None
    if offsets.shape != flipped_offsets.shape:
        raise ValueError(f"offsets {tuple(offsets.shape)} and flipped {tuple(flipped_offsets.shape)} differ")
    return merged, 0.5 * (offsets + flip_back_offsets(flipped_offsets, flip_permutation))
