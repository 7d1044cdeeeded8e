"""Body-part segmentation of a body model's surface, shared by part masks, clothing and visibility.

Each vertex gets the part of the native joint with the largest skinning weight; joints are
grouped into parts by name, so the same 14 parts exist for Anny, SMPL and SMPL-X. Label 0 is
kept for background in part masks.
"""
from __future__ import annotations

import re

import torch

from lowres_hps.body.base import BodyModel

__all__ = ["BODY_PARTS", "joint_part", "vertex_part_labels", "face_part_labels"]

BODY_PARTS = (
    "background", "head", "torso",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm", "left_hand", "right_hand",
    "left_thigh", "right_thigh", "left_calf", "right_calf", "left_foot", "right_foot",
)

# (pattern on the joint name without its side, part without side); first match wins.
_RULES = [
    (r"^(head|neck|jaw|eye|head_anny|head_smpl|neck0\d)", "head"),
    (r"^(wrist|hand|finger|metacarpal|index|middle|ring|pinky|thumb)", "hand"),
    (r"^(lowerarm|elbow)", "forearm"),
    (r"^(upperarm|shoulder)", "upper_arm"),
    (r"^(upperleg|hip_joint)", "thigh"),
    (r"^(lowerleg|knee)", "calf"),
    (r"^(foot|toe|ankle|heel)", "foot"),
    (r"^(root|pelvis|spine|clavicle|collar)", "torso"),
]


def joint_part(name: str) -> str:
    """The body part a native joint moves, e.g. ``"upperarm01.L" -> "left_upper_arm"``."""
    side = ""
    base = name
    if name.endswith(".L") or name.startswith("left_"):
        side, base = "left_", name[:-2] if name.endswith(".L") else name[len("left_"):]
    elif name.endswith(".R") or name.startswith("right_"):
        side, base = "right_", name[:-2] if name.endswith(".R") else name[len("right_"):]
    for pattern, part in _RULES:
        if re.match(pattern, base):
            return part if part in ("head", "torso") else side + part
    raise ValueError(f"no body part rule for joint {name!r}")


def vertex_part_labels(body: BodyModel) -> torch.Tensor:
    """(V,) long part index into :data:`BODY_PARTS` (1..14) for every vertex of ``body``."""
    joint_labels = torch.tensor(
        [BODY_PARTS.index(joint_part(n)) for n in body.native_convention.names], device=body.faces.device
    )
    return joint_labels[body.skinning_weights().argmax(dim=1)]


def face_part_labels(body: BodyModel) -> torch.Tensor:
    """(F,) long part index per triangle: the most common label of its three vertices (first on ties)."""
    corner = vertex_part_labels(body)[body.faces]  # (F, 3)
    same_01 = corner[:, 0] == corner[:, 1]
    same_02 = corner[:, 0] == corner[:, 2]
    same_12 = corner[:, 1] == corner[:, 2]
    return torch.where(same_01 | same_02, corner[:, 0], torch.where(same_12, corner[:, 1], corner[:, 0]))
