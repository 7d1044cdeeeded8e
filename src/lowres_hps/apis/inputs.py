"""Inputs of ``lowres-hps predict``: image files, folders of images and videos, read defensively.

Every problem is a :class:`InputError` whose message names the file, so the caller can report it and go on
with the rest. Images that are usable after a conversion (grayscale, alpha, 16-bit, float) are converted to
8-bit RGB with a note saying what was done.
"""
from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from lowres_hps.data.coco import CocoPeople
from lowres_hps.data.errors import load_json

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MIN_IMAGE_SIDE",
    "InputError",
    "InputSource",
    "collect_inputs",
    "load_image",
    "to_rgb8",
    "VideoReader",
    "PersonBoxes",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                              ".jp2", ".pbm", ".pgm", ".ppm", ".pnm"})
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv"})
MIN_IMAGE_SIDE = 2
"""Images narrower or lower than this (px) are rejected: nobody can be seen in them."""

_JPEG_MAGIC = b"\xff\xd8\xff"


class InputError(ValueError):
    """An input that cannot be used (missing, unreadable, truncated, too small); the message names it."""


@dataclass(frozen=True)
class InputSource:
    """One file to predict on."""

    path: Path
    kind: Literal["image", "video"]


def _probe_kind(path: Path) -> Literal["image", "video"] | None:
    """Image or video for a file without a known extension: OpenCV's image signatures, then a video decode."""
    if cv2.haveImageReader(str(path)):
        return "image"
    capture = cv2.VideoCapture(str(path))
    try:
        return "video" if capture.isOpened() and capture.read()[0] else None
    finally:
        capture.release()


