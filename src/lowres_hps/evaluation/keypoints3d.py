"""3D keypoint and mesh metrics: MPJPE, PA-MPJPE, PVE, 3DPCK and AUC, per sample.

Every function takes (..., K, 3) tensors of any batch shape, an optional (..., K) mask
(nonzero = the joint counts), and returns (...) per-sample values in the units of the input
(metres in, metres out; multiply by 1000 for the usual millimetres). A sample without any
counted joint gives NaN, so callers aggregate with ``nanmean`` (e.g. per input resolution).
"""
from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from lowres_hps.geometry.procrustes import procrustes_align

__all__ = [
    "Root",
    "align_root",
    "joint_errors",
    "mpjpe",
    "pa_mpjpe",
    "pve",
    "pck3d",
    "auc3d",
]

# A root joint index, several indices whose mean is the root (e.g. both hips), or None (no alignment).
Root = int | Sequence[int] | None


def _check(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Shape checks; returns the boolean (..., K) mask."""
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"expected pred and gt of the same (..., K, 3) shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if mask is None:
        return torch.ones(pred.shape[:-1], dtype=torch.bool, device=pred.device)
    if mask.shape != pred.shape[:-1]:
        raise ValueError(f"mask must be (..., K) = {tuple(pred.shape[:-1])}, got {tuple(mask.shape)}")
    return mask.to(pred.device) != 0


def align_root(keypoints: torch.Tensor, root: Root) -> torch.Tensor:
    """(..., K, 3) keypoints relative to their root: joint ``root``, the mean of joints ``root``, or unchanged for None."""
    if root is None:
        return keypoints
    index = [operator.index(root)] if not isinstance(root, Sequence) else [operator.index(i) for i in root]
    if not index:
        raise ValueError("root must name at least one joint index")
    k = keypoints.shape[-2]
    if any(not -k <= i < k for i in index):
        raise ValueError(f"root index {root} out of range for {k} joints")
    return keypoints - keypoints[..., index, :].mean(-2, keepdim=True)


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # 0/0 -> NaN for samples without a counted joint.
    return torch.where(valid, values, torch.zeros_like(values)).sum(-1) / valid.sum(-1).to(values.dtype)


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, root: Root = None) -> torch.Tensor:
    """(..., K) Euclidean distances between (..., K, 3) joints, each set taken relative to its own root."""
    return torch.linalg.vector_norm(align_root(pred, root) - align_root(gt, root), dim=-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, root: Root = None) -> torch.Tensor:
    """Mean per-joint position error.

    Args:
        pred, gt: (..., K, 3) joints.
        mask: optional (..., K), nonzero where the joint counts. The root joints must be valid.
        root: root alignment (see :data:`Root`); ``None`` compares absolute positions.

    Returns:
        (...) mean distance over the counted joints.
    """
    valid = _check(pred, gt, mask)
    return _masked_mean(joint_errors(pred, gt, root), valid)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MPJPE after the similarity (scale, rotation, translation) that best aligns ``pred`` to ``gt``
    over the counted joints (Procrustes, as in H36M protocol 2 and 3DPW). Shapes as :func:`mpjpe`."""
    valid = _check(pred, gt, mask)
    # Zero the uncounted joints so that NaN placeholders cannot leak into the alignment.
    pred = torch.where(valid[..., None], pred, torch.zeros_like(pred))
    gt = torch.where(valid[..., None], gt, torch.zeros_like(gt))
    aligned = procrustes_align(pred, gt, valid.to(pred.dtype))
    return _masked_mean(joint_errors(aligned, gt), valid)


def pve(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, procrustes: bool = False) -> torch.Tensor:
    """Per-vertex error: mean distance between (..., V, 3) corresponding vertices.

    Args:
        pred, gt: (..., V, 3) vertices of meshes with the same topology. For the usual 3DPW PVE,
            translate each mesh by its own root joint (pelvis) first.
        mask: optional (..., V) vertices that count.
        procrustes: align ``pred`` to ``gt`` with a similarity first (PA-PVE).

    Returns:
        (...) mean vertex distance.
    """
    return pa_mpjpe(pred, gt, mask) if procrustes else mpjpe(pred, gt, mask)


def pck3d(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    threshold: float = 0.15,
    root: Root = None,
) -> torch.Tensor:
    """3D PCK: fraction of counted joints with error ``<= threshold`` (0.15 m = the 150 mm of
    MPI-INF-3DHP, whose protocol aligns the roots first: pass ``root``). Shapes as :func:`mpjpe`."""
    valid = _check(pred, gt, mask)
    correct = (joint_errors(pred, gt, root) <= threshold).to(pred.dtype)
    return _masked_mean(correct, valid)


def auc3d(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    max_threshold: float = 0.15,
    num_thresholds: int = 31,
    root: Root = None,
) -> torch.Tensor:
    """Area under the 3D PCK curve: the mean of :func:`pck3d` over ``num_thresholds`` evenly spaced
    thresholds from 0 to ``max_threshold`` (MPI-INF-3DHP: 0, 5, ..., 150 mm). Because a joint counts
    at ``error <= threshold``, a perfect prediction scores 1 (the 0 threshold only counts exact joints,
    so round-off, e.g. from root alignment, can cost up to 1/31). Shapes as :func:`mpjpe`."""
    valid = _check(pred, gt, mask)
    thresholds = torch.linspace(0.0, max_threshold, num_thresholds, dtype=pred.dtype, device=pred.device)
    errors = joint_errors(pred, gt, root)
    correct = (errors[..., None, :] <= thresholds[:, None]).to(pred.dtype)  # (..., T, K)
    return _masked_mean(correct, valid[..., None, :]).mean(-1)
