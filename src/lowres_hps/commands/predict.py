"""``lowres-hps predict``: 2D keypoints and 3D bodies of the people in images, folders and videos.

Writes, in ``--out``:

- ``predictions.json``: COCO keypoint results, one entry per person: ``image_id``, ``category_id`` 1,
  ``keypoints`` ``[x, y, score] * K`` in original image pixels (the model's convention, COCO-17 for the
  default), ``score`` and ``bbox`` (the person box it was cropped from). The person score is the mean of
  the keypoint scores, times the detector's box score when people come from the detector. When a 3D model
  ran, also ``keypoints_3d`` (``[[x, y, z], ...]`` per joint, metres, in the 3D model's convention, in the
  ASSUMED camera of the whole image: focal ``sqrt(W^2 + H^2)`` px, principal point at the image centre),
  ``keypoints_3d_projected`` (``[[x, y], ...]``: those keypoints seen by that camera, original image pixels;
  what ``lowres-hps evaluate kp2d --from 3d`` scores), ``body`` (the body model's pose vector, the crop
  camera, the root translation and that assumed camera; see
  :class:`~lowres_hps.apis.predictor.PersonPrediction`) and, with ``--mesh-format``, ``mesh`` (the mesh
  file's path relative to ``--out``).
- ``meshes/<image stem>_<person>.<obj|ply|glb>`` (``<video stem>_<frame>_<person>`` for video frames) with
  ``--mesh-format``: each person's mesh in that same camera, metres, OpenCV axes (x right, y down,
  z forward), written with trimesh.
- ``images.json`` (without ``--boxes``): the assigned image ids, ``[{id, file_name, width, height}]``, with
  ``frame_index`` for video frames and ``error`` for unusable files. Images get 1..N in input order; a
  video's frames get the next free id plus their frame index, so a lone video's ids are frame index + 1.
  With ``--boxes`` the ids are those of the annotation file.
- ``overlays/<name>.jpg`` per image and ``<video stem>_overlay.mp4`` per video (unless ``--no-overlay``):
  boxes and skeletons, over the shaded meshes when a 3D model ran (:mod:`lowres_hps.viz.mesh_overlay`).

The 3D model is ``--model3d``; by default :data:`DEFAULT_MODEL_3D` when it is installed (else 2D only, with
a note). A 3D model given as ``--model`` serves as both (its 2D keypoints are its bodies' projections).
With a 2D model and a 3D model, each body is fitted to the person's 2D keypoints after the 3D network
(``--fit-keypoints``, on by default; :mod:`lowres_hps.fitting`): its joint rotations and crop camera move until
its projection meets the 2D keypoints, held near the network's output (``--fit-pose-prior``). The body then
says ``"fitted_to_keypoints"``; ``--no-fit-keypoints`` gives the network's bodies as they are.

Results are written as they are made: ``predictions.jsonl`` and ``images.jsonl`` (one JSON entry per line,
flushed after every chunk of images or frames) become ``predictions.json`` and ``images.json`` at the end,
and are then removed. A run that is killed keeps them; Ctrl-C stops cleanly, writes the JSON files of what
was done, says so in one line and exits with 130.

People come from ``--boxes`` (a COCO annotation file) or from a person detector (``--detector``): MILI's detector
(:class:`~lowres_hps.apis.detector.MILIDetector`, the default: the shipped :data:`DEFAULT_MILI_MODEL`, or
``--detector-model``; ``--masks`` adds instance masks), MoveNet MultiPose
(:class:`~lowres_hps.apis.detector.MultiPoseDetector`) or OpenCV's HOG
(:class:`~lowres_hps.apis.detector.HOGPeopleDetector`). In videos people are tracked (``--track``, on by default):
each gets a ``track_id``, its outputs are One-Euro-smoothed (``--smooth``), and ``<video>_mot.txt`` (MOTChallenge),
``tracks/<video>.json`` and ``tracks/<video>_trajectories.png`` are written; with ``--facing-from-motion`` (static
cameras) a walking track's direction of travel decides which way its bodies face
(:class:`~lowres_hps.apis.people_tracker.PeopleTracker`). Unusable inputs are reported on stderr, one line each, and
skipped; the rest is processed and the exit status is 1. That includes files (missing,
undecodable, above :data:`~lowres_hps.apis.inputs.MAX_IMAGE_PIXELS`), video frames that cannot be decoded
(their indices are in the summary's ``failed_frames`` and in ``images.json``), ``--boxes`` annotations
(named by id: no or a malformed ``bbox``, zero size, unknown image, a box outside its image or absurdly
large), and an image or a box whose prediction fails.

The models are resolved by :func:`load_estimator` and :func:`load_body_estimator`, module-level hooks:
tests (or other tools) may replace them with any function ``(name_or_path, device) -> estimator``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import tempfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.apis.inputs import (
    IMAGE_EXTENSIONS,
    InputError,
    InputSource,
    PersonBoxes,
    VideoReader,
    box_problem_in_image,
    collect_inputs,
    load_image,
)
from lowres_hps.apis.predictor import PersonPrediction, Predictor, why_no_keypoint_fit
from lowres_hps.imaging.protocol import HIGH_RESOLUTION
from lowres_hps.fitting import KeypointFitConfig
from lowres_hps.models.estimator import BodyEstimator, MultiPersonEstimator

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_3D",
    "DEFAULT_MILI_MODEL",
    "merge_shards",
    "parse_shard",
    "DEFAULT_VIDEO_FPS",
    "MESH_FORMATS",
    "PERSON_HEIGHT_RANGE",
    "load_estimator",
    "load_body_estimator",
    "default_model3d",
    "coco_result",
    "draw_predictions",
    "write_mesh",
    "main",
]

DEFAULT_MODEL = "lrmove_l_128"
"""Registry name of the model ``--model`` defaults to."""
DEFAULT_MODEL_3D = "rsc_move_c128_eft"
"""Registry name of the 3D model ``--model3d`` defaults to, when it is installed."""
DEFAULT_MILI_MODEL = "mili_multipose"
"""Registry name of the MILI model ``--detector mili`` uses without ``--detector-model``."""
MASK_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                (70, 240, 240), (240, 50, 230))
"""Overlay fill colours of people's masks (RGB), in turn."""
MESH_FORMATS = ("obj", "ply", "glb")
"""``--mesh-format`` choices (trimesh exporters; glb is binary glTF)."""
DEFAULT_VIDEO_FPS = 25.0
"""Frame rate of an overlay video when the source does not say its own."""
PERSON_HEIGHT_RANGE = (16.0, float(HIGH_RESOLUTION))
"""Valid ``--person-height`` values (px): the people the project is for, 16 to 224 px tall; 224 is the
protocol's original high resolution (range 0), so larger values would degrade nothing."""
CHUNK_PIXELS = 2**27
"""Images read into memory together hold at most about this many pixels (134 MP, 400 MB), whatever
``--batch-size``."""
_PROG = "lowres-hps predict"
_LISTED_PROBLEMS = 20  # unusable --boxes annotations reported one line each; the rest are counted


