"""Tracking and smoothing on rendered static-camera sequences with known identities (issue 15).

    python benchmarks/tracking_synthetic.py [--sequences 3] [--frames 100] [--fps 25] [--detector mili|multipose|hog]
        [--model lrmove_l_128] [--threads 2]

Sequences: :meth:`~lowres_hps.data.synth.generator.SynthGenerator.sequence` (seeds 7000, 7001, ...; 768 x 576,
4-8 people walking across a ground plane at 0.7-1.6 m/s, one held pose each, backgrounds from
``../shared/data/backgrounds`` when present). Ground truth per frame: each visible person's mask box and identity,
and its COCO-17 keypoints (labelled ones).

Per sequence, as ``predict`` does it: the detector's boxes -> the 2D model on each box
(:class:`~lowres_hps.apis.predictor.Predictor`) -> :class:`~lowres_hps.apis.people_tracker.PeopleTracker` with
``predict``'s tracker thresholds, once without and once with One-Euro smoothing (the same tracks). Scores:

- MOTA, IDF1, ID switches, false positives, misses (``motmetrics``, IoU >= 0.5; :func:`lowres_hps.tracking.mot_metrics`);
- keypoint jitter: mean frame-to-frame acceleration of the tracked people's 2D keypoints (px/s^2), raw and smoothed;
- keypoint error: mean distance (px) to the ground truth's labelled keypoints, for tracked people matched to a
  ground-truth person (IoU >= 0.5), raw and smoothed.

Results: ``benchmarks/results/tracking_synthetic.json`` and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
BACKGROUNDS = ROOT.parent / "shared/data/backgrounds"
RESULTS = ROOT / "benchmarks/results/tracking_synthetic.json"


def build_detector(name: str):
    from lowres_hps.apis import detector as detectors
    from lowres_hps.apis.registry import load_model

    if name == "mili":
        return detectors.MILIDetector(load_model("mili_multipose"))
    if name == "multipose":
        return detectors.MultiPoseDetector(min_score=0.2)
    return detectors.HOGPeopleDetector()


def score_sequence(frames, predictor, fps: float) -> dict:
    from lowres_hps.apis.people_tracker import PeopleTracker, TrackingConfig
    from lowres_hps.commands.predict import TRACKER_THRESHOLDS
    from lowres_hps.tracking import acceleration_jitter, iou_matrix, mot_metrics

    trackers = {mode: PeopleTracker(TrackingConfig(tracker=TRACKER_THRESHOLDS, smooth=mode == "smoothed"), fps=fps)
                for mode in ("raw", "smoothed")}
    gt_rows, hyp_rows = [], []
    keypoints: dict[str, dict[int, dict[int, np.ndarray]]] = {"raw": {}, "smoothed": {}}
    errors: dict[str, list[float]] = {"raw": [], "smoothed": []}
    seconds = 0.0
    for index, frame in enumerate(frames):
        truth = [p for p in frame.people if p.bbox[3] >= 8]
        gt_boxes = np.array([p.bbox for p in truth], np.float64).reshape(-1, 4)
        gt_rows += [[index + 1, p.person_id + 1, *p.bbox] for p in truth]
        start = time.perf_counter()
        people = predictor.predict_image(frame.image)
        seconds += time.perf_counter() - start
        for mode, tracker in trackers.items():
            tracked = tracker.update(index, people)
            if mode == "raw":
                hyp_rows += [[index + 1, p.track_id, *p.bbox] for p in tracked]
            if not tracked:
                continue
            boxes = np.array([p.bbox for p in tracked])
            iou = iou_matrix(boxes, gt_boxes) if len(gt_boxes) else np.zeros((len(boxes), 0))
            for n, person in enumerate(tracked):
                keypoints[mode].setdefault(person.track_id, {})[index] = person.keypoints[:, :2]
                if iou.shape[1] and iou[n].max() >= 0.5:
                    label = truth[int(iou[n].argmax())].keypoints2d
                    labelled = label[:, 2] > 0
                    if labelled.any():
                        errors[mode].append(float(np.linalg.norm(person.keypoints[labelled, :2] - label[labelled, :2],
                                                                 axis=1).mean()))
    result = mot_metrics(np.array(gt_rows), np.array(hyp_rows).reshape(-1, 6))
    for mode in ("raw", "smoothed"):
        jitters = []
        for per_frame in keypoints[mode].values():
            run = [per_frame[i] for i in sorted(per_frame)]
            if len(run) >= 3 and sorted(per_frame) == list(range(min(per_frame), max(per_frame) + 1)):
                jitters.append(acceleration_jitter(np.stack(run), fps))
        result[f"jitter_{mode}"] = float(np.mean(jitters)) if jitters else float("nan")
        result[f"keypoint_error_{mode}"] = float(np.mean(errors[mode])) if errors[mode] else float("nan")
    result["frames_per_second"] = len(frames) / seconds
    return result


def scene_generator():
    """The static-camera scenes of this project's video benchmarks: 576 x 768, 4-8 walkers, no occluders, the
    shared backgrounds when present (this one, ``sta_background.py``, ``facing_motion.py``)."""
    from lowres_hps.data.synth.generator import SynthConfig, SynthGenerator

    backgrounds = tuple(str(p) for p in sorted(BACKGROUNDS.glob("*.jpg"))) if BACKGROUNDS.is_dir() else ()
    return SynthGenerator(SynthConfig(layout="scenes", scene_size=(576, 768), people_per_scene=(4, 8),
                                      occluder_probability=0.0, backgrounds=backgrounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--detector", default="mili", choices=["mili", "multipose", "hog"])
    parser.add_argument("--model", default="lrmove_l_128", help="2D model on the tracked boxes")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model

    torch.set_num_threads(args.threads)
    generator = scene_generator()
    predictor = Predictor(load_model(args.model), build_detector(args.detector))
    rows = {}
    for k in range(args.sequences):
        frames = generator.sequence(7000 + k, 0, num_frames=args.frames, fps=args.fps)
        rows[f"seq{k}"] = score_sequence(frames, predictor, args.fps)
        print(f"seq{k}: {rows[f'seq{k}']}", flush=True)
    keys = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects", "jitter_raw",
            "jitter_smoothed", "keypoint_error_raw", "keypoint_error_smoothed", "frames_per_second"]
    mean = {key: float(np.mean([r[key] for r in rows.values()])) for key in keys}
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[args.detector] = {"sequences": rows, "mean": mean, "frames": args.frames, "fps": args.fps,
                              "model": args.model, "backgrounds": len(generator.config.backgrounds), "threads": args.threads,
                              "date": time.strftime("%Y-%m-%d")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print("| detector | MOTA | IDF1 | ID switches | FP | misses | GT boxes | jitter raw -> smoothed (px/s^2) | "
          "keypoint error raw -> smoothed (px) | frames/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m = r["mean"]
        print(f"| {name} | {m['mota']:.3f} | {m['idf1']:.3f} | {m['num_switches']:.1f} | {m['num_false_positives']:.0f} | "
              f"{m['num_misses']:.0f} | {m['num_objects']:.0f} | {m['jitter_raw']:.0f} -> {m['jitter_smoothed']:.0f} | "
              f"{m['keypoint_error_raw']:.2f} -> {m['keypoint_error_smoothed']:.2f} | {m['frames_per_second']:.1f} |")


if __name__ == "__main__":
    main()
