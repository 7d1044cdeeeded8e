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

``forward(params, keypoints_only=True)`` gives the same joints and keypoints without the mesh: the rest
bone poses come from Anny's bone-head and orientation blendshapes (its ``cached`` rig orientation needs
no rest mesh), and the COCO regressor is folded into the skinning
(:class:`~lowres_hps.body.keypoint_skinning.RegressedKeypointSkinning`).
"""
from __future__ import annotations

import roma
import torch

from lowres_hps.body.base import BodyModel, BodyOutput, BodyParams
from lowres_hps.body.keypoint_skinning import RegressedKeypointSkinning
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
        # Dual quaternion skinning is not linear in the bone transforms: its keypoints need the mesh.
        self._keypoints_need_mesh = skinning_method == "dqs"
        self.keypoint_skinning = RegressedKeypointSkinning(
            self.regressor.regression_weights, self.skinning_weights(),
            self.anny.template_vertices, self.anny.blendshapes,
        )
        self.register_buffer("faces", model.faces.to(torch.long), persistent=False)
        # The last shape's blendshape coefficients and rest bone poses (see _shape_terms).
        self._shape_cache: tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor] | None = None
        self._register_frame()
        self.to(device=device, dtype=dtype)

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def skinning_weights(self) -> torch.Tensor:
        weights = self.anny.vertex_bone_weights
        dense = weights.new_zeros(self.num_vertices, self.num_joints)
        return dense.scatter_add_(1, self.anny.vertex_bone_indices, weights)

    def forward(self, params: BodyParams, keypoints_only: bool = False) -> BodyOutput:
        """Posed Anny bodies.

        Args:
            params: pose (B, 104, 4, 4) ``local-ref`` deltas in Anny's axes (see
                :meth:`pose_vector_to_native`), shape (B, 6) or (1, 6) phenotypes, optional translation.
            keypoints_only: skip the mesh (``vertices`` is None); joints and keypoints are the same up
                to rounding (``skinning_method="dqs"`` still skins the mesh, then drops it).
        """
        batch = self._check_params(params, (self.num_joints, 4, 4))
        shape = params.shape.expand(batch, -1)
        if keypoints_only and not self._keypoints_need_mesh:
            return self._forward_keypoints(params.pose, shape, params.translation)
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
            vertices=None if keypoints_only else vertices,
            faces=self.faces,
            joints=joints,
            joint_convention=ANNY104.name,
            keypoint_sets={ANNY104.name: joints, COCO23.name: coco},
        )

    def _forward_keypoints(
        self, pose: torch.Tensor, shape: torch.Tensor, translation: torch.Tensor | None
    ) -> BodyOutput:
        """:meth:`forward` without the mesh: pose (B, 104, 4, 4), shape (B, 6), translation (B, 3) or None."""
        anny = self.anny
        # Anny's own steps, so that the coefficients and bone poses are those of its full forward.
        pose, phenotypes, local_changes, facial_actions = anny.get_tensor_inputs(pose, shape, None, None)
        coeffs, rest = self._shape_terms(phenotypes, local_changes, facial_actions)
        transforms, bone_poses = anny.get_bone_transforms(pose, rest, "local-ref")
        joints = bone_poses[..., :3, 3] @ self.canonical_to_native
        coco = self.keypoint_skinning(transforms, coeffs) @ self.canonical_to_native
        if translation is not None:
            offset = translation[:, None, :].to(joints.dtype)
            # The full forward translates the vertices before regressing: each keypoint moves by its row sum.
            joints, coco = joints + offset, coco + self.keypoint_skinning.regression_sums[:, None] * offset
        return BodyOutput(
            vertices=None,
            faces=self.faces,
            joints=joints,
            joint_convention=ANNY104.name,
            keypoint_sets={ANNY104.name: joints, COCO23.name: coco},
        )

    def _shape_terms(self, phenotypes: torch.Tensor, local_changes: torch.Tensor,
                     facial_actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(blendshape coefficients (B, C), rest bone poses (B, 104, 4, 4)) of a batch's shape inputs.

        A 2D keypoint fit runs the body 60 times on the same shapes with new poses; the shape's part of the forward
        (about a quarter of its time) is then the same every step. The last inputs' results are kept and reused
        while the inputs are equal and need no gradient; never in inference mode, whose tensors autograd cannot save.
        """
        inputs = (phenotypes, local_changes, facial_actions)
        reusable = not torch.is_inference_mode_enabled() and not any(t.requires_grad for t in inputs)
        cache = self._shape_cache
        if reusable and cache is not None and all(
                a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
                for a, b in zip(cache[0], inputs)):
            return cache[1], cache[2]
        coeffs = self.anny._get_phenotype_blendshape_coefficients(*inputs)
        rest = self._rest_bone_poses(coeffs)
        if reusable and not coeffs.requires_grad:
            self._shape_cache = (tuple(t.detach().clone() for t in inputs), coeffs, rest)
        return coeffs, rest

    def _rest_bone_poses(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(B, C) blendshape coefficients -> (B, 104, 4, 4) Anny's rest bone poses, without its rest mesh.

        Anny's default rig (``cached`` orientation) takes the bone heads and the cross-covariances whose
        nearest rotations orient the bones from blendshapes of their own, not from the rest vertices.
        Other rigs go through Anny's rest model, mesh included.
        """
        anny = self.anny
        if anny.bone_orientation != "cached" or anny.rest_orientation_refiner is not None:
            return anny.get_rest_model(coeffs)["rest_bone_poses"]
        from anny.skinning.skinning import apply_linear_blendshape

        heads = apply_linear_blendshape(anny.template_bone_heads, anny.bone_heads_blendshapes, coeffs)
        cross_covariances = anny.bone_template_orientation_matrices[None] + torch.einsum(
            "bc,cjxy->bjxy", coeffs, anny.bone_orientation_blendshapes
        )
        rotations = roma.special_procrustes(cross_covariances)
        if anny.root_identity_orientation:
            identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
            rotations = torch.cat([identity.expand(len(rotations), 1, 3, 3), rotations[:, 1:]], dim=1)
        return roma.Rigid(rotations, heads).to_homogeneous()