def load_estimator(name_or_path: str, device: str | None = None) -> PoseEstimator:
    """The model for ``--model``: :func:`lowres_hps.apis.registry.load_model`."""
    from lowres_hps.apis.registry import load_model

    return load_model(name_or_path, device=device)


def load_body_estimator(name_or_path: str, device: str | None = None) -> BodyEstimator:
    """The model for ``--model3d``: :func:`lowres_hps.apis.registry.load_model`, which must give a 3D model.

    Raises:
        ValueError: the model is not a 3D body model (no :class:`~lowres_hps.models.estimator.BodyEstimator`).
    """
    from lowres_hps.apis.registry import load_model

    estimator = load_model(name_or_path, device=device)
    if not isinstance(estimator, BodyEstimator):
        raise ValueError(f"--model3d {name_or_path!r} is not a 3D body model (its card's task is not 'hps3d'); "
                         f"give a 3D model, or --model3d none for 2D only")
    return estimator


def default_model3d() -> str | None:
    """:data:`DEFAULT_MODEL_3D` when its weights are installed, else None."""
    from lowres_hps.apis.registry import resolve_model_path

    try:
        resolve_model_path(DEFAULT_MODEL_3D)
    except (FileNotFoundError, KeyError):
        return None
    return DEFAULT_MODEL_3D


def coco_result(image_id: int, person: PersonPrediction, mesh: str | None = None) -> dict:
    """One COCO keypoint results entry (coordinates to 0.01 px, scores to 1e-4), plus, when the person has
    a body, ``keypoints_3d`` (metres, to 1e-4), ``keypoints_3d_projected`` (image px, to 0.01), ``body`` (floats
    to 6 significant digits) and ``mesh``; with a mask, ``segmentation`` (COCO RLE)."""
    keypoints = np.column_stack([np.round(person.keypoints[:, :2], 2), np.round(person.keypoints[:, 2], 4)])
    result = {
        "image_id": int(image_id),
        "category_id": 1,
        "keypoints": [float(v) for v in keypoints.reshape(-1)],
        "score": round(float(person.score), 4),
        "bbox": [round(float(v), 2) for v in person.bbox],
    }
    if person.keypoints_3d is not None:
        result["keypoints_3d"] = np.round(person.keypoints_3d, 4).tolist()
    if person.keypoints_3d_projected is not None:
        result["keypoints_3d_projected"] = np.round(person.keypoints_3d_projected, 2).tolist()
    if person.body is not None:
        result["body"] = _rounded(person.body)
    if person.mask is not None:
        result["segmentation"] = person.mask
    if person.track_id is not None:
        result["track_id"] = int(person.track_id)
    if mesh is not None:
        result["mesh"] = mesh
    return result


def _rounded(value):
    """Floats of nested lists and dicts to 6 significant digits (compact JSON, float32 precision)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write one mesh with trimesh; the format is the suffix of ``path`` (.obj, .ply or .glb)."""
    import trimesh

    fmt = path.suffix.lstrip(".").lower()
    if fmt not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {', '.join(MESH_FORMATS)}, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64), faces=np.asarray(faces), process=False)
    mesh.export(str(path), file_type=fmt)
    return path


def draw_predictions(image: np.ndarray, people: list[PersonPrediction], convention: str,
                     keypoint_threshold: float = 0.3, faces: np.ndarray | None = None) -> np.ndarray:
    """The image with each person's box and skeleton; keypoints scoring below the threshold are not drawn.
    People with a mask (:attr:`PersonPrediction.mask`) get it filled in a colour of their own, half transparent.

    With ``faces``, the people's meshes (:attr:`PersonPrediction.vertices`, in the camera of their
    ``body``) are drawn first, shaded and half transparent, under the skeletons.
    """
    from lowres_hps.viz.keypoints import draw_keypoints

    canvas = np.ascontiguousarray(image.copy())
    with_mesh = [p for p in people if p.vertices is not None and p.body is not None]
    if faces is not None and with_mesh:
        from lowres_hps.viz.mesh_overlay import draw_meshes

        body = with_mesh[0].body  # every person of an image shares its camera
        canvas = draw_meshes(canvas, [p.vertices for p in with_mesh], faces, body["focal"], body["principal_point"])
    masked = [p for p in people if p.mask is not None]
    if masked:
        from lowres_hps.apis.predictor import rle_to_mask

        for n, person in enumerate(masked):  # half-transparent fills, one colour per person
            colour = np.array(MASK_COLOURS[n % len(MASK_COLOURS)], np.float32)
            region = rle_to_mask(person.mask)
            canvas[region] = (0.55 * canvas[region] + 0.45 * colour).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 512))
    for person in people:
        x, y, w, h = person.bbox
        cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), (255, 255, 255), thickness)
        visibility = np.where(person.keypoints[:, 2] >= keypoint_threshold, 2.0, 0.0)
        # Scale the skeleton to the person: small people in a large frame need thin lines.
        radius = max(1, round(h / 40))
        canvas = draw_keypoints(canvas, np.column_stack([person.keypoints[:, :2], visibility]), convention,
                                radius=radius, thickness=max(1, round(h / 80)))
    return canvas


def _report(kind: str, message: str) -> None:
    tqdm.write(f"{_PROG}: {kind}: {message}", file=sys.stderr)


