"""Silhouette adaptation on real footage: vtest.avi, adapted on frames 1-400, measured on frames 401-795 (issue 13).

vtest.avi has no 3D ground truth (and its public 2D ground truth is kept for re-checks), so two agreements are
measured on the held-out frames, on the people who stand alone with a clean foreground silhouette (the same cut as
``lowres-hps adapt``: MILI's boxes, MOG2 background subtraction learnt from frame 401 on):

* silhouette IoU: the body's rendered silhouette (hard z-buffer, in the 3D model's crop) against the foreground;
* 2D agreement: PCK of the body's projected joints against the 2D default's keypoints on the same crop, at 10% and
  20% of the box height, over the keypoints the 2D model scores at 0.3 or more (the 2D model is itself an estimate).

Both before (the source model) and after (each adapted checkpoint), and a contact sheet of crops with the foreground
outlined in red and the body's silhouette in cyan.

    python benchmarks/sta_vtest.py --models rsc_move_c128_ft2 runs/adapt/vtest_ours.safetensors
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

HELD_OUT = (401, 795)


def held_out_crops(video: str, canvas: int, cache: Path):
    from lowres_hps.apis.adaptation import collect_silhouette_crops
    from lowres_hps.apis.inputs import VideoReader
    from lowres_hps.commands.predict import build_detector
    from lowres_hps.data.silhouette_crops import SilhouetteCrops, save_silhouette_crops

    if cache.is_file():
        return SilhouetteCrops.load(cache)
    detector = build_detector(argparse.Namespace(detector="auto", detector_upscale=None, detector_min_score=None,
                                                 detector_model=None, masks=False, device="cpu"))
    crops, report = collect_silhouette_crops(iter(VideoReader(video)), detector, canvas, source=Path(video).name,
                                             frame_range=HELD_OUT, detect_every=4)
    print(report.summary())
    save_silhouette_crops(cache, crops.images.numpy(), crops.range_index.numpy(), crops.silhouettes.numpy(),
                          crops.frames)
    return crops


def measure(body_estimator, keypoints2d, scores2d, crops, batch: int = 32) -> tuple[dict[str, float], np.ndarray]:
    from lowres_hps.render import render_silhouette

    net = body_estimator.config
    ious, hits10, hits20, counted, masks = [], 0, 0, 0, []
    centre = torch.full((2,), (net.canvas - 1) / 2.0)
    for start in range(0, len(crops), batch):
        images = crops.images[start:start + batch]
        ranges = crops.range_index[start:start + batch]
        bodies = body_estimator.predict_bodies(images, ranges, with_vertices=True)
        rendered = render_silhouette(bodies.vertices, bodies.faces, net.crop_focal, centre, (net.canvas, net.canvas),
                                     mode="hard") > 0.5
        target = crops.silhouettes[start:start + batch] > 0
        inter = (rendered & target).sum((-1, -2)).float()
        union = (rendered | target).sum((-1, -2)).float().clamp(min=1)
        ious.append(inter / union)
        masks.append(rendered.numpy())
        reference, score = keypoints2d[start:start + batch], scores2d[start:start + batch]
        distance = (bodies.keypoints2d - reference).norm(dim=-1) / (net.canvas / net.scale_factor)
        valid = score >= 0.3
        hits10 += int(((distance < 0.1) & valid).sum())
        hits20 += int(((distance < 0.2) & valid).sum())
        counted += int(valid.sum())
    iou = torch.cat(ious)
    return ({"silhouette_iou": float(iou.mean()), "silhouette_iou_median": float(iou.median()),
             "pck@0.1_vs_2d": hits10 / max(counted, 1), "pck@0.2_vs_2d": hits20 / max(counted, 1),
             "people": len(crops), "keypoints_compared": counted}, np.concatenate(masks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="3D models: the source first, then adapted ones")
    parser.add_argument("--video", default="../shared/data/opencv_samples/vtest.avi")
    parser.add_argument("--model2d", default="lrmove_l_128")
    parser.add_argument("--cache", default="runs/adapt/vtest_401_795_crops.npz")
    parser.add_argument("--out", default="benchmarks/results/sta_vtest.json")
    parser.add_argument("--sheet", default="benchmarks/results/sta_vtest.png")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_hps.apis.registry import load_model
    from lowres_hps.imaging.io import write_image_rgb
    from lowres_hps.viz.silhouettes import silhouette_sheet

    first = load_model(args.models[0])
    crops = held_out_crops(args.video, first.config.canvas, Path(args.cache))
    estimator2d = load_model(args.model2d)
    if tuple(estimator2d.input_size) != (first.config.canvas,) * 2 or estimator2d.scale_factor != first.scale_factor:
        raise SystemExit(f"{args.model2d} does not crop like the 3D model; pick a 2D model with its input and margin")
    with torch.no_grad():
        points, scores = zip(*(estimator2d(crops.images[i:i + 64], crops.range_index[i:i + 64])
                               for i in range(0, len(crops), 64)))
    keypoints2d, scores2d = torch.cat(points).float(), torch.cat(scores).float()
    results = {"video": args.video, "frames": f"{HELD_OUT[0]}-{HELD_OUT[1]}", "model2d": args.model2d, "rows": {}}
    pick = np.linspace(0, len(crops) - 1, 24).round().astype(int)
    columns = []
    for name in args.models:
        started = time.perf_counter()
        estimator = first if name == args.models[0] else load_model(name)
        metrics, rendered = measure(estimator, keypoints2d, scores2d, crops)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        results["rows"][name] = metrics
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in metrics.items()}, flush=True)
        columns.append(silhouette_sheet(crops.images[pick].numpy(), crops.silhouettes[pick].numpy(), columns=1,
                                        others=rendered[pick]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    sheet = np.concatenate(columns, axis=1)  # one column per model, the same people in every row
    sheet = np.concatenate([sheet[: sheet.shape[0] // 2], sheet[sheet.shape[0] // 2:]], axis=1)
    write_image_rgb(args.sheet, sheet)
    print(f"wrote {args.out} and {args.sheet}")


if __name__ == "__main__":
    main()
