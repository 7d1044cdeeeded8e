"""MPII Human Pose reader for the mmpose / HRNet json list (16 joints, ``mpii16`` convention)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lowres_hps.data.errors import DatasetFileError, load_json, load_mat
from lowres_hps.data.reader import PersonReader, default_image_root
from lowres_hps.data.sample import PersonSample

__all__ = ["MpiiReader", "MPII_HEAD_SIZE_FACTOR"]

# PCKh normaliser = this factor times the head-box diagonal (SC_BIAS of the MPII evaluation code).
MPII_HEAD_SIZE_FACTOR = 0.6
_NECK, _HEAD_TOP = 8, 9  # "upper neck" and "head top" in mpii16


class MpiiReader(PersonReader):
    """People of an MPII json list: entries ``{"image", "center", "scale", "joints" (16, 2), "joints_vis" (16,)}``.

    Coordinates: MPII annotations are 1-based (MATLAB); ``joints`` and ``center`` are moved to 0-based
    pixels by subtracting 1, as HRNet's MPII loader does. Box: MPII's ``center`` sits on the upper body,
    so it is moved down by ``15 * scale`` px (HRNet / mmpose convention) and the box is the square of side
    ``scale * 200`` around it, not enlarged (padding is the crop's job). ``center[0] == -1`` marks a
    person without a box: reported and skipped. The raw ``center`` and ``scale`` stay in ``extra``.

    Visibility: ``joints_vis`` 1 becomes 2 and 0 becomes 0 with zeroed coordinates. The json keeps
    only "labelled or not"; MPII's own occlusion flag is lost in it.

    Head size (the PCKh normaliser) in ``extra["head_size"]``: the json has no head boxes, so it is
    ``MPII_HEAD_SIZE_FACTOR * ||head box diagonal||`` when ``head_boxes`` gives mmpose's
    ``mpii_gt_val.mat`` (``headboxes_src`` (2, 2, N), same order as the json), else the head-top to
    upper-neck distance when both are labelled (not the official normaliser: PCKh values computed with it
    differ from the benchmark's). ``extra["head_size_source"]`` says which.

    Args:
        ann_file: the json list.
        image_root: default ``<root>/images`` for ``<root>/annotations/x.json``, else ``images/`` next
            to the json, else its folder.
        head_boxes: optional ``.mat`` with ``headboxes_src``.
        check_images: skip people whose image file is missing.
    """

    dataset = "mpii"

    def __init__(self, ann_file: str | Path, image_root: str | Path | None = None,
                 head_boxes: str | Path | None = None, check_images: bool = False) -> None:
        self.ann_file = Path(ann_file)
        entries = load_json(self.ann_file)
        if not isinstance(entries, list):
            raise DatasetFileError(f"expected a json list of MPII people in {self.ann_file}")
        super().__init__("mpii16", image_root or default_image_root(self.ann_file), check_images)
        self._head_boxes = None if head_boxes is None else self._read_head_boxes(Path(head_boxes), len(entries))
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "image" not in entry:
                self._skip(index, "entry without an 'image' name")
                continue
            try:
                keypoints, bbox = self._parse(entry)
            except (KeyError, TypeError, ValueError) as exc:
                self._skip(index, f"malformed entry: {exc!r}")
                continue
            if bbox is None:
                self._skip(index, "no person centre (center[0] == -1)")
                continue
            if self._accept(index, keypoints, bbox, self.image_root / entry["image"]):
                self._handles.append((index, entry, keypoints, bbox))

    def _read_head_boxes(self, path: Path, count: int) -> np.ndarray:
        content = load_mat(path)
        if "headboxes_src" not in content:
            raise DatasetFileError(f"no 'headboxes_src' in {path}")
        boxes = np.asarray(content["headboxes_src"], dtype=np.float32)
        if boxes.shape != (2, 2, count):
            raise DatasetFileError(f"'headboxes_src' in {path} has shape {boxes.shape}; expected (2, 2, {count}) "
                                   f"for the {count} people of {self.ann_file}")
        return boxes.transpose(2, 0, 1).reshape(count, 4) - 1.0  # (N, 4) x1, y1, x2, y2, 0-based

    def _parse(self, entry: dict) -> tuple[np.ndarray, np.ndarray | None]:
        joints = np.asarray(entry["joints"], dtype=np.float32)
        visible = np.asarray(entry["joints_vis"], dtype=np.float32).reshape(-1)
        if joints.ndim != 2 or joints.shape[1] != 2 or len(visible) != len(joints):
            return joints.reshape(1, -1), np.zeros(4, np.float32)  # shape check reports it
        keypoints = np.concatenate([joints - 1.0, np.where(visible > 0, 2.0, 0.0)[:, None]], axis=1)
        keypoints[visible <= 0, :2] = 0.0
        keypoints[~(np.isfinite(joints).all(1) & np.isfinite(visible))] = np.nan  # reported, not hidden
        center = np.asarray(entry["center"], dtype=np.float32).reshape(2)
        if center[0] == -1:
            return keypoints, None
        side = float(entry["scale"]) * 200.0
        center = center - 1.0 + np.array([0.0, 15.0 * float(entry["scale"])], np.float32)
        return keypoints, np.array([center[0] - side / 2, center[1] - side / 2, side, side], np.float32)

    def _load(self, handle) -> PersonSample:
        index, entry, keypoints, bbox = handle
        extra = {"center": np.asarray(entry["center"], np.float32), "scale": float(entry["scale"])}
        if self._head_boxes is not None:
            box = self._head_boxes[index]
            extra["head_box"] = box.copy()
            extra["head_size"] = MPII_HEAD_SIZE_FACTOR * float(np.linalg.norm(box[2:] - box[:2]))
            extra["head_size_source"] = "head_box"
        elif keypoints[_NECK, 2] > 0 and keypoints[_HEAD_TOP, 2] > 0:
            extra["head_size"] = float(np.linalg.norm(keypoints[_HEAD_TOP, :2] - keypoints[_NECK, :2]))
            extra["head_size_source"] = "head_top-neck"
        return PersonSample(
            image_path=self.image_root / entry["image"],
            bbox=bbox.copy(),
            keypoints2d=keypoints.copy(),
            convention=self.convention,
            image_id=entry["image"],
            ann_id=index,
            dataset=self.dataset,
            extra=extra,
        )
