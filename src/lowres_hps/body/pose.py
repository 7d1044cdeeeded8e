"""The regression pose vector: the fixed-size vector that networks predict, and its native counterpart.

A pose vector is ``[6D rotation of each regressed joint (root first) | shape]``, of size
``6 * num_joints + shape_size`` (see :class:`RegressionPoseSpec`):

* **Rotations** are 6D (Zhou et al., CVPR 2019): the first two columns of the rotation matrix, stored
  as the row-major (3, 2) block ``[R00, R01, R10, R11, R20, R21]`` (see
  :func:`lowres_hps.geometry.rotations.rotation_6d_to_matrix`). The identity is ``[1, 0, 0, 1, 0, 0]``.
* The **root** rotation is the global orientation of the body in the canonical body frame
  (see :mod:`lowres_hps.body.base`). Every other rotation is the joint's rotation *relative to its
  parent*, about its head, expressed in the canonical (world-aligned) axes of the rest pose, SMPL-style.
  Identity rotations give the model's rest pose (Anny: its reference A-pose; SMPL: its T-pose).
* **Shape** is the model's shape vector (Anny: 6 phenotypes in [0, 1]; SMPL: betas).

Sizes: Anny ``(1 + 19) * 6 + 6 = 126``; SMPL ``24 * 6 + 10 = 154``; SMPL-X ``22 * 6 + 10 = 142``.
Anny bones outside :data:`ANNY_BODY_BONES` (fingers, toes, twist and helper bones, eyes) stay at rest.

:func:`sample_random_pose` draws plausible poses for the mesh command and for synthetic data.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import roma
import torch

from lowres_hps.geometry.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix

__all__ = [
    "RegressionPoseSpec",
    "pose_vector_to_native",
    "native_to_pose_vector",
    "sample_random_pose",
    "ANNY_BODY_BONES",
    "ANNY_POSE_SPEC",
    "SMPL_POSE_SPEC",
    "SMPLX_POSE_SPEC",
    "POSE_SPECS",
    "get_pose_spec",
    "JOINT_RANGES_DEG",
    "ANNY_SHAPE_RANGES",
]


@dataclass(frozen=True)
class RegressionPoseSpec:
    """Layout of a body model's regression pose vector and how it maps to the model's native pose.

    Attributes:
        model: body model name (``"anny"``, ``"smpl"``, ``"smplx"``).
        joint_names: native names of the regressed joints, the root first.
        joint_parts: anatomical part of each regressed joint (keys of :data:`JOINT_RANGES_DEG`, with a
            ``left_``/``right_`` prefix for limbs), used by :func:`sample_random_pose`.
        native_indices: index of each regressed joint in the native pose.
        num_native_joints: number of joints of the native pose (Anny 104, SMPL 24, SMPL-X 22).
        shape_names: names of the shape parameters.
        rest_shape: shape value of the rest (mean) body.
        canonical_to_native: 3x3 rotation taking canonical-frame coordinates to the model's native
            coordinates; native rotations are ``M @ R @ M.T``.
        homogeneous: native pose as (..., N, 4, 4) transforms (Anny) or (..., N, 3, 3) rotations (SMPL).
    """

    model: str
    joint_names: tuple[str, ...]
    joint_parts: tuple[str, ...]
    native_indices: tuple[int, ...]
    num_native_joints: int
    shape_names: tuple[str, ...]
    rest_shape: tuple[float, ...]
    canonical_to_native: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    homogeneous: bool = False

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.joint_parts) != n or len(self.native_indices) != n:
            raise ValueError(f"{self.model}: joint_names, joint_parts and native_indices must have the same length")
        if len(set(self.native_indices)) != n or not all(0 <= i < self.num_native_joints for i in self.native_indices):
            raise ValueError(f"{self.model}: native_indices must be distinct and < {self.num_native_joints}")
        if len(self.rest_shape) != len(self.shape_names):
            raise ValueError(f"{self.model}: rest_shape must have one value per shape name")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def rotation_size(self) -> int:
        return 6 * self.num_joints

    @property
    def shape_size(self) -> int:
        return len(self.shape_names)

    @property
    def vector_size(self) -> int:
        return self.rotation_size + self.shape_size

    def _check_vector(self, vector: torch.Tensor) -> None:
        if vector.shape[-1:] != (self.vector_size,):
            raise ValueError(f"{self.model} pose vector must be (..., {self.vector_size}), got {tuple(vector.shape)}")

    def split(self, vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., D) vector -> ``(rotations (..., J, 3, 3), shape (..., S))``."""
        self._check_vector(vector)
        rot6d = vector[..., : self.rotation_size].reshape(vector.shape[:-1] + (self.num_joints, 6))
        return rotation_6d_to_matrix(rot6d), vector[..., self.rotation_size:]

    def join(self, rotations: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """``rotations (..., J, 3, 3)`` and ``shape (..., S)`` -> (..., D) vector."""
        if rotations.shape[-3:] != (self.num_joints, 3, 3):
            raise ValueError(f"{self.model} rotations must be (..., {self.num_joints}, 3, 3), got {tuple(rotations.shape)}")
        if shape.shape[-1:] != (self.shape_size,) or shape.shape[:-1] != rotations.shape[:-3]:
            raise ValueError(f"{self.model} shape must be {tuple(rotations.shape[:-3]) + (self.shape_size,)}, got {tuple(shape.shape)}")
        rot6d = matrix_to_rotation_6d(rotations).flatten(-2)
        return torch.cat([rot6d, shape.to(rot6d.dtype)], dim=-1)

    def rest_vector(self, batch_size: int = 1, dtype=torch.float32, device=None) -> torch.Tensor:
        """(B, D) vector of the rest pose and rest shape: a natural starting point for iterative regression."""
        eye = torch.eye(3, dtype=dtype, device=device).expand(batch_size, self.num_joints, 3, 3)
        shape = torch.tensor(self.rest_shape, dtype=dtype, device=device).expand(batch_size, -1)
        return self.join(eye, shape)

    def canonical_to_native_matrix(self, dtype=torch.float32, device=None) -> torch.Tensor:
        return torch.tensor(self.canonical_to_native, dtype=dtype, device=device)


def pose_vector_to_native(vector: torch.Tensor, spec: RegressionPoseSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression vector -> native pose of the body model.

    Args:
        vector: (..., spec.vector_size).
        spec: the model's :class:`RegressionPoseSpec`.

    Returns:
        ``(pose, shape)``: pose is (..., N, 4, 4) with zero translations if ``spec.homogeneous``,
        else (..., N, 3, 3), N = ``spec.num_native_joints``; joints not regressed are the identity.
        shape is (..., S).
    """
    rotations, shape = spec.split(vector)
    m = spec.canonical_to_native_matrix(vector.dtype, vector.device)
    native_rotations = m @ rotations @ m.T
    batch = vector.shape[:-1]
    eye = torch.eye(3, dtype=vector.dtype, device=vector.device).expand(batch + (spec.num_native_joints, 3, 3))
    index = torch.tensor(spec.native_indices, device=vector.device)
    pose = eye.index_copy(-3, index, native_rotations)
    if spec.homogeneous:
        pose = torch.nn.functional.pad(pose, (0, 1, 0, 1))
        pose[..., 3, 3] = 1.0
    return pose, shape


def native_to_pose_vector(pose: torch.Tensor, shape: torch.Tensor, spec: RegressionPoseSpec) -> torch.Tensor:
    """Native pose -> regression vector; the inverse of :func:`pose_vector_to_native`.

    Only the regressed joints' rotations are read: translations (Anny) and the rotations of other
    joints are dropped, so the round trip is exact only for poses where those are at rest.

    Args:
        pose: (..., N, 4, 4) or (..., N, 3, 3) native pose.
        shape: (..., S).

    Returns:
        (..., spec.vector_size).
    """
    n = spec.num_native_joints
    if pose.ndim < 3 or pose.shape[-3] != n or pose.shape[-2:] not in ((3, 3), (4, 4)):
        raise ValueError(f"{spec.model} native pose must be (..., {n}, 4, 4) or (..., {n}, 3, 3), got {tuple(pose.shape)}")
    index = torch.tensor(spec.native_indices, device=pose.device)
    native_rotations = pose[..., :3, :3].index_select(-3, index)
    m = spec.canonical_to_native_matrix(pose.dtype, pose.device)
    return spec.join(m.T @ native_rotations @ m, shape)


# --- Specs of the supported models -------------------------------------------------------------

# Anny bones whose rotation is regressed (after the root), with their anatomical part. Spine: the three
# bones whose heads sit at the pelvis, mid-back and chest (spine04/02 stay at rest); the 01 bones of arms
# and legs are the ball/hinge joints (the 02 bones are twist helpers, left at rest).
_ANNY_BODY_PARTS = (
    ("spine05", "spine_lower"), ("spine03", "spine_middle"), ("spine01", "spine_upper"),
    ("neck01", "neck"), ("head", "head"),
    ("clavicle.L", "left_clavicle"), ("upperarm01.L", "left_shoulder"),
    ("lowerarm01.L", "left_elbow"), ("wrist.L", "left_wrist"),
    ("clavicle.R", "right_clavicle"), ("upperarm01.R", "right_shoulder"),
    ("lowerarm01.R", "right_elbow"), ("wrist.R", "right_wrist"),
    ("upperleg01.L", "left_hip"), ("lowerleg01.L", "left_knee"), ("foot.L", "left_ankle"),
    ("upperleg01.R", "right_hip"), ("lowerleg01.R", "right_knee"), ("foot.R", "right_ankle"),
)
ANNY_BODY_BONES: tuple[str, ...] = tuple(bone for bone, _ in _ANNY_BODY_PARTS)


def _anny_pose_spec() -> RegressionPoseSpec:
    from lowres_hps.body.keypoints import ANNY104

    # Anny's bone labels: ANNY104 renames the "head" bone to "head_anny".
    labels = tuple("head" if n == "head_anny" else n for n in ANNY104.names)
    names = ("root",) + ANNY_BODY_BONES
    return RegressionPoseSpec(
        model="anny",
        joint_names=names,
        joint_parts=("root",) + tuple(part for _, part in _ANNY_BODY_PARTS),
        native_indices=tuple(labels.index(n) for n in names),
        num_native_joints=len(labels),
        shape_names=("gender", "age", "muscle", "weight", "height", "proportions"),
        rest_shape=(0.5,) * 6,
        # Anny is Z-up, facing -Y: native (x, y, z) = (x_c, -z_c, y_c) for canonical (x_c, y_c, z_c).
        canonical_to_native=((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
        homogeneous=True,
    )


_SMPL_PARTS = (
    "root", "left_hip", "right_hip", "spine_lower", "left_knee", "right_knee", "spine_middle",
    "left_ankle", "right_ankle", "spine_upper", "left_toes", "right_toes", "neck",
    "left_clavicle", "right_clavicle", "head", "left_shoulder_tpose", "right_shoulder_tpose",
    "left_elbow_tpose", "right_elbow_tpose", "left_wrist", "right_wrist", "left_hand", "right_hand",
)


def _smpl_pose_spec(model: str, num_joints: int, num_betas: int = 10) -> RegressionPoseSpec:
    from lowres_hps.body.keypoints import SMPL24

    return RegressionPoseSpec(
        model=model,
        joint_names=SMPL24.names[:num_joints],
        joint_parts=_SMPL_PARTS[:num_joints],
        native_indices=tuple(range(num_joints)),
        num_native_joints=num_joints,
        shape_names=tuple(f"beta{i}" for i in range(num_betas)),
        rest_shape=(0.0,) * num_betas,
    )


ANNY_POSE_SPEC = _anny_pose_spec()
SMPL_POSE_SPEC = _smpl_pose_spec("smpl", 24)
# SMPL-X: global orientation and the 21 body joints; hands, jaw and eyes stay at rest (flat hands).
SMPLX_POSE_SPEC = _smpl_pose_spec("smplx", 22)
POSE_SPECS = {"anny": ANNY_POSE_SPEC, "smpl": SMPL_POSE_SPEC, "smplx": SMPLX_POSE_SPEC}
"""The pose vector layout of each body model, by the model's name."""


def get_pose_spec(body_model: str) -> RegressionPoseSpec:
    """The pose vector layout of ``body_model`` (``"anny"``, ``"smpl"``, ``"smplx"``)."""
    if body_model not in POSE_SPECS:
        raise ValueError(f"no pose vector layout for body model {body_model!r}; known: {', '.join(POSE_SPECS)}")
    return POSE_SPECS[body_model]


# --- Random plausible poses --------------------------------------------------------------------

# Rotation-vector component ranges (degrees) about the canonical axes x (body's left), y (up),
# z (forward), for the LEFT side of limbs and for the midline; the right side is the mirror image
# (x range kept, y and z ranges negated). Signs: +x bends the trunk/head forward and flexes the knee,
# -x raises an arm or a leg forward; +z raises the left arm sideways. Ranges are modest and relative
# to the model's rest pose: Anny rests in an A-pose, SMPL in a T-pose (hence the ``_tpose`` parts).
JOINT_RANGES_DEG: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "spine_lower": ((-15.0, 30.0), (-20.0, 20.0), (-15.0, 15.0)),
    "spine_middle": ((-10.0, 20.0), (-15.0, 15.0), (-10.0, 10.0)),
    "spine_upper": ((-10.0, 15.0), (-15.0, 15.0), (-10.0, 10.0)),
    "neck": ((-20.0, 30.0), (-30.0, 30.0), (-15.0, 15.0)),
    "head": ((-20.0, 20.0), (-30.0, 30.0), (-15.0, 15.0)),
    "clavicle": ((-10.0, 10.0), (-10.0, 10.0), (-10.0, 15.0)),
    "shoulder": ((-70.0, 30.0), (-30.0, 30.0), (-30.0, 60.0)),
    "shoulder_tpose": ((-30.0, 30.0), (-60.0, 20.0), (-75.0, 20.0)),
    "elbow": ((-110.0, 0.0), (-15.0, 15.0), (-5.0, 5.0)),
    "elbow_tpose": ((-20.0, 20.0), (-110.0, 0.0), (-5.0, 5.0)),
    "wrist": ((-30.0, 30.0), (-10.0, 10.0), (-20.0, 20.0)),
    "hand": ((-15.0, 15.0), (-5.0, 5.0), (-10.0, 10.0)),
    "hip": ((-60.0, 15.0), (-20.0, 20.0), (-10.0, 30.0)),
    "knee": ((0.0, 100.0), (-5.0, 5.0), (-5.0, 5.0)),
    "ankle": ((-20.0, 30.0), (-10.0, 10.0), (-10.0, 10.0)),
    "toes": ((-15.0, 15.0), (-5.0, 5.0), (-5.0, 5.0)),
}

# Default phenotype sampling ranges for Anny (phenotypes live in [0, 1]; age 0 is a baby,
# 1/3 a child, 2/3 a young adult, 1 an old adult: sampled people are children to old adults).
ANNY_SHAPE_RANGES: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0), "age": (0.35, 1.0), "muscle": (0.0, 1.0),
    "weight": (0.1, 0.9), "height": (0.0, 1.0), "proportions": (0.0, 1.0),
}
_BETA_RANGE = (-2.0, 2.0)


