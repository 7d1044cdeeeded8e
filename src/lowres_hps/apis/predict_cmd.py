"""``lowres-hps predict``: 2D keypoints of the people in images, folders and videos.

Writes, in ``--out``:

- ``predictions.json``: COCO keypoint results, one entry per person: ``image_id``, ``category_id`` 1,
  ``keypoints`` ``[x, y, score] * K`` in original image pixels (the model's convention, COCO-17 for the
  default), ``score`` and ``bbox`` (the person box it was cropped from). The person score is the mean of
  the keypoint scores, times the detector's box score when people come from the detector.
- ``images.json`` (without ``--boxes``): the assigned image ids, ``[{id, file_name, width, height}]``, with
  ``frame_index`` for video frames and ``error`` for unusable files. Images get 1..N in input order; a
  video's frames get the next free id plus their frame index, so a lone video's ids are frame index + 1.
  With ``--boxes`` the ids are those of the annotation file.
- ``overlays/<name>.jpg`` per image and ``<video stem>_overlay.mp4`` per video (unless ``--no-overlay``).

People come from ``--boxes`` (a COCO annotation file) or from the HOG people detector
(:class:`~lowres_hps.apis.detector.HOGPeopleDetector`). Unusable inputs are reported on stderr, one line
per file, and skipped; the rest is processed and the exit status is 1.

The model is resolved by :func:`load_estimator`, a module-level hook: tests (or other tools) may replace it
with any function ``(name_or_path, device) -> PoseEstimator``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from lowres_hps.apis.estimator import PoseEstimator
from lowres_hps.apis.inputs import InputError, InputSource, PersonBoxes, VideoReader, collect_inputs, load_image
from lowres_hps.apis.predictor import PersonPrediction, Predictor

__all__ = ["DEFAULT_MODEL", "DEFAULT_VIDEO_FPS", "load_estimator", "coco_result", "draw_predictions", "main"]

DEFAULT_MODEL = "cal_r18_64x48"
"""Registry name of the model ``--model`` defaults to."""
DEFAULT_VIDEO_FPS = 25.0
"""Frame rate of an overlay video when the source does not say its own."""
_PROG = "lowres-hps predict"


def load_estimator(name_or_path: str, device: str | None = None) -> PoseEstimator:
    """The model for ``--model``: :func:`lowres_hps.apis.registry.load_model`.

    Raises:
        ValueError: the project has no model registry yet.
    """
    try:
        registry = importlib.import_module("lowres_hps.apis.registry")
    except ModuleNotFoundError as exc:
        if exc.name != "lowres_hps.apis.registry":
            raise
        raise ValueError(f"cannot load model {name_or_path!r}: no model is registered yet "
                         "(lowres_hps.apis.registry is missing)") from None
    return registry.load_model(name_or_path, device=device)


def coco_result(image_id: int, person: PersonPrediction) -> dict:
    """One COCO keypoint results entry (coordinates to 0.01 px, scores to 1e-4)."""
    keypoints = np.column_stack([np.round(person.keypoints[:, :2], 2), np.round(person.keypoints[:, 2], 4)])
    return {
        "image_id": int(image_id),
        "category_id": 1,
        "keypoints": [float(v) for v in keypoints.reshape(-1)],
        "score": round(float(person.score), 4),
        "bbox": [round(float(v), 2) for v in person.bbox],
    }


def draw_predictions(image: np.ndarray, people: list[PersonPrediction], convention: str,
                     keypoint_threshold: float = 0.3) -> np.ndarray:
    """The image with each person's box and skeleton; keypoints scoring below the threshold are not drawn."""
    from lowres_hps.viz.keypoints import draw_keypoints

    canvas = np.ascontiguousarray(image.copy())
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


