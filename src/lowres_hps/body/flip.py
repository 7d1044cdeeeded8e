"""Horizontal flip of regression pose vectors (mirror images of posed bodies).

Mirroring an image across its vertical axis reflects the camera x axis (OpenCV: x right, y down,
z forward): ``p -> F p`` with ``F = diag(-1, 1, 1)``. In the canonical body frame x is the body's
left (:mod:`lowres_hps.body.base`), and Anny's native axes keep that x (``canonical_to_native`` turns
about x), so the same ``F`` reflects the camera, the canonical and the native frames.

For a body posed by the root rotation ``R_0`` (canonical -> camera axes) and local rotations ``R_c``
(relative to the parent, about the joint's head, in world-aligned axes of the rest pose; Anny: of its
reference A-pose, see :mod:`lowres_hps.body.pose`), forward kinematics is ``G_0 = R_0``,
``G_c = G_p R_c`` and ``x_c = x_p + G_p (r_c - r_p)`` for rest heads ``r``, and vertices follow their
joints' ``G``. Write ``c'`` for the mirror joint of ``c`` (itself on the midline). If the rest skeleton
and mesh are mirror symmetric (``r_c' = F r_c``, mirror vertices skinned alike to mirror joints), then,
with ``F^2 = I``::

    F x_c = F x_p + (F G_p F) (F r_c - F r_p) = F x_p + (F G_p F) (r_c' - r_p'),

so the mirrored body is the model posed with ``G'_c' = F G_c F``, i.e.::

    R'_0 = F R_0 F,        R'_c' = F R_c F,        same shape.

``F R F`` keeps the rotation angle and turns its axis ``(a, b, c)`` into ``(a, -b, -c)``: it negates
``R_ij`` where exactly one of ``i, j`` is 0. On the 6D block ``[R00, R01, R10, R11, R20, R21]`` that is
the sign pattern ``(+, -, -, +, -, +)``: exact also for non-orthonormal 6D vectors (Gram-Schmidt
commutes with it), and an involution, so flipping twice is the identity.

Exactness. Shapes are kept: Anny's phenotypes are symmetric (its rest meshes are mirror symmetric to
~0.01 mm, ~1 mm at a few phenotype mixes); SMPL betas are taken as symmetric, as is usual (not
measured here: the SMPL files are licensed). Anny's neck
bones (neck01-03) are not: their rest frames and reference orientations are a few degrees off the
sagittal plane (up to ~17 degrees for a baby), and the neck03 and lowerarm01 heads sit 1-3 mm off
mirror. So a flipped Anny vector gives the mirror image of the original to ~1.5 mm on the mesh and the
COCO keypoints, ~5 mm on the neck bone heads (phenotypes in ``ANNY_SHAPE_RANGES``; up to ~7 mm for a
baby); ``tests/body/test_body_flip.py`` measures it. SMPL with a symmetric template is exact.
"""
from __future__ import annotations

from functools import lru_cache

import roma
import torch

from lowres_hps.body.pose import RegressionPoseSpec

__all__ = ["flip_joint_permutation", "flip_pose_vector", "merge_mirrored_pose_vectors", "turn_round_pose_vector"]

# Signs of F R F on the row-major (3, 2) 6D block: entries (0, 1), (1, 0), (2, 0) change sign.
_SIGNS_6D = (1.0, -1.0, -1.0, 1.0, -1.0, 1.0)
# diag(-1, 1, -1) R on the 6D block [R00, R01, R10, R11, R20, R21]: rows 0 and 2 negated.
_TURN_ROUND_6D = (-1.0, -1.0, 1.0, 1.0, -1.0, -1.0)


def _mirror_name(name: str) -> str | None:
    for left, right in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(left):
            return right + name[len(left):]
    for left, right in ((".L", ".R"), (".R", ".L")):
        if name.endswith(left):
            return name[: -len(left)] + right
    return None


