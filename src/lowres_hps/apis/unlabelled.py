"""Unlabelled real people for self-supervised training: person boxes and masks, no keypoints (``people.json``).

:func:`collect_unlabelled_people` turns a user's images, folders of images and videos into one COCO-format file
that :class:`~lowres_hps.data.coco.CocoKeypointsReader` reads with ``min_keypoints=0, load_masks=True``:

- **videos** (a static camera): people found by a detector, their masks by background subtraction, as
  :func:`~lowres_hps.apis.adaptation.collect_silhouette_crops` does (people who stand alone and fill their box);
  each frame that gives people is saved as ``images/<video stem>_<frame, 1-based, 6 digits>.jpg``;
- **still images**: people and their masks from an ``image_segmenter`` (e.g. :func:`mili_image_segmenter`, MILI's
  mask head); the images are not copied: their ``file_name`` is their absolute path.

Layout of ``out_dir``::

    people.json          COCO: images, annotations (bbox, RLE segmentation, area, 17 zero keypoints), categories
    images/              the video frames that have people (always made, so that it is the reader's default
                         image root: pass ``image_root=None`` or ``out_dir / "images"``)

Each annotation's ``segmentation`` is a compressed COCO RLE of the person's full-image (H, W) 0/1 mask, ``area`` its
pixel count and ``score`` the detector's score. Bad inputs (missing, unreadable) are reported and the others
collected; a moving camera is an :class:`~lowres_hps.apis.adaptation.AdaptationError`, as in ``lowres-hps adapt``.
"""
from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from lowres_hps.apis.adaptation import AdaptationError, FrameCounts, static_camera_detections, touching_boxes
from lowres_hps.apis.inputs import (
    InputError,
    InputSource,
    VideoReader,
    box_problem_in_image,
    collect_inputs,
    load_image,
)
from lowres_hps.body.keypoints import get_convention
from lowres_hps.imaging.foreground import ForegroundConfig, person_silhouettes

__all__ = ["IMAGES_FOLDER", "PEOPLE_FILE", "TEACHER_FILE", "MILIImageSegmenter", "UnlabelledReport",
           "collect_unlabelled_people", "label_people", "mili_image_segmenter"]

PEOPLE_FILE = "people.json"
"""The COCO file :func:`collect_unlabelled_people` writes in its ``out_dir``."""
TEACHER_FILE = "people_teacher.json"
"""The copy of ``people.json`` with a 2D teacher's keypoints that :func:`label_people` writes next to it."""
IMAGES_FOLDER = "images"
"""The folder of ``out_dir`` with the saved video frames; their ``file_name`` is relative to it."""
JPEG_QUALITY = 95
_CONVENTION = "coco17"  # the annotations carry COCO's 17 keypoints, all unlabelled (v = 0)

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
ImageSegmenter = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class UnlabelledReport:
    """What :func:`collect_unlabelled_people` read and kept.

    Attributes:
        source: the inputs' names, comma-joined.
        images_read: still images decoded.
        frames_read: video frames used (within ``frame_range`` / ``max_frames``).
        people: people written.
        rejected: reason -> count of the people (and inputs) left out.
        masks: input name -> the segmentation that made its masks.
        problems: one message per input that could not be used (it names the file), or used only in part.
    """

    source: str
    images_read: int = 0
    frames_read: int = 0
    people: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def why(self) -> str:
        """The rejected reasons in one phrase, e.g. ``"3 touching another person, 1 unreadable input"``."""
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items())) or "none"

    def summary(self) -> str:
        head = (f"{self.source}: {self.images_read} images and {self.frames_read} video frames read; "
                f"{self.people} people kept; left out: {self.why()}")
        lines = [head]
        lines += [f"  masks of {name}: {how}" for name, how in self.masks.items()]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


