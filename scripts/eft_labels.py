"""Exemplar fine-tuning pseudo-labels: the 3D model's bodies fitted to the labelled 2D keypoints of real people.

    python scripts/eft_labels.py data/labels/lspet_train/labels.json [--model3d rsc_move_c128_ft5] [--pose-prior 0.3]

As EFT (Joo et al., 3DV 2021) and SPIN's in-the-loop fits: a real person with 2D labels and no 3D gets, as its 3D
label, the network's own body moved until its projection meets those labels (``lowres_hps.fitting``, the fit
`predict` runs, here against the labels instead of a 2D model's keypoints, on the full-resolution protocol crop).
The network is the fit's start and prior, so the label keeps the network's depth where the 2D labels say nothing.
Every labelled keypoint weighs 1; people with fewer than ``--min-keypoints`` labelled ones, or whose fitted
keypoints stay farther than ``--max-error`` (fraction of the box height, mean) from their labels, get no label.

Writes ``eft.json`` next to the labels (atomically, once), the ``body_params`` file that
:class:`lowres_hps.data.coco.CocoKeypointsReader` reads (training configs: ``{format: coco, path: labels.json,
body_params: eft.json}``)::

    {"info": {"body_model", "convention", "model3d", "fit", ...},
     "annotations": {"<annotation id>": {"pose_vector": [D], "keypoints3d": [[x, y, z] x K], "error": float}}}

``pose_vector``'s root rotation is in the crop camera's axes (those of the image); ``keypoints3d`` are metres in
the crop camera.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))


def main(argv: list[str] | None = None) -> int:
    from lowres_hps.apis.inputs import load_image
    from lowres_hps.apis.predictor import bounded_crop
    from lowres_hps.apis.registry import load_model
    from lowres_hps.data.reader import default_image_root
    from lowres_hps.fitting import KeypointFitConfig
    from lowres_hps.geometry.transforms import apply_affine
    from lowres_hps.imaging.protocol import LowResProtocol

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", type=Path, help="a COCO-format labels.json (e.g. written by `lowres-hps label`)")
    parser.add_argument("--out", type=Path, default=None, help="default: eft.json next to the labels")
    parser.add_argument("--model3d", default="rsc_move_c128_ft5")
    parser.add_argument("--pose-prior", type=float, default=0.3,
                        help="the fit's pose prior (0.3 made the labels of rsc_move_c128_eft; predict fits at 1)")
    parser.add_argument("--min-keypoints", type=int, default=8)
    parser.add_argument("--max-error", type=float, default=0.05,
                        help="largest mean distance of the fitted keypoints from the labels, in box heights")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        data = json.loads(args.labels.read_text())
        images = {image["id"]: image for image in data["images"]}
        people = [a for a in data["annotations"] if not a.get("iscrowd", 0) and a.get("keypoints")]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"{args.labels}: not a readable COCO labels file ({error})", file=sys.stderr)
        return 2
    image_root = default_image_root(args.labels)
    out = args.out or args.labels.with_name("eft.json")
    model3d = load_model(args.model3d)
    # The crop `predict` gives the 3D model, at the source resolution (no degradation: the labels are exact).
    protocol = LowResProtocol(tuple(model3d.input_size), float(model3d.scale_factor), "upsample")
    fit = KeypointFitConfig(pose_prior=args.pose_prior, min_keypoints=args.min_keypoints)
    result = {"info": {"description": "exemplar fine-tuning pseudo-labels: 3D bodies fitted to 2D labels",
                       "labels": str(args.labels), "model3d": args.model3d, "body_model": model3d.body.name,
                       "convention": model3d.convention, "fit": asdict(fit), "max_error": args.max_error,
                       "date": time.strftime("%Y-%m-%d")},
              "annotations": {}}
    start, rejected, unfitted, all_errors = time.perf_counter(), 0, 0, []
    people.sort(key=lambda a: a["image_id"])
    for first in range(0, len(people), args.batch):
        batch = people[first:first + args.batch]
        cached: dict[int, np.ndarray] = {}
        crops = []
        for ann in batch:
            if ann["image_id"] not in cached:
                cached[ann["image_id"]] = load_image(image_root / images[ann["image_id"]]["file_name"])[0]
            crops.append(bounded_crop(protocol, cached[ann["image_id"]], np.asarray(ann["bbox"], np.float64), None))
        labels = torch.tensor([ann["keypoints"] for ann in batch], dtype=torch.float64).view(len(batch), -1, 3)
        affines = torch.stack([c.affine for c in crops]).to(torch.float64)
        targets = apply_affine(labels[..., :2], affines)
        scores = (labels[..., 2] > 0).to(torch.float64)
        bodies = model3d.fit_bodies(torch.stack([c.image for c in crops]), torch.tensor([c.range_index for c in crops]),
                                    targets, scores, fit, with_vertices=False)
        distance = (bodies.keypoints2d.to(torch.float64) - targets).norm(dim=-1)
        error = (distance * scores).sum(-1) / scores.sum(-1).clamp(min=1)
        heights = torch.tensor([ann["bbox"][3] for ann in batch], dtype=torch.float64)
        crop_scale = affines[:, 0, 0].abs()  # crop px per image px (the protocol crops without rotation)
        relative = error / (heights * crop_scale)
        all_errors.extend(relative[bodies.fitted].tolist())
        for n, ann in enumerate(batch):
            if not bool(bodies.fitted[n]):
                unfitted += 1
                continue
            if float(relative[n]) > args.max_error:
                rejected += 1
                continue
            result["annotations"][str(ann["id"])] = {
                "pose_vector": [round(float(v), 5) for v in bodies.pose_vector[n]],
                "keypoints3d": [[round(float(c), 4) for c in point] for point in bodies.keypoints3d[n]],
                "error": round(float(relative[n]), 4)}
        print(f"{min(first + len(batch), len(people))}/{len(people)} people, {len(result['annotations'])} labelled, "
              f"{unfitted} with too few keypoints, {rejected} fitted too far from their labels, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    if all_errors:
        print("fit error (box heights) 10/50/90%:", np.percentile(all_errors, [10, 50, 90]).round(3).tolist())
    result["info"].update(num_people=len(people), num_labelled=len(result["annotations"]), num_unfitted=unfitted,
                          num_rejected=rejected)
    partial = out.with_suffix(".json.part")
    partial.write_text(json.dumps(result))
    os.replace(partial, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