def _reason(error: BaseException) -> str:
    """``Type: first line`` of an unexpected error, for a one-line report."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def _index_list(indices: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


class _Journal:
    """predictions.jsonl and images.jsonl in ``--out``: every entry is appended as it is made and flushed
    after each chunk, so that a run that dies (out of memory, killed) keeps what was done; :meth:`assemble`
    writes predictions.json and images.json from them at the end and removes them."""

    def __init__(self, out: Path) -> None:
        self.paths = {"predictions": out / "predictions.jsonl", "images": out / "images.jsonl"}
        self._files = {name: open(path, "w", encoding="utf-8") for name, path in self.paths.items()}

    def add(self, name: str, entry: dict) -> None:
        self._files[name].write(json.dumps(entry) + "\n")

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def assemble(self, predictions: Path, images: Path | None) -> None:
        """Write the JSON files (atomically) from the journal, then remove it."""
        from lowres_hps.engine.checkpoint import atomic_write

        self.close()
        entries = [json.loads(line) for line in self.paths["predictions"].read_text(encoding="utf-8").splitlines()]
        with atomic_write(predictions) as tmp:
            tmp.write_text(json.dumps(entries))
        if images is not None:
            lines = self.paths["images"].read_text(encoding="utf-8").splitlines()
            image_entries = sorted((json.loads(line) for line in lines), key=lambda entry: entry["id"])
            with atomic_write(images) as tmp:
                tmp.write_text(json.dumps(image_entries, indent=1))
        for path in self.paths.values():
            path.unlink(missing_ok=True)


class _Run:
    """State of one ``predict`` run: ids, results, overlays and failures."""

    def __init__(self, args: argparse.Namespace, predictor: Predictor, boxes: PersonBoxes | None) -> None:
        self.args = args
        self.predictor = predictor
        self.boxes = boxes
        self.out = Path(args.out)
        self.journal = _Journal(self.out)
        self.people = 0
        self.failures = 0
        self.images_done = 0
        self.frames = 0
        self.failed_frames: dict[str, list[int]] = {}
        self.next_id = 1
        self.overlay_images = 0
        self.overlay_videos: list[str] = []
        self._overlay_names: set[str] = set()
        self._mesh_stems: set[str] = set()
        self.meshes = 0
        self.faces = predictor.faces  # None without a 3D model
        self._background = None  # --fit-silhouettes: the background model of the video being read
        self._background_source = None
        self.video_seconds = 0.0  # wall time spent on video frames (frames/s in the summary)
        self.track_files: list[str] = []
        self.bodies_turned = 0  # --facing-from-motion
        self.ground_planes: dict[str, dict[str, float]] = {}  # --facing-from-motion: each video's fitted ground

    def fail(self, error: Exception) -> None:
        self.failures += 1
        _report("error", str(error))

    def add_image_entry(self, entry: dict) -> None:
        if self.boxes is None:  # with --boxes the ids are those of the annotation file: no images.json
            self.journal.add("images", entry)

    def _overlay_path(self, stem: str, suffix: str) -> Path:
        name, n = stem + suffix, 1
        while name in self._overlay_names:  # same file name in two folders
            n += 1
            name = f"{stem}_{n}{suffix}"
        self._overlay_names.add(name)
        return (self.out / "overlays" / name) if suffix == ".jpg" else (self.out / name)

    def _draw(self, image: np.ndarray, people: list[PersonPrediction]) -> np.ndarray:
        return draw_predictions(image, people, self.predictor.estimator.convention, self.args.kpt_threshold,
                                faces=self.faces)

    def _mesh_stem(self, stem: str) -> str:
        """A mesh file stem of its own for each image or video (same file names in two folders)."""
        name, n = stem, 1
        while name in self._mesh_stems:
            n += 1
            name = f"{stem}_{n}"
        self._mesh_stems.add(name)
        return name

    def record(self, image_id: int, people: list[PersonPrediction], mesh_stem: str) -> None:
        """Add the people of one image or frame to the results, writing their meshes when asked."""
        fmt = getattr(self.args, "mesh_format", None)
        for index, person in enumerate(people):
            mesh = None
            if fmt and person.vertices is not None:
                mesh = f"meshes/{mesh_stem}_{index}.{fmt}"
                write_mesh(self.out / mesh, person.vertices, self.faces)
                self.meshes += 1
            self.journal.add("predictions", coco_result(image_id, person, mesh))
            self.people += 1

    def _predict(self, images: list[np.ndarray], boxes: list[np.ndarray] | None,
                 names: list[str],
                 foreground: list[np.ndarray | None] | None = None) -> list[list[PersonPrediction] | None]:
        """People of each image; an image whose prediction fails is reported (``names`` say which) and gets
        None, without losing the others. With boxes, a failing image is retried box by box. ``foreground``: each
        image's foreground mask (``--fit-silhouettes``) or None."""
        try:
            return self.predictor.predict_images(images, boxes, foreground=foreground)
        except Exception as exc:  # noqa: BLE001 - isolate the failure, report it, keep the rest
            if len(images) == 1 and (boxes is None or len(boxes[0]) <= 1):
                self.fail(InputError(f"prediction failed ({_reason(exc)}): {names[0]}"))
                return [None]
        if len(images) > 1:
            return [self._predict([image], None if boxes is None else [boxes[i]], [names[i]],
                                  None if foreground is None else [foreground[i]])[0]
                    for i, image in enumerate(images)]
        people = []
        for box in boxes[0]:
            try:
                people.extend(self.predictor.predict_images(images, [box[None]], foreground=foreground)[0])
            except Exception as exc:  # noqa: BLE001
                self.fail(InputError(f"prediction failed for the box {np.round(box, 2).tolist()} "
                                     f"({_reason(exc)}): {names[0]}"))
        return [people]

    def _usable_boxes(self, source: InputSource, image_id: int, image: np.ndarray) -> np.ndarray:
        """The --boxes of one image that can be used on it; the others are reported and skipped."""
        boxes = self.boxes.boxes[image_id]
        ann_ids = self.boxes.annotation_ids.get(image_id, [None] * len(boxes))
        keep = []
        for box, ann_id in zip(boxes, ann_ids):
            problem = box_problem_in_image(box, image.shape[1], image.shape[0])
            if problem is None:
                keep.append(box)
            else:
                self.fail(InputError(f"{self.args.boxes}: annotation {ann_id} of {source.path}: {problem}: skipped"))
        return np.asarray(keep, dtype=np.float64).reshape(-1, 4)

    def images_chunk(self, chunk: list[InputSource], progress: tqdm) -> None:
        """Read, predict on and record a chunk of image files (their people batched together), at most
        :data:`CHUNK_PIXELS` of images in memory at a time."""
        loaded: list[tuple[InputSource, int, np.ndarray]] = []
        pixels = 0
        for source in chunk:
            image_id = None
            try:
                if self.boxes is not None:
                    image_id = self.boxes.lookup(source.path)
                else:
                    image_id, self.next_id = self.next_id, self.next_id + 1
                image, notes = load_image(source.path)
            except InputError as exc:
                self.fail(exc)
                self.add_image_entry({"id": image_id, "file_name": str(source.path), "error": str(exc)})
                progress.update(1)
                continue
            for note in notes:
                _report("note", f"{note}: {source.path}")
            loaded.append((source, image_id, image))
            pixels += image.shape[0] * image.shape[1]
            if pixels >= CHUNK_PIXELS:
                self._images(loaded, progress)
                loaded, pixels = [], 0
        if loaded:
            self._images(loaded, progress)

    def _images(self, loaded: list[tuple[InputSource, int, np.ndarray]], progress: tqdm) -> None:
        from lowres_hps.imaging.io import write_image_rgb

        boxes = None
        if self.boxes is not None:
            boxes = [self._usable_boxes(source, image_id, image) for source, image_id, image in loaded]
        predictions = self._predict([image for _, _, image in loaded], boxes,
                                    [str(source.path) for source, _, _ in loaded])
        for (source, image_id, image), people in zip(loaded, predictions):
            progress.update(1)
            entry = {"id": image_id, "file_name": str(source.path), "width": image.shape[1],
                     "height": image.shape[0]}
            if people is None:
                self.add_image_entry({**entry, "error": "prediction failed"})
                continue
            try:
                self.record(image_id, people, self._mesh_stem(source.path.stem))
                if not self.args.no_overlay:
                    write_image_rgb(self._overlay_path(source.path.stem, ".jpg"), self._draw(image, people))
                    self.overlay_images += 1
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk: report, keep the rest
                self.fail(InputError(f"cannot write the outputs ({_reason(exc)}): {source.path}"))
            self.images_done += 1
            self.add_image_entry(entry)
        self.journal.flush()

    def video(self, source: InputSource) -> None:
        """Predict on every frame of a video, writing the overlay video as it goes."""
        from lowres_hps.viz.video import VideoWriterRGB

        try:
            reader = VideoReader(source.stream or source.path)
        except InputError as exc:
            self.fail(exc)
            return
        base_id = self.next_id - 1
        mesh_stem = self._mesh_stem(source.path.stem)
        fps = reader.fps
        if fps is None and not self.args.no_overlay:
            _report("note", f"frame rate unknown, overlay written at {DEFAULT_VIDEO_FPS:g} fps: {source.path}")
        writer = None
        if not self.args.no_overlay:
            writer = VideoWriterRGB(self._overlay_path(source.path.stem, "_overlay.mp4"), fps or DEFAULT_VIDEO_FPS)
        max_frames = getattr(self.args, "max_frames", None)
        total = reader.frame_count if max_frames is None else min(reader.frame_count or max_frames, max_frames)
        progress = tqdm(total=total, desc=source.path.name, unit="frame", disable=None, file=sys.stderr)
        tracks = _VideoTracks(self, source, fps or DEFAULT_VIDEO_FPS) if getattr(self.args, "track", False) else None
        self._background = None
        if self.predictor.fit_silhouettes is not None:
            from lowres_hps.imaging.foreground import ForegroundConfig, ForegroundExtractor

            self._background = ForegroundExtractor(ForegroundConfig(method=getattr(self.args, "background", "mog2")))
            self._background_source = source.path
        stopped_early = False
        started = time.perf_counter()
        try:
            pending: list[tuple[int, np.ndarray]] = []
            for index, frame in reader:
                if max_frames is not None and index >= max_frames:
                    stopped_early = True
                    break
                pending.append((index, frame))
                if len(pending) == self.args.batch_size:
                    self._frames(source, base_id, pending, writer, progress, mesh_stem, tracks)
                    pending = []
            if pending:
                self._frames(source, base_id, pending, writer, progress, mesh_stem, tracks)
        finally:  # also on Ctrl-C: what was done is counted
            self.video_seconds += time.perf_counter() - started
            progress.close()
            if writer is not None:
                writer.close()
            if tracks is not None:
                self.track_files += tracks.close()
                self.bodies_turned += tracks.tracker.swapped
                ground = tracks.tracker.ground
                if ground is not None and ground.plane is not None:
                    self.ground_planes[str(source.path)] = {"camera_tilt_deg": round(ground.plane.tilt_deg, 1),
                                                            "camera_height_m": round(ground.plane.height, 2)}
            frames_used = reader.frames_read if max_frames is None else min(reader.frames_read, max_frames)
            self.next_id = base_id + frames_used + 1
            if writer is not None and writer.frames_written:
                self.overlay_videos.append(str(writer.path))
        failed = [i for i in reader.failed_frames if max_frames is None or i < max_frames]
        if failed:
            self.failed_frames[source.stream or str(source.path)] = failed
            for index in failed:
                self.add_image_entry({"id": base_id + index + 1, "file_name": source.stream or str(source.path),
                                      "frame_index": index, "error": "frame could not be decoded"})
            self.journal.flush()
            self.fail(InputError(f"{len(failed)} frame(s) could not be decoded and were skipped (frame indices "
                                 f"{_index_list(failed)}): {source.path}"))
        stopped_early = stopped_early or (max_frames is not None and reader.frames_read >= max_frames)
        if reader.problem is not None and not stopped_early:
            self.fail(InputError(reader.problem))

    def _frames(self, source: InputSource, base_id: int, frames: list[tuple[int, np.ndarray]],
                writer, progress: tqdm, mesh_stem: str, tracks: _VideoTracks | None = None) -> None:
        names = [f"frame {index} of {source.path}" for index, _ in frames]
        masks = [self._foreground(frame) for _, frame in frames]  # every frame, in order: the background model
        if tracks is not None and tracks.detect_every > 1:  # frame by frame: each frame's boxes come from the last
            predictions = [tracks.follow(index, frame, name, mask)
                           for (index, frame), name, mask in zip(frames, names, masks)]
        else:
            predictions = self._predict([frame for _, frame in frames], None, names,
                                        None if self._background is None else masks)
        if tracks is not None and tracks.detect_every == 1:  # in frame order: the tracker's state runs from frame to frame
            predictions = [None if people is None else tracks.update(index, frame, people)
                           for (index, frame), people in zip(frames, predictions)]
        for (index, frame), people in zip(frames, predictions):
            image_id = base_id + index + 1
            entry = {"id": image_id, "file_name": source.stream or str(source.path), "frame_index": index,
                     "width": frame.shape[1], "height": frame.shape[0]}
            progress.update(1)
            if people is None:
                self.add_image_entry({**entry, "error": "prediction failed"})
                people = []  # the overlay video keeps every frame
            else:
                try:
                    self.record(image_id, people, f"{mesh_stem}_{index:06d}")
                except Exception as exc:  # noqa: BLE001 - e.g. a full disk: report, keep the rest
                    self.fail(InputError(f"cannot write the outputs of frame {index} ({_reason(exc)}): {source.path}"))
                self.frames += 1
                self.add_image_entry(entry)
            if writer is not None:
                writer.write(self._draw(frame, people))
        self.journal.flush()

    def _foreground(self, frame: np.ndarray) -> np.ndarray | None:
        """The frame's foreground mask for ``--fit-silhouettes`` (None while the background is learnt, for frames
        unusable as masks, without the option, and after the camera was found to move: reported once)."""
        from lowres_hps.imaging.foreground import CameraMotionError

        if self._background is None:
            return None
        try:
            return self._background.apply(frame)
        except CameraMotionError as exc:
            _report("note", f"--fit-silhouettes stopped: {exc}: {self._background_source}")
            self._background = None
            return None

    def finish(self, model: str, model3d: str | None, detector, interrupted: bool) -> dict:
        """Write predictions.json (and images.json) from the journal; returns the summary."""
        predictions_path = self.out / "predictions.json"
        images_path = self.out / "images.json" if self.boxes is None else None
        try:
            self.journal.assemble(predictions_path, images_path)
        except Exception as exc:  # noqa: BLE001 - the journal keeps the results
            self.fail(InputError(f"cannot write {predictions_path} ({_reason(exc)}); the results are in "
                                 f"{self.journal.paths['predictions']} (one JSON entry per line)"))
            predictions_path = self.journal.paths["predictions"]
            images_path = self.journal.paths["images"] if images_path is not None else None
        summary = {
            "predictions": str(predictions_path),
            "model": model,
            "model3d": model3d,
            "flip_test": getattr(self.predictor.estimator, "flip_test", None),
            "flip_test_3d": getattr(self.predictor.body_estimator, "flip_test", None),
            "people_from": f"boxes: {self.args.boxes}" if self.boxes is not None else
            repr(detector) if detector is not None else f"the multi-person model ({model})",
            "person_height": self.args.person_height,
            "images": self.images_done,
            "frames": self.frames,
            "people": self.people,
            "failed": self.failures,
            "failed_frames": self.failed_frames,
            "overlay_images": str(self.out / "overlays") if self.overlay_images else None,
            "overlay_videos": self.overlay_videos,
            "meshes": str(self.out / "meshes") if self.meshes else None,
            "fit_keypoints": None if self.predictor.fit_keypoints is None else
            dataclasses.asdict(self.predictor.fit_keypoints),
            "fit_silhouettes": None if self.predictor.fit_silhouettes is None else
            {**dataclasses.asdict(self.predictor.fit_silhouettes),
             "background": getattr(self.args, "background", None)},
        }
        if self.frames:
            summary["frames_per_second"] = round(self.frames / max(self.video_seconds, 1e-9), 2)
        if self.track_files:
            summary["tracks"] = self.track_files
        if getattr(self.args, "facing_from_motion", False):
            summary["bodies_turned_by_motion"] = self.bodies_turned
            summary["ground_planes"] = self.ground_planes
        if images_path is not None:
            summary["images_json"] = str(images_path)
        if interrupted:
            summary["interrupted"] = True
        return summary


