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
    "hips_root",
    "torso_facing",
    "ground_facing",
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
    "SPIN24",
    "SMPLX55",
    "ANNY104",
    "ANNY104_PARENTS",
    "CROWDPOSE14",
    "BLAZEPOSE33",
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
            # Project names use a ``left_``/``right_`` prefix; rig bone labels (Anny) a ``.L``/``.R`` suffix.
            if n.startswith("left_"):
                other = "right_" + n[len("left_"):]
            elif n.endswith(".L"):
                other = n[:-len(".L")] + ".R"
            else:
                continue
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

# COCO-17 followed by the 6 foot points of COCO-WholeBody, in COCO-WholeBody order. Anny's COCO
# regressor knows the same 23 points in another foot order; the Anny body model asks for them by name.
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

# SMPL-X kinematic joints: the 22 body joints (named as in SMPL24), jaw, eyeballs and 2 x 15 finger joints
# (names of ``smplx.joint_names.JOINT_NAMES``; the eyeballs keep their ``_smplhf`` suffix because they are
# the eyeball centres, not the COCO eye keypoints).
_SMPLX_FINGERS = tuple(
    f"{side}_{finger}{i}"
    for side in ("left", "right")
    for finger in ("index", "middle", "pinky", "ring", "thumb")
    for i in (1, 2, 3)
)
_SMPLX55_NAMES = _SMPL24_NAMES[:22] + ("jaw", "left_eye_smplhf", "right_eye_smplhf") + _SMPLX_FINGERS
SMPLX55 = KeypointConvention(
    "smplx55", _SMPLX55_NAMES,
    tuple(pair for pair in SMPL24.skeleton if max(pair) < 22),
)

# Anny's 104-bone rig (anny 0.6 default rig): one point per bone, its head. Labels are Anny's bone
# labels, except ``head`` -> ``head_anny``: that bone's head is the skull base, not the ``head`` point of
# H36M / MPI-INF-3DHP. The root bone's head sits between the hip joints.
_ANNY104_NAMES = (
    "root", "pelvis.L", "upperleg01.L", "upperleg02.L", "lowerleg01.L", "lowerleg02.L", "foot.L",
    "toe1-1.L", "toe1-2.L", "toe2-1.L", "toe2-2.L", "toe2-3.L", "toe3-1.L", "toe3-2.L", "toe3-3.L",
    "toe4-1.L", "toe4-2.L", "toe4-3.L", "toe5-1.L", "toe5-2.L", "toe5-3.L",
    "pelvis.R", "upperleg01.R", "upperleg02.R", "lowerleg01.R", "lowerleg02.R", "foot.R",
    "toe1-1.R", "toe1-2.R", "toe2-1.R", "toe2-2.R", "toe2-3.R", "toe3-1.R", "toe3-2.R", "toe3-3.R",
    "toe4-1.R", "toe4-2.R", "toe4-3.R", "toe5-1.R", "toe5-2.R", "toe5-3.R",
    "spine05", "spine04", "spine03", "spine02", "spine01",
    "clavicle.L", "shoulder01.L", "upperarm01.L", "upperarm02.L", "lowerarm01.L", "lowerarm02.L", "wrist.L",
    "finger1-1.L", "finger1-2.L", "finger1-3.L", "metacarpal1.L", "finger2-1.L", "finger2-2.L", "finger2-3.L",
    "metacarpal2.L", "finger3-1.L", "finger3-2.L", "finger3-3.L", "metacarpal3.L", "finger4-1.L",
    "finger4-2.L", "finger4-3.L", "metacarpal4.L", "finger5-1.L", "finger5-2.L", "finger5-3.L",
    "clavicle.R", "shoulder01.R", "upperarm01.R", "upperarm02.R", "lowerarm01.R", "lowerarm02.R", "wrist.R",
    "finger1-1.R", "finger1-2.R", "finger1-3.R", "metacarpal1.R", "finger2-1.R", "finger2-2.R", "finger2-3.R",
    "metacarpal2.R", "finger3-1.R", "finger3-2.R", "finger3-3.R", "metacarpal3.R", "finger4-1.R",
    "finger4-2.R", "finger4-3.R", "metacarpal4.R", "finger5-1.R", "finger5-2.R", "finger5-3.R",
    "neck01", "neck02", "neck03", "head_anny", "eye.L", "eye.R",
)
# Parent bone of each bone (-1 for the root), as in ``anny.Anny().bone_parents``.
ANNY104_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 6, 9, 10, 6, 12, 13, 6, 15, 16, 6, 18, 19,
    0, 21, 22, 23, 24, 25, 26, 27, 26, 29, 30, 26, 32, 33, 26, 35, 36, 26, 38, 39,
    0, 41, 42, 43, 44,
    45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 52, 56, 57, 58, 52, 60, 61, 62, 52, 64, 65, 66, 52, 68, 69, 70,
    45, 72, 73, 74, 75, 76, 77, 78, 79, 80, 78, 82, 83, 84, 78, 86, 87, 88, 78, 90, 91, 92, 78, 94, 95, 96,
    45, 98, 99, 100, 101, 101,
)
ANNY104 = KeypointConvention(
    "anny104", _ANNY104_NAMES, tuple((p, c) for c, p in enumerate(ANNY104_PARENTS) if p >= 0),
)