class _Run:
    """State of one ``predict`` run: ids, results, overlays and failures."""

    def __init__(self, args: argparse.Namespace, predictor: Predictor, boxes: PersonBoxes | None) -> None:
        self.args = args
        self.predictor = predictor
        self.boxes = boxes
        self.out = Path(args.out)
        self.results: list[dict] = []
        self.images: list[dict] = []
        self.failures = 0
        self.images_done = 0
        self.frames = 0
        self.next_id = 1
        self.overlay_images = 0
        self.overlay_videos: list[str] = []
        self._overlay_names: set[str] = set()

    def fail(self, error: Exception) -> None:
        self.failures += 1
        _report("error", str(error))

    def _overlay_path(self, stem: str, suffix: str) -> Path:
        name, n = stem + suffix, 1
        while name in self._overlay_names:  # same file name in two folders
            n += 1
            name = f"{stem}_{n}{suffix}"
        self._overlay_names.add(name)
        return (self.out / "overlays" / name) if suffix == ".jpg" else (self.out / name)

    def _draw(self, image: np.ndarray, people: list[PersonPrediction]) -> np.ndarray:
        return draw_predictions(image, people, self.predictor.estimator.convention, self.args.kpt_threshold)

    def images_chunk(self, chunk: list[InputSource], progress: tqdm) -> None:
        """Read, predict on and record a chunk of image files (their people batched together)."""
        from lowres_hps.imaging.io import write_image_rgb

        loaded: list[tuple[InputSource, int, np.ndarray]] = []
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
                if self.boxes is None:
                    self.images.append({"id": image_id, "file_name": str(source.path), "error": str(exc)})
                progress.update(1)
                continue
            for note in notes:
                _report("note", f"{note}: {source.path}")
            loaded.append((source, image_id, image))
        if not loaded:
            return
        boxes = None if self.boxes is None else [self.boxes.boxes[image_id] for _, image_id, _ in loaded]
        predictions = self.predictor.predict_images([image for _, _, image in loaded], boxes)
        for (source, image_id, image), people in zip(loaded, predictions):
            self.results.extend(coco_result(image_id, person) for person in people)
            self.images_done += 1
            if self.boxes is None:
                self.images.append({"id": image_id, "file_name": str(source.path),
                                    "width": image.shape[1], "height": image.shape[0]})
            if not self.args.no_overlay:
                path = self._overlay_path(source.path.stem, ".jpg")
                write_image_rgb(path, self._draw(image, people))
                self.overlay_images += 1
            progress.update(1)

    def video(self, source: InputSource) -> None:
        """Predict on every frame of a video, writing the overlay video as it goes."""
        from lowres_hps.viz.video import VideoWriterRGB

        try:
            reader = VideoReader(source.path)
        except InputError as exc:
            self.fail(exc)
            return
        base_id = self.next_id - 1
        fps = reader.fps
        if fps is None and not self.args.no_overlay:
            _report("note", f"frame rate unknown, overlay written at {DEFAULT_VIDEO_FPS:g} fps: {source.path}")
        writer = None
        if not self.args.no_overlay:
            writer = VideoWriterRGB(self._overlay_path(source.path.stem, "_overlay.mp4"), fps or DEFAULT_VIDEO_FPS)
        max_frames = getattr(self.args, "max_frames", None)
        total = reader.frame_count if max_frames is None else min(reader.frame_count or max_frames, max_frames)
        progress = tqdm(total=total, desc=source.path.name, unit="frame", disable=None, file=sys.stderr)
        try:
            pending: list[tuple[int, np.ndarray]] = []
            for index, frame in reader:
                if max_frames is not None and index >= max_frames:
                    break
                pending.append((index, frame))
                if len(pending) == self.args.batch_size:
                    self._frames(source, base_id, pending, writer, progress)
                    pending = []
            if pending:
                self._frames(source, base_id, pending, writer, progress)
        finally:
            progress.close()
            if writer is not None:
                writer.close()
        frames_used = reader.frames_read if max_frames is None else min(reader.frames_read, max_frames)
        self.next_id = base_id + frames_used + 1
        self.frames += frames_used
        if writer is not None and writer.frames_written:
            self.overlay_videos.append(str(writer.path))
        stopped_early = max_frames is not None and frames_used >= max_frames
        if reader.problem is not None and not stopped_early:
            self.fail(InputError(reader.problem))

    def _frames(self, source: InputSource, base_id: int, frames: list[tuple[int, np.ndarray]],
                writer, progress: tqdm) -> None:
        predictions = self.predictor.predict_images([frame for _, frame in frames])
        for (index, frame), people in zip(frames, predictions):
            image_id = base_id + index + 1
            self.results.extend(coco_result(image_id, person) for person in people)
            self.images.append({"id": image_id, "file_name": str(source.path), "frame_index": index,
                                "width": frame.shape[1], "height": frame.shape[0]})
            if writer is not None:
                writer.write(self._draw(frame, people))
            progress.update(1)


