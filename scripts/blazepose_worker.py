"""BlazePose GHUM (mediapipe Pose) on a file of person crops: the subprocess side of the BlazePose peer/teacher.

Runs ONLY under mediapipe's own interpreter (``make mediapipe-env`` -> ``.venv-mediapipe/bin/python``): mediapipe
pins protobuf<5 and numpy<2, so the main package never imports it and talks to this script through files.

    .venv-mediapipe/bin/python scripts/blazepose_worker.py crops.npz out.npz [--model-complexity 0|1|2] [--threads 1]

Input ``crops.npz``: ``crops`` (N, H, W, 3) uint8 RGB person crops (one person each, roughly centred).
Output ``out.npz`` (per crop n; a crop where mediapipe finds no person has ``detected[n] = False``, zero
landmarks, visibility and mask):
- ``landmarks`` (N, 33, 3) float32: x, y in crop pixels (pixel centres at integer coordinates) and
  visibility (the model's sigmoid output, in [0, 1]). No presence: the Pose solution's graph leaves the
  landmarks' ``presence`` field unset (it reads 0 for every landmark in mediapipe 0.10.21).
- ``world_landmarks`` (N, 33, 3) float32: metric 3D landmarks in metres, origin between the hips
  (mediapipe's ``pose_world_landmarks``; x right, y down, z away from the camera).
- ``masks`` (N, H, W) uint8: the person-segmentation probability times 255, rounded.
- ``detected`` (N,) bool; ``ms_per_crop`` (float, mediapipe's processing time per crop, without start-up);
  ``startup_s`` (import and graph construction); ``model_complexity``; ``mediapipe_version``.
Landmark order: mediapipe's 33 BlazePose landmarks (0 nose ... 11/12 shoulders ... 27/28 ankles ... 32).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

NUM_LANDMARKS = 33


def limit_cpus(threads: int) -> None:
    """Keep mediapipe (whose Python API has no thread setting) on ``threads`` of the allowed cores (Linux)."""
    if threads > 0 and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:threads])


def run(crops, model_complexity: int, min_detection_confidence: float) -> dict:
    import numpy as np

    start = time.perf_counter()
    import mediapipe as mp

    pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=model_complexity,
                                  enable_segmentation=True, min_detection_confidence=min_detection_confidence)
    count, height, width = crops.shape[:3]
    landmarks = np.zeros((count, NUM_LANDMARKS, 3), np.float32)
    world = np.zeros((count, NUM_LANDMARKS, 3), np.float32)
    masks = np.zeros((count, height, width), np.uint8)
    detected = np.zeros(count, bool)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    with pose:
        for n in range(count):
            result = pose.process(np.ascontiguousarray(crops[n]))
            if result.pose_landmarks is None:
                continue
            detected[n] = True
            landmarks[n] = [(p.x * width - 0.5, p.y * height - 0.5, p.visibility)
                            for p in result.pose_landmarks.landmark]
            world[n] = [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark]
            if result.segmentation_mask is not None:
                masks[n] = np.clip(np.rint(result.segmentation_mask * 255.0), 0, 255).astype(np.uint8)
    elapsed = time.perf_counter() - start
    return dict(landmarks=landmarks, world_landmarks=world, masks=masks, detected=detected,
                ms_per_crop=np.float64(1000.0 * elapsed / max(count, 1)), startup_s=np.float64(startup),
                model_complexity=np.int64(model_complexity), mediapipe_version=np.str_(mp.__version__))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("crops", help="input .npz with 'crops' (N, H, W, 3) uint8 RGB")
    parser.add_argument("out", help="output .npz")
    parser.add_argument("--model-complexity", type=int, choices=(0, 1, 2), default=1,
                        help="0 lite, 1 full, 2 heavy")
    parser.add_argument("--min-detection-confidence", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="cores to run on (0: all allowed)")
    args = parser.parse_args(argv)

    import numpy as np

    with np.load(args.crops) as data:
        if "crops" not in data:
            print(f"{args.crops}: no 'crops' array", file=sys.stderr)
            return 2
        crops = data["crops"]
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        print(f"{args.crops}: 'crops' must be (N, H, W, 3) uint8, got {crops.shape} {crops.dtype}", file=sys.stderr)
        return 2
    limit_cpus(args.threads)
    result = run(crops, args.model_complexity, args.min_detection_confidence)
    # Written through a temporary name: a half-written file is never read as a result.
    partial = args.out + ".part.npz"
    np.savez(partial, **result)
    os.replace(partial, args.out)
    print(f"blazepose_worker: {len(crops)} crops, {int(result['detected'].sum())} people found, "
          f"{float(result['ms_per_crop']):.1f} ms/crop, start-up {float(result['startup_s']):.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
