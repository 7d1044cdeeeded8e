"""Turn a finished MILI training run into a shipped, registered model with measured metrics.

    python scripts/register_mili_model.py RUN_DIR NAME [--every 4] [--training-data "A; B"] [--notes TEXT]

Measures (``benchmarks/mili_ablations.py``'s scores): detection AP50 of its person detector on vtest.avi frames
301-400 (every ``--every``-th, MultiPose-2x teacher boxes, the frame made small so that the median person is
80/40/27/20 px), and box AP, MPJPE, PA-MPJPE and 3DPCK on held-out SynthLR scenes (low-resolution branch).
Writes src/lowres_hps/weights/NAME.safetensors (float16 weights, the model card as metadata).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def main() -> None:
    import torch

    from lowres_hps.apis.registry import PACKAGE_WEIGHTS_DIR, ModelCard, load_model, load_run, save_checkpoint

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mili_ablations import synthlr_scores, vtest_scores

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--training-data", default=(
        "SynthLR scenes (800, seed 5000; boxes, masks, keypoints, 3D, Anny parameters); coco_mini_train (COCO "
        "train2017 sample: boxes, masks, keypoints); vtest.avi frames 1-300 every 4th (MoveNet MultiPose-2x boxes, "
        "MoveNet Thunder keypoints: teacher pseudo-labels)"), help="'; '-separated sources")
    parser.add_argument("--licence", default=(
        "Apache-2.0 (trunk, FPN and detector heads start from MoveNet MultiPose, Apache-2.0; trained by lowres-hps "
        "on SynthLR (Anny, CC0 data), a COCO sample (CC BY 4.0 annotations) and OpenCV's vtest.avi sample)"))
    parser.add_argument("--notes", default="", help="what the start and training were, in a sentence or two")
    args = parser.parse_args()
    torch.set_num_threads(2)

    run = Path(args.run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    estimator = load_run(run)
    network = estimator.model.eval()
    measured = {**vtest_scores(network, args.every), **synthlr_scores(network, str(run / "config.yaml"))}
    metrics = {k: round(float(v), 3 if ("ap" in k or "pck" in k or "matched" in k) else 1) for k, v in measured.items()}
    card = ModelCard.from_config(
        args.name, network.config,
        training_data=[part.strip() for part in args.training_data.split(";") if part.strip()],
        licence=args.licence,
        metrics=metrics,
        notes=(f"{args.notes + ' ' if args.notes else ''}MILI ({config['task']}), trained on 2 CPU cores for "
               f"{config['trainer']['epochs']} epochs. vtest_ap50@H: person detection AP50 on vtest.avi frames "
               f"301-400 (every {args.every}th; MultiPose-2x teacher boxes) made small so that the median person is "
               "H px; box_ap/box_ap50/mpjpe_mm/pa_mpjpe_mm/pck3d: held-out SynthLR scenes (seed 6000, 50 centre "
               "cuts, low-resolution branch; 3D of detected people). Weights stored in float16."),
    )
    out = save_checkpoint(network.half(), card, PACKAGE_WEIGHTS_DIR / f"{args.name}.safetensors")
    reloaded = load_model(out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): {reloaded!r}")
    print(metrics)


if __name__ == "__main__":
    main()
