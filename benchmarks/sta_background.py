"""Silhouette adaptation from background subtraction on rendered static-camera videos (issue 13).

The shifted-target table of ``sta_synthetic.py`` adapts on the renderer's own masks. ``lowres-hps adapt`` has no
such masks: it cuts silhouettes from a static camera's video by background subtraction (MOG2 with morphological
clean-up, :class:`~lowres_hps.imaging.foreground.ForegroundExtractor`). This script measures what that costs, on
people whose 3D truth is known:

* target videos: ``--sequences`` SynthLR static-camera sequences (seeds 8000 + k, none of which any model trained
  on), 576 x 768, 4-8 walkers, ``--frames`` frames at 25 fps, each video reduced (area) so that its median person
  is 96, 52 or 32 px tall (in turn), then seen through the ``--shift`` (one camera per video: the shift's
  parameters are drawn once per video, with fresh sensor noise per frame);
* people: the ground-truth boxes of every ``--every``-th frame after the background model's warm-up, kept as
  ``lowres-hps adapt`` keeps detections (not touching another box, at least ``min_height`` px, silhouette fill);
* silhouettes of the same crops from two sources: the renderer's masks, and the product's background subtraction
  (its default settings) split per box by :func:`~lowres_hps.imaging.foreground.person_silhouettes`;
* adaptation: ``sta_synthetic``'s "ours_nofit" settings (L_S + L_T, pose prior, 150 steps of 16, Adam 1e-5);
* scores: MPJPE / PA-MPJPE on the same shifted SynthLR-test people (crops 0-299) as ``sta_synthetic --eval test``,
  or SynthLR-val with ``--eval val``.

    python benchmarks/sta_background.py --shift thermal --seeds 0 1 --eval test
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from sta_synthetic import HEIGHTS, TEST_PEOPLE, VARIANTS, evaluation_set, score  # noqa: E402 - a sibling script
from tracking_synthetic import scene_generator  # noqa: E402 - a sibling script

SEQUENCE_SEED = 8000


def _reduce(image: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def target_videos(count: int, frames: int, shift: str):
    """Yields per video ``(shifted frames [(H, W, 3) uint8], per frame [(boxes (N, 4), renderer masks (N, H, W))],
    target median height)``."""
    from lowres_hps.imaging.domain_shift import apply_domain_shift

    generator = scene_generator()
    for k in range(count):
        rendered = generator.sequence(SEQUENCE_SEED + k, 0, num_frames=frames)
        heights = [p.bbox[3] for f in rendered for p in f.people]
        target = HEIGHTS[k % len(HEIGHTS)]
        factor = min(1.0, target / float(np.median(heights))) if heights else 1.0
        noise = np.random.default_rng([SEQUENCE_SEED, k, 1])
        video, people = [], []
        for sample in rendered:
            image = _reduce(sample.image, factor)
            masks = np.stack([_reduce(p.mask.astype(np.float32), factor) > 0.5 for p in sample.people]) \
                if sample.people else np.zeros((0, *image.shape[:2]), bool)
            if shift != "none":
                # One camera per video: the same draws of the shift in every frame (a fresh generator with the
                # video's seed), and the sensor's own noise fresh in each frame on top.
                image = apply_domain_shift(image, shift, np.random.default_rng([SEQUENCE_SEED, k]),
                                           mask=masks.any(0).astype(np.uint8))
                image = np.clip(image + noise.normal(0.0, 2.0, image.shape), 0, 255).astype(np.uint8)
            boxes = np.array([p.bbox for p in sample.people], np.float64).reshape(-1, 4) * factor
            video.append(image)
            people.append((boxes, masks.astype(np.uint8)))
        yield video, people, target


def silhouette_sets(videos, canvas: int, scale_factor: float, every: int, foreground=None, min_fill: float = 0.2,
                    min_height: float = 20.0):
    """The same crops with renderer and background-subtraction silhouettes (``foreground``: the
    :class:`~lowres_hps.imaging.foreground.ForegroundConfig`, default `adapt`'s), plus how well the two agree."""
    from lowres_hps.apis.adaptation import touching_boxes
    from lowres_hps.apis.predictor import bounded_crop
    from lowres_hps.data.silhouette_crops import SilhouetteCrops
    from lowres_hps.imaging.foreground import ForegroundExtractor, person_silhouettes, warp_mask
    from lowres_hps.imaging.protocol import LowResProtocol

    protocol = LowResProtocol((canvas, canvas), scale_factor, "upsample")
    images, ranges, rendered, subtracted, ious, heights = [], [], [], [], [], []
    rejected: dict[str, int] = {}
    for video, people, _ in videos:
        extractor = ForegroundExtractor(foreground)
        for index, (frame, (boxes, masks)) in enumerate(zip(video, people)):
            moving = extractor.apply(frame)
            if moving is None or index % every or not len(boxes):
                continue
            split, fill = person_silhouettes(moving, boxes, min_fill=min_fill)
            for box, alone, mask, person_mask, person_fill in zip(boxes, ~touching_boxes(boxes), masks, split, fill):
                reason = ("touching another person" if not alone else f"shorter than {min_height:g} px"
                          if box[3] < min_height else "box under 20% foreground" if person_fill < min_fill else None)
                if reason is None:
                    try:
                        crop = bounded_crop(protocol, frame, box, None)
                    except ValueError:
                        reason = "box outside the image"
                if reason is not None:
                    rejected[reason] = rejected.get(reason, 0) + 1
                    continue
                images.append(crop.image.numpy())
                ranges.append(int(crop.range_index))
                affine = crop.affine.numpy()
                rendered.append(warp_mask(mask, affine, (canvas, canvas)))
                subtracted.append(warp_mask(person_mask, affine, (canvas, canvas)))
                union = np.logical_or(rendered[-1], subtracted[-1]).sum()
                ious.append(np.logical_and(rendered[-1], subtracted[-1]).sum() / max(union, 1))
                heights.append(float(box[3]))
    images, ranges = np.stack(images), np.array(ranges)
    report = {"people": len(images), "rejected": rejected, "height_px_median": float(np.median(heights)),
              "height_px_quartiles": [float(q) for q in np.percentile(heights, [25, 75])],
              "silhouette_iou_mean": float(np.mean(ious)), "silhouette_iou_median": float(np.median(ious))}
    return (SilhouetteCrops(images, ranges, np.stack(rendered)), SilhouetteCrops(images, ranges, np.stack(subtracted)),
            report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model3d", default="rsc_move_c128_ft2")
    parser.add_argument("--shift", default="thermal", choices=["thermal", "grayscale", "night", "none"])
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--every", type=int, default=2, help="use every n-th frame's people")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval", choices=["val", "test"], default="val")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sheet", default=None, help="save a PNG of crops with both silhouettes")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lowres_hps.apis.adaptation import adapt_body3d
    from lowres_hps.apis.registry import load_model
    from lowres_hps.methods.sta import SilhouetteAdaptConfig
    from lowres_hps.models.pose_prior import default_pose_prior

    out = Path(args.out or f"benchmarks/results/sta_background_{args.shift}_{args.eval}.json")
    source = load_model(args.model3d)
    canvas, scale_factor = source.model.config.canvas, source.model.config.scale_factor
    started = time.perf_counter()
    rendered, subtracted, report = silhouette_sets(
        target_videos(args.sequences, args.frames, args.shift), canvas, scale_factor, args.every)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print("target people:", report, flush=True)
    if args.sheet:
        save_sheet(rendered, subtracted, args.sheet)
    folder = "data/synthlr/test_crops" if args.eval == "test" else "data/synthlr/val_crops"
    evaluation = evaluation_set(folder, args.shift, TEST_PEOPLE if args.eval == "test" else None, canvas)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update(settings={"model3d": args.model3d, "shift": args.shift, "sequences": args.sequences,
                             "frames": args.frames, "every": args.every, "steps": args.steps, "lr": args.lr,
                             "batch_size": args.batch_size, "eval": args.eval, "variant": "ours_nofit",
                             "command": "python benchmarks/sta_background.py " + " ".join(sys.argv[1:])},
                   target=report)
    rows = results.setdefault("rows", {})
    prior = default_pose_prior()
    sources = (("renderer_masks", rendered), ("background_subtraction", subtracted))
    runs = [("pre", None, 0)] + [(name, data, seed) for seed in args.seeds for name, data in sources]
    for name, data, seed in runs:
        began = time.perf_counter()
        if data is None:
            metrics = score(source.model, source.body, evaluation)
        else:
            work = Path(tempfile.mkdtemp(prefix=f"sta_bg_{name}_"))
            try:
                path, _ = adapt_body3d(source, data, work / "adapted.safetensors", work_dir=work / "run",
                                       config=SilhouetteAdaptConfig(**VARIANTS["ours_nofit"]), prior=prior,
                                       steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=seed,
                                       resume=False, progress_bar=False)
                adapted = load_model(path)
                metrics = score(adapted.model, adapted.body, evaluation)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        metrics["seconds"] = round(time.perf_counter() - began, 1)
        rows[f"{name}/seed{seed}"] = metrics
        print(name, seed, {k: round(v, 1) for k, v in metrics.items()}, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))


def save_sheet(rendered, subtracted, path: str, count: int = 24) -> None:
    """Crops (grey) with the renderer's silhouette in red and background subtraction's in cyan."""
    import cv2

    picks = np.linspace(0, len(rendered) - 1, count).astype(int)
    tiles = []
    for i in picks:
        item_r, item_s = rendered[int(i)], subtracted[int(i)]
        image = item_r["images"][0].permute(1, 2, 0).numpy().astype(np.float32)
        gray = image.mean(-1, keepdims=True).repeat(3, -1) * 0.6
        r, s = item_r["silhouette"].numpy() > 0.5, item_s["silhouette"].numpy() > 0.5
        gray[..., 0] += 100 * r
        gray[..., 1] += 100 * s
        gray[..., 2] += 100 * s
        tiles.append(np.clip(gray, 0, 255).astype(np.uint8))
    rows = [np.concatenate(tiles[j:j + 8], 1) for j in range(0, len(tiles), 8)]
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
