"""`lowres-hps label`: COCO keypoint pseudo-labels of real people from high-resolution teachers.

Sources: a dataset through the readers (``--dataset lsp:PATH``, ground truth kept, the teacher fills
the joints it lacks), or images, folders and videos with ``--boxes`` or a detector (``--detector``: OpenCV's HOG, or
MoveNet MultiPose on the image upscaled 2x as a high-resolution box teacher). Video
frames (``--frames A:B``, 1-based inclusive, every ``--every``-th) are written as JPEG to
``OUT/images``. The result is ``OUT/labels.json``, written atomically after every image so an
interrupted run keeps what it labelled.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: the CLI builds every command's arguments at start, and these are heavy
    from lowres_hps.apis.labeling import TeacherLabeler

__all__ = ["main", "add_arguments", "load_teacher", "TEACHERS"]

TEACHERS = ("movenet_thunder", "movenet_lightning")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", help="images, folders or videos (or use --dataset)")
    p.add_argument("--out", required=True, help="output folder: labels.json and images/ (video frames)")
    p.add_argument("--dataset", default=None, metavar="FORMAT:PATH",
                   help="label the people of a dataset through the readers, e.g. lsp:lspet_400/joints.mat or "
                        "coco:ann.json; its ground-truth joints are kept")
    p.add_argument("--indices", default=None, metavar="A:B", help="with --dataset: people A (inclusive) to B (exclusive)")
    p.add_argument("--boxes", default=None, help="COCO json with the person boxes of the input images")
    p.add_argument("--detector", choices=["hog", "multipose"], default="hog",
                   help="people without --boxes: OpenCV's HOG (2x upscaled) or MoveNet MultiPose (2x upscaled, people "
                        "scoring >= 0.25: it finds the small, sitting and turned people HOG misses; make pretrained)")
    p.add_argument("--frames", default=None, metavar="A:B", help="videos: frames A to B, 1-based inclusive")
    p.add_argument("--every", type=int, default=1, help="videos: label every N-th frame")
    p.add_argument("--teacher", choices=TEACHERS, default="movenet_thunder")
    p.add_argument("--second-teacher", choices=TEACHERS + ("none",), default="movenet_lightning",
                   help="second opinion for the disagreement filter ('none' turns the filter off)")
    p.add_argument("--min-score", type=float, default=0.3, help="smallest teacher score of a kept joint")
    p.add_argument("--max-disagreement", type=float, default=0.1,
                   help="largest distance between the teachers, as a fraction of the box height")
    p.add_argument("--min-keypoints", type=int, default=4, help="drop people with fewer kept joints")
    p.add_argument("--min-height", type=float, default=40.0, help="skip detected/given boxes shorter than this (px)")


def load_teacher(name: str):
    from lowres_hps.models.movenet import MoveNetEstimator

    return MoveNetEstimator.from_variant(name.removeprefix("movenet_"))


def _span(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise SystemExit(f"lowres-hps label: {what} must be A:B with integers, got {text!r}") from None
    if a < 0 or b < a:
        raise SystemExit(f"lowres-hps label: {what} must be A:B with 0 <= A <= B, got {text!r}")
    return a, b


class _Output:
    """The COCO file being written: images, annotations, atomic rewrite after each image."""

    def __init__(self, out: Path, info: dict) -> None:
        self.out = out
        self.images_dir = out / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        from lowres_hps.apis.labeling import coco_keypoints_categories

        self.data = {"info": info, "images": [], "annotations": [], "categories": coco_keypoints_categories()}
        self.path = out / "labels.json"

    def add(self, image_path: Path, size: tuple[int, int], people: list[dict | None], extra: dict | None = None) -> int:
        image_id = len(self.data["images"]) + 1
        entry = {"id": image_id, "file_name": os.path.relpath(image_path.resolve(), self.images_dir.resolve()),
                 "height": int(size[0]), "width": int(size[1]), **(extra or {})}
        self.data["images"].append(entry)
        kept = 0
        for person in people:
            if person is None:
                continue
            self.data["annotations"].append({"id": len(self.data["annotations"]) + 1, "image_id": image_id, **person})
            kept += 1
        self.flush()
        return kept

    def flush(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


def _label_dataset(args, labeler: TeacherLabeler, output: _Output) -> tuple[int, int]:
    from lowres_hps.body.keypoints import get_mapping, map_keypoints
    from lowres_hps.data import open_reader

    fmt, _, path = args.dataset.partition(":")
    if not path:
        raise SystemExit(f"lowres-hps label: --dataset must be FORMAT:PATH, got {args.dataset!r}")
    reader = open_reader(fmt, path)
    span = _span(args.indices, "--indices")
    indices = range(len(reader)) if span is None else range(span[0], min(span[1], len(reader)))
    by_image: dict[Path, list] = {}
    for i in indices:
        sample = reader[i]
        by_image.setdefault(Path(sample.image_path), []).append(sample)
    mapping = get_mapping(reader.convention, "coco17")
    people = kept = 0
    for image_path, samples in by_image.items():
        image = samples[0].load_image()
        boxes = np.stack([np.asarray(s.bbox, np.float64) for s in samples])
        truths = []
        for s in samples:
            points, labelled = map_keypoints(s.keypoints2d[:, :2].astype(np.float64), mapping,
                                             (s.keypoints2d[:, 2] > 0).astype(np.float64))
            truths.append(np.concatenate([points, labelled[:, None]], axis=1))
        kept += output.add(image_path, image.shape[:2], labeler.label(image, boxes, truths))
        people += len(samples)
    return people, kept


def _label_inputs(args, labeler: TeacherLabeler, output: _Output) -> tuple[int, int]:
    from PIL import Image

    from lowres_hps.apis.inputs import PersonBoxes, VideoReader, collect_inputs, load_image

    sources, errors = collect_inputs(args.inputs)
    for error in errors:
        print(f"lowres-hps label: skipped: {error}", file=sys.stderr)
    # Every person box: the people without labelled keypoints are the ones that most need the teacher.
    boxes = PersonBoxes.from_coco(args.boxes, all_boxes=True) if args.boxes else None
    detector = None
    if boxes is None:
        from lowres_hps.apis import detector as detectors

        if getattr(args, "detector", "hog") == "multipose":
            detector = detectors.MultiPoseDetector(upscale=2.0, min_score=0.25)
        else:
            detector = detectors.HOGPeopleDetector()
    frames = _span(args.frames, "--frames")
    people = kept = 0

    def run(image: np.ndarray, path: Path, image_boxes: np.ndarray, extra: dict | None = None) -> None:
        nonlocal people, kept
        image_boxes = image_boxes[image_boxes[:, 3] >= args.min_height] if len(image_boxes) else image_boxes
        people += len(image_boxes)
        kept += output.add(path, image.shape[:2], labeler.label(image, image_boxes), extra)

    for source in sources:
        if source.kind == "image":
            image, _ = load_image(source.path)
            image_boxes = boxes.boxes[boxes.lookup(source.path)] if boxes is not None else detector(image)[0]
            run(image, Path(source.path), image_boxes)
            continue
        with VideoReader(source.stream or source.path) as video:
            for index, frame in video:
                number = index + 1
                if frames is not None and not frames[0] <= number <= frames[1]:
                    if number > frames[1]:
                        break
                    continue
                if (number - (frames[0] if frames else 1)) % max(1, args.every):
                    continue
                frame_path = output.images_dir / f"{Path(source.path).stem}_{number:06d}.jpg"
                Image.fromarray(frame).save(frame_path, quality=95)
                run(frame, frame_path, detector(frame)[0] if detector is not None else np.zeros((0, 4)),
                    {"video": str(source.path), "frame": number})
    return people, kept


def main(args: argparse.Namespace) -> int:
    if not args.inputs and not args.dataset:
        raise SystemExit("lowres-hps label: give images, folders or videos, or --dataset FORMAT:PATH")
    if args.inputs and args.dataset:
        raise SystemExit("lowres-hps label: give either inputs or --dataset, not both")
    if args.every < 1:
        raise SystemExit(f"lowres-hps label: --every must be >= 1, got {args.every}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"lowres-hps label: --out exists and is not a folder: {out}")
    from lowres_hps.apis.labeling import LabelConfig, TeacherLabeler

    config = LabelConfig(args.min_score, args.max_disagreement, args.min_keypoints)
    teacher = load_teacher(args.teacher)
    second = None if args.second_teacher == "none" else load_teacher(args.second_teacher)
    labeler = TeacherLabeler(teacher, second, config)
    info = {"description": "lowres-hps pseudo-labels", "teachers": labeler.names,
            "filters": {"min_score": config.min_score, "max_disagreement": config.max_disagreement,
                        "min_keypoints": config.min_keypoints},
            "source": args.dataset or [str(p) for p in args.inputs],
            "boxes": "dataset" if args.dataset else (args.boxes or f"detector: {getattr(args, 'detector', 'hog')}"),
            "date": time.strftime("%Y-%m-%d")}
    output = _Output(out, info)
    start = time.time()
    try:
        people, kept = (_label_dataset if args.dataset else _label_inputs)(args, labeler, output)
    except KeyboardInterrupt:
        output.flush()
        print(f"lowres-hps label: interrupted; {len(output.data['annotations'])} people kept in {output.path}",
              file=sys.stderr)
        return 130
    print(f"labelled {people} people in {len(output.data['images'])} images in {time.time() - start:.0f} s; "
          f"kept {kept} with >= {config.min_keypoints} joints: {output.path}")
    return 0
