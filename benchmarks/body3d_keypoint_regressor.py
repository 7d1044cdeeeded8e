"""How much projected-3D OKS a COCO-annotation keypoint regressor could win: a diagnosis on training people.

    python benchmarks/body3d_keypoint_regressor.py [--height 64] [--neighbours 4] [--ridge 1.0]

Anny's COCO-17 keypoints (what SynthLR's 3D ground truth uses) need not sit where COCO's annotators click. This
learns, for each COCO keypoint, an affine correction from the fitted body itself: the keypoint moves by a
weighted sum of the offsets to its ``--neighbours`` nearest native Anny joints (``new = k + sum_j a_j (J_j - k)``:
equivariant to rotation and translation, so it follows the body's pose), ``a`` fitted by ridge least squares of
the projected points (linearised) against the annotations, in units of sqrt(area). The bodies are not re-fitted
with the new definitions, so this is a lower bound of what a regressor used inside the fit could give.

Data: our COCO *training* people (data/real/coco_train.json, 56 people with faces), split in 2 folds by image: the
weights learned on one fold are scored on the other (and the reverse); no held-out set is read. Writes
benchmarks/results/body3d_keypoint_regressor.json.
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


def project(points: np.ndarray, focal: float, centre: np.ndarray) -> np.ndarray:
    return focal * points[..., :2] / points[..., 2:3] + centre


def collect(args) -> list[dict]:
    """Each training person's fitted body: COCO keypoints and native joints in the full camera, and the truth."""
    import torch

    from lowres_hps.apis.inputs import load_image
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model
    from lowres_hps.data.coco import CocoPeople
    from lowres_hps.fitting import KeypointFitConfig

    ann = Path(args.set)
    people = CocoPeople(json.loads(ann.read_text()), ann, min_keypoints=1).people
    body3d = load_model(args.model3d)
    predictor = Predictor(load_model(args.model), person_height=args.height, body_estimator=body3d,
                          fit_keypoints=KeypointFitConfig())
    by_image: dict[str, list] = {}
    for person in people:
        by_image.setdefault(person.image["file_name"], []).append(person)
    rows = []
    for name, persons in by_image.items():
        found = predictor.predict_images([load_image(Path("/") / name)[0]], [np.stack([p.bbox for p in persons])])[0]
        for person, prediction in zip(persons, found):
            vector = torch.tensor([prediction.body["pose_vector"]], dtype=torch.float32)
            with torch.no_grad():
                out = body3d.body.forward_vector(vector, keypoints_only=True)
            keypoints = out.keypoints("coco17")[0][0].double().numpy()
            shift = np.asarray(prediction.keypoints_3d) - keypoints  # crop -> full camera: a translation
            rows.append({"image": name, "keypoints": keypoints + shift.mean(0),
                         "joints": out.joints[0].double().numpy() + shift.mean(0),
                         "focal": float(prediction.body["focal"]),
                         "centre": np.asarray(prediction.body["principal_point"], float),
                         "truth": np.asarray(person.annotation["keypoints"], float).reshape(17, 3),
                         "area": float(person.annotation.get("area") or 0.53 * person.bbox[2] * person.bbox[3])})
    return rows


def neighbours(rows: list[dict], count: int) -> np.ndarray:
    """(17, count) the native joints nearest each COCO keypoint, by mean distance over the people."""
    distance = np.mean([np.linalg.norm(r["joints"][None] - r["keypoints"][:, None], axis=-1) for r in rows], axis=0)
    return np.argsort(distance, axis=1)[:, :count]


def fit_weights(rows: list[dict], nearest: np.ndarray, ridge: float) -> np.ndarray:
    """(17, count) affine weights per keypoint (ridge towards 0: no correction)."""
    weights = np.zeros(nearest.shape)
    for k in range(17):
        design, target = [], []
        for r in rows:
            if r["truth"][k, 2] <= 0:
                continue
            scale = np.sqrt(r["area"])
            base = project(r["keypoints"][k], r["focal"], r["centre"])
            towards = project(r["joints"][nearest[k]], r["focal"], r["centre"]) - base  # (count, 2)
            design.append(towards.T / scale)
            target.append((r["truth"][k, :2] - base) / scale)
        if not design:
            continue
        a, b = np.concatenate(design), np.concatenate(target)
        weights[k] = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ b)
    return weights


def oks_terms(rows: list[dict], nearest: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, 17) per-keypoint OKS terms (NaN where unlabelled) of the corrected keypoints, exactly projected."""
    terms = []
    for r in rows:
        moved = r["keypoints"] + np.einsum("kj,kjc->kc", weights, r["joints"][nearest] - r["keypoints"][:, None])
        delta = project(moved, r["focal"], r["centre"]) - r["truth"][:, :2]
        oks = np.exp(-(delta ** 2).sum(1) / (2 * r["area"] * (2 * COCO_SIGMAS) ** 2))
        terms.append(np.where(r["truth"][:, 2] > 0, oks, np.nan))
    return np.array(terms)


def main() -> None:
    import torch

    from lowres_hps.body.keypoints import get_convention

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default=str(ROOT / "data/real/coco_train.json"))
    parser.add_argument("--height", type=float, default=64)
    parser.add_argument("--model", default="lrmove_l_128")
    parser.add_argument("--model3d", default="rsc_move_c128_ft5")
    parser.add_argument("--neighbours", type=int, default=4)
    parser.add_argument("--ridge", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = collect(args)
    images = sorted({r["image"] for r in rows})
    folds = [[r for r in rows if images.index(r["image"]) % 2 == f] for f in (0, 1)]
    nearest = neighbours(rows, args.neighbours)
    before, after = [], []
    for train, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        weights = fit_weights(train, nearest, args.ridge)
        before.append(oks_terms(test, nearest, np.zeros_like(weights)))
        after.append(oks_terms(test, nearest, weights))
    before, after = np.concatenate(before), np.concatenate(after)
    names = get_convention("coco17").names
    result = {name: {"oks_fitted": round(float(np.nanmean(before[:, k])), 3),
                     "oks_corrected": round(float(np.nanmean(after[:, k])), 3)} for k, name in enumerate(names)}
    print(f"{len(rows)} people, 2 folds by image, {args.neighbours} neighbour joints, ridge {args.ridge}")
    print("| keypoint | OKS fitted | OKS corrected (other fold's weights) |\n|---|---|---|")
    for name, row in result.items():
        print(f"| {name} | {row['oks_fitted']:.2f} | {row['oks_corrected']:.2f} |")
    print(f"| mean | {np.nanmean(before):.3f} | {np.nanmean(after):.3f} |")
    out = ROOT / "benchmarks/results/body3d_keypoint_regressor.json"
    out.write_text(json.dumps({"settings": vars(args), "people": len(rows), "rows": result,
                               "mean": [round(float(np.nanmean(before)), 4), round(float(np.nanmean(after)), 4)]},
                              indent=1))


if __name__ == "__main__":
    main()