def _moved_with_keypoints(new: PersonPrediction, old: PersonPrediction, min_score: float = 0.3) -> PersonPrediction:
    """``new`` (found in ``old``'s box) with ``old``'s box score and its box moved by the mean motion of the
    keypoints confident in both frames (unmoved with fewer than 3 of them)."""
    both = (new.keypoints[:, 2] >= min_score) & (old.keypoints[:, 2] >= min_score)
    shift = (new.keypoints[both, :2] - old.keypoints[both, :2]).mean(axis=0) if both.sum() >= 3 else np.zeros(2)
    bbox = new.bbox.copy()
    bbox[:2] += shift
    return dataclasses.replace(new, bbox=bbox, box_score=old.box_score,
                               score=float(new.keypoints[:, 2].mean()) * old.box_score)


def _tracker_thresholds():
    from lowres_hps.tracking import ByteTrackConfig

    # ByteTrack's own thresholds (0.5 / 0.6) suit YOLOX scores. MILI's box scores on vtest.avi frames 1-300 (teacher
    # boxes): true people median 0.50 (96% >= 0.4), false boxes 90% <= 0.37, none >= 0.5; so 0.4 starts and
    # continues tracks, and boxes from the detectors' floor (0.2) only continue them.
    return ByteTrackConfig(high_score=0.4, low_score=0.2, new_track_score=0.4)


