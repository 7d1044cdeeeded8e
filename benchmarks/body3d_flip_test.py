"""The 3D flip test: MPJPE / PA-MPJPE of 3D models with and without averaging each crop's body with its mirror's.

    python benchmarks/body3d_flip_test.py --models rsc_move_c128_ft3 [RUN_DIR ...] [--split val|test] [--people 300]

Ground-truth boxes, SynthLR crops degraded to person heights 176, 96, 52 and 32 px, as in
``scripts/register_hps3d_model.py``; ``--split val`` (seed 4000) chooses, ``--split test`` (seed 2000) reports.
Writes benchmarks/results/body3d_flip_test_SPLIT.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from rsc_ablations import HEIGHTS, score_estimator  # noqa: E402 - a sibling script

SPLITS = {"val": ROOT / "data/synthlr/val_crops", "test": ROOT / "data/synthlr/test_crops"}


def score(name: str, split: str, people: int, flip_test: bool) -> dict[str, float]:
    from lowres_hps.apis.registry import load_model, load_run

    estimator = load_run(name) if Path(name).is_dir() else load_model(name)  # a training run's folder, or a model
    return score_estimator(estimator, SPLITS[split], people, flip_test=flip_test)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["rsc_move_c128_ft3"])
    parser.add_argument("--split", choices=sorted(SPLITS), default="val")
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = ROOT / "benchmarks" / "results" / f"body3d_flip_test_{args.split}.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.models:
        for flip_test in (False, True):
            start = time.perf_counter()
            metrics = score(name, args.split, args.people, flip_test)
            key = f"{name}{' + flip test' if flip_test else ''}"
            results[key] = {**{k: round(v, 2) for k, v in metrics.items()}, "people": args.people,
                            "seconds": round(time.perf_counter() - start, 1)}
            row = " | ".join(f"{metrics[f'mpjpe_mm@{h}']:.1f} / {metrics[f'pa_mpjpe_mm@{h}']:.1f}" for h in HEIGHTS)
            print(f"| {key} | {row} |", flush=True)
            out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
