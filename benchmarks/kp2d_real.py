"""2D keypoints on REAL held-out people against person height R: ours and the peers, side by side.

    python benchmarks/kp2d_real.py --models cal_r18_64x48 runs/kp2d/lrmove_mnv2_64x48 movenet_lightning movenet_thunder \
        [--heights 128 96 64 48 32 24 16] [--tag NAME]
    python benchmarks/kp2d_real.py --models blazepose_full [blazepose_lite blazepose_heavy] --threads 1 --tag peers_blazepose
    python benchmarks/kp2d_real.py --models model.onnx model_int8.onnx --heights 64 32 --tag int8

A ``.onnx`` model is an export of ``lowres-hps export`` (float32 or ``--int8``) run by ONNX Runtime.

A 3D body model (a registered name such as ``rsc_r18_c64``, or its ``.safetensors``) is scored on its 3D
keypoints seen by the full-image camera ``lowres-hps predict`` reports (``keypoints_3d_projected``: the
body moved from the crop camera to the assumed camera of the image, then projected), with every keypoint
and person scoring 1 (a 3D model gives no confidences; with ground-truth boxes each person is one
detection). Its row is named ``<model> (3D projected)``:

    python benchmarks/kp2d_real.py --models rsc_r18_c64 --heights 128 64 32 --threads 1 --tag 3d

With ``--fit-to MODEL2D`` every 3D model's bodies are first fitted to that 2D model's keypoints
(``lowres_hps.fitting``, what ``lowres-hps predict --fit-keypoints`` does; settings ``--fit-steps``,
``--fit-pose-prior``, ``--fit-camera-prior``, ``--fit-sigma``, ``--fit-lr``, ``--fit-min-score``,
``--fit-fixed-root``, ``--fit-shape``, ``--fit-resolve-left-right``), row ``<model> (3D fitted
to MODEL2D)``. Tune such settings on ``--sets lspet_val`` (lspet_400[270:300], the 2D training's validation
people), never on the two test sets:

    python benchmarks/kp2d_real.py --models rsc_move_c128 --fit-to lrmove_l_128 --heights 128 64 32 --tag 3d_fit

BlazePose (mediapipe, 256 x 256 crops) runs in its own environment (``make mediapipe-env``); its rows also
give the fraction of people its own person detector found in the crops (``detected``) and its ms per crop.

Ground-truth boxes; every person is cropped by the low-resolution protocol, degraded so its box is R px
tall (people already smaller stay as they are), then resized to each model's own input (MoveNet: 192 or
256 square; ours: 64x48 ...). Sets (prepared by ``scripts/make_real_splits.py``, never trained on):
- ``coco_holdout``: a third of coco_mini_train's keypoint images (every third id) + mmpose_testdata's
  COCO and OCHuman test images: 47 people, COCO-17.
- ``lspet_test``: lspet_400[300:400] mapped to COCO-17 (12 body joints; no face joints), boxes from the
  keypoints (x1.2); OKS area = box area.
Metrics: pycocotools OKS AP, and PCK@0.2 with the torso normaliser. Results go to
benchmarks/results/kp2d_real[_TAG].json, a markdown table on stdout, and an AP-against-R plot
benchmarks/results/kp2d_real[_TAG].png.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SETS = {"coco_holdout": ROOT / "data/real/coco_holdout.json", "lspet_test": ROOT / "data/real/lspet_test.json"}
VALIDATION_SETS = {"lspet_val": ROOT / "data/labels/lspet_val/labels.json"}  # for tuning; made by prepare_kp2d_real.sh


def load(name: str):
    if name.startswith("blazepose_"):
        from lowres_hps.models.blazepose import BlazePoseEstimator

        return BlazePoseEstimator(name.removeprefix("blazepose_"), threads=torch.get_num_threads())
    if name.startswith("movenet_"):
        from lowres_hps.models.movenet import MoveNetEstimator

        return MoveNetEstimator.from_variant(name.removeprefix("movenet_"))
    path = Path(name)
    if path.suffix == ".onnx":  # an export of `lowres-hps export`, float32 or int8, run by ONNX Runtime
        from lowres_hps.apis.export import OnnxEstimator

        return OnnxEstimator(path, num_threads=torch.get_num_threads())
    if path.is_dir() and (path / "config.yaml").exists():
        from lowres_hps.apis.registry import load_run

        return load_run(path)
    from lowres_hps.apis.registry import load_model

    return load_model(name)


def is_3d(estimator) -> bool:
    from lowres_hps.models.estimator import BodyEstimator

    return isinstance(estimator, BodyEstimator)


def evaluate(estimator, heights: list[int | None], sets: dict[str, Path], fit_to=None, fit_config=None) -> dict:
    """AP and PCK of ``estimator`` per set and height; a 3D model is scored on its projected 3D keypoints, fitted
    to the 2D model ``fit_to``'s keypoints first when given."""
    from lowres_hps.data import CocoKeypointsReader
    from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes, pck_with_gt_boxes

    keypoints = "3d" if is_3d(estimator) else "2d"  # a 3D model: its projected 3D keypoints
    options = {}
    if fit_to is not None and keypoints == "3d":
        estimator, options = fit_to, {"body_estimator": estimator, "fit_keypoints": fit_config}
    rows = {}
    stats = getattr(estimator, "stats", None)  # BlazePose: people its detector found, worker time
    for set_name, ann in sets.items():
        root = "/" if set_name in SETS else None  # the test sets hold absolute paths, the label sets relative ones
        reader = CocoKeypointsReader(ann, image_root=root)
        for height in heights:
            start = time.time()
            before = dict(stats) if stats is not None else None
            ap = coco_ap_with_gt_boxes(estimator, ann, image_root=root, person_height=height, keypoints=keypoints,
                                       **options)
            pck = pck_with_gt_boxes(estimator, reader, person_height=height, keypoints=keypoints, **options)
            key = f"{set_name}@{height or 'full'}"
            rows[key] = {"AP": round(ap["AP"], 4), "AP50": round(ap["AP50"], 4), "pck@0.2": round(pck["pck@0.2"], 4),
                         "num_people": ap["num_people"], "seconds": round(time.time() - start, 1)}
            if stats is not None:
                crops = max(stats["crops"] - before["crops"], 1)
                rows[key].update(detected=round((stats["detected"] - before["detected"]) / crops, 3),
                                 ms_per_crop=round((stats["worker_ms"] - before["worker_ms"]) / crops, 1))
            print(key, rows[key], flush=True)
    return rows


