"""Settings of the keypoint fit, side by side, on VALIDATION people only.

    python benchmarks/body3d_fit_variants.py [--model3d rsc_move_c128_ft5] [--model2d lrmove_l_128 | RUN_DIR] \
        [--variants base prior_0.3 ...] [--people 100] [--threads 1] [--tag NAME]

Each variant is a set of :class:`~lowres_hps.fitting.KeypointFitConfig` settings (:data:`VARIANTS`, or a JSON
object such as ``'{"pose_prior": 0.3, "sigma": 0.1}'``). For each:
- SynthLR-val (seed 4000), the first ``--people`` people at 96 and 32 px, ground-truth boxes: MPJPE / PA-MPJPE
  (mm, COCO-17, hips-rooted) of the fitted bodies. The 3D network runs with the flip test (the default model's card
  setting) and the 2D model with its own card's; both see the same crop (one canvas,
  ``body3d_fit.shared_crop_dataset``).
- LSPET-val (lspet_400[270:300], 30 real people) and, as a second opinion, our COCO *training* people
  (``data/real/coco_train.json``: both models trained on them, so their level is optimistic; only differences
  between variants mean anything): OKS AP of the projected 3D keypoints at R = 64 and 32 through `predict`'s path
  (``apis.accuracy.coco_ap_with_gt_boxes`` with the fit).
No test set is read. The network's and the 2D model's outputs on SynthLR-val are computed once per model pair.
Also reported once: the 2D model's own error on those SynthLR-val crops (px at the canvas) and the fraction of
people it labels with left and right swapped. Results: benchmarks/results/body3d_fit_variants[_TAG].json and a
markdown table on stdout.
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
from body3d_fit import shared_crop_dataset  # noqa: E402 - a sibling script
REAL_SETS = {"lspet_val": (ROOT / "data/labels/lspet_val/labels.json", None),
             "coco_train": (ROOT / "data/real/coco_train.json", "/")}
ARMS_AND_HEAD = ("neck01", "head", "clavicle.L", "upperarm01.L", "lowerarm01.L", "wrist.L", "clavicle.R",
                 "upperarm01.R", "lowerarm01.R", "wrist.R")
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
VARIANTS = {
    "network": {"steps": 0},
    "base": {},
    "prior_0.3": {"pose_prior": 0.3},
    "prior_2": {"pose_prior": 2.0},
    "prior_3": {"pose_prior": 3.0},
    "normalise_by_keypoints": {"normalise_by": "keypoints"},
    "score_squared": {"score_power": 2.0},
    "score_squared_by_keypoints": {"score_power": 2.0, "normalise_by": "keypoints"},
    "stiff_torso_prior_0.3": {"pose_prior": 0.3,
                              "joint_prior_scale": {"root": 10, "spine05": 3, "spine03": 3, "spine01": 3}},
    "root_x30_prior_0.3": {"pose_prior": 0.3, "joint_prior_scale": {"root": 30}},
    "free_arms_head": {"joint_prior_scale": {name: 0.3 for name in ARMS_AND_HEAD}},
    "fixed_root": {"fit_root": False},
    "fixed_root_prior_0.3": {"fit_root": False, "pose_prior": 0.3},
    "resolve_left_right": {"resolve_left_right": True},
    "resolve_left_right_prior_0.3": {"resolve_left_right": True, "pose_prior": 0.3},
    "shape": {"fit_shape": True},
    "sigma_0.05": {"sigma": 0.05},
    "sigma_0.1": {"sigma": 0.1},
    "sigma_0.4": {"sigma": 0.4},
    "steps_120": {"steps": 120},
    "lr_0.15": {"lr": 0.15},
    "camera_prior_0.01": {"camera_prior": 0.01},
    # Keypoints weighted as COCO's OKS weighs them (session 12): a face pixel costs up to 18x a hip pixel.
    "oks_weights": {"keypoint_scale": "oks"},
    "oks_weights_half": {"keypoint_scale": "oks_half"},
    "oks_weights_prior_2": {"keypoint_scale": "oks", "pose_prior": 2.0},
    "face_0.3": {"keypoint_scale": {name: 0.3 for name in FACE}},
    "face_0": {"keypoint_scale": {name: 0.0 for name in FACE}},
    # Both ways round (session 13): also fit from the network's body seen the other way round, keep the lower loss.
    "turned_round": {"try_turned_round": True},
    "turned_round_prior_2": {"try_turned_round": True, "pose_prior": 2.0},
}
# Named keypoint scales (JSON cannot carry the computed dictionaries).
KEYPOINT_SCALES = {"oks": 2.0, "oks_half": 1.0}
HEIGHTS = (96, 32)


def load_any(name: str, **options):
    from lowres_hps.apis.registry import load_model, load_run

    return load_run(name, **options) if Path(name).is_dir() else load_model(name, **options)


def synthlr_outputs(model3d, model2d, people: int, batch_size: int = 25) -> dict[str, torch.Tensor]:
    """The network's (flip-tested) bodies, the 2D model's keypoints and the truth on SynthLR-val, float64."""
    from torch.utils.data import DataLoader, Subset

    from lowres_hps.models.body3d import FlipTestNet

    network = FlipTestNet(model3d.model)
    dataset = shared_crop_dataset(model3d, model2d, ROOT / "data/synthlr/val_crops", HEIGHTS)
    rows: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(Subset(dataset, range(min(people, len(dataset)))), batch_size=batch_size):
        images, ranges = batch["images"].flatten(0, 1), batch["range_index"].flatten()
        per_person = batch["images"].shape[1]  # one crop per height, person-major
        with torch.no_grad():
            out = network(images, ranges)
            points, scores = model2d(images, ranges)
        for key, value in (("pose_vector", out["pose_vector"]), ("camera", out["camera"]), ("keypoints2d", points),
                           ("scores2d", scores), ("truth3d", batch["keypoints3d"].repeat_interleave(per_person, 0)),
                           ("visible3d", (batch["visible3d"] > 0).repeat_interleave(per_person, 0)),
                           ("truth2d", batch["keypoints2d"].repeat_interleave(per_person, 0)),
                           ("visible2d", (batch["visible2d"] > 0).repeat_interleave(per_person, 0))):
            rows.setdefault(key, []).append(value.double() if value.is_floating_point() else value)
    return {key: torch.cat(value) for key, value in rows.items()}


def swapped_by_model2d(outputs: dict[str, torch.Tensor], convention: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) bool: the 2D model's keypoints lie closer to the truth with left and right swapped; (N,) its mean
    distance from the truth (px at the canvas)."""
    from lowres_hps.body.keypoints import get_convention

    flip = torch.as_tensor(get_convention(convention).flip_permutation)
    visible = outputs["visible2d"].double()

    def distance(truth: torch.Tensor) -> torch.Tensor:
        return ((outputs["keypoints2d"] - truth).norm(dim=-1) * visible).sum(-1) / visible.sum(-1).clamp(min=1)

    straight = distance(outputs["truth2d"])
    return distance(outputs["truth2d"][:, flip]) < straight, straight