def _part_ranges(part: str) -> torch.Tensor:
    """(3, 2) rotation-vector ranges in radians of a part, mirrored for the right side."""
    if part.startswith("right_"):
        (x, y, z) = JOINT_RANGES_DEG[part[len("right_"):]]
        ranges = (x, (-y[1], -y[0]), (-z[1], -z[0]))
    else:
        ranges = JOINT_RANGES_DEG[part.removeprefix("left_")]
    return torch.tensor(ranges, dtype=torch.float64) * (math.pi / 180.0)


def sample_random_pose(
    batch_size: int,
    generator: torch.Generator | None = None,
    spec: RegressionPoseSpec = ANNY_POSE_SPEC,
    *,
    scale: float = 1.0,
    root_yaw_deg: float = 0.0,
    root_tilt_deg: float = 0.0,
    random_shape: bool = True,
    shape_ranges: Mapping[str, tuple[float, float]] | None = None,
    dtype=torch.float32,
    device=None,
) -> torch.Tensor:
    """Random plausible pose (and shape) vectors.

    Each regressed joint gets a rotation vector whose x, y, z components (canonical axes) are uniform in
    :data:`JOINT_RANGES_DEG` times ``scale``. The root gets a yaw uniform in ``±root_yaw_deg`` about
    the vertical and a tilt uniform in ``±root_tilt_deg`` about x and z (both 0 by default: upright,
    facing +Z). Shapes are uniform in ``shape_ranges`` (Anny default :data:`ANNY_SHAPE_RANGES`,
    SMPL betas in [-2, 2]), or the rest shape when ``random_shape`` is False.

    Args:
        batch_size: B.
        generator: a CPU ``torch.Generator`` for reproducible draws.
        spec: the body model's regression spec.

    Returns:
        (B, spec.vector_size) pose vectors.
    """
    parts = spec.joint_parts[1:]
    low_high = torch.stack([_part_ranges(p) for p in parts]) * scale  # (J-1, 3, 2)
    u = torch.rand((batch_size, len(parts), 3), generator=generator, dtype=torch.float64)
    body_rotvec = low_high[..., 0] + u * (low_high[..., 1] - low_high[..., 0])
    tilt, yaw = math.radians(root_tilt_deg), math.radians(root_yaw_deg)
    u_root = torch.rand((batch_size, 1, 3), generator=generator, dtype=torch.float64) * 2.0 - 1.0
    root_rotvec = u_root * torch.tensor([tilt, yaw, tilt], dtype=torch.float64)
    rotations = roma.rotvec_to_rotmat(torch.cat([root_rotvec, body_rotvec], dim=1))

    if random_shape:
        if shape_ranges is None:
            shape_ranges = ANNY_SHAPE_RANGES if spec.model == "anny" else {n: _BETA_RANGE for n in spec.shape_names}
        unknown = set(shape_ranges) - set(spec.shape_names)
        if unknown:
            raise ValueError(f"unknown shape names {sorted(unknown)} for {spec.model}; known: {spec.shape_names}")
        bounds = torch.tensor(
            [shape_ranges.get(n, (r, r)) for n, r in zip(spec.shape_names, spec.rest_shape)], dtype=torch.float64
        )
        u_shape = torch.rand((batch_size, spec.shape_size), generator=generator, dtype=torch.float64)
        shape = bounds[:, 0] + u_shape * (bounds[:, 1] - bounds[:, 0])
    else:
        shape = torch.tensor(spec.rest_shape, dtype=torch.float64).expand(batch_size, -1)
    return spec.join(rotations, shape).to(dtype=dtype, device=device)
