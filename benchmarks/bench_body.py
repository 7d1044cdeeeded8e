"""Time the Anny forward pass (regression vector -> vertices + keypoints), float32, on CPU.

Full forward (13,718 vertices + COCO keypoints) against the keypoint-only forward
(``forward_vector(..., keypoints_only=True)``: joints + COCO keypoints, no mesh), each as a forward
(inference mode) and as a forward + backward of a keypoint loss (what a training step pays). Prints one
markdown table row per setting, median over repeats after warm-up.

    python benchmarks/bench_body.py [--threads 1 2] [--batch-sizes 1 16 64] [--repeats 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))


def time_body(body, batch_size: int, repeats: int, keypoints_only: bool, backward: bool, warmup: int = 3) -> list[float]:
    """Milliseconds per forward (or forward + backward of a COCO-17 loss) on random plausible poses."""
    from lowres_hps.body import sample_random_pose

    vector = sample_random_pose(batch_size, torch.Generator().manual_seed(0), body.pose_spec)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        if backward:
            leaf = vector.clone().requires_grad_(True)
            keypoints, _ = body.forward_vector(leaf, keypoints_only=keypoints_only).keypoints("coco17")
            keypoints.square().sum().backward()
        else:
            with torch.no_grad():  # not inference_mode: roma caches a constant on its first call
                body.forward_vector(vector, keypoints_only=keypoints_only).keypoints("coco17")
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args(argv)

    from lowres_hps.body import load_body_model

    start = time.perf_counter()
    body = load_body_model("anny", dtype=torch.float32)
    load_s = time.perf_counter() - start
    print(f"model load: {load_s:.2f} s (cache {os.environ['ANNY_CACHE_DIR']})")
    print("| benchmark | device | threads | dtype | batch | median ms / batch | min ms | ms / sample | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for backward in (False, True):
            what = "forward + backward" if backward else "forward"
            for batch_size in args.batch_sizes:
                full = None
                for keypoints_only in (False, True):
                    times = time_body(body, batch_size, args.repeats, keypoints_only, backward)
                    median = statistics.median(times)
                    name = f"anny {'keypoint-only' if keypoints_only else 'full'} {what} + coco17"
                    speedup = f"{full / median:.1f}x" if full is not None else ""
                    full = median if full is None else full
                    print(
                        f"| {name} | cpu | {threads} | float32 | {batch_size} | {median:.2f} | "
                        f"{min(times):.2f} | {median / batch_size:.3f} | {speedup} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