def keypoints2d_on_synthlr(outputs: dict[str, torch.Tensor], convention: str) -> dict[str, float]:
    """The 2D model on SynthLR-val: mean distance from the true keypoints (px at the canvas) per height, and the
    fraction of people it labels with left and right swapped."""
    swapped, distance = swapped_by_model2d(outputs, convention)
    scores = {f"model2d_px@{h}": round(float(distance[i::len(HEIGHTS)].mean()), 2) for i, h in enumerate(HEIGHTS)}
    scores["model2d_swapped"] = round(float(swapped.double().mean()), 3)
    return scores


def synthlr_scores(model3d, outputs: dict[str, torch.Tensor], config) -> dict[str, float]:
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe
    from lowres_hps.fitting import fit_body_to_keypoints
    from lowres_hps.methods.rsc import hips_root

    cfg, body = model3d.config, model3d.body
    fit = fit_body_to_keypoints(body, outputs["pose_vector"], outputs["camera"], outputs["keypoints2d"],
                                outputs["scores2d"], canvas=cfg.canvas, crop_focal=cfg.crop_focal,
                                convention=cfg.convention, config=config)
    with torch.no_grad():
        out = body.forward_vector(fit.pose_vector.to(body.dtype), keypoints_only=True)
        keypoints, _ = out.keypoints(cfg.convention)
    keypoints, truth, visible = keypoints.double(), outputs["truth3d"], outputs["visible3d"]
    swapped, _ = swapped_by_model2d(outputs, cfg.convention)
    per_person = ((keypoints - hips_root(keypoints)) - (truth - hips_root(truth))).norm(dim=-1)
    per_person = 1000 * (per_person * visible).sum(-1) / visible.sum(-1).clamp(min=1)
    scores = {"mpjpe_2d_swapped": round(float(per_person[swapped].mean()), 1),
              "mpjpe_2d_not_swapped": round(float(per_person[~swapped].mean()), 1)}
    for i, height in enumerate(HEIGHTS):
        rows = slice(i, None, len(HEIGHTS))
        p, g, m = keypoints[rows], truth[rows], visible[rows]
        scores[f"mpjpe@{height}"] = round(float(1000 * mpjpe(p - hips_root(p), g - hips_root(g), m).mean()), 1)
        scores[f"pa_mpjpe@{height}"] = round(float(1000 * pa_mpjpe(p, g, m).mean()), 1)
    return scores


