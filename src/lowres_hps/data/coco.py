"""COCO person-keypoint json readers: COCO, CrowdPose and OCHuman (COCO-format files)."""
from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from lowres_hps.data.errors import DatasetFileError, bbox_problem, load_json
from lowres_hps.data.reader import PersonReader, default_image_root
from lowres_hps.data.sample import PersonSample

__all__ = ["CocoPerson", "CocoPeople", "CocoKeypointsReader", "CrowdPoseReader", "OCHumanReader",
           "segmentation_to_mask"]


def segmentation_to_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation (polygons, uncompressed or compressed RLE) to an (H, W) uint8 mask."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    with warnings.catch_warnings():
        # pycocotools' Cython decoder trips numpy 2's __array__(copy=...) deprecation; the result is correct.
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        return mask_utils.decode(rle)


def _segmentation_problem(segmentation) -> str | None:
    """Why a segmentation cannot be decoded (checked cheaply, without decoding), or None."""
    if isinstance(segmentation, list):
        if all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation):
            return None
        return "segmentation polygons need an even number (>= 6) of coordinates each"
    if isinstance(segmentation, dict) and "counts" in segmentation and len(segmentation.get("size", ())) == 2:
        return None
    return "segmentation is neither polygons nor an RLE with 'counts' and 'size'"


@dataclass(frozen=True)
class CocoPerson:
    """One person annotation that passed the filters of :class:`CocoPeople`.

    Attributes:
        key: the annotation's ``id`` (``"annotations[i]"`` without one), as in reports.
        annotation: the annotation as in the file.
        image: its image entry.
        bbox: (4,) float64 ``x, y, w, h`` (finite, positive width and height).
        num_labelled: labelled keypoints: ``v > 0`` in ``keypoints``, else ``num_keypoints``, else 0.
    """

    key: Hashable
    annotation: dict
    image: dict
    bbox: np.ndarray
    num_labelled: int


@dataclass
class CocoPeople:
    """The person annotations of a COCO-format json, through the filters every COCO reader of the project
    applies (dataset readers, ``predict --boxes``, accuracy with ground-truth boxes): a person category,
    no crowd region (unless ``include_crowd``), an image entry with a ``file_name``, a usable box, and at least
    ``min_keypoints`` labelled keypoints.

    Args:
        data: the parsed json (``images``, ``annotations``, ``categories``).
        source: the file, for messages.

    Attributes:
        images: image id -> image entry.
        people: the annotations kept, in file order.
        skipped: ``(key, reason)`` for every bad annotation (no image, no or a bad box).
        filtered: count per reason of the people left out on purpose (``"crowd"``, ``"fewer than N keypoints"``).
    """

    data: Mapping[str, Any]
    source: str | Path
    include_crowd: bool = False
    min_keypoints: int = 0
    images: dict[Any, dict] = field(init=False)
    people: list[CocoPerson] = field(init=False, default_factory=list)
    skipped: list[tuple[Hashable, str]] = field(init=False, default_factory=list)
    filtered: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        data, source = self.data, self.source
        if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list) \
                or not isinstance(data.get("images"), list):
            raise DatasetFileError(f"not a COCO json (needs 'images' and 'annotations' lists): {source}")
        try:
            self.images = {img["id"]: img for img in data["images"]}
        except (KeyError, TypeError) as exc:
            raise DatasetFileError(f"image entry without 'id' in {source}") from exc
        categories = data.get("categories") or []
        person_ids = {c["id"] for c in categories if "keypoints" in c}
        if not person_ids:
            person_ids = {c["id"] for c in categories if c.get("name") == "person"} or {1}
        for index, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                raise DatasetFileError(f"annotation is not an object in {source}: {ann!r:.80}")
            if ann.get("category_id", 1) not in person_ids:
                continue
            key = ann.get("id", f"annotations[{index}]")
            if ann.get("iscrowd", 0) and not self.include_crowd:
                self._filter("crowd")
                continue
            image = self.images.get(ann.get("image_id"))
            if image is None or "file_name" not in image:
                self.skipped.append((key, f"image_id {ann.get('image_id')!r} has no image entry with a file_name"))
                continue
            if ann.get("bbox") is None:
                self.skipped.append((key, "no bbox"))
                continue
            try:
                bbox = np.asarray(ann["bbox"], dtype=np.float64).reshape(-1)
                labelled = _num_labelled(ann)
            except (TypeError, ValueError) as exc:
                self.skipped.append((key, f"malformed keypoints or bbox: {exc}"))
                continue
            reason = bbox_problem(bbox)
            if reason is not None:
                self.skipped.append((key, reason))
                continue
            if labelled < self.min_keypoints:
                self._filter(f"fewer than {self.min_keypoints} keypoints")
                continue
            self.people.append(CocoPerson(key, ann, image, bbox, labelled))

    def _filter(self, reason: str) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + 1


