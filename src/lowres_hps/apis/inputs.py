"""Inputs of ``lowres-hps predict``: image files, folders of images and videos, read defensively.

Every problem is a :class:`InputError` whose message names the file, so the caller can report it and go on
with the rest. Images that are usable after a conversion (grayscale, alpha, 16-bit, float) are converted to
8-bit RGB with a note saying what was done. Images above :data:`MAX_IMAGE_PIXELS` are refused before they
are decoded; Pillow's own decompression-bomb limit (and its warning) is replaced by that one.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from lowres_hps.data.errors import load_json

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MIN_IMAGE_SIDE",
    "MAX_IMAGE_PIXELS",
    "MAX_BOX_TO_IMAGE",
    "MAX_CONSECUTIVE_BAD_FRAMES",
    "InputError",
    "InputSource",
    "collect_inputs",
    "is_stream",
    "load_image",
    "to_rgb8",
    "VideoReader",
    "PersonBoxes",
    "box_problem_in_image",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                              ".jp2", ".pbm", ".pgm", ".ppm", ".pnm"})
VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mov", ".mkv"})
MIN_IMAGE_SIDE = 2
"""Images narrower or lower than this (px) are rejected: nobody can be seen in them."""
MAX_IMAGE_PIXELS = 2**28
"""Images with more pixels (268 MP, 805 MB decoded) are refused, read from their header before decoding.
Below it, memory stays bounded downstream: the detector works on a reduced copy and huge person crops are
reduced before the protocol (:mod:`lowres_hps.apis.detector`, :mod:`lowres_hps.apis.predictor`)."""
MAX_BOX_TO_IMAGE = 4.0
"""A person box wider or taller than this many times the image's larger side is refused as absurd."""
MAX_CONSECUTIVE_BAD_FRAMES = 25
"""A video stops being read after this many frames in a row that fail to decode (its end, or a broken tail)."""

_JPEG_MAGIC = b"\xff\xd8\xff"


class InputError(ValueError):
    """An input that cannot be used (missing, unreadable, truncated, too small); the message names it."""


@dataclass(frozen=True)
class InputSource:
    """One file or stream to predict on. A stream (a camera or a URL OpenCV opens) is a video whose ``stream``
    is what to open and whose ``path`` is a file-safe name for its outputs."""

    path: Path
    kind: Literal["image", "video"]
    stream: str | None = None


_STREAM = re.compile(r"^(camera:\d+|[A-Za-z][A-Za-z0-9+.-]*://.+)$")


def is_stream(raw: str | Path) -> bool:
    """``camera:N`` (a local camera by index) or a URL (``rtsp://``, ``http://``, ``file://`` ...) that OpenCV's
    video capture opens; not a file path."""
    return isinstance(raw, str) and bool(_STREAM.match(raw))


def _stream_name(raw: str) -> str:
    """A file-safe output name of a stream, without dots (it is used as a file stem):
    ``rtsp://cam.local:554/live`` -> ``rtsp_cam_local_554_live``."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", raw).strip("_") or "stream"


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

    A folder contributes the images directly inside it (by extension, sorted by name). ``camera:N`` and URLs are
    streams (:func:`is_stream`), read as videos without a known length. A file is a video by
    extension (:data:`VIDEO_EXTENSIONS`), an image by extension (:data:`IMAGE_EXTENSIONS`), else whatever
    OpenCV can open it as. Whether an image decodes is checked later, by :func:`load_image`.

    Returns:
        ``(sources, errors)``: one error per path that is missing, an empty folder or unreadable.
    """
    sources: list[InputSource] = []
    errors: list[InputError] = []
    for raw in paths:
        if is_stream(raw):  # opened when read: a camera or a URL cannot be checked without taking frames
            sources.append(InputSource(Path(_stream_name(str(raw))), "video", stream=str(raw)))
            continue
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


@contextlib.contextmanager
def _pillow_without_bomb_check() -> Iterator[None]:
    """Pillow warns (and above twice its limit refuses) on images over ``Image.MAX_IMAGE_PIXELS``, with a
    raw DecompressionBombWarning; :func:`load_image` applies its own limit instead, with a clear message."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (Pillow opens lazily: nothing is decoded); None when Pillow
    cannot read the format (OpenCV may still decode it)."""
    try:
        with _pillow_without_bomb_check(), Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        return None


def _too_large(width: int, height: int, max_pixels: int) -> str:
    return (f"image too large: {width} x {height} px ({width * height / 1e6:.0f} MP) is above the limit of "
            f"{max_pixels / 1e6:.0f} MP")


def _jpeg_truncation(data: bytes) -> str | None:
    """Why a JPEG is truncated or corrupt, else None.

    OpenCV's libjpeg only warns on a premature end and returns the image padded with grey, so the data is
    decoded once more by Pillow, which raises instead; draft mode (1/8 scale) keeps that cheap while still
    reading every entropy-coded byte.
    """
    try:
        with _pillow_without_bomb_check(), Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        return str(exc)
    return None


