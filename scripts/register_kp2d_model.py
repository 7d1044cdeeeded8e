"""Turn a finished 2D training run into a shipped, registered model with measured metrics.

    python scripts/register_kp2d_model.py RUN_DIR NAME [--synth-test DIR] [--lspet MAT]

Measures, with ground-truth boxes and the model's flip test: OKS AP/AR on SynthLR-test crops at the
source resolution and with every person degraded to 32 px, and PCK@0.2 on lspet_400[300:400].
Writes src/lowres_hps/weights/NAME.safetensors (float16 weights, the model card as metadata).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REAL_SETS = {"coco_holdout": ROOT / "data/real/coco_holdout.json", "lspet_test": ROOT / "data/real/lspet_test.json"}
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def main() -> None:
    import torch

    from lowres_hps.apis.registry import PACKAGE_WEIGHTS_DIR, ModelCard, load_model, load_run, save_checkpoint
    from lowres_hps.data import LspReader
    from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes, pck_with_gt_boxes
    from lowres_hps.models.backbones import backbone_start

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--synth-test", default=str(ROOT / "data/synthlr/test_crops"))
    parser.add_argument("--lspet", default=str(ROOT.parent / "shared/data/lspet_400/joints.mat"))
    parser.add_argument("--training-data", default="SynthLR-train (12k crops, seed 1000); lspet_400[0:300]; "
                                                   "coco_mini_train (86 people)", help="';'-separated sources")
    parser.add_argument("--licence", default="Apache-2.0 (weights trained by lowres-hps on SynthLR (Anny, CC0 data) "
                                             "and small LSP-extended/COCO samples)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    run = Path(args.run)
    estimator = load_run(run)
    ann = Path(args.synth_test) / "annotations.json"
    size = "x".join(str(s) for s in estimator.input_size)
    pck = pck_with_gt_boxes(estimator, LspReader(args.lspet, indices=range(300, 400)))
    metrics = {"lspet_test_pck@0.2": round(pck["pck@0.2"], 4)}
    evaluated = ["lspet_400[300:400]"]
    if ann.exists():
        source = coco_ap_with_gt_boxes(estimator, ann)
        low = coco_ap_with_gt_boxes(estimator, ann, person_height=32)
        metrics.update({f"synthlr_test_ap@{size}": round(source["AP"], 4),
                        f"synthlr_test_ar@{size}": round(source["AR"], 4),
                        f"synthlr_test_ap@{size},R=32": round(low["AP"], 4)})
        evaluated.append(f"SynthLR-test {source['num_people']} crops")
    for name, path in REAL_SETS.items():  # real held-out people (scripts/make_real_splits.py)
        if not path.exists():
            continue
        for height in (64, 32, 24):
            result = coco_ap_with_gt_boxes(estimator, path, image_root="/", person_height=height)
            metrics[f"{name}_ap@R={height}"] = round(result["AP"], 4)
        evaluated.append(f"{name} ({result['num_people']} people)")
    config = yaml.safe_load((run / "config.yaml").read_text())
    epochs = config["trainer"]["epochs"]
    licence = args.licence
    start = backbone_start(estimator.config.backbone, estimator.config.backbone_params)
    origin = "from scratch"
    init_from = config["task_args"].get("init_from")
    if init_from:  # a fine-tuning run: its start is another of our 2D models
        origin = f"fine-tuned from {init_from}"
        if start is not None:
            licence += f"; backbone started from {start.what}, {start.package} ({start.licence})"
    elif start is not None:  # the published weights the backbone started from, and their licence
        licence += f"; backbone started from {start.what}, {start.package} ({start.licence})"
        origin = f"from {start.what}"
    elif estimator.config.backbone_params.get("pretrained") not in (None, "none"):
        origin = f"from the checkpoint {estimator.config.backbone_params['pretrained']}"
    card = ModelCard.from_config(
        args.name, estimator.config,
        training_data=[s.strip() for s in args.training_data.split(";")],
        licence=licence,
        metrics=metrics,
        notes=(f"CAL, trained {origin} on 2 CPU cores for {epochs} epochs ({config['task']}); metrics with "
               f"ground-truth boxes and flip test, people degraded to R px: {', '.join(evaluated)}. "
               "Weights stored in float16."),
    )
    network = estimator.model.half()
    out = save_checkpoint(network, card, PACKAGE_WEIGHTS_DIR / f"{args.name}.safetensors")
    reloaded = load_model(out)  # the shipped file loads and runs
    reloaded(torch.zeros(1, 3, *estimator.input_size, dtype=torch.uint8))
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
