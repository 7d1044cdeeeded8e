"""Anny (NAVER, Apache-2.0) behind the :class:`~lowres_hps.body.base.BodyModel` interface.

Anny 0.6 default full-body model: 13,718 vertices, 27,420 triangles, a 104-bone rig and 6 phenotype
parameters in [0, 1]. Its mesh data is built once into ``$ANNY_CACHE_DIR`` (~790 MB, ~70 s) and loaded
from there afterwards; nothing is downloaded.

Pose parameterisation: Anny's ``local-ref``. Each bone's delta transform is its rotation relative to
its parent, about its head, in world-aligned axes of Anny's reference pose (the same kind of local
rotation as SMPL's); the root's delta is its world pose, so identity deltas give the reference pose
with the root bone's head at the origin. The reference pose is Anny's A-pose; its bone orientations
are the same for every phenotype (they differ from each phenotype's rest-mesh bone frames by up to
~6 degrees, i.e. ~1 cm at the extremities).

Keypoints: native joints are the 104 bone heads (``anny104``); COCO-17 + 6 foot points (``coco23``)
come from Anny's own vertex regressor (``anny.KeypointsRegressor.coco``), asked for by name.
"""
from __future__ import annotations

import torch

from lowres_hps.body.base import BodyModel, BodyOutput, BodyParams
from lowres_hps.body.keypoints import ANNY104, COCO23
from lowres_hps.body.pose import ANNY_POSE_SPEC

__all__ = ["AnnyBody"]


class AnnyBody(BodyModel):
    """The Anny body model, float32 by default, outputs in the canonical body frame.

    Args:
        dtype: floating dtype of the model data and outputs.
        device: where to put the model data.
        skinning_method: Anny's skinning: ``"lbs"`` (default: dense linear blend skinning in plain
            torch, works on any device, in float64 and under autograd), ``"warp_lbs"`` or ``"dqs"``.
    """

    name = "anny"
    pose_spec = ANNY_POSE_SPEC
    native_convention = ANNY104
    keypoint_set_names = (ANNY104.name, COCO23.name)

    def __init__(self, dtype: torch.dtype = torch.float32, device=None, skinning_method: str = "lbs") -> None:
        super().__init__()
        import anny

        model = anny.Anny(pose_parameterization="local-ref", skinning_method=skinning_method)
        labels = tuple("head_anny" if n == "head" else n for n in model.bone_labels)
        if labels != ANNY104.names or list(model.phenotype_labels) != list(self.pose_spec.shape_names):
            raise RuntimeError(
                f"anny {anny.__version__} has a rig or phenotypes this code does not know; "
                "lowres_hps.body.keypoints.ANNY104 and pose.ANNY_POSE_SPEC must be updated"
            )
        # Anny's data is float64; its faces are a plain attribute, so keep our own buffer of them.
        self.anny = model.to(dtype)
        self.regressor = anny.KeypointsRegressor.coco(self.anny, labels=list(COCO23.names))
        self.register_buffer("faces", model.faces.to(torch.long), persistent=False)
        self._register_frame()
        self.to(device=device, dtype=dtype)

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def skinning_weights(self) -> torch.Tensor:
        weights = self.anny.vertex_bone_weights
        dense = weights.new_zeros(self.num_vertices, self.num_joints)
        return dense.scatter_add_(1, self.anny.vertex_bone_indices, weights)

    def forward(self, params: BodyParams) -> BodyOutput:
        """Posed Anny bodies.

        Args:
            params: pose (B, 104, 4, 4) ``local-ref`` deltas in Anny's axes (see
                :meth:`pose_vector_to_native`), shape (B, 6) or (1, 6) phenotypes, optional translation.
        """
        batch = self._check_params(params, (self.num_joints, 4, 4))
        shape = params.shape.expand(batch, -1)
        out = self.anny(params.pose, phenotype_kwargs=shape, pose_parameterization="local-ref")
        # p_native = M p_canonical, so for row vectors p_canonical = p_native @ M.
        vertices = out["vertices"] @ self.canonical_to_native
        joints = out["bone_poses"][..., :3, 3] @ self.canonical_to_native
        if params.translation is not None:
            offset = params.translation[:, None, :].to(vertices.dtype)
            vertices, joints = vertices + offset, joints + offset
        # The regressor is linear with weights summing to 1, so it commutes with the rigid transform.
        coco = self.regressor({"vertices": vertices})
        return BodyOutput(
            vertices=vertices,
            faces=self.faces,
            joints=joints,
            joint_convention=ANNY104.name,
            keypoint_sets={ANNY104.name: joints, COCO23.name: coco},
        )
