"""Person crops with their silhouettes, held in memory: the target data of silhouette self-adaptation.

``lowres-hps adapt`` cuts them from a static-camera video (people found by a detector, silhouettes by background
subtraction, both cropped by the 3D model's protocol) and keeps them in one ``.npz`` file, so that an
interrupted adaptation restarts without reading the video again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lowres_hps.core.checks import check_shape
from lowres_hps.data.errors import DatasetFileError, load_npz

__all__ = ["SilhouetteCrops", "save_silhouette_crops"]

_ARRAYS = ("images", "range_index", "silhouettes")


class SilhouetteCrops(Dataset):
    """Items ``{"images": (1, 3, S, S) uint8, "range_index": (1,) int64, "silhouette": (S, S) float32 0/1,
    "has_silhouette": (), "index": int}``: one resolution per person (the one it was seen at), in the layout of
    :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` items so one loss serves both.

    Args:
        images: (N, 3, S, S) uint8 crops.
        range_index: (N,) int64 resolution range of each crop.
        silhouettes: (N, S, S) uint8 or bool 0/1 masks in the crops.
        frames: optional (N,) int frame index of each crop (kept for reports).
    """

    def __init__(self, images: np.ndarray, range_index: np.ndarray, silhouettes: np.ndarray,
                 frames: np.ndarray | None = None) -> None:
        check_shape(images, "N 3 S S", "images")
        n, size = images.shape[0], images.shape[-1]
        check_shape(range_index, f"{n}", "range_index")
        check_shape(silhouettes, f"{n} {size} {size}", "silhouettes")
        if images.shape[-2] != size:
            raise ValueError(f"crops must be square, got {tuple(images.shape[-2:])}")
        self.images = torch.as_tensor(np.asarray(images, np.uint8))
        self.range_index = torch.as_tensor(np.asarray(range_index, np.int64))
        self.silhouettes = torch.as_tensor(np.asarray(silhouettes, np.uint8))
        self.frames = None if frames is None else np.asarray(frames, np.int64)

    @classmethod
    def load(cls, path: str | Path) -> SilhouetteCrops:
        """Crops written by :func:`save_silhouette_crops`."""
        arrays = load_npz(path)
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise DatasetFileError(f"{path}: not a silhouette-crops file (missing {missing})")
        return cls(arrays["images"], arrays["range_index"], arrays["silhouettes"], arrays.get("frames"))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict:
        silhouette = self.silhouettes[index].float()
        return {"images": self.images[index][None], "range_index": self.range_index[index][None],
                "silhouette": silhouette, "has_silhouette": torch.tensor(float(silhouette.sum() > 0)), "index": index}


def save_silhouette_crops(path: str | Path, images: np.ndarray, range_index: np.ndarray, silhouettes: np.ndarray,
                          frames: np.ndarray | None = None) -> Path:
    """Write crops (see :class:`SilhouetteCrops`) to one compressed ``.npz`` file, atomically."""
    from lowres_hps.core.io import atomic_write

    SilhouetteCrops(images, range_index, silhouettes, frames)  # validates the layout
    arrays = {"images": np.asarray(images, np.uint8), "range_index": np.asarray(range_index, np.int64),
              "silhouettes": np.asarray(silhouettes, np.uint8)}
    if frames is not None:
        arrays["frames"] = np.asarray(frames, np.int64)
    path = Path(path)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path