TRACKER_THRESHOLDS = _tracker_thresholds()
"""The score thresholds of ``predict``'s tracker (see :func:`_tracker_thresholds`)."""


class _VideoTracks:
    """One video's tracking (``--track``): ids and smoothing (:class:`~lowres_hps.apis.people_tracker.PeopleTracker`),
    the MOTChallenge file written frame by frame, and at the end each track's outputs (``tracks/<video>.json``) and
    a plot of the trajectories on the first frame (``tracks/<video>_trajectories.png``)."""

    def __init__(self, run: _Run, source: InputSource, fps: float) -> None:
        from lowres_hps.apis.people_tracker import PeopleTracker, TrackingConfig
        from lowres_hps.tracking import OneEuroConfig

        self.detect_every = int(getattr(run.args, "detect_every", 1) or 1)
        thresholds = TRACKER_THRESHOLDS
        if self.detect_every > 1:  # a new track's second detection is K frames away: confirm tracks at once
            thresholds = dataclasses.replace(thresholds, min_hits=1)
        filters = {}
        for name in ("position", "rotation"):
            given = getattr(run.args, f"smooth_{name}", None)
            if given is not None:
                filters[name] = OneEuroConfig(min_cutoff=given[0], beta=given[1])
        predictor = run.predictor
        facing = bool(getattr(run.args, "facing_from_motion", False)) and predictor.fit_keypoints is not None
        config = TrackingConfig(tracker=thresholds, smooth=getattr(run.args, "smooth", True),
                                facing_from_motion=facing,
                                heading_positions=getattr(run.args, "heading_positions", "ground"), **filters)
        self.tracker = PeopleTracker(config, fps=fps, refit=predictor.refit_left_right if facing else None,
                                     convention=getattr(predictor.body_estimator, "convention", "coco17"))
        self.source, self.fps = source, fps
        self.mot_path = run._overlay_path(source.path.stem, "_mot.txt")
        self.json_path = run.out / "tracks" / f"{self.mot_path.stem.removesuffix('_mot')}.json"
        self.plot_path = self.json_path.with_name(f"{self.json_path.stem}_trajectories.png")
        self.mot = self.mot_path.open("w", encoding="utf-8")
        # Each tracked person of each frame as a JSON line, as it comes: memory stays bounded on long streams, and
        # a stopped run keeps them; close() groups them by track into the JSON file.
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.lines_path = self.json_path.with_suffix(".jsonl")
        self.lines = self.lines_path.open("w", encoding="utf-8")
        self.first_frame: np.ndarray | None = None
        self.run = run
        self.last: list[PersonPrediction] = []  # the tracked people of the last frame

    def follow(self, index: int, frame: np.ndarray, name: str,
               foreground: np.ndarray | None = None) -> list[PersonPrediction] | None:
        """One frame with ``--detect-every K``: the detector on every K-th frame (and whenever nobody is tracked);
        on the others each tracked person's last box, moved by the motion of its keypoints between the two
        frames. The people are then tracked as usual."""
        masks = None if foreground is None else [foreground]
        if index % self.detect_every == 0 or not self.last:
            people = self.run._predict([frame], None, [name], masks)[0]
        else:
            boxes = np.array([p.bbox for p in self.last])
            people = self.run._predict([frame], [boxes], [name], masks)[0]
            if people is not None and len(people) == len(self.last):
                people = [_moved_with_keypoints(new, old) for new, old in zip(people, self.last)]
        if people is None:
            return None
        self.last = self.update(index, frame, people)
        return self.last

    def update(self, index: int, frame: np.ndarray, people: list[PersonPrediction]) -> list[PersonPrediction]:
        from lowres_hps.tracking import mot_lines

        if self.first_frame is None:
            self.first_frame = frame
        tracked = self.tracker.update(index, people, frame)
        rows = [[index + 1, p.track_id, *p.bbox, p.box_score] for p in tracked]
        self.mot.writelines(mot_lines(rows))
        self.mot.flush()  # a stopped run keeps the frames done
        for person in tracked:
            self.lines.write(json.dumps({
                "track_id": person.track_id, "frame": index, "box": np.round(person.bbox, 2).tolist(),
                "keypoints": np.round(person.keypoints, 3).tolist(),
                "keypoints_3d": None if person.keypoints_3d is None else np.round(person.keypoints_3d, 4).tolist(),
                "body": None if person.body is None else _rounded(person.body)}) + "\n")
        self.lines.flush()
        return tracked

    def close(self) -> list[str]:
        """Close the MOT file and write the per-track outputs; returns the files written."""
        from lowres_hps.core.io import atomic_write_text

        self.mot.close()
        self.lines.close()
        written = [str(self.mot_path)]
        tracks: dict[int, dict[str, list]] = {}
        with self.lines_path.open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line)
                track = tracks.setdefault(row["track_id"], {"frames": [], "boxes": [], "keypoints": [],
                                                            "keypoints_3d": [], "body": []})
                for key, field in (("frames", "frame"), ("boxes", "box"), ("keypoints", "keypoints"),
                                   ("keypoints_3d", "keypoints_3d"), ("body", "body")):
                    track[key].append(row[field])
        self.lines_path.unlink()
        if not tracks:
            if not any(self.json_path.parent.iterdir()):
                self.json_path.parent.rmdir()  # nobody tracked: no empty tracks/ folder left behind
            return written
        document = {"video": self.source.stream or str(self.source.path), "fps": self.fps, "mot": str(self.mot_path),
                    "tracks": [{"track_id": k, **v} for k, v in sorted(tracks.items())]}
        atomic_write_text(self.json_path, json.dumps(document))
        written.append(str(self.json_path))
        if self.first_frame is not None:
            from lowres_hps.viz.tracks import plot_trajectories

            trajectories = {k: np.array(v["boxes"]) for k, v in tracks.items()}
            plot_trajectories(self.first_frame, trajectories, self.plot_path)
            written.append(str(self.plot_path))
        return written