def _num_labelled(ann: dict) -> int:
    values = ann.get("keypoints")
    if values is not None:
        visibility = np.asarray(values, dtype=np.float64).reshape(-1)[2::3]
        return int((visibility > 0).sum())
    return int(ann.get("num_keypoints", 0) or 0)


class CocoKeypointsReader(PersonReader):
    """People of a COCO-style keypoint json, one sample per person annotation.

    Args:
        ann_file: the json (``images``, ``annotations`` with ``keypoints`` K*3 and ``bbox`` xywh,
            ``categories``).
        image_root: image folder; default from :func:`~lowres_hps.data.reader.default_image_root`:
            ``<root>/<split>`` for ``<root>/annotations/person_keypoints_<split>.json`` (COCO layout),
            else ``images/`` next to the json, else the json's folder.
        convention: keypoint convention of the json's keypoints; its length must match.
        min_keypoints: people with fewer labelled keypoints are filtered out (counted in ``filtered``).
            An annotation without a ``keypoints`` field (OCHuman has mask-only people) counts as 0.
        include_crowd: keep ``iscrowd`` annotations.
        load_masks: decode the instance mask of each sample (lazily, in ``__getitem__``); people whose
            segmentation is malformed are then reported and skipped. ``has_mask`` says whether the file
            has segmentations at all.
        check_images: skip people whose image file is missing (a stat per person at construction).
        world3d: a teacher's metric 3D keypoints per annotation, e.g. the ``blazepose.json`` that
            ``scripts/blazepose_labels.py`` writes next to a ``lowres-hps label`` file: ``{"info": {"convention":
            ...}, "annotations": {"<annotation id>": {"detected": bool, "world_landmarks": [[x, y, z], ...],
            "landmarks": [[x, y, visibility], ...]}}}``. Samples of detected people get them as ``keypoints3d``
            (root-relative metres, camera-aligned axes; confidence 1 where the landmark's visibility is at least
            ``world3d_min_visibility``, else 0: the teacher's guesses for hidden joints are left out) with
            ``extra["keypoints3d_weak"] = True``: a teacher's estimate with its own joint definitions, for weak
            supervision, not ground truth.
        body_params: body-model fits per annotation (exemplar fine-tuning pseudo-labels, e.g. the ``eft.json``
            that ``scripts/eft_labels.py`` writes next to a ``lowres-hps label`` file): ``{"info": {"body_model":
            ..., "convention": ...}, "annotations": {"<annotation id>": {"pose_vector": [...], "keypoints3d":
            [[x, y, z], ...]}}}``. Samples of those people get ``body_params = {"pose_vector": ...}`` (root rotation in
            camera axes) and the fit's 3D keypoints as ``keypoints3d`` (metres, camera axes, all confident). Not
            together with ``world3d``: each person has one source of 3D.

    Annotations of categories without keypoints (e.g. non-person instances) are ignored.
    """

    dataset = "coco"

    def __init__(self, ann_file: str | Path, image_root: str | Path | None = None, convention: str = "coco17",
                 min_keypoints: int = 1, include_crowd: bool = False, load_masks: bool = False,
                 check_images: bool = False, world3d: str | Path | None = None,
                 world3d_min_visibility: float = 0.5, body_params: str | Path | None = None) -> None:
        self.ann_file = Path(ann_file)
        if world3d is not None and body_params is not None:
            raise ValueError(f"{ann_file}: give world3d or body_params, not both (each person has one source of 3D)")
        self._fits, self._fits_info = ({}, {}) if body_params is None else _read_body_params(Path(body_params))
        self._world3d, self._world3d_convention = ({}, None) if world3d is None else _read_world3d(
            Path(world3d), world3d_min_visibility)
        # Keypoints are counted below from the keypoints the samples get (none without a keypoints field).
        coco = CocoPeople(load_json(self.ann_file), self.ann_file, include_crowd=include_crowd)
        if image_root is None:
            split = re.sub(r"^person_keypoints_", "", self.ann_file.stem)
            image_root = default_image_root(self.ann_file, split)
        super().__init__(convention, image_root, check_images)
        self.load_masks = load_masks
        self._images = coco.images
        self.filtered.update(coco.filtered)
        for key, reason in coco.skipped:
            self._skip(key, reason)
        with_segmentation = False
        for person in coco.people:
            key, ann = person.key, person.annotation
            try:
                keypoints = self._keypoints(ann)
            except (TypeError, ValueError) as exc:
                self._skip(key, f"malformed keypoints: {exc}")
                continue
            bbox = person.bbox.astype(np.float32)
            if not self._accept(key, keypoints, bbox, self.image_root / person.image["file_name"]):
                continue
            if int((keypoints[:, 2] > 0).sum()) < min_keypoints:
                self._filter(f"fewer than {min_keypoints} keypoints")
                continue
            if load_masks and ann.get("segmentation"):
                reason = _segmentation_problem(ann["segmentation"])
                if reason:
                    self._skip(key, reason)
                    continue
            with_segmentation |= bool(ann.get("segmentation"))
            self._handles.append((ann, keypoints, bbox))
        self.has_mask = with_segmentation

    def image_ids(self) -> list:
        """The image id of every sample, in sample order (to group people by image without loading them)."""
        return [handle[0]["image_id"] for handle in self._handles]

    def _keypoints(self, ann: dict) -> np.ndarray:
        """(K, 3) keypoints with unlabelled ones zeroed; a wrong count gives a (M, 3) or (1, M) array
        that the shape check then reports."""
        values = ann.get("keypoints")
        if values is None:
            return np.zeros((self.num_keypoints, 3), dtype=np.float32)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.size % 3:
            return values.reshape(1, -1)
        keypoints = values.reshape(-1, 3)
        # Zero unlabelled points, but leave non-finite values for the check to report.
        keypoints[(keypoints[:, 2] == 0) & np.isfinite(keypoints).all(1), :2] = 0.0
        return keypoints

    def _load(self, handle) -> PersonSample:
        ann, keypoints, bbox = handle
        image = self._images[ann["image_id"]]
        mask = None
        if self.load_masks and ann.get("segmentation"):
            try:
                mask = segmentation_to_mask(ann["segmentation"], int(image["height"]), int(image["width"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetFileError(
                    f"cannot decode the segmentation of annotation {ann.get('id')} in {self.ann_file}: {exc}"
                ) from exc
        extra = {"iscrowd": int(ann.get("iscrowd", 0))}
        if "area" in ann:
            extra["area"] = float(ann["area"])
        if "height" in image and "width" in image:
            extra["image_size"] = (int(image["height"]), int(image["width"]))
        extra.update(self._extra(image))
        keypoints3d = self._world3d.get(str(ann.get("id")))
        convention3d = self._world3d_convention
        if keypoints3d is not None:
            extra["keypoints3d_weak"] = True
        fit = self._fits.get(str(ann.get("id")))
        if fit is not None:
            keypoints3d, convention3d = fit["keypoints3d"], self._fits_info["convention"]
        return PersonSample(
            image_path=self.image_root / image["file_name"],
            bbox=bbox.copy(),
            keypoints2d=keypoints.copy(),
            convention=self.convention,
            keypoints3d=None if keypoints3d is None else keypoints3d.copy(),
            convention3d=None if keypoints3d is None else convention3d,
            body_params=None if fit is None else {"pose_vector": fit["pose_vector"].copy()},
            body_model=None if fit is None else self._fits_info["body_model"],
            mask=mask,
            image_id=ann["image_id"],
            ann_id=ann.get("id"),
            dataset=self.dataset,
            extra=extra,
        )

    def _extra(self, image: dict) -> dict:
        return {}


def _read_body_params(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """``({annotation id: {"pose_vector": (D,), "keypoints3d": (K, 4) x, y, z, 1}}, {"body_model", "convention"})``
    of a body-fit file (``scripts/eft_labels.py``); a clear error naming the file when it is unusable."""
    from lowres_hps.body.keypoints import get_convention

    data = load_json(path)
    try:
        info = {"body_model": str(data["info"]["body_model"]), "convention": str(data["info"]["convention"])}
        size = len(get_convention(info["convention"]))
        people = {}
        for key, person in data["annotations"].items():
            vector = np.asarray(person["pose_vector"], dtype=np.float32).reshape(-1)
            points = np.asarray(person["keypoints3d"], dtype=np.float32).reshape(size, 3)
            if not (np.isfinite(vector).all() and np.isfinite(points).all()):
                raise ValueError(f"annotation {key} has non-finite values")
            people[str(key)] = {"pose_vector": vector,
                                "keypoints3d": np.concatenate([points, np.ones((size, 1), np.float32)], axis=1)}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetFileError(f"{path}: not a body-fit file (info.body_model, info.convention, annotations with "
                               f"pose_vector and keypoints3d): {exc}") from None
    return people, info


def _read_world3d(path: Path, min_visibility: float) -> tuple[dict[str, np.ndarray], str]:
    """``{annotation id: (K, 4) x, y, z, confidence 0/1}`` of the detected people of a teacher's 3D file, and its
    keypoint convention; a clear error naming the file when it is unusable."""
    from lowres_hps.body.keypoints import get_convention

    data = load_json(path)
    try:
        convention = data["info"]["convention"]
        size = len(get_convention(convention))
        people = {}
        for key, person in data["annotations"].items():
            if not person.get("detected"):
                continue
            world = np.asarray(person["world_landmarks"], dtype=np.float32).reshape(size, 3)
            visibility = np.asarray(person["landmarks"], dtype=np.float32).reshape(size, 3)[:, 2:]
            if not np.isfinite(world).all():
                continue
            people[str(key)] = np.concatenate([world, (visibility >= min_visibility).astype(np.float32)], axis=1)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetFileError(f"{path}: not a teacher 3D keypoints file (info.convention, annotations with "
                               f"detected, world_landmarks and landmarks): {exc}") from None
    return people, convention


class CrowdPoseReader(CocoKeypointsReader):
    """CrowdPose json (COCO layout, 14 keypoints: 12 COCO body joints, head top, neck; no masks).

    The image's ``crowdIndex`` is kept as ``extra["crowd_index"]``.
    """

    dataset = "crowdpose"

    def __init__(self, ann_file: str | Path, image_root: str | Path | None = None, min_keypoints: int = 1,
                 include_crowd: bool = False, check_images: bool = False) -> None:
        super().__init__(ann_file, image_root, convention="crowdpose14", min_keypoints=min_keypoints,
                         include_crowd=include_crowd, load_masks=False, check_images=check_images)

    def _extra(self, image: dict) -> dict:
        return {"crowd_index": float(image["crowdIndex"])} if "crowdIndex" in image else {}


class OCHumanReader(CocoKeypointsReader):
    """OCHuman in its COCO-format json (COCO-17 keypoints, RLE masks).

    OCHuman annotates some people with a mask only (``keypoints`` null or absent): they count as 0
    labelled keypoints, so ``min_keypoints=0`` keeps them (e.g. for silhouette supervision).
    OCHuman's ``area`` is the box area, not the mask area.
    """

    dataset = "ochuman"

    def __init__(self, ann_file: str | Path, image_root: str | Path | None = None, min_keypoints: int = 1,
                 load_masks: bool = False, check_images: bool = False) -> None:
        super().__init__(ann_file, image_root, convention="coco17", min_keypoints=min_keypoints,
                         include_crowd=False, load_masks=load_masks, check_images=check_images)
