"""Writing SynthLR to disk: images, label maps, a COCO keypoints json and an npz of 3D data.

Layout of an output folder::

    annotations.json      COCO person keypoints (pycocotools-loadable), RLE instance masks
    annotations_3d.npz    per annotation, in ``ann_id`` order: 3D keypoints, native joints, pose
                          vectors, root translation, camera
    images/000000000.jpg  RGB images
    labels/000000000_parts.png      body-part index per pixel (lowres_hps.body.parts.BODY_PARTS)
    labels/000000000_instances.png  annotation index in the image + 1 per pixel (0: none)

Writes are deterministic (fixed zip timestamps, sorted keys), so a seed gives identical bytes.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from lowres_hps.body.keypoints import COCO17
from lowres_hps.body.parts import BODY_PARTS
from lowres_hps.data.synth.generator import SynthConfig, SynthGenerator, SynthSample

__all__ = ["generate_dataset", "save_npz_deterministic", "coco_categories", "JPEG_QUALITY"]

JPEG_QUALITY = 95
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_ARRAY_FIELDS = ("keypoints3d", "projected2d", "joints3d", "pose_vector", "translation")


def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed timestamps and key order: same arrays, same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def coco_categories() -> list[dict]:
    return [{
        "id": 1, "name": "person", "supercategory": "person",
        "keypoints": list(COCO17.names),
        "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton],  # 1-based, as in COCO
    }]


# --- per-process worker state -----------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(config: SynthConfig, out_dir: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["generator"] = SynthGenerator(config)
    _WORKER["out"] = Path(out_dir)


def _write_one(job: tuple[int, int]) -> dict:
    """Render sample ``index`` and write its files; return its json-ready records."""
    seed, index = job
    sample = _WORKER["generator"].sample(seed, index)
    return _write_sample(sample, index, _WORKER["out"])


def _write_sample(sample: SynthSample, index: int, out: Path) -> dict:
    name = f"{index:09d}"
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for sample {index}")
    (out / "images" / f"{name}.jpg").write_bytes(jpeg.tobytes())
    cv2.imwrite(str(out / "labels" / f"{name}_parts.png"), sample.part_map)
    instances = np.zeros(sample.instance_map.shape, np.uint8)
    height, width = sample.image.shape[:2]
    annotations, arrays = [], []
    for k, person in enumerate(sample.people):
        instances[person.mask] = k + 1
        rle = mask_utils.encode(np.asfortranarray(person.mask.astype(np.uint8)))
        keypoints = person.keypoints2d.copy()
        keypoints[keypoints[:, 2] == 0, :2] = 0.0  # COCO: unlabelled points are 0, 0, 0
        annotations.append({
            "category_id": 1, "iscrowd": 0,
            "bbox": [round(float(v), 2) for v in person.bbox],
            "area": float(mask_utils.area(rle)),
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)],
            "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            "pose_family": person.family,
        })
        # Only the small 3D arrays travel back to the parent process, not the masks.
        arrays.append({key: getattr(person, key) for key in _ARRAY_FIELDS})
    cv2.imwrite(str(out / "labels" / f"{name}_instances.png"), instances)
    image = {
        "file_name": f"{name}.jpg", "height": int(height), "width": int(width),
        "focal": round(sample.focal, 4), "principal_point": [round(v, 4) for v in sample.principal_point],
        "part_map": f"labels/{name}_parts.png", "instance_map": f"labels/{name}_instances.png",
    }
    return {"image": image, "annotations": annotations, "people": arrays}


def generate_dataset(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    config: SynthConfig = SynthConfig(),
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Generate ``count`` images into ``out_dir``; returns the COCO dict that was written.

    Sample ``i`` depends only on ``(seed, i)``; ``workers`` processes (default: CPU count) share
    the work, one torch thread each.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    jobs = [(seed, i) for i in range(count)]
    bar = tqdm(total=count, desc=f"synth {config.layout}", unit="img", disable=not progress)
    results = []
    if workers == 1:
        _init_worker(config, str(out), threads=1)
        for job in jobs:
            results.append(_write_one(job))
            bar.update()
    else:
        # spawn: forking a process that already holds torch threads can deadlock.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_init_worker, initargs=(config, str(out), 1)) as pool:
            for result in pool.imap(_write_one, jobs, chunksize=4):
                results.append(result)
                bar.update()
    bar.close()
    return _write_annotations(out, results, seed, config)


def _write_annotations(out: Path, results: list[dict], seed: int, config: SynthConfig) -> dict:
    images, annotations, people, owners = [], [], [], []
    for image_id, result in enumerate(results, start=1):
        images.append({"id": image_id, **result["image"]})
        for ann, person in zip(result["annotations"], result["people"]):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
            people.append(person)
            owners.append(result["image"])
    coco = {
        "info": {
            "description": "SynthLR: synthetic people rendered from the Anny body model by lowres-hps",
            "layout": config.layout, "seed": seed, "count": len(images),
            "body_model": "anny", "keypoint_convention": "coco17",
            "part_names": list(BODY_PARTS),
        },
        "licenses": [],
        "categories": coco_categories(),
        "images": images,
        "annotations": annotations,
    }
    (out / "annotations.json").write_text(json.dumps(coco, sort_keys=True, separators=(",", ":")))
    arrays = {
        "ann_id": np.array([a["id"] for a in annotations], dtype=np.int64),
        "image_id": np.array([a["image_id"] for a in annotations], dtype=np.int64),
    }
    if people:
        arrays.update({
            "keypoints3d": np.stack([p["keypoints3d"] for p in people]),
            "keypoints2d_projected": np.stack([p["projected2d"] for p in people]),
            "joints3d": np.stack([p["joints3d"] for p in people]),
            "pose_vector": np.stack([p["pose_vector"] for p in people]),
            "translation": np.stack([p["translation"] for p in people]),
            "focal": np.array([img["focal"] for img in owners], dtype=np.float32),
            "principal_point": np.array([img["principal_point"] for img in owners], dtype=np.float32),
        })
    save_npz_deterministic(out / "annotations_3d.npz", arrays)
    return coco
