"""Errors for unreadable dataset files, file loaders that name the file, and per-sample checks.

A whole file that is missing or unreadable raises (``FileNotFoundError`` or :class:`DatasetFileError`).
A single bad person is not an error: the checks here return a reason string, and the reader
reports and skips that person (see :class:`lowres_hps.data.reader.PersonReader`).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DatasetFileError",
    "require_file",
    "load_json",
    "load_npz",
    "load_mat",
    "keypoints_problem",
    "bbox_problem",
]


class DatasetFileError(ValueError):
    """An annotation file exists but cannot be read, or its layout is not the expected one.

    The message always names the file.
    """


def require_file(path: str | Path, what: str = "annotation file") -> Path:
    """``path`` as a Path; raises ``FileNotFoundError`` naming it when it is not a file."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{what} expected, got a folder: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def load_json(path: str | Path) -> Any:
    """Parse a json file; a missing file raises ``FileNotFoundError``, a corrupt one :class:`DatasetFileError`."""
    path = require_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetFileError(f"cannot parse json {path}: {exc}") from exc


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` eagerly, so that a truncated file fails here, naming the file."""
    path = require_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DatasetFileError(f"not an npz archive (a single .npy array?): {path}")
        with archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetFileError(f"cannot read npz {path}: {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, DatasetFileError):
            raise
        raise DatasetFileError(f"cannot read npz {path}: {exc}") from exc


def load_mat(path: str | Path) -> dict[str, Any]:
    """Read a MATLAB ``.mat`` file (v5 and older; v7.3/HDF5 files are reported as unsupported)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = require_file(path)
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError as exc:  # scipy's message for v7.3 files
        raise DatasetFileError(f"unsupported MATLAB file {path}: {exc}") from exc
    except (OSError, ValueError, TypeError, EOFError, MatReadError) as exc:
        raise DatasetFileError(f"cannot read MATLAB file {path}: {exc}") from exc


def keypoints_problem(keypoints: np.ndarray, num_keypoints: int) -> str | None:
    """Why ``keypoints`` is not a valid (K, 3) ``x, y, visibility`` array, or None when it is."""
    if keypoints.shape != (num_keypoints, 3):
        return f"expected ({num_keypoints}, 3) keypoints, got shape {tuple(keypoints.shape)}"
    if not np.isfinite(keypoints).all():
        return "non-finite keypoint values"
    bad = np.setdiff1d(keypoints[:, 2], (0, 1, 2))
    if bad.size:
        return f"visibility values {bad.tolist()} outside 0/1/2"
    return None


def bbox_problem(bbox: np.ndarray) -> str | None:
    """Why ``bbox`` (x, y, w, h) is unusable, or None when it is fine."""
    if bbox.shape != (4,):
        return f"expected a (4,) box x, y, w, h, got shape {tuple(bbox.shape)}"
    if not np.isfinite(bbox).all():
        return "non-finite box values"
    if bbox[2] <= 0 or bbox[3] <= 0:
        return f"box with zero size (w={bbox[2]:g}, h={bbox[3]:g})"
    return None