@lru_cache(maxsize=None)  # specs are frozen; the dataset flips one vector per sample
def flip_joint_permutation(spec: RegressionPoseSpec) -> tuple[int, ...]:
    """For each regressed joint, the index of its mirror joint (itself on the midline).

    Joints are paired by name (``left_``/``right_`` prefix, ``.L``/``.R`` suffix).

    Raises:
        ValueError: a left or right joint whose mirror is not regressed.
    """
    names = spec.joint_names
    perm = []
    for i, name in enumerate(names):
        other = _mirror_name(name)
        if other is None:
            perm.append(i)
        elif other in names:
            perm.append(names.index(other))
        else:
            raise ValueError(f"{spec.model}: joint {name!r} has no mirror joint {other!r} in the pose spec")
    return tuple(perm)


def flip_pose_vector(vector: torch.Tensor, spec: RegressionPoseSpec) -> torch.Tensor:
    """The pose vector of the horizontally mirrored body (camera x reflected).

    Each joint's rotation ``R`` becomes ``F R F`` with ``F = diag(-1, 1, 1)``, left and right joints swap,
    the shape is kept (see the module docstring for why).

    Args:
        vector: (..., spec.vector_size) pose vectors, any batch shape.
        spec: the body model's :class:`RegressionPoseSpec`.

    Returns:
        (..., spec.vector_size), same dtype and device.
    """
    spec._check_vector(vector)
    rot6d = vector[..., : spec.rotation_size].unflatten(-1, (spec.num_joints, 6))
    perm = torch.tensor(flip_joint_permutation(spec), device=vector.device)
    signs = torch.tensor(_SIGNS_6D, dtype=vector.dtype, device=vector.device)
    flipped = rot6d.index_select(-2, perm) * signs
    return torch.cat([flipped.flatten(-2), vector[..., spec.rotation_size:]], dim=-1)


def turn_round_pose_vector(vector: torch.Tensor, spec: RegressionPoseSpec) -> torch.Tensor:
    """The pose vector of the body seen the other way round: its depth reflected about the root (camera z, ``Z =
    diag(1, 1, -1)``) with left and right exchanged, so that it faces the other way and projects (orthographically)
    onto the same image points with their left and right labels swapped: the front/back ambiguity of one view.

    With ``D = diag(-1, 1, -1)`` (half a turn about the camera's y) and ``Z = D F``, the body ``Z x`` relabelled is
    the mirrored body (:func:`flip_pose_vector`) with its root rotation turned by ``D``: ``R'_0 = D F R_0 F``, the
    other joints ``F R_c F`` with left and right swapped; same shape, same exactness as the flip.

    Args:
        vector: (..., spec.vector_size) pose vectors, any batch shape.
        spec: the body model's :class:`RegressionPoseSpec` (root first).

    Returns:
        (..., spec.vector_size), same dtype and device.
    """
    flipped = flip_pose_vector(vector, spec)
    turn = torch.tensor(_TURN_ROUND_6D, dtype=vector.dtype, device=vector.device)
    return torch.cat([flipped[..., :6] * turn, flipped[..., 6:]], dim=-1)


def merge_mirrored_pose_vectors(vector: torch.Tensor, mirrored: torch.Tensor, spec: RegressionPoseSpec) -> torch.Tensor:
    """The mean of a body and the mirror image of a body regressed from the mirrored input (flip test).

    ``mirrored`` is flipped back (:func:`flip_pose_vector`); each joint's rotation is the chordal mean of the two
    (``special_procrustes`` of their sum, the rotation nearest to the arithmetic mean), the shapes are averaged.

    Args:
        vector: (..., spec.vector_size) pose vectors regressed from the inputs.
        mirrored: (..., spec.vector_size) pose vectors regressed from the mirrored inputs, same shape.
        spec: the body model's :class:`RegressionPoseSpec`.

    Returns:
        (..., spec.vector_size), same dtype and device; its 6D blocks are orthonormal.
    """
    if vector.shape != mirrored.shape:
        raise ValueError(f"vector and mirrored must have the same shape, got {tuple(vector.shape)} and "
                         f"{tuple(mirrored.shape)}")
    rotations, shape = spec.split(vector)
    back_rotations, back_shape = spec.split(flip_pose_vector(mirrored, spec))
    mean_rotations = roma.special_procrustes(rotations + back_rotations)
    return spec.join(mean_rotations, 0.5 * (shape + back_shape))
