"""SMPL and SMPL-X (through ``smplx``) behind the :class:`~lowres_hps.body.base.BodyModel` interface.

The model files are licensed by the Max Planck Institute and are never shipped or downloaded here:
register at https://smpl.is.tue.mpg.de (SMPL) or https://smpl-x.is.tue.mpg.de (SMPL-X), download
them, and pass their folder or file as ``model_path`` (``--model-path``) or in ``$SMPL_MODEL_DIR``.
A folder may hold the files directly or in ``smpl/`` / ``smplx/`` subfolders (``smplx.create``'s layout).

SMPL's axes are the canonical body axes (Y up, facing +Z); outputs are shifted so that the pelvis joint
sits at ``translation`` (the origin by default).

Keypoints: native joints are SMPL's 24 (``smpl24``) or SMPL-X's 55 (``smplx55``) kinematic joints.
``coco23`` takes the face and foot points from the mesh vertices smplx selects (``smplx.vertex_ids``:
for SMPL the ids used by SPIN/VIBE, e.g. nose 332) and the body points from the kinematic joints.
Approximation: COCO shoulders, elbows, wrists, hips, knees and ankles are the joint centres, while COCO
annotators mark these on the body's outline; the hips differ most (SMPL hip joints sit inside the
pelvis, a few cm from where COCO hips are clicked).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import sys
from pathlib import Path

import torch

from lowres_hps.body.base import BodyModel, BodyOutput, BodyParams
from lowres_hps.body.keypoints import COCO23, SMPL24, SMPLX55, KeypointConvention
from lowres_hps.body.pose import SMPL_POSE_SPEC, SMPLX_POSE_SPEC, _smpl_pose_spec

__all__ = ["SMPLBody", "find_smpl_model_file", "MODEL_DIR_ENV", "REGISTRATION_URLS"]

MODEL_DIR_ENV = "SMPL_MODEL_DIR"
REGISTRATION_URLS = {"smpl": "https://smpl.is.tue.mpg.de", "smplx": "https://smpl-x.is.tue.mpg.de"}

# The points smplx's VertexJointSelector appends after the kinematic joints, in its order.
_VERTEX_KEYPOINT_NAMES = (
    "nose", "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
# COCO names taken from differently named SMPL joints (see the module docstring).
_COCO_FROM_SMPL = {"left_hip": "left_hip_joint", "right_hip": "right_hip_joint"}


def _candidate_files(model: str, gender: str) -> list[str]:
    g = gender.upper()
    if model == "smpl":
        short = {"NEUTRAL": "neutral", "FEMALE": "f", "MALE": "m"}[g]
        names = [f"SMPL_{g}.pkl", f"basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl", f"basicModel_{short}_lbs_10_207_0_v1.0.0.pkl"]
    else:
        names = [f"SMPLX_{g}.npz", f"SMPLX_{g}.pkl"]
    return names + [f"{model}/{n}" for n in names]


def find_smpl_model_file(model: str = "smpl", model_path: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """The SMPL / SMPL-X model file from ``model_path`` (a file or folder) or ``$SMPL_MODEL_DIR``.

    Raises:
        FileNotFoundError: no model file there; the message says where to register and what to set.
    """
    if model not in REGISTRATION_URLS:
        raise ValueError(f"unknown SMPL-family model {model!r}; expected one of {sorted(REGISTRATION_URLS)}")
    if gender.lower() not in ("neutral", "female", "male"):
        raise ValueError(f"gender must be 'neutral', 'female' or 'male', got {gender!r}")
    source = model_path if model_path is not None else os.environ.get(MODEL_DIR_ENV)
    looked = []
    if source is not None:
        path = Path(source).expanduser()
        if path.is_file():
            return path
        candidates = [path / name for name in _candidate_files(model, gender.lower())]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked = [str(c) for c in candidates] if path.is_dir() else [str(path)]
    where = f"looked for {', '.join(looked)}" if looked else f"no --model-path given and ${MODEL_DIR_ENV} is not set"
    label = "SMPL" if model == "smpl" else "SMPL-X"
    raise FileNotFoundError(
        f"{label} model file not found ({where}). {label} is licensed separately and not shipped with "
        f"lowres-hps: register at {REGISTRATION_URLS[model]}, download the model, then pass --model-path "
        f"(model_path=...) or set {MODEL_DIR_ENV} to the file or to the folder that holds "
        f"{_candidate_files(model, gender.lower())[0]}."
    )


class SMPLBody(BodyModel):
    """SMPL (24 joints) or SMPL-X (55 joints; hands flat, jaw and eyes at rest, neutral expression).

    Args:
        model: ``"smpl"`` or ``"smplx"``.
        model_path: model file or folder; default ``$SMPL_MODEL_DIR``.
        gender: ``"neutral"``, ``"female"`` or ``"male"``.
        num_betas: number of shape coefficients.
        dtype, device: of the model data and outputs.
        vertex_ids: SMPL only: smplx's vertex-keypoint ids (default ``smplx.vertex_ids.vertex_ids["smplh"]``).
    """

    keypoint_set_names: tuple[str, ...]

    def __init__(
        self,
        model: str = "smpl",
        model_path: str | os.PathLike | None = None,
        gender: str = "neutral",
        num_betas: int = 10,
        dtype: torch.dtype = torch.float32,
        device=None,
        vertex_ids: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        import smplx

        path = find_smpl_model_file(model, model_path, gender)
        common = dict(model_path=str(path), gender=gender, num_betas=num_betas, dtype=dtype,
                      use_hands=True, use_feet_keypoints=True)
        try:
            # smplx prints its warnings on stdout; send them to stderr so that stdout stays machine-readable.
            with contextlib.redirect_stdout(sys.stderr):
                if model == "smpl":
                    self.layer = smplx.SMPLLayer(vertex_ids=vertex_ids, **common)
                else:
                    self.layer = smplx.SMPLXLayer(ext=path.suffix.lstrip("."), use_pca=False, flat_hand_mean=True, **common)
        except (ModuleNotFoundError, pickle.UnpicklingError) as exc:
            raise ValueError(
                f"cannot read {path}: {exc}. Original SMPL pickles hold chumpy objects; convert them to plain "
                "numpy with smplx's tools/clean_ch.py (https://github.com/vchoutas/smplx/tree/main/tools)"
            ) from exc
        self.name = model
        spec = SMPL_POSE_SPEC if model == "smpl" else SMPLX_POSE_SPEC
        if self.layer.num_betas != spec.shape_size:
            spec = _smpl_pose_spec(model, spec.num_joints, self.layer.num_betas)
        self.pose_spec = spec
        self.native_convention: KeypointConvention = SMPL24 if model == "smpl" else SMPLX55
        self.keypoint_set_names = (self.native_convention.name, COCO23.name)

        # COCO-23 gathered from [kinematic joints | smplx's vertex keypoints].
        names = self.native_convention.names + _VERTEX_KEYPOINT_NAMES
        coco_index = [names.index(_COCO_FROM_SMPL.get(n, n)) for n in COCO23.names]
        self.register_buffer("coco_index", torch.tensor(coco_index), persistent=False)
        self.register_buffer("faces", self.layer.faces_tensor.clone(), persistent=False)
        self._register_frame()
        self.to(device=device, dtype=dtype)

    @property
    def num_vertices(self) -> int:
        return int(self.layer.v_template.shape[0])

    def skinning_weights(self) -> torch.Tensor:
        return self.layer.lbs_weights

    def forward(self, params: BodyParams, keypoints_only: bool = False) -> BodyOutput:
        """Posed bodies.

        Args:
            params: pose (B, J, 3, 3) rotation matrices, global orientation first (J = 24 for SMPL,
                22 for SMPL-X), shape (B, num_betas) or (1, num_betas), optional translation.
            keypoints_only: return ``vertices=None``. No faster: smplx always skins the whole mesh
                (its joints come from the shaped mesh and its pose blendshapes touch every vertex).
        """
        batch = self._check_params(params, (self.pose_spec.num_native_joints, 3, 3))
        pose = params.pose
        out = self.layer(betas=params.shape.expand(batch, -1), global_orient=pose[:, :1], body_pose=pose[:, 1:])
        num_native = self.num_joints
        # [native joints | vertex keypoints], shifted so the pelvis is at the origin (or the translation).
        points = out.joints[:, : num_native + len(_VERTEX_KEYPOINT_NAMES)]
        origin = points[:, :1]
        if params.translation is not None:
            origin = origin - params.translation[:, None, :].to(points.dtype)
        points = points - origin
        joints = points[:, :num_native]
        return BodyOutput(
            vertices=None if keypoints_only else out.vertices - origin,
            faces=self.faces,
            joints=joints,
            joint_convention=self.native_convention.name,
            keypoint_sets={self.native_convention.name: joints, COCO23.name: points.index_select(1, self.coco_index)},
        )
