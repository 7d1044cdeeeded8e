"""The one sample structure every dataset reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PersonSample"]


@dataclass
class PersonSample:
    """One annotated person in one image. Arrays are numpy, in original image pixels.

    Attributes:
        image_path: path to the image file (images are loaded lazily with :meth:`load_image`).
        bbox: (4,) float32 person box ``x, y, w, h`` in pixels.
        keypoints2d: (K, 3) float32 ``x, y, visibility`` with visibility 0 (not labelled),
            1 (labelled, occluded) or 2 (labelled, visible), COCO semantics.
        convention: name of the keypoint convention of ``keypoints2d`` (see ``lowres_hps.body.keypoints``).
        keypoints3d: optional (K3, 4) float32 ``x, y, z, confidence`` in metres, camera coordinates
            when the dataset gives them so.
        convention3d: convention of ``keypoints3d``.
        body_params: optional dict of body-model parameters, e.g. SMPL ``{"pose": (72,), "betas": (10,)}``.
        body_model: name of the body model ``body_params`` belong to (``"smpl"``, ``"anny"``...).
        camera: optional dict, e.g. ``{"focal": (2,), "center": (2,), "R": (3,3), "t": (3,)}``.
        mask: optional (H, W) uint8 instance mask of this person.
        image_id, ann_id: ids from the source annotation (COCO ids where they exist).
        dataset: name of the reader that produced the sample.
        extra: anything dataset-specific worth keeping.
    """

    image_path: Path
    bbox: np.ndarray
    keypoints2d: np.ndarray
    convention: str
    keypoints3d: np.ndarray | None = None
    convention3d: str | None = None
    body_params: dict[str, np.ndarray] | None = None
    body_model: str | None = None
    camera: dict[str, np.ndarray] | None = None
    mask: np.ndarray | None = None
    image_id: int | str | None = None
    ann_id: int | str | None = None
    dataset: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> np.ndarray:
        """The image as (H, W, 3) uint8 RGB."""
        from lowres_hps.imaging.io import read_image_rgb

        return read_image_rgb(self.image_path)
