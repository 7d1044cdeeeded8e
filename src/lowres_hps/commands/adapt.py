"""``lowres-hps adapt VIDEO --out ADAPTED.safetensors``: adapt a 3D body model to a static camera from silhouettes.

People are found by ``predict``'s detector, their silhouettes by background subtraction; a copy of the 3D model is
trained on them with the silhouette-topology losses (:mod:`lowres_hps.apis.adaptation`). The work folder (default
``ADAPTED.work/``) keeps the cut crops (``crops.npz``) and the run (``last.pt``, ``metrics.csv``): running the
same command again resumes. ``predict --model3d ADAPTED.safetensors`` then uses the adapted model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "add_arguments"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a static-camera video file, or a folder of its frames (sorted by name)")
    p.add_argument("--out", required=True, help="the adapted model (.safetensors, with its model card)")
    p.add_argument("--model3d", default=None,
                   help="the 3D model to adapt: a registered name or checkpoint (default: predict's 3D default)")
    p.add_argument("--frames", default=None, metavar="A:B",
                   help="use frames A to B only (1-based, inclusive): keep frames you validate on out")
    p.add_argument("--max-frames", type=int, default=None, help="use at most this many frames")
    p.add_argument("--steps", type=int, default=300,
                   help="training steps (exact below one pass over the people, else rounded up to whole passes)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate of the network")
    p.add_argument("--losses", choices=["ours", "inside", "b1", "b2", "b3"], default="ours",
                   help="ours: chamfer on silhouettes and on their topological skeletons (the paper); inside: the same "
                        "with only the body's pixels outside the person costing (clothed people); b1: pixel L2; "
                        "b2: silhouette chamfer only; b3: b2 plus L2 on the skeletons")
    p.add_argument("--fit-every", type=int, default=0,
                   help="every K-th step fits the bodies to the silhouettes and supervises the network with the "
                        "fit (the paper's Algorithm 1, K = 4); default 0, no fitting: on the shifted synthetic "
                        "validation people the fit in the loop did worse than the losses alone (benchmarks/README.md)")
    p.add_argument("--trainable", choices=["all", "backbone"], default="all",
                   help="which weights move: all of them (the paper), or the image trunk only (the body regressor "
                        "stays as trained)")
    p.add_argument("--no-prior", dest="prior", action="store_false",
                   help="do without the pose prior (the adversarial auto-encoder shipped with the package)")
    p.add_argument("--detector", choices=["auto", "mili", "multipose", "hog"], default="auto",
                   help="the person detector (as predict's)")
    p.add_argument("--background", choices=["mog2", "knn"], default="mog2",
                   help="OpenCV background subtractor for the silhouettes")
    p.add_argument("--detect-every", type=int, default=2, help="look for people on every n-th frame")
    p.add_argument("--min-people", type=int, default=64, help="stop with an error below this many usable people")
    p.add_argument("--work-dir", default=None, help="crops and run checkpoints (default: OUT with .work)")
    p.add_argument("--restart", action="store_true", help="discard the work folder and start again")
    p.add_argument("--collect-only", action="store_true",
                   help="only cut the people and their silhouettes (work folder: crops.npz, silhouettes.png to check "
                        "them), no training")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="hold out the people of the last fraction of the used frames: the bodies' silhouette IoU on "
                        "them is measured before adapting and after every pass, and the best is written (the "
                        "source itself when no pass beats it); 0: no held-out people, the last pass is written")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)


def _frames(path: Path):
    """``(index, frame)`` of a video file or of a folder of images (sorted by name)."""
    from lowres_hps.apis.inputs import VideoReader, collect_inputs, load_image

    if path.is_dir():
        sources, errors = collect_inputs([path])
        images = [s for s in sources if s.kind == "image"]
        if not images:
            raise ValueError(f"{path}: no images in this folder")
        return ((i, load_image(s.path)[0]) for i, s in enumerate(sorted(images, key=lambda s: str(s.path))))
    return iter(VideoReader(path))


def _write_sheet(crops, path: Path, count: int = 60) -> None:
    """A contact sheet of ``count`` crops spread over the video, silhouettes outlined."""
    import numpy as np

    from lowres_hps.imaging.io import write_image_rgb
    from lowres_hps.viz.silhouettes import silhouette_sheet

    pick = np.linspace(0, len(crops) - 1, min(count, len(crops))).round().astype(int)
    write_image_rgb(path, silhouette_sheet(crops.images[pick].numpy(), crops.silhouettes[pick].numpy()))


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lowres_hps.apis.adaptation import AdaptationError, adapt_body3d, collect_silhouette_crops
    from lowres_hps.commands import open_work_and_model3d, parse_frame_range
    from lowres_hps.commands.predict import build_detector
    from lowres_hps.data.silhouette_crops import SilhouetteCrops, save_silhouette_crops
    from lowres_hps.imaging.foreground import ForegroundConfig
    from lowres_hps.methods.sta import SilhouetteAdaptConfig

    video = Path(args.video)
    if not video.exists():
        raise FileNotFoundError(f"no such video or folder: {video}")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must be a .safetensors file, got {out}")
    frame_range = parse_frame_range(args.frames, "--frames")
    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    config = SilhouetteAdaptConfig(losses=args.losses, fit_every=args.fit_every)
    work, estimator = open_work_and_model3d(args, out)
    net = estimator.model.config
    crops_path = work / "crops.npz"
    report_path = work / "collection.json"
    started = time.perf_counter()
    if crops_path.is_file():
        crops = SilhouetteCrops.load(crops_path)
        print(f"reusing {len(crops)} people cut earlier ({crops_path})")
    else:
        detector_args = argparse.Namespace(detector=args.detector, detector_upscale=None, detector_min_score=None,
                                           detector_model=None, masks=False, device=args.device)
        detector = build_detector(detector_args)
        bar = tqdm(desc="silhouettes", unit="frame", disable=not sys.stderr.isatty())
        try:
            crops, report = collect_silhouette_crops(
                _frames(video), detector, net.canvas, net.scale_factor, source=video.name, frame_range=frame_range,
                max_frames=args.max_frames, foreground=ForegroundConfig(method=args.background),
                detect_every=args.detect_every, progress=lambda _: bar.update())
        finally:
            bar.close()
        print(report.summary())
        if len(crops) < args.min_people:
            raise AdaptationError(
                f"{video}: only {len(crops)} people stand alone with a clean silhouette (at least --min-people "
                f"{args.min_people} needed); use more frames, a lower --min-people, or a video with a static camera "
                f"and people who move")
        save_silhouette_crops(crops_path, crops.images.numpy(), crops.range_index.numpy(),
                              crops.silhouettes.numpy(), crops.frames)
        report_path.write_text(json.dumps(dataclasses.asdict(report), indent=1))
        _write_sheet(crops, work / "silhouettes.png")
        print(f"cut {len(crops)} people in {time.perf_counter() - started:.0f} s -> {crops_path} "
              f"(a sample: {work / 'silhouettes.png'})")
    if args.collect_only:
        return 0
    prior = None
    if args.prior:
        from lowres_hps.models.pose_prior import default_pose_prior

        prior = default_pose_prior(device=args.device)
    span = f"{frame_range[0]}-{frame_range[1]}" if frame_range else "all"
    adapted_on = {"source": video.name, "frames": span, "background": args.background, "detector": args.detector}
    train, held_out = split_by_frames(crops, args.val_fraction)
    if held_out is not None:
        print(f"adapting on {len(train)} people, validating on the {len(held_out)} of frames "
              f"{int(crops.frames[held_out.indices].min()) + 1}-{int(crops.frames[held_out.indices].max()) + 1}")
    path, metrics = adapt_body3d(estimator, train, out, work_dir=work / "run", config=config, prior=prior,
                                 steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 device=args.device, name=out.stem, adapted_on=adapted_on,
                                 progress_bar=sys.stderr.isatty(), trainable=args.trainable, val_dataset=held_out)
    if held_out is not None:
        before, best = metrics["before/silhouette_iou"], metrics["best/silhouette_iou"]
        shown = lambda value: "-" if value is None else f"{value:.3f}"  # noqa: E731 - no usable silhouette: None
        print(f"held-out silhouette IoU: {shown(before)} before, {shown(best)} at best; kept {metrics['kept']}")
    print(f"wrote {path} ({time.perf_counter() - started:.0f} s; training log {work / 'run' / 'metrics.csv'}); "
          f"use it with: lowres-hps predict ... --model3d {path}")
    return 0


def split_by_frames(crops, fraction: float):
    """``(train, held_out)``: the people of the last ``fraction`` of the frames they were cut from held out (later
    frames: other moments of the same camera), or ``(crops, None)`` for 0 or when too few frames are known."""
    import numpy as np
    from torch.utils.data import Subset

    frames = None if crops.frames is None else np.unique(crops.frames)
    if fraction <= 0 or frames is None or len(frames) < 2:
        return crops, None
    first_held = frames[min(len(frames) - 1, int(np.floor(len(frames) * (1 - fraction))))]
    held = crops.frames >= first_held
    return Subset(crops, np.flatnonzero(~held).tolist()), Subset(crops, np.flatnonzero(held).tolist())
