"""Keypoints of a linear-blend-skinned mesh with linear blendshapes, without skinning the mesh.

Training losses need only a body's keypoints, but a keypoint regressed from vertices (Anny's COCO
regressor) normally costs the whole mesh: every vertex's blendshapes and skinning. Both are linear, so
the regression folds into them. For keypoint ``k`` with regression weights ``r_kv``, skinning weights
``w_vj`` and bone transforms ``[R_j | t_j]``::

    k = sum_v r_kv sum_j w_vj (R_j x_v + t_j),          x_v = x0_v + sum_c beta_c S_cv
      = sum_j R_j p_kj + a_kj t_j,    with  a_kj = sum_v r_kv w_vj,
                                            p_kj = sum_v r_kv w_vj x0_v + sum_c beta_c sum_v r_kv w_vj S_cv.

``a_kj`` and the two sums over ``v`` are fixed, so they are computed once (in float64) for the few
(keypoint, bone) pairs that share a vertex: per body this leaves a (B, C) @ (C, 3P) product for the
shape and P small rigid transforms, instead of V x C blendshape terms and V x J skinning terms. (Skinning
only the regressor's vertices would save little for Anny: its COCO ears average whole head regions, so
the regressor reads 8,795 of the 13,718 vertices; folded, they are 241 (keypoint, bone) pairs.)

Hand-written: no maintained library skins a vertex subset of Anny (or folds a vertex regressor into
skinning); Anny, smplx and their kin always skin every vertex.
"""
from __future__ import annotations

import torch

__all__ = ["RegressedKeypointSkinning"]


class RegressedKeypointSkinning(torch.nn.Module):
    """Vertex-regressed keypoints straight from bone transforms and blendshape coefficients.

    Exact up to floating-point rounding: the same sums as skinning every vertex and regressing, in
    another order. Its data sits in non-persistent buffers (kept out of ``state_dict``).

    Args:
        regression_weights: (K, V) keypoint regressor over the rest-mesh vertices.
        skinning_weights: (V, J) dense linear-blend-skinning weights.
        template_vertices: (V, 3) rest vertices at zero blendshape coefficients.
        blendshapes: (C, V, 3) vertex offsets per blendshape coefficient.
    """

    def __init__(
        self,
        regression_weights: torch.Tensor,
        skinning_weights: torch.Tensor,
        template_vertices: torch.Tensor,
        blendshapes: torch.Tensor,
    ) -> None:
        super().__init__()
        # Float64 so that the folded sums (thousands of terms) are rounded once, at the output dtype.
        regression = regression_weights.detach().to(torch.float64)
        skinning = skinning_weights.detach().to(torch.float64)
        num_keypoints, num_vertices = regression.shape
        num_coefficients = blendshapes.shape[0]
        # The (keypoint, bone) pairs that share a vertex; the others contribute exactly nothing.
        shares_vertex = ((regression != 0).to(torch.float64) @ (skinning != 0).to(torch.float64)) > 0
        pair_keypoint, pair_bone = shares_vertex.nonzero(as_tuple=True)
        # (P, V) weight of each vertex in each pair, sparse: a keypoint's vertices bind to a few bones.
        pair_vertex_weights = (regression[pair_keypoint] * skinning.T[pair_bone]).to_sparse()
        # (V, 3 + 3C): each vertex's rest position and blendshape offsets, reduced in one sparse product.
        offsets = blendshapes.detach().to(torch.float64).permute(1, 0, 2).reshape(num_vertices, -1)
        vertex_data = torch.cat([template_vertices.detach().to(torch.float64), offsets], dim=1)
        folded = torch.sparse.mm(pair_vertex_weights, vertex_data)  # (P, 3 + 3C)
        num_pairs = len(pair_keypoint)
        self.num_keypoints = num_keypoints
        self.register_buffer("pair_keypoint", pair_keypoint, persistent=False)
        self.register_buffer("pair_bone", pair_bone, persistent=False)
        pair_weight = torch.sparse.sum(pair_vertex_weights, dim=1).to_dense()
        self.register_buffer("pair_weight", pair_weight, persistent=False)
        self.register_buffer("pair_point", folded[:, :3].contiguous(), persistent=False)
        # (C, 3P): the pair points' blendshapes, laid out for one (B, C) @ (C, 3P) product.
        pair_point_blendshapes = folded[:, 3:].reshape(num_pairs, num_coefficients, 3).permute(1, 0, 2)
        pair_point_blendshapes = pair_point_blendshapes.reshape(num_coefficients, -1).contiguous()
        self.register_buffer("pair_point_blendshapes", pair_point_blendshapes, persistent=False)
        # (K,) the regressor's row sums (1 up to ~1e-7): how far a translation of every vertex moves each keypoint.
        self.register_buffer("regression_sums", regression.sum(dim=1), persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.pair_keypoint.shape[0])

    def forward(self, bone_transforms: torch.Tensor, blendshape_coeffs: torch.Tensor) -> torch.Tensor:
        """Regressed keypoints of the skinned mesh.

        Args:
            bone_transforms: (B, J, 4, 4) skinning transforms (rest pose -> posed), as for LBS.
            blendshape_coeffs: (B, C) or (1, C) blendshape coefficients of the rest mesh.

        Returns:
            (B, K, 3) keypoints, in the frame of the transforms' outputs.
        """
        batch = bone_transforms.shape[0]
        points = self.pair_point + (blendshape_coeffs @ self.pair_point_blendshapes).view(-1, self.num_pairs, 3)
        transforms = bone_transforms[:, self.pair_bone, :3, :]  # (B, P, 3, 4)
        skinned = (transforms[..., :3] * points[..., None, :]).sum(-1) + transforms[..., 3] * self.pair_weight[:, None]
        return skinned.new_zeros(batch, self.num_keypoints, 3).index_add(1, self.pair_keypoint, skinned)

    def extra_repr(self) -> str:
        return f"keypoints={self.num_keypoints}, pairs={self.num_pairs}"
