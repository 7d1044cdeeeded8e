"""Time the Anny forward pass (regression vector -> vertices + keypoints), float32, on CPU.

Prints one markdown table row per setting: batch 1 and batch 16, median over repeats after warm-up.

    python benchmarks/bench_body.py [--threads 2] [--repeats 20]
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


def time_forward(body, batch_size: int, repeats: int, warmup: int = 3) -> list[float]:
    """Milliseconds per forward for ``repeats`` runs on random plausible poses."""
    from lowres_hps.body import sample_random_pose

    vector = sample_random_pose(batch_size, torch.Generator().manual_seed(0), body.pose_spec)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            output = body.forward_vector(vector)
            output.keypoints("coco17")
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)

    from lowres_hps.body import load_body_model

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    body = load_body_model("anny", dtype=torch.float32)
    load_s = time.perf_counter() - start
    print(f"model load: {load_s:.2f} s (cache {os.environ['ANNY_CACHE_DIR']})")
    print("| benchmark | device | threads | dtype | batch | median ms / batch | min ms | ms / sample |")
    print("|---|---|---|---|---|---|---|---|")
    for batch_size in args.batch_sizes:
        times = time_forward(body, batch_size, args.repeats)
        median = statistics.median(times)
        print(
            f"| anny forward + coco17 | cpu | {args.threads} | float32 | {batch_size} | {median:.1f} | "
            f"{min(times):.1f} | {median / batch_size:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
