"""Where does a 3D body lose its size between the crop and the image? (issue 11)

    python benchmarks/body3d_scale.py [--model rsc_r18_c64] [--synthlr 100] [--threads 1]

Three measurements, all through the path of ``lowres-hps predict`` (:class:`~lowres_hps.apis.predictor.Predictor`
with ground-truth boxes, 3D keypoints moved to the assumed full-image camera and projected with it):

1. **Ground truth through the conversion.** SynthLR-test crops (``data/synthlr/test_crops``, the first N
   people): a stand-in network returns each person's true pose vector and true crop camera ``[s, tx, ty]``
   (from the true root translation ``t``, focal ``f`` and principal point ``c`` of the render, for the
   protocol crop region of side ``L`` and centre ``b``: ``s = 2 f / (L t_z)``,
   ``(tx, ty) = t_xy + (c - b) t_z / f``). If the crop -> image conversion kept the size, the projected
   keypoints have the size of the true 2D keypoints. Run twice: with the camera ``predict`` assumes
   (focal ``sqrt(W^2 + H^2)``, here 317 px where the renders used 300-1600 px), and with the render's own
   camera in its place, where the conversion must give back the true 3D keypoints and 2D keypoints exactly.
2. **The model on the same crops**: its crop scale ``s`` against the true one, and the size of its projection.
3. **The model on real held-out people** (``data/real/coco_holdout.json``, ``data/real/lspet_test.json``).

Size: RMS distance of the labelled keypoints from their centroid, projected / true (1 = right size); torso:
the same over shoulders and hips only (less sensitive to limb articulation). Medians over people. Results:
benchmarks/results/body3d_scale.json and a markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL_SETS = {"coco_holdout": ROOT / "data/real/coco_holdout.json", "lspet_test": ROOT / "data/real/lspet_test.json"}
SYNTHLR_TEST = ROOT / "data/synthlr/test_crops"
TORSO = [5, 6, 11, 12]  # COCO-17 shoulders and hips


def _size(points: np.ndarray, keep: np.ndarray) -> float:
    """RMS distance of ``points[keep]`` (K, 2) from their centroid."""
    chosen = points[keep]
    return float(np.sqrt(((chosen - chosen.mean(0)) ** 2).sum(-1).mean()))


def size_ratios(projected: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(size, torso)`` ratios of (K, 2) projected keypoints to (K, 3) true ones (NaN without enough labels)."""
    labelled = truth[:, 2] > 0
    whole = _size(projected, labelled) / _size(truth[:, :2], labelled) if labelled.sum() >= 4 else np.nan
    torso = np.zeros(len(truth), bool)
    torso[TORSO] = True
    torso &= labelled
    part = _size(projected, torso) / _size(truth[:, :2], torso) if torso.sum() == 4 else np.nan
    return whole, part


class TruthNetwork(torch.nn.Module):
    """Stand-in for a Body3DNet: returns the pose vectors and crop cameras it is given, whatever the crops."""

    def __init__(self, config, pose_vector: torch.Tensor, camera: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.zeros(1, 3, 1, 1))
        self.pose_vector, self.camera = pose_vector, camera

    def forward(self, images, range_index=None):
        return {"pose_vector": self.pose_vector, "camera": self.camera, "features": torch.zeros(len(images), 1)}


def true_crop_camera(sample, canvas: int, scale_factor: float) -> torch.Tensor:
    """(3,) ``[s, tx, ty]`` of a SynthLR person for its protocol crop (module docstring)."""
    from lowres_hps.imaging.crop import crop_box

    region = crop_box(np.asarray(sample.bbox, np.float64), (canvas, canvas), scale_factor)
    centre, side = region[:2] + region[2:] / 2, region[3]
    focal = float(sample.camera["focal"][0])
    principal = np.asarray(sample.camera["center"], np.float64)
    translation = np.asarray(sample.body_params["translation"], np.float64)
    s = 2.0 * focal / (side * translation[2])
    txy = translation[:2] + (principal - centre) * translation[2] / focal
    return torch.tensor([s, txy[0], txy[1]], dtype=torch.float32)


