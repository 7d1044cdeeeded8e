"""SPIN-style ``.npz`` reader (Human3.6M, MPI-INF-3DHP, 3DPW, ... as preprocessed by SPIN / mmpose).

Keys: ``imgname`` (N,), ``center`` (N, 2), ``scale`` (N,) with box side ``scale * 200`` px, and
optionally ``part`` (N, K, 3) 2D keypoints with a 0/1 flag, ``S`` (N, K3, 4) 3D keypoints in metres
with a confidence, ``pose`` (N, 72) and ``shape`` (N, 10) SMPL parameters, ``has_smpl`` (N,).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lowres_hps.body.keypoints import SPIN24, get_convention
from lowres_hps.data.errors import DatasetFileError, load_npz
from lowres_hps.data.reader import PersonReader
from lowres_hps.data.sample import PersonSample

__all__ = ["SPIN24", "SpinNpzReader", "resolve_image_path"]


_FIELDS = ("imgname", "center", "scale", "part", "S", "pose", "shape", "has_smpl")
_H36M_FRAME = re.compile(r"^(S\d+)_(.+)_\d+\.\w+$")


def resolve_image_path(image_root: Path, imgname: str) -> Path:
    """The image file for ``imgname``, trying the known layouts in order.

    1. ``image_root / imgname`` (SPIN: imgname is relative to the dataset folder);
    2. ``image_root / <file name>`` (a flat folder);
    3. Human3.6M frame folders ``image_root / S1 / S1_Directions_1.54138969 / S1_Directions_1.54138969_000001.jpg``
       for a flat name ``S1_Directions_1.54138969_000001.jpg`` (mmpose's image layout).

    Returns the first that exists, else ``image_root / imgname``.
    """
    name = Path(imgname).name
    candidates = [image_root / imgname, image_root / name]
    match = _H36M_FRAME.match(name)
    if match:
        candidates.append(image_root / match.group(1) / Path(name).stem.rsplit("_", 1)[0] / name)
    return next((c for c in candidates if c.is_file()), candidates[0])


def _default_convention(num_joints: int, path: Path) -> str:
    if num_joints == 24:
        return "spin24"
    if num_joints == 14:
        return "lsp14"
    if num_joints == 17:
        # Human3.6M and MPI-INF-3DHP both have 17 joints in different orders: decide by the file name.
        name = path.name.lower()
        if "h36m" in name or "human36m" in name:
            return "h36m17"
        if "3dhp" in name or "mpi_inf" in name:
            return "mpi_inf_3dhp17"
    raise DatasetFileError(
        f"cannot tell the keypoint convention of the {num_joints} joints in {path}; pass convention= "
        f"(--convention on the command line), e.g. h36m17 or mpi_inf_3dhp17"
    )


class SpinNpzReader(PersonReader):
    """People of a SPIN-style npz, one per row.

    2D keypoints: ``part``'s flag > 0 becomes visibility 2 and 0 becomes 0 with zeroed coordinates
    (the flag says labelled or not; occlusion is not recorded). Without ``part`` (3DPW's SPIN files),
    keypoints are all unlabelled and only the box, the SMPL parameters and ``S`` are usable.
    Box: the square ``center +- scale * 200 / 2`` (SPIN's convention; a (N, 2) ``scale`` gives w, h).
    SMPL parameters go to ``body_params = {"pose": (72,), "betas": (10,)}`` with ``body_model="smpl"``,
    unless ``has_smpl`` is 0 for that row. Other per-row arrays (``iuv_names``, ``gender``, ...) go to
    ``extra``. Camera files (``cameras.pkl``) are not read.

    Args:
        npz_file: the npz.
        image_root: folder the ``imgname`` paths are relative to; default the npz's folder.
            Images are looked up with :func:`resolve_image_path`.
        convention: of ``part``; default by joint count: 24 ``spin24``, 14 ``lsp14``, 17 ``h36m17`` or
            ``mpi_inf_3dhp17`` when the file name says which (h36m / 3dhp), else an error asks for it.
        convention3d: of ``S``; default ``convention`` when the joint counts agree, else by count.
        check_images: skip rows whose image file is missing.
    """

    dataset = "spin"

    def __init__(self, npz_file: str | Path, image_root: str | Path | None = None, convention: str | None = None,
                 convention3d: str | None = None, check_images: bool = False) -> None:
        self.npz_file = Path(npz_file)
        data = load_npz(self.npz_file)
        missing = [k for k in ("imgname", "center", "scale") if k not in data]
        if missing:
            raise DatasetFileError(f"{self.npz_file} lacks {missing} (has {sorted(data)})")
        count = len(data["imgname"])
        wrong = {k: v.shape for k, v in data.items() if v.ndim == 0 or len(v) != count}
        if wrong:
            raise DatasetFileError(f"arrays of {self.npz_file} disagree with the {count} rows of imgname: {wrong}")
        self._check_shape(data, "center", (count, 2))
        self._check_shape(data, "part", (count, None, 3))
        self._check_shape(data, "pose", (count, 72))
        self._check_shape(data, "shape", (count, 10))
        if "S" in data and not (data["S"].ndim == 3 and data["S"].shape[2] in (3, 4)):
            raise DatasetFileError(f"'S' in {self.npz_file} has shape {data['S'].shape}; expected (N, K, 4)")

        num_joints = data["part"].shape[1] if "part" in data else data["S"].shape[1] if "S" in data else 24
        convention = convention or _default_convention(num_joints, self.npz_file)
        super().__init__(convention, image_root or self.npz_file.parent, check_images)
        if "part" in data and data["part"].shape[1] != self.num_keypoints:
            raise DatasetFileError(f"'part' in {self.npz_file} has {data['part'].shape[1]} joints but convention "
                                   f"{self.convention} has {self.num_keypoints}")
        self.convention3d = None
        if "S" in data:
            k3 = data["S"].shape[1]
            if convention3d is None:
                convention3d = self.convention if k3 == self.num_keypoints else _default_convention(k3, self.npz_file)
            self.convention3d = get_convention(convention3d).name
            if k3 != len(get_convention(convention3d)):
                raise DatasetFileError(f"'S' in {self.npz_file} has {k3} joints but convention "
                                       f"{self.convention3d} has {len(get_convention(convention3d))}")
        self.has_3d = "S" in data
        has_smpl = data["has_smpl"] > 0 if "has_smpl" in data else np.ones(count, dtype=bool)
        self.has_smpl = "pose" in data and "shape" in data and bool(has_smpl.any())

        self._imgname = data["imgname"].astype(str)
        self._keypoints = self._keypoints2d(data, count)
        self._bbox = self._boxes(data)
        self._keypoints3d = None
        if "S" in data:
            s = data["S"].astype(np.float32)
            self._keypoints3d = s if s.shape[2] == 4 else np.concatenate([s, np.ones_like(s[..., :1])], -1)
        self._pose = data["pose"].astype(np.float32) if self.has_smpl else None
        self._betas = data["shape"].astype(np.float32) if self.has_smpl else None
        self._with_smpl = has_smpl
        self._center, self._scale = data["center"], data["scale"]
        self._extra = {k: v for k, v in data.items() if k not in _FIELDS}

        for index in range(count):
            image_path = (resolve_image_path(self.image_root, self._imgname[index]) if check_images else None)
            if not self._accept(index, self._keypoints[index], self._bbox[index], image_path):
                continue
            reason = self._row_problem(index)
            if reason:
                self._skip(index, reason)
                continue
            self._handles.append(index)

    def _check_shape(self, data: dict, key: str, shape: tuple) -> None:
        if key in data:
            actual = data[key].shape
            if len(actual) != len(shape) or any(s is not None and s != a for s, a in zip(shape, actual)):
                wanted = "(" + ", ".join("K" if s is None else str(s) for s in shape) + ")"
                raise DatasetFileError(f"'{key}' in {self.npz_file} has shape {actual}; expected {wanted}")

    def _keypoints2d(self, data: dict, count: int) -> np.ndarray:
        if "part" not in data:
            return np.zeros((count, self.num_keypoints, 3), dtype=np.float32)
        part = data["part"].astype(np.float32)
        labelled = part[..., 2] > 0
        keypoints = part.copy()
        keypoints[..., 2] = np.where(labelled, 2.0, 0.0)
        keypoints[~labelled, :2] = 0.0
        keypoints[~np.isfinite(part).all(axis=(1, 2))] = np.nan  # reported, not hidden by the flag
        return keypoints

    def _boxes(self, data: dict) -> np.ndarray:
        scale = data["scale"].astype(np.float32).reshape(len(data["scale"]), -1)
        if scale.shape[1] not in (1, 2):
            raise DatasetFileError(f"'scale' in {self.npz_file} has shape {data['scale'].shape}; "
                                   f"expected (N,) or (N, 2)")
        size = np.broadcast_to(scale, (len(scale), 2)) * 200.0  # SPIN: box side = scale * 200 px
        center = data["center"].astype(np.float32)
        return np.concatenate([center - size / 2, size], axis=1)

    def _row_problem(self, index: int) -> str | None:
        if self._keypoints3d is not None and not np.isfinite(self._keypoints3d[index]).all():
            return "non-finite 3D keypoints"
        if self._pose is not None and self._with_smpl[index] and not (
                np.isfinite(self._pose[index]).all() and np.isfinite(self._betas[index]).all()):
            return "non-finite SMPL parameters"
        return None

    def _load(self, index: int) -> PersonSample:
        body_params = None
        if self._pose is not None and self._with_smpl[index]:
            body_params = {"pose": self._pose[index].copy(), "betas": self._betas[index].copy()}
        extra = {"center": self._center[index].astype(np.float32), "scale": self._scale[index].astype(np.float32)}
        for key, values in self._extra.items():
            value = values[index]
            extra[key] = value.item() if value.ndim == 0 else value.copy()
        return PersonSample(
            image_path=resolve_image_path(self.image_root, self._imgname[index]),
            bbox=self._bbox[index].copy(),
            keypoints2d=self._keypoints[index].copy(),
            convention=self.convention,
            keypoints3d=None if self._keypoints3d is None else self._keypoints3d[index].copy(),
            convention3d=self.convention3d,
            body_params=body_params,
            body_model="smpl" if body_params is not None else None,
            image_id=str(self._imgname[index]),
            ann_id=index,
            dataset=self.dataset,
            extra=extra,
        )