def collect_inputs(paths: Sequence[str | Path]) -> tuple[list[InputSource], list[InputError]]:
    """The files to predict on, in the order given.

    A folder contributes the images directly inside it (by extension, sorted by name). A file is a video by
    extension (:data:`VIDEO_EXTENSIONS`), an image by extension (:data:`IMAGE_EXTENSIONS`), else whatever
    OpenCV can open it as. Whether an image decodes is checked later, by :func:`load_image`.

    Returns:
        ``(sources, errors)``: one error per path that is missing, an empty folder or unreadable.
    """
    sources: list[InputSource] = []
    errors: list[InputError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not images:
                errors.append(InputError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder: {path}"))
            sources.extend(InputSource(p, "image") for p in images)
        elif not path.is_file():
            errors.append(InputError(f"input not found: {path}"))
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            sources.append(InputSource(path, "video"))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            sources.append(InputSource(path, "image"))
        else:
            kind = _probe_kind(path)
            if kind is None:
                errors.append(InputError(f"neither an image nor a video OpenCV can read: {path}"))
            else:
                sources.append(InputSource(path, kind))
    return sources, errors


def to_rgb8(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Convert an image as OpenCV decodes it (BGR order, any depth, 1/3/4 channels) to (H, W, 3) uint8 RGB.

    16-bit samples are divided by 257 (65535 -> 255); float samples are taken as [0, 1] and clipped; one
    channel is repeated; a fourth (alpha) channel is ignored, as ``cv2.IMREAD_COLOR`` does.

    Returns:
        ``(rgb, notes)``: one note per conversion that changed the data.

    Raises:
        ValueError: an unsupported sample type or channel count.
    """
    notes = []
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
        notes.append("16-bit image converted to 8 bits")
    elif image.dtype in (np.float32, np.float64):
        image = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
        notes.append("floating-point image converted to 8 bits (values clipped to [0, 1])")
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported sample type {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        notes.append("grayscale image converted to RGB")
        return np.ascontiguousarray(np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)), notes
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), notes
    if channels == 4:
        notes.append("alpha channel ignored")
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), notes
    raise ValueError(f"unsupported channel count {channels}")


def _jpeg_truncation(data: bytes) -> str | None:
    """Why a JPEG is truncated or corrupt, else None.

    OpenCV's libjpeg only warns on a premature end and returns the image padded with grey, so the data is
    decoded once more by Pillow, which raises instead; draft mode (1/8 scale) keeps that cheap while still
    reading every entropy-coded byte.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        return str(exc)
    return None


def _alpha_note(data: bytes) -> str | None:
    """Pillow reads only the header here: OpenCV's colour decode below drops alpha without saying so."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return "RGBA image: alpha channel ignored" if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") else None
    except (OSError, SyntaxError, ValueError):
        return None


def load_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as (H, W, 3) uint8 RGB, converting what can be converted.

    The file is decoded with ``cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR``: bit depth and grayscale are
    kept (then converted by :func:`to_rgb8`, with a note) and the EXIF orientation is applied, as in
    :func:`lowres_hps.imaging.io.read_image_rgb`, so that pixel coordinates agree with the dataset readers.

    Returns:
        ``(image, notes)``: notes say which conversions were made.

    Raises:
        InputError: missing, empty, undecodable, truncated (JPEG), or smaller than :data:`MIN_IMAGE_SIDE`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    data = path.read_bytes()
    if not data:
        raise InputError(f"empty file: {path}")
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if decoded is None:
        raise InputError(f"cannot decode image (corrupt, truncated or unsupported format): {path}")
    if data.startswith(_JPEG_MAGIC):
        problem = _jpeg_truncation(data)
        if problem is not None:
            raise InputError(f"truncated or corrupt JPEG ({problem}): {path}")
    height, width = decoded.shape[:2]
    if height < MIN_IMAGE_SIDE or width < MIN_IMAGE_SIDE:
        raise InputError(f"image too small ({width} x {height} px, at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}): "
                         f"{path}")
    try:
        image, notes = to_rgb8(decoded)
    except ValueError as exc:
        raise InputError(f"{exc}: {path}") from None
    alpha = None if data.startswith(_JPEG_MAGIC) else _alpha_note(data)
    return image, notes + ([alpha] if alpha else [])


class VideoReader:
    """The frames of a video file as (H, W, 3) uint8 RGB, with a report of frames that could not be decoded.

    Iterating yields ``(frame_index, frame)`` from 0. Decoding stops at the first frame OpenCV cannot read;
    when that happens before the frame count the container announces, :attr:`problem` says so (a truncated
    file or broken frames). Containers that only estimate their frame count (e.g. some MKV) may be reported
    a frame short.

    Raises:
        InputError: the file cannot be opened as a video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise InputError(f"cannot open video (corrupt, truncated or unsupported format): {self.path}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if count and count > 0 else None
        self.frames_read = 0
        self._done = False

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._done:
            raise RuntimeError(f"video already read: {self.path}")
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok or frame is None or frame.size == 0:
                    break
                rgb, _ = to_rgb8(frame)
                yield self.frames_read, rgb
                self.frames_read += 1
        finally:
            self._done = True
            self._capture.release()

    @property
    def problem(self) -> str | None:
        """After iteration: why fewer frames were decoded than announced, else None."""
        if not self._done:
            return None
        if self.frames_read == 0:
            return f"no frame could be decoded: {self.path}"
        if self.frame_count is not None and self.frames_read < self.frame_count:
            return (f"video ended after {self.frames_read} of {self.frame_count} frames "
                    f"(truncated file or broken frames): {self.path}")
        return None

    def close(self) -> None:
        self._done = True
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class PersonBoxes:
    """Person boxes of a COCO annotation file, looked up by image path (``--boxes``).

    Attributes:
        image_ids: ``file_name`` as written in the file -> image id.
        boxes: image id -> (N, 4) float64 ``x, y, w, h``.
        skipped_without_keypoints: person boxes left out because they have no labelled keypoint.
        skipped: ``(annotation id, reason)`` of the annotations that cannot be used (no image, no or a bad box).
    """

    image_ids: dict[str, int]
    boxes: dict[int, np.ndarray]
    skipped_without_keypoints: int = 0
    _by_basename: dict[str, list[int]] = field(default_factory=dict, repr=False)
    skipped: list[tuple] = field(default_factory=list)

    @classmethod
    def from_coco(cls, path: str | Path, all_boxes: bool = False) -> PersonBoxes:
        """Read the boxes of the person annotations.

        By default only people with labelled keypoints (any ``v > 0`` in ``keypoints``, else
        ``num_keypoints > 0``) are kept: those COCO's keypoint evaluation scores. ``all_boxes`` keeps every person
        box. Crowd regions (``iscrowd``) are left out, and annotations without a usable box or image are recorded
        in :attr:`skipped` (the filters of :class:`~lowres_hps.data.coco.CocoPeople`).
        """
        dataset = load_json(path)
        if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
            raise ValueError(f"not a COCO annotation file (no 'images' list): {path}")
        image_ids: dict[str, int] = {}
        for entry in dataset["images"]:
            if "file_name" not in entry or "id" not in entry:
                raise ValueError(f"image entry without 'file_name' and 'id' in {path}: {entry}")
            image_ids[str(entry["file_name"])] = int(entry["id"])
        people = CocoPeople({"annotations": [], **dataset}, path, min_keypoints=0 if all_boxes else 1)
        per_image: dict[int, list[np.ndarray]] = {i: [] for i in image_ids.values()}
        for person in people.people:
            per_image[int(person.image["id"])].append(person.bbox)
        skipped = sum(people.filtered.values()) - people.filtered.get("crowd", 0)
        boxes = {i: np.asarray(b, dtype=np.float64).reshape(-1, 4) for i, b in per_image.items()}
        by_basename: dict[str, list[int]] = {}
        for name, image_id in image_ids.items():
            by_basename.setdefault(Path(name).name, []).append(image_id)
        return cls(image_ids, boxes, skipped, by_basename, people.skipped)

    def lookup(self, path: str | Path) -> int:
        """Image id of ``path``: the longest trailing part of the path equal to a ``file_name``, else the
        file's name equal to the name of exactly one ``file_name``.

        Raises:
            InputError: no image matches, or the name matches several.
        """
        path = Path(path)
        parts = path.parts
        for start in range(len(parts)):
            image_id = self.image_ids.get(Path(*parts[start:]).as_posix())
            if image_id is not None:
                return image_id
        candidates = self._by_basename.get(path.name, [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise InputError(f"{len(candidates)} images of --boxes are named {path.name!r}; give a path that "
                             f"ends with their file_name: {path}")
        raise InputError(f"image not in the --boxes annotations: {path}")
