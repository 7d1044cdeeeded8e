"""How sure is a projected-3D AP on a few dozen people? Bootstrap intervals for issue 11's ratio bar.

    python benchmarks/ap_bootstrap.py --sets coco_holdout lspet_test --height 64 [--resamples 1000]

`predict`'s path runs once per set (the 2D default's keypoints and the default 3D model fitted to them, ground-truth
boxes, people degraded to ``--height`` px): the 2D keypoints and the projected 3D keypoints of the same people, each
scored by OKS AP as in ``kp2d_real.py``. Then the images are resampled with replacement ``--resamples`` times
(people stay with their image, so crowded images count as the unit they are) and both APs recomputed: the 90%
intervals of AP(2D), AP(3D) and of AP(3D) - AP(2D) / 2 (issue 11's bar: AP(3D) at least half AP(2D)), and how often
the bar holds. It only measures the sampling noise of numbers already reported (no setting is chosen from it).
Results: benchmarks/results/ap_bootstrap.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from kp2d_real import SETS, VALIDATION_SETS  # noqa: E402 - a sibling script


def predictions(ann_file: Path, root: Path, height: float, model2d: str, model3d: str) -> tuple[dict, list[dict],
                                                                                               list[dict]]:
    """The ground truth (people with keypoints), and `predict`'s 2D and projected-3D results for them."""
    from lowres_hps.apis.accuracy import _scored
    from lowres_hps.apis.inputs import load_image
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model
    from lowres_hps.data.coco import CocoPeople
    from lowres_hps.fitting import KeypointFitConfig

    data = json.loads(ann_file.read_text())
    by_image: dict[int, list[np.ndarray]] = {}
    for person in CocoPeople(data, ann_file, min_keypoints=1).people:
        by_image.setdefault(person.image["id"], []).append(person.bbox)
    predictor = Predictor(load_model(model2d), person_height=height, body_estimator=load_model(model3d),
                          fit_keypoints=KeypointFitConfig())
    results: dict[str, list[dict]] = {"2d": [], "3d": []}
    for image in sorted(data["images"], key=lambda im: im["id"]):
        if image["id"] not in by_image:
            continue
        rgb = load_image(root / image["file_name"])[0]
        for person in predictor.predict_image(rgb, np.stack(by_image[image["id"]])):
            for kind in results:
                points, score = _scored(person, kind)
                results[kind].append({"image_id": image["id"], "category_id": 1, "score": score,
                                      "keypoints": [round(float(v), 3) for v in points.reshape(-1)]})
    return data, results["2d"], results["3d"]


def resampled(data: dict, results: list[dict], picks: np.ndarray, image_ids: list[int]) -> tuple[dict, list[dict]]:
    """The ground truth and results of the images ``picks`` (indices into ``image_ids``), drawn with replacement:
    each draw becomes its own image (new ids), so a twice-drawn image counts twice."""
    anns_of: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        anns_of.setdefault(ann["image_id"], []).append(ann)
    results_of: dict[int, list[dict]] = {}
    for result in results:
        results_of.setdefault(result["image_id"], []).append(result)
    images, annotations, out = [], [], []
    for new_id, pick in enumerate(picks):
        old = image_ids[pick]
        images.append({"id": new_id})
        for ann in anns_of.get(old, []):
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": new_id})
        out.extend({**r, "image_id": new_id} for r in results_of.get(old, []))
    return {"images": images, "annotations": annotations, "categories": data["categories"]}, out


def main() -> None:
    from lowres_hps.evaluation import coco_keypoint_ap

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=["coco_holdout", "lspet_test"])
    parser.add_argument("--height", type=float, default=64)
    parser.add_argument("--model2d", default="lrmove_l_128")
    parser.add_argument("--model3d", default="rsc_move_c128_eft")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_path = ROOT / "benchmarks/results/ap_bootstrap.json"
    report = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for name in args.sets:
        started = time.perf_counter()
        # the test sets hold absolute image paths, the label sets paths relative to their images/ folder
        ann_file = {**SETS, **VALIDATION_SETS}[name]
        root = Path("/") if name in SETS else ann_file.parent / "images"
        data, results2d, results3d = predictions(ann_file, root, args.height, args.model2d, args.model3d)
        image_ids = sorted({a["image_id"] for a in data["annotations"] if a.get("num_keypoints", 1) > 0})
        with contextlib.redirect_stdout(io.StringIO()):
            full2d = coco_keypoint_ap(data, results2d)["AP"]
            full3d = coco_keypoint_ap(data, results3d)["AP"]
        rng = np.random.default_rng(0)
        draws = []
        for _ in range(args.resamples):
            picks = rng.integers(0, len(image_ids), len(image_ids))
            with contextlib.redirect_stdout(io.StringIO()):
                ap2d = coco_keypoint_ap(*resampled(data, results2d, picks, image_ids))["AP"]
                ap3d = coco_keypoint_ap(*resampled(data, results3d, picks, image_ids))["AP"]
            draws.append((ap2d, ap3d))
        draws = np.array(draws)
        margin = draws[:, 1] - draws[:, 0] / 2
        interval = lambda x: [round(float(q), 4) for q in np.percentile(x, [5, 95])]  # noqa: E731
        row = {"people": len(results2d), "images": len(image_ids), "height": args.height,
               "model2d": args.model2d, "model3d": f"{args.model3d} fitted to {args.model2d}",
               "AP_2d": round(full2d, 4), "AP_3d": round(full3d, 4),
               "AP_3d_minus_half_2d": round(full3d - full2d / 2, 4),
               "AP_2d_90": interval(draws[:, 0]), "AP_3d_90": interval(draws[:, 1]), "margin_90": interval(margin),
               "bar_holds_fraction": round(float((margin >= 0).mean()), 3), "resamples": args.resamples,
               "seconds": round(time.perf_counter() - started, 1)}
        # Rows of session 12 (rsc_move_c128_ft5, the default then) are keyed without the model.
        key = f"{name}@{int(args.height)}" + ("" if args.model3d == "rsc_move_c128_ft5" else f":{args.model3d}")
        report[key] = row
        print(name, row, flush=True)
        report["command"] = "python benchmarks/ap_bootstrap.py " + " ".join(sys.argv[1:])
        report["date"] = time.strftime("%Y-%m-%d")
        out_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
