"""BlazePose teacher outputs for the people of a `lowres-hps label` file: metric world 3D landmarks and masks.

    python scripts/blazepose_labels.py data/labels/coco_train/labels.json [--variant full] [--threads 1]

Runs in the main environment; BlazePose itself runs in mediapipe's (``make mediapipe-env``), through
:func:`lowres_hps.models.blazepose.run_blazepose`. Every annotation's box is cropped by the low-resolution
protocol at 256 x 256, scale factor 1.25, without degradation (the teacher sees the full resolution).
Writes ``blazepose.json`` next to ``labels.json`` (atomically, after every batch, so an interrupted run
keeps what it did):

    {"info": {...}, "annotations": {"<annotation id>": {
        "image_id": int, "detected": bool,                      # False: BlazePose found nobody; nothing else
        "landmarks": [[x, y, visibility] x 33],                 # image pixels, pixel centres at integers
        "world_landmarks": [[x, y, z] x 33],                    # metres, origin between the hips, y down
        "segmentation": {"size": [H, W], "counts": str}}}}      # COCO RLE of the mask (probability >= 0.5)

Landmarks follow the ``blazepose33`` convention (``lowres_hps.body.keypoints.BLAZEPOSE33``). Images are
read from the ``images/`` folder next to the labels file (``file_name`` is relative to it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from lowres_hps.apis.inputs import load_image
from lowres_hps.data.reader import default_image_root
from lowres_hps.geometry.transforms import apply_affine, invert_affine
from lowres_hps.imaging.protocol import LowResProtocol
from lowres_hps.models.blazepose import BLAZEPOSE_VARIANTS, run_blazepose

INPUT_SIZE = (256, 256)
SCALE_FACTOR = 1.25


def mask_to_image(mask: np.ndarray, affine: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(h, w) uint8 crop probability x 255 -> (H, W) uint8 binary image mask (probability >= 0.5).

    ``affine`` (2, 3) maps image pixels to crop pixels; with WARP_INVERSE_MAP, cv2 samples the crop at the
    affine image of every image pixel (zero outside the crop)."""
    height, width = image_size
    warped = cv2.warpAffine(mask, affine.astype(np.float64), (width, height),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (warped >= 128).astype(np.uint8)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an (H, W) binary mask, JSON-ready."""
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_json(path: Path, data: dict) -> None:
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("labels", type=Path, help="labels.json written by `lowres-hps label`")
    parser.add_argument("--out", type=Path, default=None, help="default: blazepose.json next to the labels")
    parser.add_argument("--variant", choices=sorted(BLAZEPOSE_VARIANTS), default="full")
    parser.add_argument("--threads", type=int, default=1, help="cores for mediapipe (0: all)")
    parser.add_argument("--batch", type=int, default=256, help="people per mediapipe subprocess")
    args = parser.parse_args(argv)

    try:
        data = json.loads(args.labels.read_text())
        images = {image["id"]: image for image in data["images"]}
        people = [a for a in data["annotations"] if not a.get("iscrowd", 0)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"{args.labels}: not a readable COCO labels file ({error})", file=sys.stderr)
        return 2
    image_root = default_image_root(args.labels)
    out = args.out or args.labels.with_name("blazepose.json")
    protocol = LowResProtocol(INPUT_SIZE, SCALE_FACTOR)
    result = {"info": {"description": "BlazePose GHUM teacher outputs", "labels": str(args.labels),
                       "model": f"blazepose_{args.variant}", "convention": "blazepose33",
                       "crop": {"input_size": list(INPUT_SIZE), "scale_factor": SCALE_FACTOR, "person_height": None},
                       "date": time.strftime("%Y-%m-%d")},
              "annotations": {}}
    start, worker_ms, found = time.perf_counter(), 0.0, 0
    people.sort(key=lambda a: a["image_id"])  # each image is read once per batch
    for first in range(0, len(people), args.batch):
        batch = people[first:first + args.batch]
        crops, cached = [], {}
        for ann in batch:
            image_id = ann["image_id"]
            if image_id not in cached:
                cached[image_id] = load_image(image_root / images[image_id]["file_name"])[0]
            crops.append(protocol(cached[image_id], np.asarray(ann["bbox"], np.float64)))
        stacked = np.stack([c.image.permute(1, 2, 0).numpy() for c in crops])
        output = run_blazepose(stacked, BLAZEPOSE_VARIANTS[args.variant], threads=args.threads)
        worker_ms += output.ms_per_crop * len(batch)
        for n, (ann, crop) in enumerate(zip(batch, crops)):
            entry = {"image_id": ann["image_id"], "detected": bool(output.detected[n])}
            if output.detected[n]:
                found += 1
                image = cached[ann["image_id"]]
                to_image = invert_affine(crop.affine.to(torch.float64))
                xy = apply_affine(torch.from_numpy(output.landmarks[n, :, :2]).to(torch.float64), to_image).numpy()
                entry["landmarks"] = [[round(float(x), 2), round(float(y), 2), round(float(v), 4)]
                                      for (x, y), v in zip(xy, output.landmarks[n, :, 2])]
                entry["world_landmarks"] = [[round(float(c), 4) for c in point] for point in output.world_landmarks[n]]
                entry["segmentation"] = encode_rle(mask_to_image(output.masks[n], crop.affine.numpy(), image.shape[:2]))
            result["annotations"][str(ann["id"])] = entry
        done = first + len(batch)
        elapsed = time.perf_counter() - start
        result["info"].update(num_people=done, num_detected=found, worker_ms_per_person=round(worker_ms / done, 1),
                              total_ms_per_person=round(1000 * elapsed / done, 1))
        write_json(out, result)
        print(f"{done}/{len(people)} people, {found} found by BlazePose, {worker_ms / done:.1f} ms/person in mediapipe, "
              f"{1000 * elapsed / done:.1f} ms/person in all", flush=True)
    if not people:
        write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
