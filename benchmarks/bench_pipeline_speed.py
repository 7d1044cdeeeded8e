"""Whole-pipeline speed of ``predict`` on vtest.avi (768 x 576, 6-10 people): frames/s from its summary.

    python benchmarks/bench_pipeline_speed.py [--frames 60] [--threads 2]

Rows (each a ``lowres-hps predict vtest.avi --max-frames N --no-overlay`` run; tracking and smoothing on):

- ``default``: MILI's detector (PyTorch), the 2D default ``lrmove_l_128`` and the 3D default with the keypoint fit;
- ``default, no fit``: the same with ``--no-fit-keypoints``;
- ``fast 2D``: the detector and the 2D model as int8 ONNX exports (``lowres-hps export --int8``: the detector
  calibrated on vtest frames 1-300, the 2D model on the COCO training people), no 3D;
- ``fast 2D, detect every 3``: the same with ``--detect-every 3``;
- ``fast 2D + 3D, no fit``: the int8 exports and the 3D default (PyTorch) without the fit;
- ``fast 2D + 3D ONNX, no fit`` (and ``, detect every 3``): the 3D default's float32 ONNX export as ``--model3d``;
- ``..., no 3D flip test``: the same with ``--no-flip-test-3d`` (the 3D default's card turns it on).

``--rows NAME ...`` runs some of them (the results file keeps the others' last numbers).

The exports are made once into ``--work`` (default a temporary folder). Frames 1-N of vtest.avi are inside the
training range 1-400; this measures time, not accuracy. Results: ``benchmarks/results/pipeline_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT.parent / "shared/data/opencv_samples/vtest.avi"
COCO_TRAIN = ROOT / "data/real/coco_train.json"
RESULTS = ROOT / "benchmarks/results/pipeline_speed.json"


def cli(*args: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ANNY_CACHE_DIR": str(ROOT / ".cache/anny")}
    done = subprocess.run([sys.executable, "-m", "lowres_hps.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"lowres-hps {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="folder for the exports and outputs (default: temporary)")
    parser.add_argument("--rows", nargs="+", default=None, help="row names to run (default: all)")
    args = parser.parse_args()
    if not VTEST.is_file() or not COCO_TRAIN.is_file():
        sys.exit(f"needs {VTEST} and {COCO_TRAIN} (python scripts/make_real_splits.py)")
    work = Path(args.work or tempfile.mkdtemp(prefix="pipeline_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    from lowres_hps.commands.predict import DEFAULT_MODEL_3D

    detector, pose, body = work / "mili_int8.onnx", work / "lrmove_l_128_int8.onnx", work / f"{DEFAULT_MODEL_3D}.onnx"
    if not detector.is_file():
        cli("export", "--model", "mili_multipose", "--int8", "--calibration", str(VTEST),
            "--calibration-frames-range", "1:300", "--out", str(detector), threads=args.threads)
    if not pose.is_file():
        cli("export", "--model", "lrmove_l_128", "--int8", "--calibration", str(COCO_TRAIN), "--out", str(pose),
            threads=args.threads)
    if not body.is_file():
        cli("export", "--model", DEFAULT_MODEL_3D, "--out", str(body), threads=args.threads)
    fast = ["--detector", "mili", "--detector-model", str(detector), "--model", str(pose)]
    rows = {
        "default": [],
        "default, no fit": ["--no-fit-keypoints"],
        "fast 2D": [*fast, "--model3d", "none"],
        "fast 2D, detect every 3": [*fast, "--model3d", "none", "--detect-every", "3"],
        "fast 2D + 3D, no fit": [*fast, "--no-fit-keypoints"],
        "fast 2D + 3D ONNX, no fit": [*fast, "--model3d", str(body), "--no-fit-keypoints"],
        "fast 2D + 3D ONNX, no fit, detect every 3": [*fast, "--model3d", str(body), "--no-fit-keypoints",
                                                      "--detect-every", "3"],
        "fast 2D + 3D ONNX, no fit, detect every 3, no 3D flip test": [
            *fast, "--model3d", str(body), "--no-fit-keypoints", "--detect-every", "3", "--no-flip-test-3d"],
    }
    unknown = sorted(set(args.rows or ()) - set(rows))
    if unknown:
        sys.exit(f"unknown rows {unknown}; rows: {list(rows)}")
    previous = json.loads(RESULTS.read_text()).get("rows", {}) if RESULTS.is_file() else {}
    results = {name: row for name, row in previous.items() if args.rows and name not in args.rows}
    for name, extra in rows.items():
        if args.rows and name not in args.rows:
            continue
        summary = cli("predict", str(VTEST), "--max-frames", str(args.frames), "--no-overlay",
                      "--out", str(work / name.replace(" ", "_").replace(",", "").replace("+", "and")), *extra,
                      threads=args.threads)
        results[name] = {"frames_per_second": summary.get("frames_per_second"), "people": summary.get("people"),
                         "frames": summary.get("frames"), "arguments": extra}
        print(f"{name}: {results[name]['frames_per_second']} frames/s ({summary.get('people')} people in "
              f"{summary.get('frames')} frames)", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": args.threads, "frames": args.frames, "video": "vtest.avi 768x576",
                                   "date": time.strftime("%Y-%m-%d"), "rows": results}, indent=1))


if __name__ == "__main__":
    main()
