"""`lowres-hps synth`: generate SynthLR, and/or a preview contact sheet."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from lowres_hps.data.synth.generator import SynthConfig, SynthGenerator

__all__ = ["main", "preview_sheet", "PREVIEW_HEIGHTS"]

PREVIEW_HEIGHTS = (None, 96, 52, 32)  # None: the 224 source crop


def _background_files(folder: str | None) -> tuple[str, ...]:
    if folder is None:
        return ()
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"backgrounds folder not found: {root}")
    files = sorted(str(p) for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    if not files:
        raise ValueError(f"no .jpg/.png images in backgrounds folder {root}")
    return tuple(files)


def preview_sheet(samples: list, max_people: int = 8) -> np.ndarray:
    """One row per person: the source crop and the protocol at R = 96, 52, 32, keypoints drawn."""
    from lowres_hps.geometry import apply_affine
    from lowres_hps.imaging.protocol import LowResProtocol
    from lowres_hps.viz.keypoints import contact_sheet, draw_keypoints

    protocol = LowResProtocol(input_size=(224, 224))
    tiles = []
    people = [(s, p) for s in samples for p in s.people][:max_people]
    for sample, person in people:
        for height in PREVIEW_HEIGHTS:
            crop = protocol(sample.image, person.bbox, person_height=height)
            points = apply_affine(torch.from_numpy(person.keypoints2d[:, :2].astype(np.float64)), crop.affine).numpy()
            keypoints = np.concatenate([points, person.keypoints2d[:, 2:]], axis=1)
            tiles.append(draw_keypoints(crop.image.permute(1, 2, 0).numpy().copy(), keypoints, "coco17"))
    return contact_sheet(tiles, columns=len(PREVIEW_HEIGHTS))


def main(args) -> int:
    from lowres_hps.data.synth.writer import generate_dataset
    from lowres_hps.imaging.io import write_image_rgb

    if args.out is None and args.preview is None:
        raise ValueError("give --out DIR (generate a dataset) and/or --preview PNG (a contact sheet)")
    config = SynthConfig(layout=args.layout, backgrounds=_background_files(args.backgrounds))
    summary: dict = {"layout": args.layout, "seed": args.seed}
    if args.out is not None:
        start = time.perf_counter()
        coco = generate_dataset(args.out, args.count, args.seed, config, workers=args.workers)
        seconds = time.perf_counter() - start
        summary.update(out=str(args.out), images=len(coco["images"]), people=len(coco["annotations"]),
                       seconds=round(seconds, 2), images_per_second=round(len(coco["images"]) / seconds, 2))
    if args.preview is not None:
        generator = SynthGenerator(config)
        samples = [generator.sample(args.seed, i) for i in range(min(args.count, 8))]
        write_image_rgb(args.preview, preview_sheet(samples))
        summary["preview"] = str(args.preview)
    print(json.dumps(summary))
    return 0
