"""Reader of SynthLR folders (``lowres-hps synth --out DIR``): COCO keypoints plus the 3D side file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lowres_hps.data.coco import CocoKeypointsReader
from lowres_hps.data.errors import DatasetFileError, load_npz
from lowres_hps.data.sample import PersonSample

__all__ = ["SynthLRReader"]


class SynthLRReader(CocoKeypointsReader):
    """SynthLR people with 2D keypoints, masks, and from ``annotations_3d.npz``: COCO-17 3D keypoints
    in camera coordinates (metres), the Anny regression pose vector with its root in camera axes and
    the root translation (``body_params``), and the camera intrinsics.

    Args:
        folder: the SynthLR folder (holding ``annotations.json``, ``annotations_3d.npz``, ``images/``),
            or its ``annotations.json``.
        image_root: image folder, default ``folder/images``.
        load_masks: decode the RLE instance masks into ``PersonSample.mask``.
    """

    dataset = "synthlr"

    def __init__(self, folder: str | Path, image_root: str | Path | None = None, load_masks: bool = False,
                 check_images: bool = False) -> None:
        folder = Path(folder)
        if folder.suffix == ".json":  # the annotations file itself
            folder = folder.parent
        super().__init__(folder / "annotations.json", image_root or folder / "images", convention="coco17",
                         min_keypoints=0, load_masks=load_masks, check_images=check_images)
        self.folder = folder
        arrays = load_npz(folder / "annotations_3d.npz")
        if "ann_id" not in arrays:
            raise DatasetFileError(f"no ann_id array in {folder / 'annotations_3d.npz'}")
        self._rows = {int(a): i for i, a in enumerate(arrays["ann_id"])}
        self._arrays = {k: arrays[k] for k in arrays if k not in ("ann_id", "image_id")}
        missing = [h[0]["id"] for h in self._handles if h[0]["id"] not in self._rows]
        if missing:
            raise DatasetFileError(f"{len(missing)} annotations (e.g. id {missing[0]}) have no 3D row in "
                                   f"{folder / 'annotations_3d.npz'}")
        self.has_3d = True  # and Anny body parameters (body_params) for every person
        self.convention3d = "coco17"

    def _load(self, handle) -> PersonSample:
        sample = super()._load(handle)
        row = self._rows[int(sample.ann_id)]
        arrays = self._arrays
        sample.keypoints3d = np.concatenate(
            [arrays["keypoints3d"][row], np.ones((arrays["keypoints3d"].shape[1], 1), np.float32)], axis=1)
        sample.convention3d = "coco17"
        sample.body_model = "anny"
        sample.body_params = {"pose_vector": arrays["pose_vector"][row], "translation": arrays["translation"][row]}
        focal = float(arrays["focal"][row])
        sample.camera = {"focal": np.array([focal, focal], np.float32), "center": arrays["principal_point"][row]}
        sample.extra["joints3d"] = arrays["joints3d"][row]
        return sample