def _alpha_note(data: bytes) -> str | None:
    """Pillow reads only the header here: OpenCV's colour decode below drops alpha without saying so."""
    try:
        with _pillow_without_bomb_check(), Image.open(io.BytesIO(data)) as image:
            return "RGBA image: alpha channel ignored" if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") else None
    except (OSError, SyntaxError, ValueError):
        return None


def load_image(path: str | Path, max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read an image file as (H, W, 3) uint8 RGB, converting what can be converted.

    The file is decoded with ``cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR``: bit depth and grayscale are
    kept (then converted by :func:`to_rgb8`, with a note) and the EXIF orientation is applied, as in
    :func:`lowres_hps.imaging.io.read_image_rgb`, so that pixel coordinates agree with the dataset readers.

    Returns:
        ``(image, notes)``: notes say which conversions were made.

    Raises:
        InputError: missing, empty, undecodable, truncated (JPEG), smaller than :data:`MIN_IMAGE_SIDE`, or
            with more than ``max_pixels`` pixels (default :data:`MAX_IMAGE_PIXELS`; checked from the header,
            before decoding, where Pillow can read it).
    """
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    data = path.read_bytes()
    if not data:
        raise InputError(f"empty file: {path}")
    size = _header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(f"{_too_large(*size, max_pixels)}: {path}")
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except (cv2.error, MemoryError) as exc:  # e.g. above OpenCV's own pixel limit, or out of memory
        raise InputError(f"cannot decode image ({type(exc).__name__}: {str(exc).strip().splitlines()[-1]}): "
                         f"{path}") from None
    if decoded is None:
        raise InputError(f"cannot decode image (corrupt, truncated or unsupported format): {path}")
    if decoded.shape[0] * decoded.shape[1] > max_pixels:
        raise InputError(f"{_too_large(decoded.shape[1], decoded.shape[0], max_pixels)}: {path}")
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
    """The frames of a video file or stream (:func:`is_stream`: ``camera:N``, a URL) as (H, W, 3) uint8 RGB, with a
    report of frames that could not be decoded. A stream has no frame count: it is read until it ends, fails
    :data:`MAX_CONSECUTIVE_BAD_FRAMES` times in a row, or the caller stops.

    Iterating yields ``(frame_index, frame)``; the index counts every frame of the stream, decoded or not.
    A frame OpenCV cannot decode is skipped and the reading goes on (OpenCV's ffmpeg backend moves past it):
    those followed by a good frame are listed in :attr:`failed_frames`. Reading stops at the announced frame
    count, or after :data:`MAX_CONSECUTIVE_BAD_FRAMES` failures in a row (the end of the stream, or a
    truncated file); when that happens before the announced count, :attr:`problem` says so. Containers that
    only estimate their frame count (e.g. some MKV) may be reported a frame short.

    Raises:
        InputError: the file cannot be opened as a video.
    """

    def __init__(self, path: str | Path) -> None:
        stream = str(path) if is_stream(path) else None
        self.path = Path(_stream_name(stream)) if stream else Path(path)
        if stream is not None and stream.startswith("camera:"):
            self._capture = cv2.VideoCapture(int(stream.removeprefix("camera:")))
        else:
            self._capture = cv2.VideoCapture(stream or str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            if stream is not None:
                raise InputError(f"cannot open the stream (no such camera, unreachable URL, or this OpenCV build "
                                 f"cannot read it): {stream}")
            raise InputError(f"cannot open video (corrupt, truncated or unsupported format): {self.path}")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count: int | None = int(count) if count and count > 0 else None
        self.frames_read = 0
        """Frame indices consumed: the index of the last decoded frame + 1."""
        self.frames_decoded = 0
        self.failed_frames: list[int] = []
        """Indices of the frames that could not be decoded, between decoded ones."""
        self._done = False

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._done:
            raise RuntimeError(f"video already read: {self.path}")
        failures: list[int] = []  # failed indices since the last decoded frame
        index = 0
        try:
            while self.frame_count is None or index < self.frame_count:
                ok, frame = self._capture.read()
                if not ok or frame is None or frame.size == 0:
                    failures.append(index)
                    if len(failures) >= MAX_CONSECUTIVE_BAD_FRAMES:
                        break
                else:
                    self.failed_frames.extend(failures)
                    failures = []
                    rgb, _ = to_rgb8(frame)
                    self.frames_read, self.frames_decoded = index + 1, self.frames_decoded + 1
                    yield index, rgb
                index += 1
        finally:
            self._done = True
            self._capture.release()

    @property
    def problem(self) -> str | None:
        """After iteration: why fewer frames were decoded than announced, else None (see also
        :attr:`failed_frames`)."""
        if not self._done:
            return None
        if self.frames_decoded == 0:
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


def _bbox_problem(bbox) -> str | None:
    """Why a COCO ``bbox`` value is no usable person box ``x, y, w, h``, else None."""
    if bbox is None:
        return "bbox is null"
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"bbox must be 4 numbers x, y, w, h, got {bbox!r}"
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return f"bbox must be 4 numbers x, y, w, h, got {bbox!r}"
    if not all(math.isfinite(v) for v in values):
        return f"bbox has non-finite values {values}"
    if not (values[2] > 0 and values[3] > 0):
        return f"bbox has zero or negative size (w={values[2]:g}, h={values[3]:g})"
    return None


def box_problem_in_image(box: np.ndarray, width: int, height: int) -> str | None:
    """Why a person box ``x, y, w, h`` cannot be used on a ``width x height`` image, else None: it lies
    wholly outside the image (only black padding would be seen), or it is absurdly large (a side above
    :data:`MAX_BOX_TO_IMAGE` times the image's larger side)."""
    x, y, w, h = (float(v) for v in box)
    limit = MAX_BOX_TO_IMAGE * max(width, height)
    if w > limit or h > limit:
        return (f"box {w:g} x {h:g} px is more than {MAX_BOX_TO_IMAGE:g} times the {width} x {height} image")
    # The image spans [-0.5, W - 0.5] x [-0.5, H - 0.5] (pixel centres at integers).
    if x + w <= -0.5 or y + h <= -0.5 or x >= width - 0.5 or y >= height - 0.5:
        return f"box [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the {width} x {height} image"
    return None


@dataclass
class PersonBoxes:
    """Person boxes of a COCO annotation file, looked up by image path (``--boxes``).

    Attributes:
        image_ids: ``file_name`` as written in the file -> image id.
        boxes: image id -> (N, 4) float64 ``x, y, w, h``.
        skipped_without_keypoints: person boxes left out because they have no labelled keypoint.
        annotation_ids: image id -> (N,) the annotation id of each box (for messages).
        problems: one message per person annotation left out as unusable (its id and why).
    """

    image_ids: dict[str, int]
    boxes: dict[int, np.ndarray]
    skipped_without_keypoints: int = 0
    _by_basename: dict[str, list[int]] = field(default_factory=dict, repr=False)
    annotation_ids: dict[int, list] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_coco(cls, path: str | Path, all_boxes: bool = False) -> PersonBoxes:
        """Read the boxes of the person annotations.

        By default only people with labelled keypoints (``num_keypoints > 0``, or any ``v > 0`` in
        ``keypoints``) are kept: those COCO's keypoint evaluation scores. ``all_boxes`` keeps every person box.
        Crowd regions (``iscrowd``) are always left out. Person annotations that cannot be used (no or a
        malformed ``bbox``, zero or negative size, an ``image_id`` not in ``images``) are left out and listed
        in :attr:`problems` with their annotation id.
        """
        dataset = load_json(path)
        if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
            raise ValueError(f"not a COCO annotation file (no 'images' list): {path}")
        image_ids: dict[str, int] = {}
        for entry in dataset["images"]:
            if "file_name" not in entry or "id" not in entry:
                raise ValueError(f"image entry without 'file_name' and 'id' in {path}: {entry}")
            image_ids[str(entry["file_name"])] = int(entry["id"])
        person_ids = {c["id"] for c in dataset.get("categories", []) if c.get("name") == "person"} or {1}
        per_image: dict[int, list[list[float]]] = {i: [] for i in image_ids.values()}
        ann_ids: dict[int, list] = {i: [] for i in image_ids.values()}
        skipped, problems = 0, []
        for n, ann in enumerate(dataset.get("annotations", [])):
            if not isinstance(ann, dict):
                problems.append(f"annotation #{n} (no id): not an object")
                continue
            if ann.get("category_id", 1) not in person_ids or ann.get("iscrowd", 0):
                continue
            ann_id = ann.get("id", f"#{n} (no id)")
            if "num_keypoints" in ann:
                labelled = bool(ann["num_keypoints"])
            else:
                labelled = any(v > 0 for v in (ann.get("keypoints") or [])[2::3])
            if not (labelled or all_boxes):
                skipped += 1
                continue
            problem = "no bbox" if "bbox" not in ann else _bbox_problem(ann["bbox"])
            image_id = ann.get("image_id")
            if problem is None and (not isinstance(image_id, int) or image_id not in per_image):
                problem = f"image_id {image_id!r} is not in the file's images"
            if problem is not None:
                problems.append(f"annotation {ann_id}: {problem}")
                continue
            per_image[image_id].append([float(v) for v in ann["bbox"]])
            ann_ids[image_id].append(ann_id)
        boxes = {i: np.asarray(b, dtype=np.float64).reshape(-1, 4) for i, b in per_image.items()}
        by_basename: dict[str, list[int]] = {}
        for name, image_id in image_ids.items():
            by_basename.setdefault(Path(name).name, []).append(image_id)
        return cls(image_ids, boxes, skipped, by_basename, ann_ids, problems)

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
