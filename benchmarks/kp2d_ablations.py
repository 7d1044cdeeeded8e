"""CAL and its baselines and ablations at 64x48, each trained with the same budget, then scored.

    python benchmarks/kp2d_ablations.py [--input 64x48|128x96] [--epochs 2] [--subset 5000] [--rows NAME ...]

Every row trains `configs/kp2d/cal_r18_<input>.yaml` with its overrides for the same number of
samples (``--subset`` fixed random training people x ``--epochs``), into runs/kp2d_ablation/NAME
(runs/kp2d_ablation_128x96/NAME at 128x96; skipped when already trained), then measures with
ground-truth boxes:
OKS AP and PCK@0.2 (torso) on SynthLR-test crops (first 300 images) and PCK@0.2 on lspet_400[300:400].
Results go to benchmarks/results/kp2d_ablations.json (kp2d_ablations_128x96.json) and a markdown
table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
BASES = {"64x48": "configs/kp2d/cal_r18_64x48.yaml", "128x96": "configs/kp2d/cal_r18_128x96.yaml"}
SYNTH_TEST = ROOT / "data/synthlr/test_crops/annotations.json"
LSPET = ROOT.parent / "shared/data/lspet_400/joints.mat"

# name -> (overrides of the base config, decoder codec override or None, description)
ROWS: dict[str, tuple[list[str], str | None, str]] = {
    "heatmap_only": (["task_args.model.codec=msra", "task_args.model.codec_params={sigma: 1.0}",
                      "task_args.stage2_epoch=null"], None, "heatmap-only (MSRA Gaussian, L2)"),
    "heatmap_only_dark": ([], "msra_dark", "heatmap-only + DARK decoding (same weights)"),
    "udp_binary": (["task_args.model.codec=udp", "task_args.model.codec_params={radius: 2.0}",
                    "task_args.heatmap_loss=ce", "task_args.offset_loss=smooth_l1", "task_args.stage2_epoch=null"],
                   None, "UDP: binary heatmap (CE) + offsets weighted by B (SmoothL1)"),
    "cal_stage1": (["task_args.stage2_epoch=null"], None, "CAL stage 1 only: G heatmap (L2) + G-weighted L1 offsets"),
    "cal_full": ([], None, "CAL full: stage 1, then MGM-weighted offsets (1 GMM component)"),
    "ablate_binary_heatmap": (["task_args.model.codec=udp", "task_args.model.codec_params={radius: 2.0}"], None,
                              "CAL full with a binary heatmap target B (L2) instead of G"),
    "ablate_offsets_binary_mask": (["task_args.offset_weighting=binary", "task_args.stage2_epoch=null"], None,
                                   "CAL with offsets weighted by the binary mask B throughout (no G, no MGM)"),
    "ablate_smooth_l1": (["task_args.offset_loss=smooth_l1"], None, "CAL full with SmoothL1 offsets"),
    "ablate_l2": (["task_args.offset_loss=l2"], None, "CAL full with L2 offsets"),
    "ablate_one_stage": (["task_args.stage2_epoch=0"], None, "CAL with MGM from the first step (one stage)"),
    "ablate_gmm2": (["task_args.gmm_components=2"], None, "CAL full, 2 GMM components"),
    "ablate_gmm3": (["task_args.gmm_components=3"], None, "CAL full, 3 GMM components"),
}
SHARES_WEIGHTS = {"heatmap_only_dark": "heatmap_only"}


def train(name: str, epochs: int, subset: int, input_size: str = "64x48") -> Path:
    out = ROOT / "runs" / ("kp2d_ablation" if input_size == "64x48" else f"kp2d_ablation_{input_size}") / name
    if (out / "model.safetensors").exists():
        return out
    overrides, _, _ = ROWS[name]
    if input_size == "128x96":  # the base config's Gaussian width at 128x96
        overrides = [o.replace("{sigma: 1.0}", "{sigma: 1.5}") for o in overrides]
    stage2 = [o for o in overrides if o.startswith("task_args.stage2_epoch")]
    budget = [f"trainer.epochs={epochs}", f"task_args.train_subset={subset}", "trainer.val_every_epochs=0",
              "trainer.ckpt_every_steps=100"]
    if not stage2:
        budget.append(f"task_args.stage2_epoch={epochs - 1}")  # two-stage rows: MGM in the last epoch
    command = [sys.executable, "-m", "lowres_hps.cli", "train", BASES[input_size], "--out", str(out), *overrides, *budget]
    if (out / "last.pt").exists():
        command.append("--resume")
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def score(run: Path, codec: str | None) -> dict[str, float]:
    from lowres_hps.data import LspReader
    from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes, pck_with_gt_boxes
    from lowres_hps.apis.registry import load_run

    from lowres_hps.data import SynthLRReader

    class FirstPeople:  # the first 300 SynthLR-test people, as a reader
        def __init__(self, reader, count):
            self.reader, self.count, self.convention = reader, min(count, len(reader)), reader.convention

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            return self.reader[index]

    estimator = load_run(run, config_changes=None if codec is None else {"codec": codec})
    ap = coco_ap_with_gt_boxes(estimator, SYNTH_TEST, max_images=300)
    synth_pck = pck_with_gt_boxes(estimator, FirstPeople(SynthLRReader(SYNTH_TEST.parent), 300))
    pck = pck_with_gt_boxes(estimator, LspReader(LSPET, indices=range(300, 400)))
    return {"synthlr_test_ap": ap["AP"], "synthlr_test_ar": ap["AR"], "synthlr_test_pck@0.2": synth_pck["pck@0.2"],
            "lspet_test_pck@0.2": pck["pck@0.2"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", choices=sorted(BASES), default="64x48")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--rows", nargs="*", default=list(ROWS))
    args = parser.parse_args()
    suffix = "" if args.input == "64x48" else f"_{args.input}"
    results_path = ROOT / "benchmarks" / "results" / f"kp2d_ablations{suffix}.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.rows:
        start = time.perf_counter()
        run = train(SHARES_WEIGHTS.get(name, name), args.epochs, args.subset, args.input)
        metrics = score(run, ROWS[name][1])
        metrics.update(description=ROWS[name][2], input=args.input, epochs=args.epochs, subset=args.subset,
                       minutes=round((time.perf_counter() - start) / 60, 1))
        results[name] = metrics
        results_path.write_text(json.dumps(results, indent=2))
        print(name, metrics, flush=True)
    print("\n| row | SynthLR-test AP | AR | PCK@0.2 | LSPET-test PCK@0.2 |\n|---|---|---|---|---|")
    for name in args.rows:
        r = results[name]
        print(f"| {r['description']} | {r['synthlr_test_ap']:.3f} | {r['synthlr_test_ar']:.3f} | "
              f"{r['synthlr_test_pck@0.2']:.3f} | {r['lspet_test_pck@0.2']:.3f} |")
