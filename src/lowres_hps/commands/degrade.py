"""``lowres-hps degrade``: the low-resolution protocol applied to person boxes of one image."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lowres_hps.imaging.io import read_image_rgb, write_image_rgb
from lowres_hps.imaging.protocol import EVAL_MIDPOINTS, LowResProtocol

__all__ = ["main"]

_STRIP_GAP = 4  # px of black between the strip's tiles


def _strip(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Tiles of equal size into a grid: one row per box, gaps of ``_STRIP_GAP`` px."""
    tile_h, tile_w, channels = rows[0][0].shape
    n_cols = max(len(row) for row in rows)
    grid = np.zeros((len(rows) * (tile_h + _STRIP_GAP) - _STRIP_GAP,
                     n_cols * (tile_w + _STRIP_GAP) - _STRIP_GAP, channels), dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = r * (tile_h + _STRIP_GAP), c * (tile_w + _STRIP_GAP)
            grid[y:y + tile_h, x:x + tile_w] = tile
    return grid


def main(args: argparse.Namespace) -> int:
    """Write one PNG per box and height, a side-by-side strip, and print a JSON summary.

    In the upsample setting each strip row starts with the undegraded crop (``"original"``), then one
    tile per height. In the native setting there is one crop per box, at the input size.
    """
    image = read_image_rgb(args.image)
    protocol = LowResProtocol(input_size=tuple(args.input_size), setting=args.setting)
    if protocol.setting == "native":
        if args.heights:
            raise ValueError("--heights applies to the upsample setting; in the native setting "
                             "--input-size sets the resolution")
        heights: list[int | None] = [None]
    else:
        heights = list(args.heights or EVAL_MIDPOINTS)
        if any(h <= 0 for h in heights):
            raise ValueError(f"--heights must be positive, got {heights}")
    img_h, img_w = image.shape[:2]
    boxes = args.box or [[-0.5, -0.5, float(img_w), float(img_h)]]  # the whole image (pixel centres at integers)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    crops, rows = [], []
    for box_index, box in enumerate(boxes):
        row = []
        if protocol.setting == "upsample":
            row.append(protocol(image, np.asarray(box)).image.permute(1, 2, 0).numpy())
        for height in heights:
            result = protocol(image, np.asarray(box), height)
            tile = result.image.permute(1, 2, 0).numpy()
            path = out_dir / (f"box{box_index}_native.png" if height is None else f"box{box_index}_h{height}.png")
            write_image_rgb(path, tile)
            row.append(tile)
            crops.append({
                "file": str(path),
                "box": [float(v) for v in box],
                "requested_height": height,
                "effective_height": round(result.person_height, 2),
            })
        rows.append(row)
    strip_path = out_dir / "strip.png"
    write_image_rgb(strip_path, _strip(rows))

    summary = {
        "image": str(args.image),
        "setting": protocol.setting,
        "input_size": list(protocol.input_size),
        "scale_factor": protocol.scale_factor,
        "strip": str(strip_path),
        "strip_columns": (["original"] if protocol.setting == "upsample" else []) + [h or "native" for h in heights],
        "crops": crops,
        "files": [c["file"] for c in crops] + [str(strip_path)],
    }
    print(json.dumps(summary, indent=2))
    return 0
