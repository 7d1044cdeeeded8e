"""Person detection AP50 on real frames made small: HOG against MoveNet MultiPose (and later MILI).

    python benchmarks/detection_real.py [--sets vtest_val coco_holdout] [--heights 80 40 27 20]
        [--detectors hog multipose@1 multipose@2] [--vtest-frames 1:400] [--every 16] [--threads 2]

Sets (never the held-out vtest frames 401-795):
- ``vtest_val``: vtest.avi frames ``--vtest-frames`` (within 1-400), every ``--every``-th, with **teacher boxes**
  as ground truth: MoveNet MultiPose on the full-resolution frame upscaled 2x (people 120-320 px for it), people
  scoring at least ``--teacher-min-score``; cached in ``data/labels/vtest_A_B_boxes/labels.json``. Results of
  another frame range go under ``vtest_val_A_B``. The detectors under test see
  the frame downscaled; the teacher saw it at 2x. This is validation for choosing settings, not ground truth:
  it favours detectors that agree with MultiPose, and misses what MultiPose misses at full resolution.
- ``coco_holdout``: ``data/real/coco_holdout.json`` (17 COCO images, 66 people, real boxes; crowd ignored),
  each image scaled so that its median labelled person has the target height.

Each frame is downscaled (area averaging) so that the set's median person (vtest) or the image's median
person (COCO) is ``--heights`` px tall, ground-truth boxes scaled with it; each detector runs on that image;
COCO box AP at IoU 0.5 (pycocotools) per set and height. ``name@u`` runs a detector on the image upscaled by
``u``; ``multipose@auto`` lets it choose; ``mili:RUN`` is a trained MILI run folder through its estimator (long side
1024, RoI heads run too); ``milidet:NAME|RUN|EXPORT.onnx`` is ``predict --detector mili`` (long side 768). Results: ``benchmarks/results/detection_real.json`` and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
VTEST = SHARED / "opencv_samples/vtest.avi"
COCO_HOLDOUT = ROOT / "data/real/coco_holdout.json"
COCO_IMAGES = SHARED / "coco_mini_train/train2017"
RESULTS = ROOT / "benchmarks/results/detection_real.json"


def vtest_frames(first: int, last: int, every: int) -> dict[int, np.ndarray]:
    """Frames ``first``-``last`` (1-based ids, within 1-400), every ``every``-th, RGB."""
    import cv2

    if not 1 <= first <= last <= 400:
        sys.exit(f"vtest frames must lie within 1-400 (401-795 are held out), got {first}:{last}")
    capture = cv2.VideoCapture(str(VTEST))
    frames = {}
    for index in range(first - 1, last, every):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if not ok:
            sys.exit(f"could not read frame {index + 1} of {VTEST}")
        frames[index + 1] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frames


def vtest_teacher_boxes(frames: dict[int, np.ndarray], min_score: float, cache: Path) -> dict:
    """Teacher boxes for the frames (cached in ``cache``; recomputed when it lacks a frame)."""
    from lowres_hps.apis.detector import MultiPoseDetector

    cached = json.loads(cache.read_text()) if cache.is_file() else None
    if cached and cached["info"]["teacher_min_score"] == min_score and \
            {i["id"] for i in cached["images"]} >= set(frames):
        keep = set(frames)
        return {**cached, "images": [i for i in cached["images"] if i["id"] in keep],
                "annotations": [a for a in cached["annotations"] if a["image_id"] in keep]}
    teacher = MultiPoseDetector(upscale=2.0, min_score=min_score, max_pixels=1536 * 1152)
    images, anns = [], []
    for frame_id, frame in frames.items():
        boxes, scores = teacher(frame)
        images.append({"id": frame_id, "file_name": f"vtest.avi#{frame_id}", "height": frame.shape[0],
                       "width": frame.shape[1]})
        for (x, y, w, h), score in zip(boxes, scores):
            anns.append({"id": len(anns) + 1, "image_id": frame_id, "category_id": 1, "iscrowd": 0,
                         "bbox": [round(float(x + 0.5), 2), round(float(y + 0.5), 2), round(float(w), 2),
                                  round(float(h), 2)], "area": float(w * h), "score": round(float(score), 4)})
    data = {"info": {"description": "teacher person boxes on vtest.avi frames 1-400 (validation, not ground truth)",
                     "teacher": repr(teacher), "teacher_min_score": min_score, "source": str(VTEST),
                     "date": time.strftime("%Y-%m-%d")},
            "images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(data))
    return data


def load_set(name: str, every: int, teacher_min_score: float, vtest_range: tuple[int, int] = (1, 400)
             ) -> tuple[dict, dict[int, np.ndarray]]:
    from PIL import Image

    if name == "vtest_val":
        if not VTEST.is_file():
            sys.exit(f"{VTEST} not found (this benchmark reads ../shared/data in place)")
        first, last = vtest_range
        frames = vtest_frames(first, last, every)
        cache = ROOT / f"data/labels/vtest_{first}_{last}_boxes/labels.json"
        return vtest_teacher_boxes(frames, teacher_min_score, cache), frames
    if name == "coco_holdout":
        if not COCO_HOLDOUT.is_file():
            sys.exit(f"{COCO_HOLDOUT} not found: make it with python scripts/make_real_splits.py")
        gt = json.loads(COCO_HOLDOUT.read_text())
        images = {}
        for image in gt["images"]:
            path = COCO_IMAGES / image["file_name"]
            if not path.is_file():
                path = SHARED / image["file_name"]
            images[image["id"]] = np.asarray(Image.open(path).convert("RGB"))
        return gt, images
    sys.exit(f"unknown set {name!r}: vtest_val or coco_holdout")


def scaled(gt: dict, images: dict[int, np.ndarray], height: float, per_image: bool):
    """Images and ground truth downscaled so the median person (of the set, or of each image) is ``height`` px."""
    import cv2

    people = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
    set_median = float(np.median([a["bbox"][3] for a in people]))
    out_images, out_gt = {}, {**gt, "images": [], "annotations": []}
    for image in gt["images"]:
        mine = [a["bbox"][3] for a in people if a["image_id"] == image["id"]]
        if per_image and not mine:
            continue
        factor = height / (float(np.median(mine)) if per_image else set_median)
        array = images[image["id"]]
        w, h = max(1, round(array.shape[1] * factor)), max(1, round(array.shape[0] * factor))
        out_images[image["id"]] = cv2.resize(array, (w, h), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        fx, fy = w / array.shape[1], h / array.shape[0]
        out_gt["images"].append({**image, "width": w, "height": h})
        for a in gt["annotations"]:
            if a["image_id"] == image["id"]:
                x, y, bw, bh = a["bbox"]
                out_gt["annotations"].append({**a, "bbox": [x * fx, y * fy, bw * fx, bh * fy], "area": bw * bh * fx * fy})
    return out_gt, out_images


def build_detector(spec: str):
    from lowres_hps.apis.detector import HOGPeopleDetector, MultiPoseDetector, PeopleDetector

    if spec.startswith("mili:"):  # mili:RUN_FOLDER, a trained MILI run (low-resolution branch, auto upscale)
        from lowres_hps.apis.registry import load_run

        return PeopleDetector(load_run(spec.removeprefix("mili:"), min_score=0.02))
    if spec.startswith("milidet:"):  # milidet:NAME|RUN|EXPORT.onnx: MILIDetector, predict's --detector mili
        from lowres_hps.apis.detector import MILIDetector
        from lowres_hps.apis.registry import load_model, load_run

        source = spec.removeprefix("milidet:")
        if source.endswith(".onnx"):
            return MILIDetector(source, min_score=0.02, num_threads=2)
        return MILIDetector(load_run(source) if Path(source).is_dir() else load_model(source), min_score=0.02)
    name, _, upscale = spec.partition("@")
    if name == "hog":
        return HOGPeopleDetector(upscale=float(upscale or 2.0))
    if name == "multipose":  # multipose@auto: the detector's own choice (long side to 1024, x1 to x4)
        return MultiPoseDetector(upscale=None if upscale == "auto" else float(upscale or 1.0), min_score=0.02)
    sys.exit(f"unknown detector {spec!r}: hog[@u] or multipose[@u|@auto]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["vtest_val", "coco_holdout"])
    parser.add_argument("--heights", nargs="+", type=float, default=[80, 40, 27, 20])
    parser.add_argument("--detectors", nargs="+", default=["hog", "multipose@1", "multipose@2"])
    parser.add_argument("--every", type=int, default=16, help="vtest_val: every n-th frame")
    parser.add_argument("--vtest-frames", default="1:400", help="vtest_val: frames A:B (1-based, within 1-400)")
    parser.add_argument("--teacher-min-score", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache/anny"))
    import torch

    from lowres_hps.evaluation.detection import coco_box_ap, detections_to_coco

    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    detectors = {spec: build_detector(spec) for spec in args.detectors}
    first, last = (int(v) for v in args.vtest_frames.split(":"))
    keys = {name: (f"vtest_val_{first}_{last}" if name == "vtest_val" and (first, last) != (1, 400) else name)
            for name in args.sets}
    for set_name in args.sets:
        gt, images = load_set(set_name, args.every, args.teacher_min_score, (first, last))
        for height in args.heights:
            small_gt, small = scaled(gt, images, height, per_image=set_name == "coco_holdout")
            for spec, detector in detectors.items():
                detections, seconds = [], []
                for image_id, image in small.items():
                    start = time.perf_counter()
                    boxes, scores = detector(image)
                    seconds.append(time.perf_counter() - start)
                    detections += detections_to_coco(image_id, boxes, scores)
                stats = coco_box_ap(small_gt, detections)
                row = {"AP50": stats["AP50"], "AP": stats["AP"], "AR100": stats["AR100"], "people": stats["num_people"],
                       "images": stats["num_images"], "detections": stats["num_detections"],
                       "ms_per_image": 1000 * float(np.median(seconds)),
                       "image_size": list(next(iter(small.values())).shape[1::-1]), "detector": repr(detector),
                       "threads": args.threads, "date": time.strftime("%Y-%m-%d")}
                results.setdefault(keys[set_name], {}).setdefault(f"{height:g}", {})[spec] = row
                print(f"{keys[set_name]} {height:g}px {spec}: AP50 {row['AP50']:.3f} AP {row['AP']:.3f} "
                      f"({row['people']} people, {row['detections']} boxes, {row['ms_per_image']:.0f} ms/image)", flush=True)
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(results, indent=1))
    for set_name in (keys[name] for name in args.sets):
        print(f"\n{set_name}: AP50 at person heights (px)\n")
        heights = list(results[set_name])
        print("| detector | " + " | ".join(heights) + " |")
        print("|---|" + "---|" * len(heights))
        specs = sorted({s for h in heights for s in results[set_name][h]})
        for spec in specs:
            cells = [f"{results[set_name][h][spec]['AP50']:.3f}" if spec in results[set_name][h] else "-" for h in heights]
            print(f"| {spec} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
