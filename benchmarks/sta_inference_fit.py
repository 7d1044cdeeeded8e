"""Inference-time fitting to silhouettes on the shifted synthetic target (issue 13, the paper's Fig. 5A).

``predict --fit-silhouettes`` fits each body to its own silhouette after the network, with the adaptation's losses
(:meth:`lowres_hps.methods.sta.SilhouetteAdaptLoss.fit`: root, body joints through the pose prior's latent, shape
and crop camera). Here the same fit runs on the shifted SynthLR-test people of ``sta_synthetic.py --eval test``
(crops 0-299 at 96, 52 and 32 px, the same images), with the renderer's masks as silhouettes: the best silhouettes
a camera could give. It measures how much 3D a silhouette holds at these sizes, per person and with as many steps
as one likes, which bounds what adapting the network on silhouettes can teach it. Also reported: the rendered
silhouette's IoU with the target, and the fraction of people whose body faces the wrong way (front for back: the
torso's normal against the truth's), the one error a silhouette cannot show.

    python benchmarks/sta_inference_fit.py --shift thermal --steps 0 10 30 100 [--eval val]
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
sys.path.insert(0, str(ROOT / "benchmarks"))
from sta_synthetic import HEIGHTS, TEST_PEOPLE, _shift  # noqa: E402 - a sibling script


def facing(keypoints: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) COCO-17 -> (..., 3) the torso's normal (shoulder line x spine): which way the body faces.
    Two bodies face opposite ways (front for back, the ambiguity of a silhouette) when their normals' dot product
    is negative."""
    shoulders = keypoints[..., 5, :] - keypoints[..., 6, :]
    spine = (keypoints[..., 11, :] + keypoints[..., 12, :] - keypoints[..., 5, :] - keypoints[..., 6, :]) / 2
    return torch.cross(shoulders, spine, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model3d", default="rsc_move_c128_ft2")
    parser.add_argument("--shift", default="thermal", choices=["thermal", "grayscale", "night", "none"])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30, 100])
    parser.add_argument("--fit-lr", type=float, default=0.02)
    parser.add_argument("--eval", choices=["val", "test"], default="val")
    parser.add_argument("--people", type=int, default=None, help="the first N people (default: all of the split)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from torch.utils.data import DataLoader, Subset

    from lowres_hps.apis.registry import load_model
    from lowres_hps.body.keypoints import hips_root
    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe
    from lowres_hps.methods.sta import SilhouetteAdaptConfig, SilhouetteAdaptLoss, target_silhouettes
    from lowres_hps.models.pose_prior import default_pose_prior

    source = load_model(args.model3d)
    network, body = source.model.eval(), source.body
    folder = "data/synthlr/test_crops" if args.eval == "test" else "data/synthlr/val_crops"
    # The images of sta_synthetic's evaluation_set (same transform seed), with the renderer's masks.
    dataset = MultiResolutionDataset([SynthLRReader(folder, load_masks=True)], canvas=network.config.canvas,
                                     person_heights=list(HEIGHTS), image_transform=_shift(args.shift),
                                     transform_seed=12345, with_masks=True)
    people = TEST_PEOPLE if args.eval == "test" else range(len(dataset))
    if args.people is not None:
        people = people[:args.people]
    dataset = Subset(dataset, list(people))
    spec = body.pose_spec
    fitter = SilhouetteAdaptLoss(SilhouetteAdaptConfig(fit_lr=args.fit_lr), network.config, body,
                                 torch.tensor(spec.rest_shape), prior=default_pose_prior())
    errors: dict[str, list[torch.Tensor]] = {}
    started = time.perf_counter()
    for batch in DataLoader(dataset, batch_size=25):
        images, ranges = batch["images"], batch["range_index"]
        b, a = images.shape[:2]
        with torch.no_grad():
            out = network(images.flatten(0, 1), ranges.flatten())
        pose, camera = out["pose_vector"].float(), out["camera"].float()
        target = target_silhouettes(batch["silhouette"].float(), fitter.config.render_size).repeat_interleave(a, 0)
        gt, mask = batch["keypoints3d"].double(), batch["visible3d"] > 0
        for steps in args.steps:
            fitted, fitted_camera = fitter.fit(pose, camera, target, steps=steps) if steps > 0 else (pose, camera)
            with torch.no_grad():
                drawn = fitter.render(fitted, fitted_camera) > 0.5
                iou = (drawn & (target > 0.5)).sum((-1, -2)) / (drawn | (target > 0.5)).sum((-1, -2)).clamp(min=1)
                keypoints, _ = body.forward_vector(fitted.to(body.dtype), keypoints_only=True).keypoints(
                    network.config.convention)
            pred = keypoints.view(b, a, -1, 3).double()
            for i, height in enumerate(HEIGHTS):
                p = pred[:, i]
                errors.setdefault(f"{steps}/mpjpe_mm@{int(height)}", []).append(
                    1000 * mpjpe(p - hips_root(p), gt - hips_root(gt), mask))
                errors.setdefault(f"{steps}/pa_mpjpe_mm@{int(height)}", []).append(1000 * pa_mpjpe(p, gt, mask))
                errors.setdefault(f"{steps}/silhouette_iou@{int(height)}", []).append(iou.view(b, a)[:, i].double())
                errors.setdefault(f"{steps}/facing_flipped@{int(height)}", []).append(
                    (facing(p) * facing(gt)).sum(-1).lt(0).double())
        print(f"{len(errors[next(iter(errors))]) * 25} people, {time.perf_counter() - started:.0f} s", flush=True)
    rows: dict[str, dict[str, float]] = {}
    for key, values in errors.items():
        steps, metric = key.split("/")
        rows.setdefault(f"fit_steps_{steps}", {})[metric] = float(torch.cat(values).nanmean())
    out_path = Path(args.out or f"benchmarks/results/sta_inference_fit_{args.shift}_{args.eval}.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({
        "settings": {"model3d": args.model3d, "shift": args.shift, "eval": args.eval, "people": len(dataset),
                     "fit_lr": args.fit_lr, "silhouettes": "the renderer's masks",
                     "command": "python benchmarks/sta_inference_fit.py " + " ".join(sys.argv[1:]),
                     "seconds": round(time.perf_counter() - started, 1)},
        "rows": rows}, indent=1))
    names = [f"{kind}@{int(h)}" for kind in ("mpjpe_mm", "pa_mpjpe_mm", "silhouette_iou", "facing_flipped")
             for h in HEIGHTS]
    print("| fit steps | " + " | ".join(n.replace("_mm@", " ").replace("@", " ") for n in names) + " |")
    for name, row in rows.items():
        print(f"| {name.split('_')[-1]} | " + " | ".join(f"{row[n]:.3g}" for n in names) + " |")


if __name__ == "__main__":
    main()
