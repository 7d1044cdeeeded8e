"""Body models behind one interface (Anny by default; SMPL / SMPL-X with user-licensed files).

Every model outputs a :class:`BodyOutput` in the canonical body frame (metres, +Y up, facing +Z,
root joint at the translation; see :mod:`lowres_hps.body.base`) and has a fixed-size regression pose
vector (:class:`RegressionPoseSpec`, :mod:`lowres_hps.body.pose`), which
:func:`flip_pose_vector` mirrors and :func:`turn_round_pose_vector` turns round (:mod:`lowres_hps.body.flip`).
"""
from __future__ import annotations

import os

import torch

from lowres_hps.body.base import BodyModel, BodyOutput, BodyParams
from lowres_hps.body.flip import (
    flip_joint_permutation,
    flip_pose_vector,
    merge_mirrored_pose_vectors,
    turn_round_pose_vector,
)
from lowres_hps.body.pose import (
    ANNY_POSE_SPEC,
    SMPL_POSE_SPEC,
    SMPLX_POSE_SPEC,
    RegressionPoseSpec,
    native_to_pose_vector,
    pose_vector_to_native,
    sample_random_pose,
)

__all__ = [
    "BodyModel",
    "BodyOutput",
    "BodyParams",
    "RegressionPoseSpec",
    "ANNY_POSE_SPEC",
    "SMPL_POSE_SPEC",
    "SMPLX_POSE_SPEC",
    "BODY_MODELS",
    "flip_joint_permutation",
    "flip_pose_vector",
    "merge_mirrored_pose_vectors",
    "turn_round_pose_vector",
    "load_body_model",
    "native_to_pose_vector",
    "pose_vector_to_native",
    "sample_random_pose",
]

BODY_MODELS = ("anny", "smpl", "smplx")


def load_body_model(
    name: str = "anny",
    model_path: str | os.PathLike | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    **kwargs,
) -> BodyModel:
    """Build a body model.

    Args:
        name: ``"anny"`` (default), ``"smpl"`` or ``"smplx"``.
        model_path: SMPL / SMPL-X file or folder (default ``$SMPL_MODEL_DIR``); Anny takes none (its
            data ships with the ``anny`` package and is cached in ``$ANNY_CACHE_DIR``).
        device, dtype: of the model data and outputs.
        **kwargs: model options: Anny ``skinning_method``; SMPL ``gender``, ``num_betas``, ``vertex_ids``.

    Raises:
        FileNotFoundError: SMPL / SMPL-X files missing (the message says where to get them).
    """
    key = name.lower().replace("-", "")
    if key == "anny":
        if model_path is not None:
            raise ValueError("the anny body model takes no model_path; its cache folder is $ANNY_CACHE_DIR")
        from lowres_hps.body.anny_model import AnnyBody

        return AnnyBody(dtype=dtype, device=device, **kwargs)
    if key in ("smpl", "smplx"):
        from lowres_hps.body.smpl_model import SMPLBody

        return SMPLBody(model=key, model_path=model_path, dtype=dtype, device=device, **kwargs)
    raise ValueError(f"unknown body model {name!r}; expected one of {BODY_MODELS}")