def real_scores(model3d, model2d, config) -> dict[str, float]:
    from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes

    scores = {}
    for name, (ann, root) in REAL_SETS.items():
        for height in (64, 32):
            ap = coco_ap_with_gt_boxes(model2d, ann, image_root=root, person_height=height, keypoints="3d",
                                       body_estimator=model3d, fit_keypoints=config)
            scores[f"{name}_AP@{height}"] = round(ap["AP"], 3)
    return scores


def main() -> None:
    from lowres_hps.evaluation import oks_keypoint_scale
    from lowres_hps.fitting import KeypointFitConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model3d", default="rsc_move_c128_ft5")
    parser.add_argument("--model2d", default="lrmove_l_128", help="a registered 2D model or a training run folder")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # The 3D flip test on, as the shipped default's card has it (a training run's config leaves it off).
    model3d, model2d = load_any(args.model3d, flip_test=True), load_any(args.model2d)
    outputs = synthlr_outputs(model3d, model2d, args.people)
    out = ROOT / "benchmarks/results" / f"body3d_fit_variants{'_' + args.tag if args.tag else ''}.json"
    results = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
    results.update(date=time.strftime("%Y-%m-%d"), machine=f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
                   model3d=args.model3d, model2d=args.model2d, people=args.people,
                   command="python benchmarks/body3d_fit_variants.py " + " ".join(sys.argv[1:]),
                   model2d_on_synthlr_val=keypoints2d_on_synthlr(outputs, model3d.config.convention))
    print("2D model on SynthLR-val:", results["model2d_on_synthlr_val"], flush=True)
    for name in args.variants:
        settings = json.loads(name) if name.startswith("{") else VARIANTS[name]
        scale = settings.get("keypoint_scale")
        config = KeypointFitConfig(**{**settings, "keypoint_scale": oks_keypoint_scale(KEYPOINT_SCALES[scale])
                                      if isinstance(scale, str) else scale})
        started = time.time()
        row = {"settings": settings, **synthlr_scores(model3d, outputs, config),
               **real_scores(model3d, model2d, config),
               "seconds": round(time.time() - started, 1)}
        results["rows"][name] = row
        print(name, row, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    print(f"\n{args.model3d} fitted to {args.model2d}, validation people\n")
    print("| variant | SynthLR-val MPJPE 96 / 32 | PA-MPJPE 96 / 32 | LSPET-val AP 64 / 32 | COCO-train AP 64 / 32 |")
    print("|---|---|---|---|---|")
    for name, r in results["rows"].items():
        print(f"| {name} | {r['mpjpe@96']} / {r['mpjpe@32']} | {r['pa_mpjpe@96']} / {r['pa_mpjpe@32']} | "
              f"{r['lspet_val_AP@64']} / {r['lspet_val_AP@32']} | {r['coco_train_AP@64']} / {r['coco_train_AP@32']} |")


if __name__ == "__main__":
    main()