def _check_device(device: str) -> None:
    """Refuse a ``--device`` that this machine cannot use, before any model is loaded."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"--device {device!r} is not a torch device ({_reason(exc)}); e.g. cpu, cuda, "
                         f"cuda:1") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                         f"leave out --device to run on the CPU")
    try:
        torch.empty(0, device=parsed)
    except (RuntimeError, AssertionError) as exc:  # e.g. cuda:3 on a one-GPU machine, or no MPS
        raise ValueError(f"--device {device} cannot be used here ({_reason(exc)})") from None


def _check_out(out: Path) -> None:
    """``--out`` must be a folder this process can write to: checked (and created) before the work starts."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write there ({exc.strerror or _reason(exc)})") from None


def _check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    low, high = PERSON_HEIGHT_RANGE
    if args.person_height is not None and not low <= args.person_height <= high:
        raise ValueError(f"--person-height must be between {low:g} and {high:g} px (the low-resolution protocol's "
                         f"person heights; {high:g} is the original high resolution), got {args.person_height:g}")
    upscale, min_score = getattr(args, "detector_upscale", None), getattr(args, "detector_min_score", None)
    if upscale is not None and not 0 < upscale < math.inf:
        raise ValueError(f"--detector-upscale must be positive and finite, got {upscale}")
    if min_score is not None and not 0.0 < min_score < 1.0:
        raise ValueError(f"--detector-min-score must be in (0, 1), got {min_score}")
    max_frames = getattr(args, "max_frames", None)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}")
    if args.all_boxes and args.boxes is None:
        raise ValueError("--all-boxes needs --boxes")
    for name in ("position", "rotation"):  # checked before any model loads
        given = getattr(args, f"smooth_{name}", None)
        if given is not None:
            from lowres_hps.tracking import OneEuroConfig

            try:
                OneEuroConfig(min_cutoff=given[0], beta=given[1])
            except ValueError as exc:
                raise ValueError(f"--smooth-{name}: {exc}") from None
    detect_every = getattr(args, "detect_every", 1)
    if detect_every is not None and detect_every < 1:
        raise ValueError(f"--detect-every must be at least 1, got {detect_every}")
    if getattr(args, "facing_from_motion", False) and not getattr(args, "track", True):
        raise ValueError("--facing-from-motion needs --track (a track's motion is what judges)")
    if detect_every not in (None, 1) and not getattr(args, "track", True):
        raise ValueError("--detect-every needs --track (the boxes between detections come from the tracks)")
    if getattr(args, "workers", 1) is not None and getattr(args, "workers", 1) < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if (getattr(args, "workers", 1) or 1) > 1 and getattr(args, "shard", None) is not None:
        raise ValueError("--workers makes its own shards: give --workers or --shard, not both")
    parse_shard(getattr(args, "shard", None))
    if getattr(args, "masks", False) and args.boxes is not None:
        raise ValueError("--masks come from the detector (--detector mili), which --boxes replaces")
    mesh_format = getattr(args, "mesh_format", None)
    if mesh_format is not None and mesh_format not in MESH_FORMATS:
        raise ValueError(f"--mesh-format must be one of {', '.join(MESH_FORMATS)}, got {mesh_format!r}")
    if args.device is not None:
        _check_device(args.device)
    if getattr(args, "fit_steps", None) is not None and args.fit_steps < 1:
        raise ValueError(f"--fit-steps must be at least 1, got {args.fit_steps}")
    if getattr(args, "fit_pose_prior", None) is not None and not 0 <= args.fit_pose_prior < math.inf:
        raise ValueError(f"--fit-pose-prior must be >= 0 and finite, got {args.fit_pose_prior}")


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.iterdir())


def _dataset_folders(inputs: list[str]) -> list[str]:
    """Inputs with dataset folders replaced by their ``images/`` subfolder: a folder that holds no image
    itself but an ``images/`` folder with images (SynthLR's and COCO-style layouts) means those images."""
    resolved = []
    for raw in inputs:
        path = Path(raw)
        images = path / "images"
        if path.is_dir() and not _has_images(path) and images.is_dir() and _has_images(images):
            _report("note", f"no images in {path} itself: reading its images/ folder")
            raw = str(images)
        resolved.append(raw)
    return resolved


def _body_estimator(args: argparse.Namespace, estimator) -> tuple[BodyEstimator | None, str | None]:
    """The 3D model of the run and its name: ``--model3d``, else ``--model`` when it is a 3D model, else
    :data:`DEFAULT_MODEL_3D` when installed; ``--model3d none``: no 3D."""
    requested = getattr(args, "model3d", None)
    if requested is not None and requested.lower() == "none":
        return None, None
    if requested is not None:
        return load_body_estimator(requested, args.device), requested
    if isinstance(estimator, BodyEstimator):
        return estimator, args.model or DEFAULT_MODEL
    name = default_model3d()
    if name is None:
        _report("note", f"no 3D output: the default 3D model {DEFAULT_MODEL_3D!r} is not installed "
                        f"(see `lowres-hps models`); pass --model3d NAME|PATH for 3D, --model3d none to silence this")
        return None, None
    return load_body_estimator(name, args.device), name


