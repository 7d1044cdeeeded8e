"""The body-model interface: native parameters in, one output type out, in one canonical body frame.

Canonical body frame (every body model outputs in it):
    metres, right-handed, **+Y up, the body faces +Z, its left side is +X** (SMPL's frame). With a zero
    translation the model's **root joint is at the origin** (Anny: the root bone's head, between the
    hip joints; SMPL/SMPL-X: the pelvis joint); ``translation`` is the root joint's position.
    Anny's own coordinates (Z-up, facing -Y) are rotated into this frame.

Camera: geometry code uses OpenCV camera coordinates (x right, y down, z forward). The root rotation of
the pose vector brings the body into camera axes: a person standing upright and facing the camera has
root rotation ``diag(1, -1, -1)`` (180 degrees about x, ``lowres_hps.geometry.body_to_opencv_rotation``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lowres_hps.body.keypoints import KeypointConvention, get_convention, get_mapping
from lowres_hps.body.pose import RegressionPoseSpec, native_to_pose_vector, pose_vector_to_native

__all__ = ["BodyParams", "BodyOutput", "BodyModel", "merged_keypoint_mapping"]


@dataclass
class BodyParams:
    """Native parameters of a body model.

    Attributes:
        pose: Anny (B, 104, 4, 4) local delta transforms (Anny's ``local-ref`` parameterisation, in
            Anny's own axes); SMPL (B, 24, 3, 3) and SMPL-X (B, 22, 3, 3) rotation matrices
            (global orientation first, then the body joints; SMPL axes are the canonical axes).
        shape: (B, S) or (1, S) Anny phenotypes / SMPL betas.
        translation: optional (B, 3) position of the root joint in the canonical frame.
    """

    pose: torch.Tensor
    shape: torch.Tensor
    translation: torch.Tensor | None = None


def merged_keypoint_mapping(
    sources: list[KeypointConvention], target: str | KeypointConvention
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each target joint, the first source convention that has it (by name).

    Returns:
        ``(source, index, valid)``, each (K_target,): the source position in ``sources`` (0 where
        missing), the joint index in that source, and whether any source has the joint.
    """
    target = get_convention(target)
    source = np.zeros(len(target), dtype=np.int64)
    index = np.zeros(len(target), dtype=np.int64)
    valid = np.zeros(len(target), dtype=bool)
    for s, convention in enumerate(sources):
        mapping = get_mapping(convention, target)
        new = mapping.valid & ~valid
        source[new], index[new] = s, mapping.source_index[new]
        valid |= new
    return source, index, valid


@dataclass
class BodyOutput:
    """The output of every body model, in the canonical body frame.

    Attributes:
        vertices: (B, V, 3) posed mesh vertices, metres; None from a ``keypoints_only`` forward.
        faces: (F, 3) long triangle indices (shared with the model, not per sample).
        joints: (B, J, 3) the model's native kinematic joints (Anny: the 104 bone heads;
            SMPL: 24 joints; SMPL-X: 55 joints), in ``joint_convention``.
        joint_convention: name of the native joint convention (``"anny104"``, ``"smpl24"``, ``"smplx55"``).
        keypoint_sets: every keypoint set the model produces, by convention name, each (B, K, 3):
            the native joints and ``"coco23"`` (COCO-17 + 6 foot points).
    """

    vertices: torch.Tensor | None
    faces: torch.Tensor
    joints: torch.Tensor
    joint_convention: str
    keypoint_sets: dict[str, torch.Tensor] = field(default_factory=dict)

    def keypoints(self, convention: str | KeypointConvention) -> tuple[torch.Tensor, torch.Tensor]:
        """3D keypoints in a named convention, gathered by joint name from :attr:`keypoint_sets`.

        Returns:
            ``(keypoints (B, K, 3), mask (K,))``: mask is 1 for joints the model provides and 0 for the
            others, whose keypoints are zero (never silently replaced by another joint).
        """
        names = list(self.keypoint_sets)
        source, index, valid = merged_keypoint_mapping([get_convention(n) for n in names], convention)
        stacked = torch.cat([self.keypoint_sets[n] for n in names], dim=-2)
        offsets = np.cumsum([0] + [self.keypoint_sets[n].shape[-2] for n in names])[:-1]
        flat_index = torch.as_tensor(offsets[source] + index, device=stacked.device)
        mask = torch.as_tensor(valid, dtype=stacked.dtype, device=stacked.device)
        return stacked.index_select(-2, flat_index) * mask[:, None], mask


class BodyModel(torch.nn.Module):
    """Base of the body models: model data in (non-persistent) buffers, ``forward(params) -> BodyOutput``.

    ``forward(params, keypoints_only=True)`` returns the same joints and keypoint sets with ``vertices``
    None, skipping the mesh where the model can do so exactly (Anny); losses that need only keypoints use it.

    Subclasses set :attr:`name`, :attr:`pose_spec`, :attr:`native_convention`, register a ``faces``
    buffer and implement :meth:`forward`. Non-persistent buffers keep the model data out of the
    ``state_dict`` of networks that hold a body model.
    """

    name: str = ""
    pose_spec: RegressionPoseSpec
    native_convention: KeypointConvention
    #: Conventions of the keypoint sets in every output, the native one first.
    keypoint_set_names: tuple[str, ...] = ()
    faces: torch.Tensor

    def forward(self, params: BodyParams, keypoints_only: bool = False) -> BodyOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    def skinning_weights(self) -> torch.Tensor:  # pragma: no cover - abstract
        """(V, J) dense linear-blend-skinning weights over the native joints (rows sum to 1)."""
        raise NotImplementedError

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.native_convention)

    @property
    def dtype(self) -> torch.dtype:
        return self.canonical_to_native.dtype

    @property
    def device(self) -> torch.device:
        return self.canonical_to_native.device

    def _register_frame(self) -> None:
        """Register the canonical -> native rotation as a buffer (it also carries dtype and device)."""
        self.register_buffer("canonical_to_native", self.pose_spec.canonical_to_native_matrix(), persistent=False)

    def keypoint_coverage(self, convention: str | KeypointConvention) -> np.ndarray:
        """(K,) bool: which joints of ``convention`` this model's outputs provide."""
        sources = [get_convention(n) for n in self.keypoint_set_names]
        return merged_keypoint_mapping(sources, convention)[2]

    def rest_params(self, batch_size: int = 1) -> BodyParams:
        """Native parameters of the rest pose and rest shape, no translation."""
        return self.pose_vector_to_native(self.pose_spec.rest_vector(batch_size, self.dtype, self.device))

    def pose_vector_to_native(self, vector: torch.Tensor, translation: torch.Tensor | None = None) -> BodyParams:
        """(B, D) regression vector (and optional (B, 3) translation) -> native :class:`BodyParams`."""
        if vector.ndim != 2:
            raise ValueError(f"expected a (B, {self.pose_spec.vector_size}) pose vector, got {tuple(vector.shape)}")
        pose, shape = pose_vector_to_native(vector, self.pose_spec)
        return BodyParams(pose=pose, shape=shape, translation=translation)

    def native_to_pose_vector(self, params: BodyParams) -> torch.Tensor:
        """Native :class:`BodyParams` -> (B, D) regression vector (translation is not part of it)."""
        shape = params.shape.expand(params.pose.shape[0], -1)
        return native_to_pose_vector(params.pose, shape, self.pose_spec)

    def forward_vector(
        self, vector: torch.Tensor, translation: torch.Tensor | None = None, keypoints_only: bool = False
    ) -> BodyOutput:
        """Posed body of a (B, D) regression vector (optional (B, 3) translation); ``keypoints_only``:
        ``vertices`` None, the same joints and keypoints (faster where the model skips the mesh: Anny)."""
        return self(self.pose_vector_to_native(vector, translation), keypoints_only=keypoints_only)

    def _check_params(self, params: BodyParams, pose_tail: tuple[int, ...]) -> int:
        pose, shape = params.pose, params.shape
        if pose.ndim != 4 or tuple(pose.shape[1:]) != pose_tail:
            raise ValueError(f"{self.name} pose must be (B, {', '.join(map(str, pose_tail))}), got {tuple(pose.shape)}")
        batch = pose.shape[0]
        size = self.pose_spec.shape_size
        if shape.ndim != 2 or shape.shape[1] != size or shape.shape[0] not in (1, batch):
            raise ValueError(f"{self.name} shape must be ({batch}, {size}) or (1, {size}), got {tuple(shape.shape)}")
        if params.translation is not None and tuple(params.translation.shape) != (batch, 3):
            raise ValueError(f"translation must be ({batch}, 3), got {tuple(params.translation.shape)}")
        return batch

    def extra_repr(self) -> str:
        return (
            f"name={self.name}, vertices={self.num_vertices}, faces={self.num_faces}, joints={self.num_joints}, "
            f"pose_vector={self.pose_spec.vector_size}"
        )