def _check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.person_height is not None and not args.person_height > 0:
        raise ValueError(f"--person-height must be positive, got {args.person_height}")
    if not args.detector_upscale > 0:
        raise ValueError(f"--detector-upscale must be positive, got {args.detector_upscale}")
    if not 0.0 < args.detector_min_score < 1.0:
        raise ValueError(f"--detector-min-score must be in (0, 1), got {args.detector_min_score}")
    if args.all_boxes and args.boxes is None:
        raise ValueError("--all-boxes needs --boxes")


def main(args: argparse.Namespace) -> int:
    """Run ``predict``; returns 0, or 1 when any input could not be used (reported on stderr)."""
    from lowres_hps.apis.detector import HOGPeopleDetector

    _check_args(args)
    boxes = PersonBoxes.from_coco(args.boxes, all_boxes=args.all_boxes) if args.boxes else None
    if boxes is not None and boxes.skipped_without_keypoints:
        _report("note", f"{boxes.skipped_without_keypoints} person boxes without labelled keypoints left out "
                        f"(--all-boxes keeps them): {args.boxes}")
    sources, errors = collect_inputs(args.inputs)
    if boxes is not None and any(s.kind == "video" for s in sources):
        raise ValueError("--boxes gives boxes of images, not of video frames: run videos without --boxes")

    try:
        detector = None if boxes is not None else HOGPeopleDetector(upscale=args.detector_upscale,
                                                                    min_score=args.detector_min_score)
    except RuntimeError as exc:  # this OpenCV has no HOG: a setup problem the user can fix
        raise ValueError(str(exc)) from None
    model = args.model or DEFAULT_MODEL
    estimator = load_estimator(model, args.device)  # the module attribute, looked up now: patchable
    if args.flip_test is not None:
        if not hasattr(estimator, "flip_test"):
            raise ValueError(f"model {model!r} has no flip test setting (no flip_test attribute)")
        estimator.flip_test = args.flip_test
    predictor = Predictor(estimator, detector, person_height=args.person_height, batch_size=args.batch_size,
                          device=args.device)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(args, predictor, boxes)
    for error in errors:
        run.fail(error)
    image_total = sum(s.kind == "image" for s in sources)
    progress = tqdm(total=image_total, unit="image", disable=None if image_total > 1 else True, file=sys.stderr)
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
    finally:
        progress.close()

    predictions_path = out / "predictions.json"
    predictions_path.write_text(json.dumps(run.results))
    summary = {
        "predictions": str(predictions_path),
        "model": model,
        "people_from": f"boxes: {args.boxes}" if boxes is not None else repr(detector),
        "person_height": args.person_height,
        "images": run.images_done,
        "frames": run.frames,
        "people": len(run.results),
        "failed": run.failures,
        "overlay_images": str(out / "overlays") if run.overlay_images else None,
        "overlay_videos": run.overlay_videos,
    }
    if boxes is None:
        images_path = out / "images.json"
        images_path.write_text(json.dumps(sorted(run.images, key=lambda entry: entry["id"]), indent=1))
        summary["images_json"] = str(images_path)
    print(json.dumps(summary, indent=2))
    return 1 if run.failures else 0
