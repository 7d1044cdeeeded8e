"""Keypoint conventions: explicit, ordered name lists and name-based mappings between them.

A convention is a name plus an ordered tuple of joint names. Mapping from one convention
to another goes through the names, so a joint that the source lacks is *marked missing*
(mask 0) instead of being silently filled with a wrong joint.

Names are shared across conventions where the anatomical point is the same
(``left_shoulder`` in COCO-17 is ``left_shoulder`` in LSP-14). Points that only look alike
but are defined differently keep distinct names (H36M ``pelvis`` is the hip-centre of the
mocap skeleton, SMPL ``pelvis`` is the SMPL root joint; both are called ``pelvis`` because
every 3D benchmark treats them as the same root).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "KeypointConvention",
    "KeypointMapping",
    "COCO17",
    "COCO_FOOT6",
    "COCO23",
    "LSP14",
    "MPII16",
    "H36M17",
    "MPI_INF_3DHP17",
    "SMPL24",
    "CROWDPOSE14",
    "CONVENTIONS",
    "get_convention",
    "get_mapping",
    "map_keypoints",
]


@dataclass(frozen=True)
class KeypointConvention:
    """An ordered set of named keypoints.

    Attributes:
        name: short identifier, e.g. ``"coco17"``.
        names: joint names in array order.
        flip_pairs: index pairs swapped by a horizontal flip (left <-> right).
        skeleton: index pairs drawn as limbs.
    """

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{self.name}: duplicate keypoint names")
        pairs = []
        for i, n in enumerate(self.names):
            if n.startswith("left_"):
                other = "right_" + n[len("left_"):]
                if other in self.names:
                    pairs.append((i, self.names.index(other)))
        object.__setattr__(self, "flip_pairs", tuple(pairs))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def flip_permutation(self) -> list[int]:
        """Index permutation that maps keypoints of a flipped image back to the original order."""
        perm = list(range(len(self.names)))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _sk(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs)


_COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_LIMBS = [
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"), ("right_knee", "right_hip"),
    ("left_hip", "right_hip"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"), ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
]
COCO17 = KeypointConvention(
    "coco17",
    _COCO17_NAMES,
    _sk(_COCO17_NAMES, _LIMBS + [
        ("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"),
        ("left_eye", "left_ear"), ("right_eye", "right_ear"),
        ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ]),
)

# Anny's COCO regressor returns COCO-17 followed by these 6 foot points (COCO-WholeBody order).
_FOOT6_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)
COCO_FOOT6 = KeypointConvention("coco_foot6", _FOOT6_NAMES)
_COCO23_NAMES = _COCO17_NAMES + _FOOT6_NAMES
COCO23 = KeypointConvention(
    "coco23",
    _COCO23_NAMES,
    COCO17.skeleton + _sk(_COCO23_NAMES, [
        ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
        ("right_ankle", "right_heel"), ("right_ankle", "right_big_toe"), ("right_big_toe", "right_small_toe"),
    ]),
)

# LSP / LSP-extended joints.mat order.
_LSP14_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "head_top",
)
LSP14 = KeypointConvention(
    "lsp14", _LSP14_NAMES,
    _sk(_LSP14_NAMES, _LIMBS + [("neck", "head_top"), ("left_shoulder", "neck"), ("right_shoulder", "neck")]),
)

# MPII order (as in the MPII release and mmpose json).
_MPII16_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
MPII16 = KeypointConvention(
    "mpii16", _MPII16_NAMES,
    _sk(_MPII16_NAMES, _LIMBS + [("pelvis", "thorax"), ("thorax", "neck"), ("neck", "head_top")]),
)

# CrowdPose: 12 COCO body joints + head top + neck.
_CROWDPOSE14_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head_top", "neck",
)
CROWDPOSE14 = KeypointConvention(
    "crowdpose14", _CROWDPOSE14_NAMES,
    _sk(_CROWDPOSE14_NAMES, _LIMBS + [("head_top", "neck")]),
)

# Human3.6M 17-joint order used by SPIN/VideoPose3D/mmpose (root = pelvis, index 0).
_H36M17_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck_base", "head",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)
H36M17 = KeypointConvention(
    "h36m17", _H36M17_NAMES,
    _sk(_H36M17_NAMES, [
        ("pelvis", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("pelvis", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("pelvis", "spine"), ("spine", "thorax"), ("thorax", "neck_base"), ("neck_base", "head"),
        ("thorax", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("thorax", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ]),
)

# MPI-INF-3DHP 17-joint test-set order (mmpose / SPIN `mpi_inf_3dhp` with 17 joints).
_MPI_INF_3DHP17_NAMES = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle", "pelvis", "spine", "head",
)
MPI_INF_3DHP17 = KeypointConvention(
    "mpi_inf_3dhp17", _MPI_INF_3DHP17_NAMES,
    _sk(_MPI_INF_3DHP17_NAMES, _LIMBS + [
        ("pelvis", "spine"), ("spine", "neck"), ("neck", "head"), ("head", "head_top"),
    ]),
)

# SMPL kinematic joints (the 24 joints of the SMPL rig).
_SMPL24_NAMES = (
    "pelvis", "left_hip_joint", "right_hip_joint", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head_smpl", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL24 = KeypointConvention(
    "smpl24", _SMPL24_NAMES,
    _sk(_SMPL24_NAMES, [
        ("pelvis", "left_hip_joint"), ("pelvis", "right_hip_joint"), ("pelvis", "spine1"),
        ("left_hip_joint", "left_knee"), ("right_hip_joint", "right_knee"), ("spine1", "spine2"),
        ("left_knee", "left_ankle"), ("right_knee", "right_ankle"), ("spine2", "spine3"),
        ("left_ankle", "left_foot"), ("right_ankle", "right_foot"), ("spine3", "neck"),
        ("spine3", "left_collar"), ("spine3", "right_collar"), ("neck", "head_smpl"),
        ("left_collar", "left_shoulder"), ("right_collar", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
        ("left_wrist", "left_hand"), ("right_wrist", "right_hand"),
    ]),
)

CONVENTIONS: dict[str, KeypointConvention] = {
    c.name: c for c in (COCO17, COCO_FOOT6, COCO23, LSP14, MPII16, CROWDPOSE14, H36M17, MPI_INF_3DHP17, SMPL24)
}


def register_convention(convention: KeypointConvention) -> None:
    """Add a convention (e.g. a body model's native joint set) to the registry."""
    CONVENTIONS[convention.name] = convention


def get_convention(name: str | KeypointConvention) -> KeypointConvention:
    if isinstance(name, KeypointConvention):
        return name
    try:
        return CONVENTIONS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown keypoint convention {name!r}; known: {sorted(CONVENTIONS)}") from None


@dataclass(frozen=True)
class KeypointMapping:
    """Name-based mapping ``source -> target``.

    Attributes:
        source, target: the two conventions.
        source_index: (K_target,) index into the source for each target joint; 0 where missing.
        valid: (K_target,) bool, False for target joints the source does not have.
    """

    source: KeypointConvention
    target: KeypointConvention
    source_index: np.ndarray
    valid: np.ndarray

    @property
    def missing(self) -> list[str]:
        return [n for n, v in zip(self.target.names, self.valid) if not v]

    def __call__(self, keypoints, mask=None):
        return map_keypoints(keypoints, self, mask)


def get_mapping(source: str | KeypointConvention, target: str | KeypointConvention) -> KeypointMapping:
    src, tgt = get_convention(source), get_convention(target)
    lookup = {n: i for i, n in enumerate(src.names)}
    index = np.array([lookup.get(n, 0) for n in tgt.names], dtype=np.int64)
    valid = np.array([n in lookup for n in tgt.names], dtype=bool)
    return KeypointMapping(src, tgt, index, valid)


def map_keypoints(keypoints, mapping: KeypointMapping, mask=None):
    """Reorder keypoints from ``mapping.source`` to ``mapping.target``.

    Args:
        keypoints: (..., K_source, D) numpy array or torch tensor.
        mask: optional (..., K_source) validity/visibility of the source joints.

    Returns:
        ``(mapped, mapped_mask)``: (..., K_target, D) with missing joints zeroed, and
        (..., K_target) mask that is 0 for joints the source lacks (and the source mask otherwise).
    """
    k_src = len(mapping.source)
    if keypoints.shape[-2] != k_src:
        raise ValueError(f"expected (..., {k_src}, D) keypoints for {mapping.source.name}, got {tuple(keypoints.shape)}")
    if isinstance(keypoints, torch.Tensor):
        idx = torch.as_tensor(mapping.source_index, device=keypoints.device)
        valid = torch.as_tensor(mapping.valid, device=keypoints.device)
        out = keypoints.index_select(-2, idx) * valid[:, None].to(keypoints.dtype)
        m = valid.to(keypoints.dtype).expand(keypoints.shape[:-1][:-1] + valid.shape)
        if mask is not None:
            m = m * torch.as_tensor(mask).to(keypoints.device, keypoints.dtype).index_select(-1, idx)
        return out, m
    keypoints = np.asarray(keypoints)
    out = keypoints[..., mapping.source_index, :] * mapping.valid[:, None]
    m = np.broadcast_to(mapping.valid.astype(keypoints.dtype), keypoints.shape[:-2] + mapping.valid.shape).copy()
    if mask is not None:
        m = m * np.asarray(mask)[..., mapping.source_index]
    return out, m
