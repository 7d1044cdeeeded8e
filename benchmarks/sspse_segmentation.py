"""FG-BG and six-part segmentation of 3D body models' rendered meshes (SSPSE Table 8; the SMPLify / SPIN LSP protocol).

    python benchmarks/sspse_segmentation.py --models rsc_move_c128_ft3 [MODEL_OR_SAFETENSORS ...]
        [--sets synthlr_test coco_holdout] [--heights 64] [--people 300] [--size 224] [--tag T] [--threads 1]
    python benchmarks/sspse_segmentation.py --models rsc_move_c128_ft3 --people 100 --heights 64 --tag smoke

Each person is cropped by the low-resolution protocol from its ground-truth box and degraded so its box is H px
tall (``--heights``; 0 = the source resolution; people already smaller stay as they are), the network regresses its
body, and the mesh is rendered (hard z-buffer) in the crop camera at ``--size`` px, each pixel labelled background or
one of six parts (head, torso, left / right arm, left / right leg: SMPLify's six, hands with arms, feet with legs).
The ground truth is the person's full-resolution mask taken into the same crop region; crop pixels outside the image
are not counted. Pixels are pooled over the set; accuracy is the pixel accuracy, F1 the mean over classes,
background included (:mod:`lowres_hps.evaluation.body_masks`).

Sets (never trained on):
- ``synthlr_test``: ``data/synthlr/test_crops``, the first ``--people`` people: instance masks and per-pixel part
  labels (14 parts grouped into the six). Also a ``ground truth`` row: the true Anny body of each person rendered
  through the model's crop camera (true pose vector, crop camera ``[s, tx, ty]`` from the true translation as in
  ``benchmarks/body3d_scale.py``): the ceiling of the protocol, what the weak-perspective crop camera loses.
- ``coco_holdout``: ``data/real/coco_holdout.json`` (47 people with keypoints; polygon instance masks, absolute
  image paths): FG-BG only (COCO has no part labels).

Results: ``benchmarks/results/sspse_segmentation[_TAG].json`` and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
SETS = {"synthlr_test": ROOT / "data/synthlr/test_crops", "coco_holdout": ROOT / "data/real/coco_holdout.json"}


def build_dataset(set_name: str, cfg, heights: list[float], people: int):
    """The protocol crops of a set at ``heights`` with masks (a Subset of a MultiResolutionDataset)."""
    from torch.utils.data import Subset

    from lowres_hps.data import CocoKeypointsReader, SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset

    if set_name == "synthlr_test":
        reader = SynthLRReader(SETS[set_name], load_masks=True)
    else:  # absolute image paths
        reader = CocoKeypointsReader(SETS[set_name], image_root="/", load_masks=True)
    dataset = MultiResolutionDataset([reader], canvas=cfg.canvas, convention=cfg.convention,
                                     body_model=cfg.body_model, pose_size=cfg.pose_spec.vector_size,
                                     num_ranges=cfg.num_ranges, person_heights=heights,
                                     scale_factor=cfg.scale_factor)
    return Subset(dataset, range(min(people, len(dataset))))


def truth_rows(estimator, dataset, heights: list[float], size: int) -> dict:
    """The ground-truth SynthLR bodies rendered through the crop camera: the protocol's ceiling (resolution-free:
    the same numbers at every height)."""
    from body3d_scale import true_crop_camera  # the benchmark's own conversion

    from lowres_hps.evaluation.body_masks import IGNORE, CropMasks, render_part_masks, six_part_face_labels
    from lowres_hps.evaluation.masks import confusion_matrix, metrics_from_confusion

    cfg = estimator.config
    masks = CropMasks(dataset, size)
    face_parts = six_part_face_labels(estimator.body)
    fg, parts = torch.zeros(2, 2, dtype=torch.int64), torch.zeros(7, 7, dtype=torch.int64)
    for i in range(len(masks)):
        item, sample = masks[i], masks.base.sample(masks.indices[i])
        pose = torch.as_tensor(sample.body_params["pose_vector"], dtype=torch.float32)[None]
        camera = true_crop_camera(sample, cfg.canvas, cfg.scale_factor)[None]
        labels = render_part_masks(estimator.bodies(pose, camera, torch.zeros(1, dtype=torch.int64)), size,
                                   face_parts)[0]
        fg += confusion_matrix((labels > 0).long(), item["gt_mask"], 2, ignore_index=IGNORE)
        parts += confusion_matrix(labels, item["gt_parts"], 7, ignore_index=IGNORE)
    a, b = metrics_from_confusion(fg), metrics_from_confusion(parts)
    row = {"fg_accuracy": float(a.accuracy), "fg_f1": float(a.mean_f1), "part_accuracy": float(b.accuracy),
           "part_f1": float(b.mean_f1), "people": len(masks)}
    return {(f"{int(h)}" if h > 0 else "source"): dict(row) for h in heights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["rsc_move_c128_ft3"],
                        help="registered 3D model names or .safetensors checkpoints")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--heights", nargs="+", type=float, default=[64.0], help="person heights (px); 0 = source")
    parser.add_argument("--people", type=int, default=300, help="SynthLR-test people (the first N)")
    parser.add_argument("--size", type=int, default=224, help="side (px) at which masks are compared")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-truth", action="store_true", help="skip the SynthLR ground-truth ceiling row")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    missing = [f"{name} ({SETS[name]})" for name in args.sets if not SETS[name].exists()]
    if missing:
        print(f"skipped: data not found: {', '.join(missing)} (see scripts/make_real_splits.py and "
              f"`lowres-hps synth` for data/)")
        return
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lowres_hps.apis.registry import load_model
    from lowres_hps.evaluation.body_masks import body_mask_metrics

    started = time.time()
    command = "python benchmarks/sspse_segmentation.py " + " ".join(sys.argv[1:])
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
               "command": command, "size": args.size, "heights": args.heights, "people": args.people, "models": {}}
    estimator = None
    for model in args.models:
        estimator = load_model(model)
        rows = {}
        for set_name in args.sets:
            start = time.time()
            dataset = build_dataset(set_name, estimator.config, args.heights, args.people)
            rows[set_name] = body_mask_metrics(estimator, dataset, size=args.size, batch_size=args.batch_size)
            print(f"{model} {set_name}: {rows[set_name]} ({time.time() - start:.0f} s)", flush=True)
        results["models"][model] = rows
    if "synthlr_test" in args.sets and not args.no_truth and estimator is not None:
        dataset = build_dataset("synthlr_test", estimator.config, args.heights, args.people)
        results["models"]["ground truth"] = {"synthlr_test": truth_rows(estimator, dataset, args.heights, args.size)}
    results["seconds"] = round(time.time() - started, 1)
    out = ROOT / f"benchmarks/results/sspse_segmentation{'_' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))

    fmt = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    print("\n| model | set | height | people | FG acc. | FG F1 | part acc. | part F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for model, rows in results["models"].items():
        for set_name, per_height in rows.items():
            for height, row in per_height.items():
                print(f"| {model} | {set_name} | {height} | {row['people']} | {fmt(row['fg_accuracy'])} | "
                      f"{fmt(row['fg_f1'])} | {fmt(row['part_accuracy'])} | {fmt(row['part_f1'])} |")
    print(f"\n{out.relative_to(ROOT)} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
