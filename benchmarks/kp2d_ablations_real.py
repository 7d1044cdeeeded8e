"""CAL's ablations redone from the person-pretrained MoveNet start, scored on real held-out people, 2 seeds.

    python benchmarks/kp2d_ablations_real.py [--input 96x96] [--epochs 6] [--seeds 0 1] [--rows NAME ...]

Every row trains ``configs/kp2d/lrmove_l_128x96.yaml`` (all of MoveNet Lightning, real people with teacher
pseudo-labels, degraded to 12-96 px) at the given input with the row's overrides (the rows of
``kp2d_ablations.py``), for the same number of epochs and with each seed, into
runs/kp2d_ablation_real/NAME_sSEED (skipped when already trained), then scores OKS AP with ground-truth
boxes at R = 32 on data/real/coco_holdout.json and data/real/lspet_test.json (never trained on).
Results: benchmarks/results/kp2d_ablations_real.json and a markdown table (mean and spread of the seeds).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from kp2d_ablations import ROWS, SHARES_WEIGHTS  # noqa: E402

BASE = "configs/kp2d/lrmove_l_128x96.yaml"
SETS = {"coco_holdout": ROOT / "data/real/coco_holdout.json", "lspet_test": ROOT / "data/real/lspet_test.json"}
# The MoveNet head ends in a sigmoid; rows trained with cross-entropy need its logits instead.
CE_HEAD = "task_args.model.head_params={pretrained: movenet, heatmap_activation: none}"


def train(name: str, seed: int, epochs: int, input_size: str) -> Path:
    out = ROOT / "runs" / "kp2d_ablation_real" / f"{name}_s{seed}"
    if (out / "model.safetensors").exists():
        return out
    overrides = list(ROWS[name][0])
    if "task_args.heatmap_loss=ce" in overrides:
        overrides.append(CE_HEAD)
    h, w = input_size.split("x")
    stage2 = [o for o in overrides if o.startswith("task_args.stage2_epoch")]
    budget = [f"trainer.epochs={epochs}", f"trainer.seed={seed}", "trainer.val_every_epochs=0",
              f"task_args.model.input_size=[{h}, {w}]", "trainer.ckpt_every_steps=0"]
    if not stage2:
        budget.append(f"task_args.stage2_epoch={epochs - 2}")  # two-stage rows: MGM in the last 2 epochs
    command = [sys.executable, "-m", "lowres_hps.cli", "train", BASE, "--out", str(out), *overrides, *budget]
    if (out / "last.pt").exists():
        command.append("--resume")
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def score(run: Path, codec: str | None) -> dict[str, float]:
    from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes
    from lowres_hps.apis.registry import load_run

    estimator = load_run(run, config_changes=None if codec is None else {"codec": codec})
    return {f"{name}_ap@R=32": coco_ap_with_gt_boxes(estimator, path, image_root="/", person_height=32)["AP"]
            for name, path in SETS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", default="96x96")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="*", default=[r for r in ROWS if r != "ablate_gmm3"])
    args = parser.parse_args()
    results_path = ROOT / "benchmarks" / "results" / "kp2d_ablations_real.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.rows:
        for seed in args.seeds:
            key = f"{name}_s{seed}"
            if key in results:
                continue
            start = time.perf_counter()
            run = train(SHARES_WEIGHTS.get(name, name), seed, args.epochs, args.input)
            metrics = score(run, ROWS[name][1])
            metrics.update(row=name, seed=seed, description=ROWS[name][2], input=args.input, epochs=args.epochs,
                           minutes=round((time.perf_counter() - start) / 60, 1), base=BASE)
            results[key] = metrics
            results_path.write_text(json.dumps(results, indent=2))
            print(key, metrics, flush=True)
    print("\n| row | COCO-holdout AP, R=32 (seeds) | LSPET-test AP, R=32 (seeds) |\n|---|---|---|")
    for name in args.rows:
        cells = []
        for metric in ("coco_holdout_ap@R=32", "lspet_test_ap@R=32"):
            values = [results[f"{name}_s{s}"][metric] for s in args.seeds if f"{name}_s{s}" in results]
            cells.append(" / ".join(f"{v:.3f}" for v in values) + (f" (mean {sum(values) / len(values):.3f})"
                                                                     if values else ""))
        print(f"| {ROWS[name][2]} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
