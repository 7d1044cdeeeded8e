"""SynthLR generation throughput on this machine: crops and scenes, all CPU cores.

    python benchmarks/bench_synth.py [--crops 200] [--scenes 20] [--workers N]

Prints markdown rows: images/s over the whole run (process start-up included) and in steady
state (after the first images of every worker, measured from the progress of a second run).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))


def run(layout: str, count: int, workers: int) -> float:
    from lowres_hps.data.synth.generator import SynthConfig
    from lowres_hps.data.synth.writer import generate_dataset

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        generate_dataset(out, count, seed=0, config=SynthConfig(layout=layout), workers=workers, progress=False)
        return time.perf_counter() - start


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", type=int, default=200)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print("| layout | images | workers | seconds | images/s (start-up included) | steady images/s |")
    print("|---|---|---|---|---|---|")
    for layout, count in (("crops", args.crops), ("scenes", args.scenes)):
        small = max(args.workers, count // 10)
        t_small = run(layout, small, args.workers)
        t_full = run(layout, count, args.workers)
        steady = (count - small) / max(t_full - t_small, 1e-9)
        print(f"| {layout} | {count} | {args.workers} | {t_full:.1f} | {count / t_full:.1f} | {steady:.1f} |", flush=True)
