"""``lowres-hps data FORMAT PATH``: read a dataset, print a JSON summary, optionally write a preview sheet."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from lowres_hps.data import PersonReader, PersonSample, open_reader
from lowres_hps.imaging.io import write_image_rgb
from lowres_hps.viz.keypoints import contact_sheet, draw_keypoints

__all__ = ["main", "summarize", "preview_sheet"]

_MAX_LISTED_SKIPS = 50


def summarize(reader: PersonReader) -> dict:
    """JSON-ready summary: counts, skipped people with reasons, convention and what the samples carry."""
    skipped = [{"key": key if isinstance(key, (int, str)) else str(key), "reason": reason}
               for key, reason in reader.skipped[:_MAX_LISTED_SKIPS]]
    return {
        "reader": type(reader).__name__,
        "dataset": reader.dataset,
        "image_root": str(reader.image_root),
        "num_samples": len(reader),
        "num_skipped": len(reader.skipped),
        "skipped": skipped,
        "filtered": dict(reader.filtered),
        "convention": reader.convention,
        "num_keypoints": reader.num_keypoints,
        "convention3d": getattr(reader, "convention3d", None),
        "has_3d": bool(reader.has_3d),
        "has_smpl": bool(reader.has_smpl),
        "has_mask": bool(reader.has_mask),
    }


def _person_tile(sample: PersonSample, height: int, width: int, padding: float = 1.25) -> np.ndarray:
    """The person's box, grown to the tile's aspect and by ``padding``, resized to (height, width), with keypoints."""
    x, y, w, h = (float(v) for v in sample.bbox)
    centre = np.array([x + w / 2, y + h / 2])
    w, h = max(w, h * width / height), max(h, w * height / width)
    scale = width / (w * padding)
    offset = np.array([width / 2, height / 2]) - scale * centre
    warp = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]], dtype=np.float64)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    tile = cv2.warpAffine(sample.load_image(), warp, (width, height), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    keypoints = sample.keypoints2d.astype(np.float64).copy()
    keypoints[:, :2] = keypoints[:, :2] * scale + offset
    return draw_keypoints(tile, keypoints, sample.convention)


def preview_sheet(reader: PersonReader, count: int = 8, tile_size: tuple[int, int] = (192, 144),
                  columns: int = 4) -> np.ndarray:
    """Contact sheet (uint8 RGB) of the first ``count`` person crops with their keypoints drawn."""
    tiles = [_person_tile(reader[i], *tile_size) for i in range(min(count, len(reader)))]
    return contact_sheet(tiles, columns=columns)


def main(args: argparse.Namespace) -> int:
    options = {}
    if getattr(args, "convention", None):
        if args.format not in ("coco", "spin"):
            raise ValueError(f"--convention applies to the coco and spin formats, not {args.format}")
        options["convention"] = args.convention
    if getattr(args, "check_images", False):
        options["check_images"] = True
    reader = open_reader(args.format, args.path, args.images, **options)
    summary = {"format": args.format, "path": str(args.path), **summarize(reader)}
    if args.preview:
        if len(reader) == 0:
            raise ValueError(f"no samples to preview in {args.path}")
        write_image_rgb(args.preview, preview_sheet(reader, getattr(args, "num_preview", 8)))
        summary["preview"] = str(Path(args.preview))
    print(json.dumps(summary, indent=2))
    return 0