def _fit_config(args: argparse.Namespace, estimator, body_estimator) -> KeypointFitConfig | None:
    """The keypoint fit of the run (``--fit-keypoints``): on by default when a separate 2D model and a 3D model
    with a keypoint fit run in one convention; asked for explicitly without them, an error that says why."""
    requested = getattr(args, "fit_keypoints", None)
    tuned = {k: v for k, v in (("steps", getattr(args, "fit_steps", None)),
                               ("pose_prior", getattr(args, "fit_pose_prior", None))) if v is not None}
    if requested is False:
        return None
    reason = why_no_keypoint_fit(estimator, body_estimator)
    if reason is not None:
        if requested or tuned:
            raise ValueError(f"--fit-keypoints cannot run: {reason}")
        return None
    return KeypointFitConfig(**tuned)


# Per detector: (class name in lowres_hps.apis.detector, default upscale (None: its own choice), default score).
DETECTORS = {"hog": ("HOGPeopleDetector", 2.0, 0.5), "multipose": ("MultiPoseDetector", None, 0.2),
             "mili": ("MILIDetector", None, 0.2)}


def default_detector() -> str:
    """``--detector auto``: MILI's detector when the shipped :data:`DEFAULT_MILI_MODEL` is installed (validation
    frames: AP50 above MultiPose's at 3 of 4 person heights and far above HOG's at all, ``benchmarks/README.md``),
    else MultiPose when its weights are on disk, else HOG."""
    from lowres_hps.apis.registry import resolve_model_path
    from lowres_hps.models.pretrained import MissingPretrainedError, find_pretrained

    try:
        resolve_model_path(DEFAULT_MILI_MODEL)
        return "mili"
    except (FileNotFoundError, KeyError):
        pass
    try:
        find_pretrained("movenet_multipose")
    except MissingPretrainedError:
        return "hog"
    return "multipose"


def _silhouette_fit(args: argparse.Namespace, body_estimator):
    """``--fit-silhouettes``: the fit's settings and the shipped pose prior, or ``(None, None)``."""
    if not getattr(args, "fit_silhouettes", False):
        return None, None
    if body_estimator is None or not hasattr(body_estimator, "bodies"):
        raise ValueError("--fit-silhouettes needs a 3D model (--model3d NAME|PATH)")
    from lowres_hps.methods.sta import SilhouetteAdaptConfig
    from lowres_hps.models.pose_prior import default_pose_prior

    return SilhouetteAdaptConfig(), default_pose_prior(device=args.device)


def build_detector(args: argparse.Namespace):
    """The ``--detector`` with its ``--detector-upscale`` / ``--detector-min-score`` (or its own defaults);
    a detector that cannot run here (no HOG in this OpenCV, MultiPose's weights not fetched) is a clear error."""
    from lowres_hps.apis import detector as detectors
    from lowres_hps.models.pretrained import MissingPretrainedError

    name = getattr(args, "detector", "auto")
    if name == "auto":
        name = default_detector()
        if name == "hog":
            _report("note", f"people from OpenCV's HOG detector, which misses people under ~50 px: the MILI model "
                            f"{DEFAULT_MILI_MODEL!r} is not installed (see `lowres-hps models`), and MoveNet "
                            f"MultiPose's weights come with `make pretrained` (bash scripts/get_pretrained.sh)")
    class_name, upscale, min_score = DETECTORS[name]
    upscale = upscale if args.detector_upscale is None else args.detector_upscale
    min_score = min_score if args.detector_min_score is None else args.detector_min_score
    options = {"upscale": upscale, "min_score": min_score}
    requested_model = getattr(args, "detector_model", None)
    if requested_model is not None and name != "mili":
        raise ValueError(f"--detector-model is for --detector mili (a MILI model), not --detector {name}")
    if getattr(args, "masks", False):
        if name != "mili":
            raise ValueError(f"--masks needs --detector mili (MILI's mask head), not --detector {name}")
        options["masks"] = True
    try:
        if name == "mili":
            options["model"] = _mili_model(requested_model or DEFAULT_MILI_MODEL, args.device)
        return getattr(detectors, class_name)(**options)
    except (RuntimeError, MissingPretrainedError) as exc:  # setup problems the user can fix
        raise ValueError(f"--detector {name}: {exc}") from None


