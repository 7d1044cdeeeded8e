"""Weak 3D supervision by bone directions: for a teacher's 3D keypoints whose joints are defined differently.

A teacher such as BlazePose GHUM gives metric, hip-centred 3D landmarks in camera-aligned axes, but its joint
definitions (e.g. where a hip is) are not the body model's, so comparing positions would pull our joints onto
theirs. What both agree on is where each limb points: the unit direction of upper arm, forearm, thigh and shin,
and of the shoulder and hip lines. Depth ambiguity of a 2D projection is exactly an ambiguity of those
directions, so this term adds what the 2D losses cannot give, and nothing about scale or joint placement.
"""
from __future__ import annotations

import torch

from lowres_hps.body.keypoints import get_convention
from lowres_hps.core.checks import check_shape

__all__ = ["LIMB_BONES", "bone_direction_loss", "bone_indices"]

LIMB_BONES = (
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"),
)
"""Bones compared by :func:`bone_direction_loss`: the limbs, and the shoulder and hip lines (body turn)."""


def bone_indices(convention: str, bones=LIMB_BONES) -> torch.Tensor:
    """(N, 2) long: the (parent, child) keypoint indices of ``bones`` in ``convention``."""
    conv = get_convention(convention)
    return torch.tensor([[conv.index(a), conv.index(b)] for a, b in bones], dtype=torch.long)


def bone_direction_loss(pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor,
                        bones: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-person ``1 - cos`` between predicted and target bone directions, confidence-weighted.

    Args:
        pred: (..., K, 3) predicted 3D keypoints (any origin and scale; camera axes).
        target: (..., K, 3) the teacher's 3D keypoints in the same axes.
        confidence: (..., K) per-keypoint weight in [0, 1] (0 = missing); a bone weighs the product of its ends'.
        bones: (N, 2) long keypoint index pairs (:func:`bone_indices`).

    Returns:
        (...,) the weighted mean of ``1 - cos`` over the bones of each person, 0 where no bone has weight.
    """
    check_shape(pred, "* K 3", "pred")
    check_shape(target, "* K 3", "target")
    if confidence.shape != pred.shape[:-1]:
        raise ValueError(f"confidence must be {tuple(pred.shape[:-1])}, got {tuple(confidence.shape)}")

    def directions(points: torch.Tensor) -> torch.Tensor:
        vectors = points[..., bones[:, 1], :] - points[..., bones[:, 0], :]
        return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=eps)

    cosine = (directions(pred) * directions(target.to(pred.dtype))).sum(-1)
    weights = (confidence[..., bones[:, 0]] * confidence[..., bones[:, 1]]).to(pred.dtype)
    return ((1 - cosine) * weights).sum(-1) / weights.sum(-1).clamp(min=eps)
