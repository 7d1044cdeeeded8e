"""3D bodies fitted to 2D keypoints (``lowres_hps.fitting``) against the network alone, on SynthLR with 3D truth.

    python benchmarks/body3d_fit.py [--model3d rsc_move_c128] [--model2d lrmove_l_128] \
        [--synthlr data/synthlr/val_crops] [--people 200] [--heights 176 96 52 32] \
        [--steps 40] [--pose-prior 0.01] [--camera-prior 0.1] [--sigma 0.05] [--lr 0.03] [--fixed-root] [--resolve-left-right] \
        [--targets model2d|truth] [--tag NAME]

Every SynthLR person is cropped by the protocol at each height (ground-truth boxes), the 3D network and the 2D
model see the same crop (the script requires equal input sizes and margins, as ``rsc_move_c128`` and
``lrmove_l_128`` have), and the body is fitted to the 2D model's keypoints
(``--targets truth``: to the true 2D keypoints instead, what the fit gives with a perfect 2D model). Reported per height: MPJPE and
PA-MPJPE (mm, COCO-17, hips-rooted) before and after the fit, and the mean distance (crop px at the canvas)
of the projected body keypoints from the true 2D keypoints, and of the 2D model's keypoints from them.
Tune on SynthLR-val (seed 4000, the default); report SynthLR-test (``--synthlr data/synthlr/test_crops``).
Results go to benchmarks/results/body3d_fit[_TAG].json and a markdown row on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def shared_crop_dataset(model3d, model2d, folder, heights):
    """SynthLR people at each of ``heights`` (ground-truth boxes), cropped once for both the 3D model and the 2D
    model; exits when their crops differ (input size or margin)."""
    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset

    cfg = model3d.config
    if tuple(model2d.input_size) != (cfg.canvas, cfg.canvas) or model2d.scale_factor != cfg.scale_factor:
        raise SystemExit(f"the 2D model's crops ({model2d.input_size}, margin {model2d.scale_factor}) differ from "
                         f"the 3D model's ({cfg.canvas}, {cfg.scale_factor}): both must see one crop")
    return MultiResolutionDataset([SynthLRReader(folder)], canvas=cfg.canvas, convention=cfg.convention,
                                  body_model=cfg.body_model, pose_size=cfg.pose_spec.vector_size,
                                  num_ranges=cfg.num_ranges, person_heights=heights, scale_factor=cfg.scale_factor)


def main() -> None:
    from torch.utils.data import DataLoader, Subset

    from lowres_hps.apis.registry import load_model
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe
    from lowres_hps.fitting import KeypointFitConfig, fit_body_to_keypoints
    from lowres_hps.geometry.camera import project_to_crop
    from lowres_hps.methods.rsc import hips_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model3d", default="rsc_move_c128")
    parser.add_argument("--model2d", default="lrmove_l_128")
    parser.add_argument("--synthlr", default=str(ROOT / "data/synthlr/val_crops"))
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--heights", nargs="+", type=float, default=[176, 96, 52, 32])
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="")
    defaults = KeypointFitConfig()
    for name in ("steps", "lr", "pose_prior", "camera_prior", "sigma", "min_score"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)),
                            default=getattr(defaults, name))
    parser.add_argument("--fixed-root", action="store_true", help="keep the network's root (global) rotation")
    parser.add_argument("--resolve-left-right", action="store_true")
    parser.add_argument("--targets", choices=["model2d", "truth"], default="model2d",
                        help="fit to the 2D model's keypoints, or to the true 2D keypoints (score 1; an upper bound)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fit_config = KeypointFitConfig(steps=args.steps, lr=args.lr, pose_prior=args.pose_prior,
                                   camera_prior=args.camera_prior, sigma=args.sigma, min_score=args.min_score,
                                   fit_root=not args.fixed_root,
                                   resolve_left_right=args.resolve_left_right)
    model3d, model2d = load_model(args.model3d), load_model(args.model2d)
    cfg = model3d.config
    dataset = shared_crop_dataset(model3d, model2d, args.synthlr, args.heights)
    subset = Subset(dataset, range(min(args.people, len(dataset))))
    body = model3d.body
    sums: dict[str, list[torch.Tensor]] = {}
    start = time.time()
    fit_seconds = 0.0
    for batch in DataLoader(subset, batch_size=args.batch_size):
        images, ranges = batch["images"], batch["range_index"]
        b, a = images.shape[:2]
        flat_images, flat_ranges = images.flatten(0, 1), ranges.flatten()
        with torch.no_grad():
            out = model3d.model(flat_images, flat_ranges)
            points2d, scores2d = model2d(flat_images, flat_ranges)
        gt2d = batch["keypoints2d"].double().repeat_interleave(a, dim=0)
        visible2d = batch["visible2d"].repeat_interleave(a, dim=0) > 0
        targets, target_scores = points2d.double(), scores2d.double()
        if args.targets == "truth":
            targets, target_scores = gt2d, visible2d.double()
        tick = time.time()
        fit = fit_body_to_keypoints(body, out["pose_vector"].double(), out["camera"].double(), targets,
                                    target_scores, canvas=cfg.canvas, crop_focal=cfg.crop_focal,
                                    convention=cfg.convention, config=fit_config)
        fit_seconds += time.time() - tick
        gt3d = batch["keypoints3d"].double()
        visible = batch["visible3d"] > 0
        keep = batch["has_3d"] > 0
        for label, vector, camera in (("net", out["pose_vector"].double(), out["camera"].double()),
                                      ("fit", fit.pose_vector, fit.camera)):
            with torch.no_grad():
                keypoints, _ = body.forward_vector(vector.to(body.dtype), keypoints_only=True).keypoints(cfg.convention)
                pixels, _ = project_to_crop(keypoints, camera.to(keypoints.dtype), cfg.canvas, cfg.crop_focal)
            keypoints = keypoints.double().view(b, a, -1, 3)
            distance2d = ((pixels.double() - gt2d).norm(dim=-1) * visible2d).sum(-1) / visible2d.sum(-1).clamp(min=1)
            distance2d = distance2d.view(b, a)
            for i, height in enumerate(args.heights):
                p, g, m = keypoints[keep, i], gt3d[keep], visible[keep]
                h = f"{height:g}"
                sums.setdefault(f"{label}/mpjpe_mm@{h}", []).append(1000 * mpjpe(p - hips_root(p), g - hips_root(g), m))
                sums.setdefault(f"{label}/pa_mpjpe_mm@{h}", []).append(1000 * pa_mpjpe(p, g, m))
                sums.setdefault(f"{label}/px2d@{h}", []).append(distance2d[:, i])
        distance = ((points2d.double() - gt2d).norm(dim=-1) * visible2d).sum(-1) / visible2d.sum(-1).clamp(min=1)
        for i, height in enumerate(args.heights):
            sums.setdefault(f"model2d/px2d@{height:g}", []).append(distance.view(b, a)[:, i])
        sums.setdefault("fitted_fraction", []).append(fit.fitted.double())
        sums.setdefault("swapped_fraction", []).append(fit.swapped.double())
    metrics = {k: round(float(torch.cat(v).nanmean()), 2) for k, v in sums.items()}
    people = len(subset) * len(args.heights)
    metrics["fit_ms_per_person"] = round(1000 * fit_seconds / people, 2)
    suffix = f"_{args.tag}" if args.tag else ""
    out_path = ROOT / "benchmarks/results" / f"body3d_fit{suffix}.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {"runs": {}}
    key = (f"{args.model3d}+{args.model2d} {Path(args.synthlr).name} steps={args.steps} lr={args.lr} "
           f"pose_prior={args.pose_prior} camera_prior={args.camera_prior} sigma={args.sigma} min_score={args.min_score}"
           + (" fixed_root" if args.fixed_root else "") + (" targets=truth" if args.targets == "truth" else "")
           + (" resolve_left_right" if args.resolve_left_right else ""))
    results.update(date=time.strftime("%Y-%m-%d"), machine=f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
    results["runs"][key] = {"metrics": metrics, "people": len(subset), "seconds": round(time.time() - start, 1),
                            "command": "python benchmarks/body3d_fit.py " + " ".join(
                                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                                for k, v in vars(args).items())}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=1))
    print(key)
    heights = [f"{h:g}" for h in args.heights]
    print("| | " + " | ".join(f"MPJPE@{h} | PA@{h} | px@{h}" for h in heights) + " |")
    for label in ("net", "fit"):
        print(f"| {label} | " + " | ".join(f"{metrics[f'{label}/mpjpe_mm@{h}']:.1f} | {metrics[f'{label}/pa_mpjpe_mm@{h}']:.1f} | "
                                          f"{metrics[f'{label}/px2d@{h}']:.2f}" for h in heights) + " |")
    print("| 2D model | " + " | ".join(f" | | {metrics[f'model2d/px2d@{h}']:.2f}" for h in heights) + " |")
    print(f"fitted {metrics['fitted_fraction']:.3f}, swapped {metrics['swapped_fraction']:.3f}, fit {metrics['fit_ms_per_person']} ms/person")


if __name__ == "__main__":
    main()