def synthlr_rows(estimator, count: int) -> dict:
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.data import SynthLRReader
    from lowres_hps.models.body3d import Body3DEstimator

    reader = SynthLRReader(SYNTHLR_TEST)
    samples = [reader[i] for i in range(min(count, len(reader)))]
    cfg = estimator.config
    truth_rows, exact_rows, model_rows = [], [], []
    model_predictor = Predictor(estimator)
    for sample in samples:
        image = sample.load_image()
        box = np.asarray(sample.bbox, np.float64)[None]
        pose = torch.as_tensor(sample.body_params["pose_vector"], dtype=torch.float32)[None]
        camera = true_crop_camera(sample, cfg.canvas, cfg.scale_factor)[None]
        stand_in = Body3DEstimator(TruthNetwork(cfg, pose, camera), estimator.body)
        truth = np.asarray(sample.keypoints2d, np.float64)
        [person] = Predictor(stand_in).predict_image(image, box)
        error = np.abs(person.keypoints_3d_projected - truth[:, :2])[truth[:, 2] > 0].max()
        truth_rows.append((*size_ratios(person.keypoints_3d_projected, truth), error / box[0, 3]))
        render_camera = (float(sample.camera["focal"][0]), tuple(float(v) for v in sample.camera["center"]))
        with mock.patch("lowres_hps.apis.predictor.full_image_camera", lambda size: render_camera):
            [person] = Predictor(stand_in).predict_image(image, box)
        error = np.abs(person.keypoints_3d_projected - truth[:, :2])[truth[:, 2] > 0].max()
        error_3d = np.abs(person.keypoints_3d - np.asarray(sample.keypoints3d, np.float64)[:, :3]).max()
        exact_rows.append((*size_ratios(person.keypoints_3d_projected, truth), error, error_3d))
        [predicted] = model_predictor.predict_image(image, box)
        model_rows.append((*size_ratios(predicted.keypoints_3d_projected, truth), predicted.body["camera"][0],
                           float(camera[0, 0])))
    truth_rows, exact_rows, model_rows = np.array(truth_rows), np.array(exact_rows), np.array(model_rows)
    s_model, s_true = model_rows[:, 2], model_rows[:, 3]
    # The crop scale the whole split needs (annotations only, no network): the prior it should start from.
    s_all = np.array([float(true_crop_camera(reader[i], cfg.canvas, cfg.scale_factor)[0]) for i in range(len(reader))])
    return {
        "true_s_whole_split": {"mean": float(s_all.mean()), "median": float(np.median(s_all)),
                               "sd": float(s_all.std()), "people": len(s_all)},
        "truth_through_conversion": {"size": float(np.nanmedian(truth_rows[:, 0])),
                                     "torso": float(np.nanmedian(truth_rows[:, 1])),
                                     "max_error_per_box_height_median": float(np.median(truth_rows[:, 2])),
                                     "people": len(samples)},
        "truth_through_conversion_render_camera": {
            "size": float(np.nanmedian(exact_rows[:, 0])), "torso": float(np.nanmedian(exact_rows[:, 1])),
            "max_error_px": float(exact_rows[:, 2].max()), "max_error_3d_m": float(exact_rows[:, 3].max()),
            "people": len(samples)},
        "model": {"size": float(np.nanmedian(model_rows[:, 0])), "torso": float(np.nanmedian(model_rows[:, 1])),
                  "s_mean": float(s_model.mean()), "s_sd": float(s_model.std()),
                  "s_true_mean": float(s_true.mean()), "s_true_sd": float(s_true.std()),
                  "s_correlation": float(np.corrcoef(s_model, s_true)[0, 1]), "people": len(samples)},
    }


def real_rows(estimator, ann: Path) -> dict:
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.data import CocoKeypointsReader

    reader = CocoKeypointsReader(ann, image_root="/")
    predictor = Predictor(estimator)
    rows, scales = [], []
    for index in range(len(reader)):
        sample = reader[index]
        [person] = predictor.predict_image(sample.load_image(), np.asarray(sample.bbox, np.float64)[None])
        rows.append(size_ratios(person.keypoints_3d_projected, np.asarray(sample.keypoints2d, np.float64)))
        scales.append(person.body["camera"][0])
    rows = np.array(rows)
    return {"size": float(np.nanmedian(rows[:, 0])), "torso": float(np.nanmedian(rows[:, 1])),
            "s_mean": float(np.mean(scales)), "s_sd": float(np.std(scales)), "people": len(reader)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="rsc_r18_c64")
    parser.add_argument("--synthlr", type=int, default=100, help="SynthLR-test people (the first N)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from lowres_hps.apis.registry import load_model

    estimator = load_model(args.model)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}",
               "command": f"python benchmarks/body3d_scale.py --model {args.model} --synthlr {args.synthlr} "
                          f"--threads {args.threads}", "model": args.model}
    results["synthlr_test"] = synthlr_rows(estimator, args.synthlr)
    for name, ann in REAL_SETS.items():
        results[name] = real_rows(estimator, ann)
    out = ROOT / "benchmarks/results/body3d_scale.json"
    out.write_text(json.dumps(results, indent=1))
    synth = results["synthlr_test"]
    print("| what | set | size | torso | crop scale s (mean / sd) |")
    print("|---|---|---|---|---|")
    truth = synth["truth_through_conversion"]
    print(f"| true pose + true crop camera through predict (assumed camera) | SynthLR-test ({truth['people']}) | "
          f"{truth['size']:.3f} | {truth['torso']:.3f} | true |")
    exact = synth["truth_through_conversion_render_camera"]
    print(f"| the same with the render's camera (max error {exact['max_error_px']:.3f} px, "
          f"{1000 * exact['max_error_3d_m']:.2f} mm in 3D) | SynthLR-test ({exact['people']}) | {exact['size']:.3f} | "
          f"{exact['torso']:.3f} | true |")
    model = synth["model"]
    print(f"| {args.model} | SynthLR-test ({model['people']}) | {model['size']:.3f} | {model['torso']:.3f} | "
          f"{model['s_mean']:.3f} / {model['s_sd']:.3f} (true {model['s_true_mean']:.3f} / {model['s_true_sd']:.3f}, "
          f"correlation {model['s_correlation']:.2f}) |")
    whole = synth["true_s_whole_split"]
    print(f"| true crop scale of the whole split | SynthLR-test ({whole['people']}) | | | {whole['mean']:.3f} / "
          f"{whole['sd']:.3f} (median {whole['median']:.3f}) |")
    for name in REAL_SETS:
        row = results[name]
        print(f"| {args.model} | {name} ({row['people']}) | {row['size']:.3f} | {row['torso']:.3f} | "
              f"{row['s_mean']:.3f} / {row['s_sd']:.3f} |")


if __name__ == "__main__":
    main()
