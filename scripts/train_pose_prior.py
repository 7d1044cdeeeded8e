"""Train the packaged Anny pose prior (adversarial auto-encoder, :mod:`lowres_hps.models.pose_prior`).

    python scripts/train_pose_prior.py [--steps 6000] [--hidden 512] [--threads 1] [--out PATH]

Poses: the pose vectors of SynthLR-train (``data/synthlr/train``) and of ``data/synthlr/scenes_train`` when it has an
``annotations_3d.npz``, plus Anny's named key poses, plus the left/right mirror of every pose (added after the
hold-out split, so a held-out pose's mirror is never trained on). Writes
``src/lowres_hps/weights/anny_pose_prior.safetensors`` with its card (training data with counts, steps,
held-out error, what the poses cover); float16 weights when float32 would pass 3 MB. Prints the metrics as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))

COVERS = ("SynthLR's poses: per-joint rotations sampled uniformly within modest anatomical ranges around standing and "
          "walking people (lowres_hps.body.pose.JOINT_RANGES_DEG), and Anny's key poses (stand, walk, run, sit, "
          "crouch, arms raised, wave, throw, kick, reach) with noise, and their mirrors; body joints only (root "
          "rotation and shape are not modelled).")
DOES_NOT_COVER = ("Sitting on chairs (beyond the noisy 'sit' key pose), lying, crawling, handstands or other poses far "
                  "outside those ranges, and real motion capture: no poses of real people are in its training data.")
MAX_FLOAT32_BYTES = 3_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="*", default=["data/synthlr/train", "data/synthlr/scenes_train"],
                        help="SynthLR folders (those without annotations_3d.npz are skipped)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lambda-adv", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="default: the packaged prior's path")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lowres_hps.methods.pose_prior import fit_pose_prior, key_pose_vectors, pose_vectors_from_synthlr
    from lowres_hps.models.pose_prior import PRIOR_WEIGHTS, PosePriorConfig, load_pose_prior, save_pose_prior

    started = time.time()
    parts, sources = [], []
    for folder in args.data:
        path = ROOT / folder
        if not (path / "annotations_3d.npz").is_file():
            print(f"skipping {folder}: no annotations_3d.npz", file=sys.stderr)
            continue
        vectors = pose_vectors_from_synthlr(path)
        parts.append(vectors)
        sources.append(f"SynthLR {folder} ({len(vectors)} poses, body joints of its Anny pose vectors)")
    if not parts:
        raise SystemExit(f"no SynthLR poses found in {args.data}; generate them first (scripts/make_synthlr.sh)")
    keys = key_pose_vectors()
    parts.append(keys)
    sources.append(f"Anny key poses of lowres_hps.data.synth.poses.KEY_POSES ({len(keys)} poses)")
    sources.append("the left/right mirror of every pose above (lowres_hps.body.flip_pose_vector; x2)")
    vectors = torch.cat(parts)

    config = PosePriorConfig(hidden=args.hidden)
    options = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "lambda_adv": args.lambda_adv,
               "holdout": 0.1, "seed": args.seed, "mirror": True}

    def progress(step: int, steps: int, losses: dict[str, float]) -> None:
        if step % max(1, steps // 20) == 0 or step == steps:
            text = ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
            print(f"step {step}/{steps} ({time.time() - started:.0f} s): {text}", flush=True)

    prior, metrics = fit_pose_prior(vectors, config, progress=progress, **options)
    seconds = time.time() - started
    parameters = sum(t.numel() for t in prior.state_dict().values() if t.is_floating_point())
    half = 4 * parameters > MAX_FLOAT32_BYTES
    rounded = {k: round(v, 3) for k, v in metrics.items()}
    notes = {
        "name": "anny_pose_prior",
        "training_data": sources,
        "licence": "Apache-2.0 (trained by lowres-hps on SynthLR poses of the Anny model: Apache-2.0 code, CC0 data)",
        "metrics": rounded,
        "steps": args.steps,
        "training": {**options, "disc_lr": args.lr / 10, "poses": len(vectors), "threads": args.threads,
                     "seconds": round(seconds)},
        "covers": COVERS,
        "does_not_cover": DOES_NOT_COVER,
        "notes": (f"Adversarial auto-encoder pose prior (Makhzani et al. 2015; silhouette-topology adaptation paper, "
                  f"Sec. 3.4 a): latent in [-1, 1]^{config.latent_size}, uniform prior. Held-out (10% of the poses, "
                  f"with their mirrors) reconstruction error {metrics['heldout_error_deg']:.2f} degrees (mean geodesic "
                  f"over the 19 body joints) against {metrics['mean_pose_heldout_error_deg']:.2f} for the per-joint "
                  f"mean pose. {COVERS} Not covered: {DOES_NOT_COVER}"
                  + (" Weights stored in float16." if half else "")),
    }
    out = Path(args.out) if args.out else PRIOR_WEIGHTS
    save_pose_prior(prior, out, notes, half=half)
    reloaded = load_pose_prior(out)
    with torch.no_grad():
        error = float(reloaded.reconstruction_error(vectors[:512]).mean())  # the file loads and projects
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "weights_dtype": reloaded.card["weights_dtype"],
                      "poses": len(vectors), "seconds": round(seconds), "metrics": rounded,
                      "reloaded_error_deg_first_512": round(error * 180 / 3.141592653589793, 3)}, indent=2))


if __name__ == "__main__":
    main()