def _mili_model(name_or_path: str, device: str | None):
    """``--detector-model``: an ONNX export of a MILI detector (its path, run by ONNX Runtime), or a MILI model's
    name or checkpoint (PyTorch)."""
    if str(name_or_path).lower().endswith(".onnx"):
        if not Path(name_or_path).is_file():
            raise ValueError(f"--detector-model: ONNX file not found: {name_or_path}")
        return str(name_or_path)
    from lowres_hps.apis.registry import load_model, read_card, resolve_model_path

    try:
        task = read_card(resolve_model_path(name_or_path)).task
    except (FileNotFoundError, KeyError) as exc:
        raise ValueError(f"--detector-model: {exc}") from None
    if task != "mili":
        raise ValueError(f"--detector-model {name_or_path}: a {task} model, not a MILI model")
    return load_model(name_or_path, device)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` -> (I, N); ``auto``: torchrun's ``RANK``/``WORLD_SIZE`` or Slurm's ``SLURM_PROCID``/
    ``SLURM_NTASKS`` (no shard when neither is set); None: no shard."""
    import os

    if text is None:
        return None
    if text == "auto":
        for rank, size in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
            if rank in os.environ and size in os.environ:
                text = f"{os.environ[rank]}/{os.environ[size]}"
                break
        else:
            return None
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ValueError(f"--shard must be I/N with 0 <= I < N (or auto), got {text!r}")
    return int(index), int(count)


def merge_shards(shards: list[Path], out: Path) -> dict:
    """Merge the outputs of ``predict`` runs over shards of one input list (``OUT/shards/I`` of ``--shard I/N``,
    in shard order) into ``out``: ``predictions.json`` and
    ``images.json`` with the image ids made unique (each shard's ids are moved past the previous shards'; ids of a
    ``--boxes`` file, which shards share, are kept). Overlays, meshes and track files stay in the shard folders.

    Returns:
        ``{"predictions", "images_json", "images", "people"}`` of the merged files.
    """
    from lowres_hps.core.io import atomic_write_text

    predictions, images, offset = [], [], 0
    for shard in shards:
        shard_predictions = json.loads((shard / "predictions.json").read_text(encoding="utf-8"))
        images_file = shard / "images.json"
        if not images_file.is_file():  # --boxes: the annotation file's ids, the same in every shard
            predictions += shard_predictions
            continue
        shard_images = json.loads(images_file.read_text(encoding="utf-8"))
        predictions += [{**r, "image_id": r["image_id"] + offset} for r in shard_predictions]
        images += [{**i, "id": i["id"] + offset, "shard": str(shard)} for i in shard_images]
        offset = max([offset] + [i["id"] for i in images])
    atomic_write_text(out / "predictions.json", json.dumps(predictions))
    merged = {"predictions": str(out / "predictions.json"), "people": len(predictions)}
    if images:
        atomic_write_text(out / "images.json", json.dumps(images))
        merged.update(images_json=str(out / "images.json"), images=len(images))
    return merged


def _run_workers(args: argparse.Namespace, argv: list[str]) -> int:
    """``--workers N``: N child processes, each on one shard (``--shard k/N``) with its share of the CPU threads,
    writing to ``OUT/shards/k``; then :func:`merge_shards`. Returns the worst exit status of the children."""
    import os
    import subprocess

    out = Path(args.out)
    _check_out(out)
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    children = []
    for k in range(args.workers):
        command = [sys.executable, "-m", "lowres_hps.cli", "predict", *_without_options(argv, ("--workers",)),
                   "--shard", f"{k}/{args.workers}"]  # writes to OUT/shards/k
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's intra-op threads
        children.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    codes, summaries = [], []
    for child in children:
        stdout, _ = child.communicate()
        codes.append(child.returncode)
        try:
            summaries.append(json.loads(stdout))
        except json.JSONDecodeError:
            summaries.append(None)
    shards = [out / "shards" / str(k) for k in range(args.workers) if (out / "shards" / str(k) / "predictions.json").is_file()]
    merged = merge_shards(shards, out) if shards else {}
    done = [s for s in summaries if s]
    summary = {**merged, "workers": args.workers, "threads_per_worker": threads,
               "frames": sum(s.get("frames", 0) for s in done), "failed": sum(s.get("failed", 0) for s in done),
               "shards": [str(p) for p in shards], "exit_codes": codes}
    print(json.dumps(summary, indent=2))
    return max(codes) if codes else 0


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """``argv`` without the named options and their values (``--name value`` or ``--name=value``)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in names:
            skip = True
            continue
        if any(item.startswith(name + "=") for name in names):
            continue
        kept.append(item)
    return kept


def main(args: argparse.Namespace) -> int:
    """Run ``predict``; returns 0, 1 when any input could not be used (reported on stderr), 130 when
    interrupted (Ctrl-C: what was done is written, with a one-line note)."""
    _check_args(args)
    workers = getattr(args, "workers", 1) or 1
    if workers > 1:
        return _run_workers(args, getattr(args, "argv", None) or [])
    boxes = PersonBoxes.from_coco(args.boxes, all_boxes=args.all_boxes) if args.boxes else None
    if boxes is not None and boxes.skipped_without_keypoints:
        _report("note", f"{boxes.skipped_without_keypoints} person boxes without labelled keypoints left out "
                        f"(--all-boxes keeps them): {args.boxes}")
    sources, errors = collect_inputs(_dataset_folders(args.inputs))
    shard = parse_shard(getattr(args, "shard", None))
    out = Path(args.out)
    if shard is not None:  # round robin over the inputs: shards of many files take similar time
        sources = sources[shard[0]::shard[1]]
        out = out / "shards" / str(shard[0])  # every process of a job may share one --out
        args.out = str(out)
    if boxes is not None and any(s.kind == "video" for s in sources):
        raise ValueError("--boxes gives boxes of images, not of video frames: run videos without --boxes")
    _check_out(out)

    model = args.model or DEFAULT_MODEL
    estimator = load_estimator(model, args.device)  # the module attribute, looked up now: patchable
    multi_person = isinstance(estimator, MultiPersonEstimator)  # e.g. a MILI model: it finds the people itself
    detector = None if boxes is not None or multi_person else build_detector(args)
    if args.flip_test is not None:
        if not hasattr(estimator, "flip_test"):
            raise ValueError(f"model {model!r} has no flip test setting (no flip_test attribute)")
        estimator.flip_test = args.flip_test
    body_estimator, model3d = _body_estimator(args, estimator)
    flip_test_3d = getattr(args, "flip_test_3d", None)
    if flip_test_3d is not None:
        if body_estimator is None:
            raise ValueError("--flip-test-3d needs a 3D model (--model3d NAME|PATH)")
        body_estimator.flip_test = flip_test_3d
    mesh_format = getattr(args, "mesh_format", None)
    if mesh_format is not None and body_estimator is None:
        raise ValueError("--mesh-format needs a 3D model (--model3d NAME|PATH)")
    with_vertices = body_estimator is not None and (mesh_format is not None or not args.no_overlay)
    fit = _fit_config(args, estimator, body_estimator)
    if getattr(args, "facing_from_motion", False) and fit is None:
        raise ValueError("--facing-from-motion refits bodies to the 2D keypoints: it needs --fit-keypoints (a 2D "
                         "and a 3D model in one convention)")
    silhouettes, prior = _silhouette_fit(args, body_estimator)
    predictor = Predictor(estimator, detector, person_height=args.person_height, batch_size=args.batch_size,
                          device=args.device, body_estimator=body_estimator, with_vertices=with_vertices,
                          fit_keypoints=fit, fit_silhouettes=silhouettes, silhouette_prior=prior)

    run = _Run(args, predictor, boxes)
    for error in errors:
        run.fail(error)
    if boxes is not None:
        for problem in boxes.problems[:_LISTED_PROBLEMS]:
            run.fail(InputError(f"{args.boxes}: {problem}: skipped"))
        unlisted = len(boxes.problems) - _LISTED_PROBLEMS
        if unlisted > 0:
            run.failures += unlisted - 1
            run.fail(InputError(f"{args.boxes}: {unlisted} more unusable person annotations skipped"))
    image_total = sum(s.kind == "image" for s in sources)
    progress = tqdm(total=image_total, unit="image", disable=None if image_total > 1 else True, file=sys.stderr)
    interrupted = False
    try:
        chunk: list[InputSource] = []  # consecutive images, their people batched together
        for source in sources:
            if source.kind == "image":
                chunk.append(source)
                if len(chunk) == args.batch_size:
                    run.images_chunk(chunk, progress)
                    chunk = []
                continue
            if chunk:  # ids follow the input order: flush the images before the video
                run.images_chunk(chunk, progress)
                chunk = []
            run.video(source)
        if chunk:
            run.images_chunk(chunk, progress)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:  # an unexpected error: keep what was done, then let it through
        progress.close()
        run.finish(model, model3d, detector, interrupted=False)
        raise
    finally:
        progress.close()

    summary = run.finish(model, model3d, detector, interrupted)
    if interrupted:
        done = [f"{count} {what}" for count, what in ((run.images_done, "images"), (run.frames, "video frames"))
                if count] or ["nothing"]
        _report("note", f"interrupted: kept what was done, {run.people} people from {' and '.join(done)}, in "
                        f"{summary['predictions']}")
    print(json.dumps(summary, indent=2))
    if interrupted:
        return 130
    return 1 if run.failures else 0
