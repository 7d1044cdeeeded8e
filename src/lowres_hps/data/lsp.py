"""LSP and LSP-extended ``joints.mat`` reader (14 joints, ``lsp14`` convention)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lowres_hps.data.errors import DatasetFileError, load_mat
from lowres_hps.data.reader import PersonReader, default_image_root
from lowres_hps.data.sample import PersonSample

__all__ = ["LspReader", "bbox_from_keypoints"]

# Image names: LSP numbers its 2000 images with 4 digits, LSP-extended its 10000 with 5.
_IMAGE_NAMES = {"lsp": "im{:04d}.jpg", "lspet": "im{:05d}.jpg"}


def bbox_from_keypoints(keypoints: np.ndarray, enlarge: float = 1.2) -> np.ndarray:
    """(4,) ``x, y, w, h`` box: the extent of the labelled (visibility > 0) keypoints, scaled about its centre.

    Returns a zero-size box when fewer than two distinct points are labelled.
    """
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if len(labelled) == 0:
        return np.zeros(4, dtype=np.float32)
    low, high = labelled.min(0), labelled.max(0)
    size = (high - low) * enlarge
    centre = (low + high) / 2
    return np.concatenate([centre - size / 2, size]).astype(np.float32)


class LspReader(PersonReader):
    """Leeds Sports Pose (LSP) or LSP-extended (LSPET), one person per image.

    The layout is detected from the ``joints`` array:

    - LSP: (3, 14, N); the third row is 1 for *occluded* joints (0 = visible), which is inverted with
      respect to its name. Occluded joints still have positions: visibility 1 (labelled, occluded),
      visible ones 2. Images ``im0001.jpg`` ...
    - LSPET: (14, 3, N); the third column is 1 for visible joints. Joints with 0 have no usable
      position (they lie outside the image), so they become visibility 0 with zeroed coordinates.
      Images ``im00001.jpg`` ...

    The person box is the extent of the labelled joints enlarged by ``bbox_enlarge`` about its centre
    (1.2 as in SPIN's LSP preprocessing; SPIN also makes it square, here the aspect is kept).

    Args:
        mat_file: the ``joints.mat``.
        image_root: image folder; default ``images/`` next to the mat file when it exists.
        indices: 0-based person indices to keep, in order (e.g. ``range(300)`` to hold out the rest).
        bbox_enlarge: box scale about the keypoint extent.
        check_images: skip people whose image file is missing.
    """

    dataset = "lsp"

    def __init__(self, mat_file: str | Path, image_root: str | Path | None = None,
                 indices: Iterable[int] | None = None, bbox_enlarge: float = 1.2,
                 check_images: bool = False) -> None:
        self.mat_file = Path(mat_file)
        content = load_mat(self.mat_file)
        if "joints" not in content:
            keys = sorted(k for k in content if not k.startswith("__"))
            raise DatasetFileError(f"no 'joints' array in {self.mat_file} (found {keys})")
        joints = np.asarray(content["joints"], dtype=np.float64)
        if joints.ndim == 3 and joints.shape[:2] == (3, 14):
            self.variant = "lsp"
            keypoints = joints.transpose(2, 1, 0).astype(np.float32)  # (N, 14, 3)
            keypoints[..., 2] = np.where(keypoints[..., 2] == 0, 2.0, 1.0)
        elif joints.ndim == 3 and joints.shape[:2] == (14, 3):
            self.variant = "lspet"
            keypoints = joints.transpose(2, 0, 1).astype(np.float32)
            labelled = keypoints[..., 2] > 0
            keypoints[..., 2] = np.where(labelled, 2.0, 0.0)
            keypoints[~labelled, :2] = 0.0
        else:
            raise DatasetFileError(
                f"'joints' in {self.mat_file} has shape {joints.shape}; expected (3, 14, N) for LSP "
                f"or (14, 3, N) for LSP-extended"
            )
        # Keep non-finite people non-finite (the flag conversion above would hide them) so they are reported.
        keypoints[~np.isfinite(joints).all(axis=(0, 1))] = np.nan
        super().__init__("lsp14", image_root or default_image_root(self.mat_file), check_images)
        self.dataset = self.variant
        self._keypoints = keypoints
        count = len(keypoints)
        indices = range(count) if indices is None else [int(i) for i in indices]
        for index in indices:
            if not 0 <= index < count:
                raise IndexError(f"person index {index} out of range for the {count} people in {self.mat_file}")
            bbox = bbox_from_keypoints(keypoints[index], bbox_enlarge)
            if self._accept(index, keypoints[index], bbox, self._image_path(index)):
                self._handles.append((index, bbox))

    def _image_path(self, index: int) -> Path:
        return self.image_root / _IMAGE_NAMES[self.variant].format(index + 1)

    def _load(self, handle) -> PersonSample:
        index, bbox = handle
        path = self._image_path(index)
        return PersonSample(
            image_path=path,
            bbox=bbox.copy(),
            keypoints2d=self._keypoints[index].copy(),
            convention=self.convention,
            image_id=path.stem,
            ann_id=index,
            dataset=self.dataset,
            extra={"variant": self.variant},
        )
