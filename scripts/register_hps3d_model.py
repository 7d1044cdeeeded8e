"""Turn a finished 3D training run into a shipped, registered model with measured metrics.

    python scripts/register_hps3d_model.py RUN_DIR NAME [--test-people 300] [--training-data "A; B"]
        [--licence TEXT] [--notes TEXT] [--flip-test]

Measures, with ground-truth boxes: MPJPE and PA-MPJPE (mm, COCO-17, hips-rooted) on the first
``--test-people`` SynthLR-test crops degraded to person heights 176, 96, 52 and 32 px.
Writes src/lowres_hps/weights/NAME.safetensors (float16 weights, the model card as metadata).
"""
from __future__ import annotations

import argparse
import json
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
    from rsc_ablations import HEIGHTS, score

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--test-people", type=int, default=300)
    parser.add_argument("--training-data", default="SynthLR-train (12k crops, seed 1000; 3D + Anny parameters); "
                        "lspet_400[0:300] (2D); coco_mini_train (86 people, 2D)", help="'; '-separated sources")
    parser.add_argument("--licence", default="Apache-2.0 (weights trained by lowres-hps on SynthLR (Anny, CC0 data) "
                        "and small LSP-extended/COCO samples)")
    parser.add_argument("--notes", default="", help="what the start and training were, in a sentence or two")
    parser.add_argument("--flip-test", action="store_true",
                        help="the card turns the 3D flip test on (the metrics are measured with it)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    run = Path(args.run)
    measured = score(run, args.test_people, flip_test=args.flip_test)
    metrics = {k: round(v, 1) for k, v in measured.items()}
    estimator = load_run(run)
    estimator.config.flip_test = args.flip_test
    config = yaml.safe_load((run / "config.yaml").read_text())
    card = ModelCard.from_config(
        args.name, estimator.config,
        training_data=[part.strip() for part in args.training_data.split(";") if part.strip()],
        licence=args.licence,
        metrics=metrics,
        notes=(f"{args.notes + ' ' if args.notes else ''}RSC-Net ({config['task']}), trained on 2 CPU cores for "
               f"{config['trainer']['epochs']} epochs; metrics with ground-truth boxes on the first {args.test_people} SynthLR-test crops at person "
               f"heights {', '.join(map(str, HEIGHTS))} px (MPJPE hips-rooted, PA-MPJPE Procrustes-aligned"
               f"{'; with the flip test, on by default' if args.flip_test else ''}). "
               "Weights stored in float16."),
    )
    network = estimator.model.half()
    out = save_checkpoint(network, card, PACKAGE_WEIGHTS_DIR / f"{args.name}.safetensors")
    reloaded = load_model(out)  # the shipped file loads and runs
    reloaded.predict_bodies(torch.zeros(1, 3, *reloaded.input_size, dtype=torch.uint8), torch.zeros(1, dtype=torch.long))
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
