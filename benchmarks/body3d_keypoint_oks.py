"""Where the fitted 3D keypoints lose OKS against the 2D model's: per-keypoint OKS and mean offsets.

    python benchmarks/body3d_keypoint_oks.py [--set data/real/coco_train.json] [--height 64]
        [--model lrmove_l_128] [--model3d rsc_move_c128_ft4]

Ground-truth boxes, each person degraded to ``--height`` px; the 2D model's keypoints and the 3D model's bodies
fitted to them (``predict``'s default), projected. Per COCO keypoint: the mean per-keypoint OKS term
``exp(-d^2 / (2 s^2 k^2))`` of each source (COCO's sigmas, s^2 the annotation's area) and the mean offset from the
annotation in units of ``sqrt(area)`` (x right, y down). The default set is our COCO training people (labels
seen in training; a diagnosis, not a score). Writes benchmarks/results/body3d_keypoint_oks.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from lowres_hps.evaluation.keypoints2d import COCO17_SIGMAS

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
COCO_SIGMAS = np.asarray(COCO17_SIGMAS)  # per-keypoint OKS terms below; the library's oks() gives their mean


def main() -> None:
    import torch

    from lowres_hps.apis.inputs import load_image
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model
    from lowres_hps.body.keypoints import get_convention
    from lowres_hps.data.coco import CocoPeople
    from lowres_hps.fitting import KeypointFitConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default=str(ROOT / "data/real/coco_train.json"))
    parser.add_argument("--image-root", default="/", help="root of the file names (our splits hold absolute paths)")
    parser.add_argument("--height", type=float, default=64)
    parser.add_argument("--model", default="lrmove_l_128")
    parser.add_argument("--model3d", default="rsc_move_c128_ft4")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ann = Path(args.set)
    people = CocoPeople(json.loads(ann.read_text()), ann, min_keypoints=1).people
    predictor = Predictor(load_model(args.model), person_height=args.height, body_estimator=load_model(args.model3d),
                          fit_keypoints=KeypointFitConfig())
    by_image: dict[str, list] = {}
    for person in people:
        by_image.setdefault(person.image["file_name"], []).append(person)
    sources = {"2d": [], "3d fitted": []}
    offsets = {"2d": [], "3d fitted": []}
    for name, persons in by_image.items():
        rgb = load_image(Path(args.image_root) / name)[0]
        found = predictor.predict_images([rgb], [np.stack([p.bbox for p in persons])])[0]
        for person, prediction in zip(persons, found):
            truth = np.asarray(person.annotation["keypoints"], float).reshape(17, 3)
            area = float(person.annotation.get("area") or 0.53 * person.bbox[2] * person.bbox[3])
            visible = truth[:, 2] > 0
            for key, points in (("2d", prediction.keypoints[:, :2]), ("3d fitted", prediction.keypoints_3d_projected[:, :2])):
                delta = points - truth[:, :2]
                oks = np.exp(-(delta ** 2).sum(1) / (2 * area * (2 * COCO_SIGMAS) ** 2))
                sources[key].append(np.where(visible, oks, np.nan))
                offsets[key].append(np.where(visible[:, None], delta / np.sqrt(area), np.nan))
    names = get_convention("coco17").names
    rows = {}
    for i, joint in enumerate(names):
        rows[joint] = {key: {"oks": round(float(np.nanmean(np.array(sources[key])[:, i])), 3),
                             "offset": [round(float(v), 3) for v in np.nanmean(np.array(offsets[key])[:, i], 0)]}
                       for key in sources}
    print(f"{sum(len(v) for v in by_image.values())} people of {ann} at {args.height:g} px")
    print("| keypoint | OKS 2D | OKS 3D fitted | offset 2D (x, y) | offset 3D fitted (x, y) |\n|---|---|---|---|---|")
    for joint, row in rows.items():
        print(f"| {joint} | {row['2d']['oks']:.2f} | {row['3d fitted']['oks']:.2f} | "
              f"{row['2d']['offset'][0]:+.3f}, {row['2d']['offset'][1]:+.3f} | "
              f"{row['3d fitted']['offset'][0]:+.3f}, {row['3d fitted']['offset'][1]:+.3f} |")
    out = ROOT / "benchmarks/results/body3d_keypoint_oks.json"
    out.write_text(json.dumps({"set": str(ann), "height": args.height, "model": args.model, "model3d": args.model3d,
                               "people": sum(len(v) for v in by_image.values()), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