# SPIN's 24 "ground-truth" joints (constants.JOINT_NAMES[25:]): LSP-14 in LSP order, then
# mediapipe's BlazePose GHUM landmarks, in its order (its ``mouth_left``/``mouth_right`` are named
# ``left_mouth``/``right_mouth`` here so that the flip pairs find them). Skeleton: mediapipe's POSE_CONNECTIONS.
_BLAZEPOSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "left_mouth", "right_mouth", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
BLAZEPOSE33 = KeypointConvention("blazepose33", _BLAZEPOSE33_NAMES, (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31),
    (30, 32), (27, 31), (28, 32),
))

# Pelvis (MPII), Thorax (MPII), Spine (H36M), Jaw (H36M), Head (H36M), Nose, eyes, ears.
# SPIN fills "Neck (LSP)" of H36M data with H36M's thorax joint; "Jaw (H36M)" is H36M joint 9,
# which the project's h36m17 calls ``neck_base``, so it gets that name here to map by name.
_SPIN24_NAMES = LSP14.names + (
    "pelvis", "thorax", "spine", "neck_base", "head", "nose", "left_eye", "right_eye", "left_ear", "right_ear",
)
_SPIN24_EXTRA_LIMBS = [
    ("pelvis", "spine"), ("spine", "thorax"), ("thorax", "neck"), ("neck", "neck_base"), ("neck_base", "head"),
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
]
SPIN24 = KeypointConvention(
    "spin24", _SPIN24_NAMES,
    LSP14.skeleton + tuple((_SPIN24_NAMES.index(a), _SPIN24_NAMES.index(b)) for a, b in _SPIN24_EXTRA_LIMBS),
)

CONVENTIONS: dict[str, KeypointConvention] = {
    c.name: c
    for c in (COCO17, COCO_FOOT6, COCO23, LSP14, MPII16, CROWDPOSE14, H36M17, MPI_INF_3DHP17, SMPL24, SMPLX55, ANNY104,
              SPIN24, BLAZEPOSE33)
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


def hips_root(points: torch.Tensor, convention: str = "coco17") -> torch.Tensor:
    """(..., K, 3) tensor -> (..., 1, 3): the midpoint of the hips of ``convention``, the root of 3D errors."""
    conv = get_convention(convention)
    hips = [conv.index("left_hip"), conv.index("right_hip")]
    return points[..., hips, :].mean(dim=-2, keepdim=True)


def torso_facing(points: torch.Tensor, convention: str = "coco17") -> torch.Tensor:
    """(..., K, 3) 3D keypoints of ``convention`` in camera axes (x right, y down, z forward) -> (..., 3) unit
    direction out of the chest: the spine (shoulders' midpoint to hips' midpoint) crossed with the shoulder line
    (right to left shoulder). A person facing the camera faces -z."""
    conv = get_convention(convention)
    left, right = points[..., conv.index("left_shoulder"), :], points[..., conv.index("right_shoulder"), :]
    hips = hips_root(points, convention)[..., 0, :]
    spine = hips - (left + right) / 2
    normal = torch.linalg.cross(spine, left - right, dim=-1)
    return normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def ground_facing(points: torch.Tensor, convention: str = "coco17") -> torch.Tensor:
    """(..., K, 3) 3D keypoints in camera axes -> (..., 2) unit direction ``x, z`` the torso faces in the camera's
    x-z plane (the ground for a level camera): :func:`torso_facing` without its vertical part; zero where the torso
    faces straight up or down."""
    ground = torso_facing(points, convention)[..., [0, 2]]
    norm = ground.norm(dim=-1, keepdim=True)
    return torch.where(norm > 1e-6, ground / norm.clamp_min(1e-6), torch.zeros_like(ground))
