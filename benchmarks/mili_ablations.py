"""MILI ablations (the paper's Table 3, and two more), each row trained with the same budget, then scored.

    python benchmarks/mili_ablations.py [--base CONFIG] [--epochs 2] [--rows NAME ...] [--every 4]

Every row trains ``--base`` (default ``configs/mili/mili_multipose_slowtrunk.yaml``: MoveNet MultiPose's trunk,
SynthLR scenes, COCO training images and vtest.avi frames 1-300 with teacher boxes) with its overrides for
``--epochs`` epochs (same data, seed and schedule shape) into ``runs/mili_ablation[_TAG]/NAME`` (skipped when
already trained). Rows: ``full`` (all parts), ``no_occ`` (w/o the occlusion-aware mask head, Eq. 5), ``no_res``
(w/o the restoration network, Eq. 6), ``no_cs`` (w/o the contrastive loss, Eq. 3), ``one_branch`` (w/o the
two-branch training: the low-resolution branch alone with ``L_mul``, so no Eqs. 3, 4 and 6), and ``start`` (the
untrained network: MultiPose's detector heads, fresh RoI heads; not trained).

Scores per row:
- on held-out SynthLR scenes (``data/synthlr/scenes_val``, seed 6000, the first 50, centre cuts, low-resolution
  branch): box AP and AP50, and for detected people with 3D labels MPJPE, PA-MPJPE (mm) and 3DPCK at 0.15 m;
- on real frames: detection AP50 on vtest.avi frames 301-400 (every ``--every``-th; apart from the training
  frames 1-300) with MultiPose-2x teacher boxes (``detection_real.py``), the frame downscaled so that the median
  person is 80/40/27/20 px, detector :class:`~lowres_hps.apis.detector.MILIDetector` (long side to 1024 px).

Results: ``benchmarks/results/mili_ablations[_TAG].json`` and a markdown table on stdout.
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
BASE = "configs/mili/mili_multipose_slowtrunk.yaml"
HEIGHTS = (80, 40, 27, 20)

# name -> (overrides of the base config, description); the base is the full model.
ROWS: dict[str, tuple[list[str], str]] = {
    "full": ([], "full (attention, contrastive, RoI MSE, occlusion mask, restoration)"),
    "no_occ": (["task_args.occlusion=false", "task_args.model.mask_head=false"], "w/o Occ (no mask head, Eq. 5)"),
    "no_res": (["task_args.restoration=false", "task_args.model.restoration=false"],
               "w/o Res (no restoration network, Eq. 6)"),
    "no_cs": (["task_args.contrastive=false"], "w/o contrastive loss (Eq. 3)"),
    "one_branch": (["task_args.two_branch=false", "task_args.restoration=false", "task_args.model.restoration=false"],
                   "w/o two-branch training (low branch, L_mul only)"),
}
START = "start"


def run_dir(name: str, tag: str = "") -> Path:
    return ROOT / "runs" / f"mili_ablation{tag}" / name


def train(name: str, epochs: int, base: str, tag: str = "") -> Path:
    out = run_dir(name, tag)
    if (out / "model.safetensors").exists():
        return out
    overrides, _ = ROWS[name]
    budget = [f"trainer.epochs={epochs}", f"trainer.val_every_epochs={epochs}", "trainer.ckpt_every_steps=50"]
    command = [sys.executable, "-m", "lowres_hps.cli", "train", base, "--out", str(out), *overrides, *budget]
    if (out / "last.pt").exists():
        command.append("--resume")
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def synthlr_scores(network, base: str) -> dict[str, float]:
    """Box AP, MPJPE, PA-MPJPE and 3DPCK on the base config's validation scenes (low-resolution branch)."""
    import torch
    import yaml
    from torch.utils.data import DataLoader

    from lowres_hps.engine.trainer import import_object

    config = yaml.safe_load((ROOT / base).read_text())
    # The training sources are not needed here: the validation scenes stand in for them (cheap to open).
    args = {**config["task_args"], "scenes": [config["task_args"]["val_scenes"]], "extra_datasets": []}
    task = import_object(config["task"])(**args)
    loader = DataLoader(task.val_dataset, batch_size=8, collate_fn=task.collate_fn)
    with torch.no_grad():
        return task.evaluate(network.eval(), loader)


def vtest_scores(network, every: int) -> dict[str, float]:
    """Detection AP50 on vtest frames 301-400 at each person height (teacher boxes, see the module doc)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import detection_real

    from lowres_hps.apis.detector import MILIDetector
    from lowres_hps.evaluation.detection import coco_box_ap, detections_to_coco

    detector = MILIDetector(network, min_score=0.02)
    gt, images = detection_real.load_set("vtest_val", every, 0.25, (301, 400))
    scores = {}
    for height in HEIGHTS:
        small_gt, small = detection_real.scaled(gt, images, height, per_image=False)
        found = []
        for image_id, image in small.items():
            boxes, box_scores = detector(image)
            found += detections_to_coco(image_id, boxes, box_scores)
        scores[f"vtest_ap50@{height}"] = coco_box_ap(small_gt, found)["AP50"]
    return scores


def network_of(name: str, base: str, tag: str):
    if name == START:
        import yaml

        from lowres_hps.core.config import load_config
        from lowres_hps.models.mili import MILIConfig, build_mili_model

        config = yaml.safe_load((ROOT / base).read_text())
        return build_mili_model(load_config(config["task_args"]["model"], MILIConfig))
    from lowres_hps.apis.registry import load_run

    return load_run(run_dir(name, tag)).model


def table(results: dict, names: list[str]) -> str:
    heights = " | ".join(f"vtest AP50 {h}" for h in HEIGHTS)
    lines = [f"| row | {heights} | SynthLR box AP50 | box AP | MPJPE | PA-MPJPE | 3DPCK |",
             "|---" * (6 + len(HEIGHTS)) + "|"]
    for name in names:
        r = results[name]
        cells = [f"{r[f'vtest_ap50@{h}']:.3f}" for h in HEIGHTS]
        cells += [f"{r['box_ap50']:.3f}", f"{r['box_ap']:.3f}"]
        cells += [f"{r[k]:.1f}" if k in r else "-" for k in ("mpjpe_mm", "pa_mpjpe_mm")]
        cells.append(f"{r['pck3d']:.3f}" if "pck3d" in r else "-")
        lines.append(f"| {r['description']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", nargs="*", default=[*ROWS, START])
    parser.add_argument("--every", type=int, default=4, help="vtest frames 301-400: every n-th")
    parser.add_argument("--tag", default="", help="suffix of the run folder and results file (another budget)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    unknown = [r for r in args.rows if r not in ROWS and r != START]
    if unknown:
        sys.exit(f"unknown rows {unknown}; choose from {[*ROWS, START]}")
    results_path = ROOT / f"benchmarks/results/mili_ablations{args.tag}.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.rows:
        start = time.time()
        if name != START:
            train(name, args.epochs, args.base, args.tag)
        network = network_of(name, args.base, args.tag)
        row = {"description": ROWS[name][1] if name != START else "start (untrained: MultiPose's detector heads)",
               **synthlr_scores(network, args.base), **vtest_scores(network, args.every),
               "base": args.base, "epochs": 0 if name == START else args.epochs, "date": time.strftime("%Y-%m-%d")}
        results[name] = row
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{name}: done in {time.time() - start:.0f} s", flush=True)
    print(table(results, [n for n in [*ROWS, START] if n in results]))


if __name__ == "__main__":
    main()