class _CocoWriter:
    """The images and person annotations of ``people.json``, numbered from 1 in the order added."""

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._zeros = [0] * (3 * len(get_convention(_CONVENTION)))

    def add_image(self, file_name: str, height: int, width: int, **extra: Any) -> int:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width),
                            **extra})
        return image_id

    def add_person(self, image_id: int, box: np.ndarray, score: float, mask: np.ndarray) -> None:
        """``box`` (4,) ``x, y, w, h``; ``mask`` (H, W) 0/1 over the whole image."""
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")  # bytes are not json
        self.annotations.append({
            "id": len(self.annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [round(float(v), 3) for v in box], "area": int(mask.sum()), "segmentation": rle,
            "keypoints": list(self._zeros), "num_keypoints": 0, "score": round(float(score), 4)})

    def write(self, path: Path, info: dict[str, Any]) -> None:
        convention = get_convention(_CONVENTION)
        data = {"info": info, "images": self.images, "annotations": self.annotations,
                "categories": [{"id": 1, "name": "person", "supercategory": "person",
                                "keypoints": list(convention.names), "skeleton": []}]}
        partial = path.with_name(path.name + ".partial")  # a crash never leaves half a file under the real name
        partial.write_text(json.dumps(data))
        os.replace(partial, path)


@dataclass
class _Filters:
    detect_every: int
    min_score: float
    min_fill: float
    min_height: float


def _checked_boxes(boxes, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"{what} gave {len(boxes)} boxes but {len(scores)} scores")
    return boxes, scores


def _left_out(box: np.ndarray, alone: bool, filters: _Filters, width: int, height: int) -> str | None:
    """Why a person is left out by the checks videos and still images share, or None."""
    if not alone:
        return "touching another person"
    if box[3] < filters.min_height:
        return f"shorter than {filters.min_height:g} px"
    if box_problem_in_image(box, width, height) is not None:
        return "box outside the image"
    return None


def _usable(boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: finite boxes with positive size (person_silhouettes refuses others)."""
    return np.isfinite(boxes).all(1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"cannot encode a JPEG for {path}")
    path.write_bytes(data.tobytes())


def _video_people(
    reader: VideoReader, name: str, stem: str, detector: Detector, writer: _CocoWriter, images_dir: Path,
    report: UnlabelledReport, rejected: Counter[str], filters: _Filters, frame_range: tuple[int, int] | None,
    max_frames: int | None, foreground: ForegroundConfig | None, tick: Callable[[], None],
) -> None:
    """The people of one static-camera video, as :func:`~lowres_hps.apis.adaptation.collect_silhouette_crops`
    finds them, with their full-frame silhouettes; frames with people are saved under ``images_dir``."""
    counts = FrameCounts()
    try:
        for index, frame, mask, boxes, scores in static_camera_detections(
                reader, detector, counts, source=name, frame_range=frame_range, max_frames=max_frames,
                foreground=foreground, detect_every=filters.detect_every, min_score=filters.min_score,
                progress=lambda _: tick()):
            if len(boxes):
                _video_frame_people(index + 1, frame, mask, boxes, scores, name, stem, writer, images_dir, rejected,
                                    filters)
    except AdaptationError as exc:
        raise AdaptationError(f"{exc}; or leave this video out of the inputs") from None
    report.frames_read += counts.used
    if counts.used and not counts.with_masks:
        config = foreground or ForegroundConfig()
        report.problems.append(f"{name}: all {counts.used} frames used fell within the background model's warm-up "
                               f"of {config.warmup_frames} frames, or had too much foreground: no silhouettes")
    if reader.problem and not counts.stopped:
        report.problems.append(reader.problem)


def _video_frame_people(number: int, frame: np.ndarray, mask: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                        name: str, stem: str, writer: _CocoWriter, images_dir: Path, rejected: Counter[str],
                        filters: _Filters) -> None:
    """One frame's detections: the people who pass the checks are written with their silhouettes, and the frame
    saved under ``images_dir`` when it has any."""
    valid = _usable(boxes)
    if not valid.all():
        rejected["invalid box from the detector"] += int((~valid).sum())
    boxes, scores = boxes[valid], scores[valid]
    touching = touching_boxes(boxes)
    masks, fill = person_silhouettes(mask, boxes, min_fill=filters.min_fill)
    height, width = frame.shape[:2]
    kept = []
    for box, score, alone, person_mask, person_fill in zip(boxes, scores, ~touching, masks, fill):
        reason = _left_out(box, alone, filters, width, height)
        if reason is not None:
            rejected[reason] += 1
        elif person_fill < filters.min_fill:
            rejected[f"box under {filters.min_fill:.0%} foreground"] += 1
        else:
            kept.append((box, score, person_mask))
    if not kept:
        return
    file_name = f"{stem}_{number:06d}.jpg"
    _write_jpeg(images_dir / file_name, frame)
    image_id = writer.add_image(file_name, height, width, source=name, frame=number)
    for box, score, person_mask in kept:
        writer.add_person(image_id, box, score, person_mask)


def _image_people(
    path: Path, name: str, segmenter: ImageSegmenter, writer: _CocoWriter, rejected: Counter[str], filters: _Filters,
) -> None:
    """The people of one still image and their masks from ``segmenter``; the image is referenced by its absolute
    path. Raises :class:`InputError` for an unreadable image."""
    image, _ = load_image(path)
    height, width = image.shape[:2]
    found = segmenter(image)
    boxes, scores = _checked_boxes(found[0], found[1], "the image segmenter")
    masks = np.asarray(found[2])
    if masks.shape != (len(boxes), height, width):
        raise ValueError(f"the image segmenter gave masks of shape {masks.shape} for {len(boxes)} people on a "
                         f"{height} x {width} image (needs (N, H, W) over the whole image): {path}")
    keep = scores >= filters.min_score
    boxes, scores, masks = boxes[keep], scores[keep], masks[keep] > 0
    valid = _usable(boxes)
    if not valid.all():
        rejected["invalid box from the segmenter"] += int((~valid).sum())
    boxes, scores, masks = boxes[valid], scores[valid], masks[valid]
    touching = touching_boxes(boxes)
    kept = []
    for box, score, alone, person_mask in zip(boxes, scores, ~touching, masks):
        reason = _left_out(box, alone, filters, width, height)
        if reason is not None:
            rejected[reason] += 1
        elif not person_mask.any():
            rejected["empty mask"] += 1
        else:
            kept.append((box, score, person_mask))
    if kept:
        image_id = writer.add_image(str(path.resolve()), height, width, source=name)
        for box, score, person_mask in kept:
            writer.add_person(image_id, box, score, person_mask)


def _segmenter_name(segmenter: ImageSegmenter) -> str:
    name = getattr(segmenter, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"image segmenter {getattr(segmenter, '__qualname__', type(segmenter).__name__)}"


def _unique_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3`` ... when two videos share a name (their frames must not collide)."""
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate)
    return candidate


def collect_unlabelled_people(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    detector: Detector,
    image_segmenter: ImageSegmenter | None = None,
    *,
    frame_range: tuple[int, int] | None = None,
    max_frames: int | None = None,
    detect_every: int = 2,
    min_score: float = 0.4,
    min_fill: float = 0.2,
    min_height: float = 20.0,
    foreground: ForegroundConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, UnlabelledReport]:
    """Collect unlabelled people (boxes and masks) from images, folders and static-camera videos into one COCO file.

    Args:
        inputs: image files, folders (the images directly inside), video files or streams
            (:func:`~lowres_hps.apis.inputs.collect_inputs`).
        out_dir: where ``people.json`` and ``images/`` (the video frames that have people) are written.
        detector: ``detector(frame (H, W, 3) uint8 RGB) -> (boxes (N, 4) x, y, w, h, scores (N,))``, for videos.
        image_segmenter: ``image_segmenter(image (H, W, 3) uint8 RGB) -> (boxes (N, 4), scores (N,), masks (N, H, W)
            0/1 over the whole image)``, for still images (e.g. :func:`mili_image_segmenter`); None: still images
            are left out (background subtraction needs a video).
        frame_range: 1-based first and last frame of each video to use (inclusive).
        max_frames: use at most this many frames of each video.
        detect_every: run the detector on every n-th video frame with a foreground mask.
        min_score: people scoring below are ignored (videos and images).
        min_fill: video people whose box is less than this fraction foreground are left out.
        min_height: people whose box is shorter (px) are left out.
        foreground: background subtraction settings (videos).
        progress: called after each still image or video frame read, with the number read so far.

    Returns:
        ``(path of people.json, report)``.

    Raises:
        AdaptationError: a video's camera moves (the message names the video), or no person was collected at all
            (the message says why, in one line).
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be a positive integer, got {detect_every!r}")
    out_dir = Path(out_dir)
    images_dir = out_dir / IMAGES_FOLDER
    images_dir.mkdir(parents=True, exist_ok=True)
    names = [str(raw) for raw in inputs]
    report = UnlabelledReport(source=", ".join(names))
    rejected: Counter[str] = Counter()
    filters = _Filters(detect_every, min_score, min_fill, min_height)
    writer = _CocoWriter()
    method = (foreground or ForegroundConfig()).method.upper()
    read = 0

    def tick() -> None:
        nonlocal read
        read += 1
        if progress is not None:
            progress(read)

    seen_images: set[Path] = set()
    stems: set[str] = set()
    for raw, name in zip(inputs, names):
        sources, errors = collect_inputs([raw])
        for error in errors:
            rejected["unreadable input"] += 1
            report.problems.append(str(error))
        images: list[InputSource] = [s for s in sources if s.kind == "image"]
        videos: list[InputSource] = [s for s in sources if s.kind == "video"]
        if images and image_segmenter is None:
            rejected["still image without an image segmenter"] += len(images)
            report.problems.append(f"{name}: {len(images)} still image(s) left out: their person masks need an image "
                                   f"segmenter (e.g. MILI's mask head); background subtraction works on videos only")
            images = []
        for source in images:
            resolved = source.path.resolve()
            if resolved in seen_images:
                rejected["image given twice"] += 1
                continue
            seen_images.add(resolved)
            try:
                _image_people(source.path, name, image_segmenter, writer, rejected, filters)
            except InputError as exc:
                rejected["unreadable input"] += 1
                report.problems.append(str(exc))
                continue
            report.images_read += 1
            report.masks[name] = _segmenter_name(image_segmenter)
            tick()
        for source in videos:
            shown = source.stream or str(source.path)
            try:
                reader = VideoReader(source.stream or source.path)
            except InputError as exc:
                rejected["unreadable input"] += 1
                report.problems.append(str(exc))
                continue
            report.masks[name] = f"background subtraction ({method})"
            with reader:
                _video_people(reader, shown, _unique_stem(source.path.stem, stems), detector, writer, images_dir,
                              report, rejected, filters, frame_range, max_frames, foreground, tick)
    report.people = len(writer.annotations)
    report.rejected = dict(rejected)
    if not report.people:
        problem = ""
        if report.problems:
            more = len(report.problems) - 1
            problem = f"; {report.problems[0]}" + (f" (and {more} more problems)" if more else "")
        found = f"left out: {report.why()}" if report.rejected else f"nobody found scoring at least {min_score:g}"
        raise AdaptationError(f"no person collected from {report.source} ({report.images_read} images and "
                              f"{report.frames_read} video frames read; {found}){problem}")
    path = out_dir / PEOPLE_FILE
    info = {"description": "lowres-hps unlabelled people", "sources": names, "masks": dict(report.masks),
            "date": datetime.date.today().isoformat()}
    writer.write(path, info)
    return path, report


class MILIImageSegmenter:
    """People and their instance masks in a still image from a MILI network's detector and mask head (an
    ``image_segmenter`` for :func:`collect_unlabelled_people`).

    Calling it on an (H, W, 3) uint8 RGB image gives ``(boxes (N, 4) float64 x, y, w, h, scores (N,), masks
    (N, H, W) uint8 0/1)``: :meth:`~lowres_hps.apis.detector.MILIDetector.detect`'s masks, already pasted from
    the RoI grid into the whole image.
    """

    def __init__(self, detector) -> None:
        if not getattr(detector, "masks", False):
            raise ValueError("the MILIDetector must be made with masks=True")
        self.detector = detector
        self.name = f"{detector.name} mask head"

    def __repr__(self) -> str:
        return f"MILIImageSegmenter({self.detector!r})"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self.detector.detect(image)
        return found.boxes, found.scores, found.masks.astype(np.uint8)


def mili_image_segmenter(model: Any = "mili_multipose", mask_threshold: float = 0.3, *, device: str = "cpu",
                         **detector_options: Any) -> MILIImageSegmenter:
    """An ``image_segmenter`` from a MILI model with a mask head (:class:`MILIImageSegmenter`).

    Args:
        model: a registered MILI model's name, its ``.safetensors`` checkpoint, or a loaded
            :class:`~lowres_hps.models.mili.MILINet` / MILI estimator (not an ONNX export: it has no mask head).
        mask_threshold: mask probability from which a pixel belongs to the person (0.3: see
            :class:`~lowres_hps.apis.detector.MILIDetector`).
        device: where the network runs.
        detector_options: more :class:`~lowres_hps.apis.detector.MILIDetector` options (``upscale``,
            ``min_score``, ...).
    """
    from lowres_hps.apis.detector import MILIDetector

    if isinstance(model, (str, Path)) and not str(model).lower().endswith(".onnx"):
        from lowres_hps.apis.registry import load_model

        loaded = load_model(model, device)
        task = getattr(getattr(loaded, "card", None), "task", None)
        if task != "mili":
            raise ValueError(f"{model}: a {task} model, not a MILI model (person masks come from MILI's mask head)")
        model = loaded
    return MILIImageSegmenter(MILIDetector(model, device=device, masks=True, mask_threshold=mask_threshold,
                                           **detector_options))


def label_people(people_file: str | Path, labeler, out_file: str | Path | None = None,
                 image_root: str | Path | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[Path, int]:
    """Give the people of a people file a high-resolution 2D teacher's keypoints (pseudo-labels, no human labels).

    Each person is labelled at its image's own resolution by ``labeler`` (a
    :class:`~lowres_hps.apis.labeling.TeacherLabeler`: joints it is unsure of stay unlabelled, ``v = 0``); boxes,
    masks and everything else are kept as they are, and people with too few joints are kept with none, so the
    file still serves the mask and pretext losses. Ground truth already in the file is discarded. Written where
    the reader's default image root differs, the images' file names become absolute paths.

    Args:
        people_file: a COCO file of people (:func:`collect_unlabelled_people`'s ``people.json`` or any with boxes).
        labeler: the teacher(s) and their filters.
        out_file: where to write (default: :data:`TEACHER_FILE` next to ``people_file``).
        image_root: the folder of the images (default: the reader's, e.g. ``images/`` next to the file).
        progress: called with 1 after each image.

    Returns:
        ``(out_file, people with at least one teacher joint)``.
    """
    from lowres_hps.data.reader import default_image_root

    people_file = Path(people_file)
    data = json.loads(people_file.read_text())
    root = Path(image_root) if image_root is not None else default_image_root(people_file)
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    zeros = [0.0] * (3 * len(get_convention(_CONVENTION)))
    labelled = 0
    for image in data["images"]:
        people = by_image.get(image["id"], [])
        if not people:
            continue
        path = root / image["file_name"]
        try:
            frame, _ = load_image(path)
        except (OSError, ValueError, InputError) as exc:
            raise AdaptationError(f"{people_file}: cannot read image {path}: {exc}") from exc
        found = labeler.label(frame, np.array([ann["bbox"] for ann in people], dtype=np.float64))
        for ann, teacher in zip(people, found):
            if teacher is None:  # fewer joints than the labeler's minimum: kept for the other losses, unlabelled
                ann.update(keypoints=list(zeros), num_keypoints=0)
                ann.pop("keypoint_scores", None)
            else:
                ann.update(keypoints=teacher["keypoints"], keypoint_scores=teacher["keypoint_scores"],
                           num_keypoints=teacher["num_keypoints"])
                labelled += 1
        if progress is not None:
            progress(1)
    data.setdefault("info", {})["keypoints"] = {"teachers": list(labeler.names), "source": str(people_file),
                                                "date": datetime.date.today().isoformat()}
    out = Path(out_file) if out_file is not None else people_file.with_name(TEACHER_FILE)
    if default_image_root(out).resolve() != root.resolve():  # written elsewhere: the images keep their place
        for image in data["images"]:
            image["file_name"] = str((root / image["file_name"]).resolve())
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, out)
    return out, labelled