def plot(results: dict, heights: list[int], out: Path, sets: dict[str, Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
    for ax, set_name in zip(axes[0], sets):
        for model, rows in results["models"].items():
            ys = [rows.get(f"{set_name}@{h}", {}).get("AP", float("nan")) for h in heights]
            ax.plot(heights, ys, marker="o", label=model)
        ax.set_xscale("log", base=2)
        ax.set_xticks(heights, [str(h) for h in heights])
        ax.set_xlabel("person height R (px)")
        ax.set_ylabel("OKS AP")
        ax.set_title(f"{set_name} (GT boxes)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--heights", nargs="+", type=int, default=[128, 96, 64, 48, 32, 24, 16])
    parser.add_argument("--tag", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=[*SETS, *VALIDATION_SETS])
    parser.add_argument("--fit-to", default=None, help="a 2D model: fit 3D models' bodies to its keypoints")
    parser.add_argument("--fit-steps", type=int, default=None)
    parser.add_argument("--fit-pose-prior", type=float, default=None)
    parser.add_argument("--fit-camera-prior", type=float, default=None)
    parser.add_argument("--fit-sigma", type=float, default=None)
    parser.add_argument("--fit-lr", type=float, default=None)
    parser.add_argument("--fit-min-score", type=float, default=None)
    parser.add_argument("--fit-fixed-root", action="store_true")
    parser.add_argument("--fit-shape", action="store_true")
    parser.add_argument("--fit-resolve-left-right", action="store_true")
    parser.add_argument("--flip-test-3d", action=argparse.BooleanOptionalAction, default=None,
                        help="3D models: average each crop's body with its mirror's (default: the model card's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = {name: {**SETS, **VALIDATION_SETS}[name] for name in args.sets}
    for path in sets.values():
        if not path.exists():
            raise SystemExit(f"{path} missing: run `python scripts/make_real_splits.py` (test sets) or "
                             f"`bash scripts/prepare_kp2d_real.sh` (lspet_val) first")
    fit_to, fit_config = None, None
    if args.fit_to:
        from lowres_hps.fitting import KeypointFitConfig

        fit_to = load(args.fit_to)
        settings = {"steps": args.fit_steps, "pose_prior": args.fit_pose_prior, "camera_prior": args.fit_camera_prior,
                    "sigma": args.fit_sigma, "lr": args.fit_lr, "min_score": args.fit_min_score}
        fit_config = KeypointFitConfig(**{k: v for k, v in settings.items() if v is not None},
                                       fit_root=not args.fit_fixed_root, fit_shape=args.fit_shape,
                                       resolve_left_right=args.fit_resolve_left_right)
    suffix = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks/results" / f"kp2d_real{suffix}.json"
    results = json.loads(out.read_text()) if out.exists() else {"models": {}}
    results.update(date=time.strftime("%Y-%m-%d"), machine=f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
                   command="python benchmarks/kp2d_real.py " + " ".join(
                       f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()))
    for name in args.models:
        print(f"== {name}", flush=True)
        estimator = load(name)
        flip_3d = ""
        if is_3d(estimator) and args.flip_test_3d is not None:
            estimator.flip_test = args.flip_test_3d
            flip_3d = f", flip test {'on' if args.flip_test_3d else 'off'}"
        key = Path(name).name + (f" (3D projected{flip_3d})" if is_3d(estimator) else "")
        if fit_to is not None and is_3d(estimator):
            key = f"{Path(name).name} (3D fitted to {Path(args.fit_to).name}{flip_3d}: {fit_config})"
        results["models"][key] = evaluate(estimator, args.heights, sets, fit_to, fit_config)
        out.write_text(json.dumps(results, indent=1))
    plot(results, args.heights, out.with_suffix(".png"), sets)
    print(f"\n| model | set | " + " | ".join(f"R={h}" for h in args.heights) + " |")
    print("|---|---|" + "---|" * len(args.heights))
    for model, rows in results["models"].items():
        for set_name in sets:
            cells = [f"{rows[f'{set_name}@{h}']['AP']:.3f} / {rows[f'{set_name}@{h}']['pck@0.2']:.2f}"
                     if f"{set_name}@{h}" in rows else "-" for h in args.heights]
            print(f"| {model} | {set_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
