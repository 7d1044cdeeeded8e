"""Our PyTorch MoveNet against the original TFJS graph run by TensorFlow.js itself, on the same int32 crops.

Three steps, in a scratch folder outside the repository (TensorFlow.js is not a dependency of lowres-hps):

    mkdir -p /tmp/tfjs-ref && (cd /tmp/tfjs-ref && npm init -y && npm install @tensorflow/tfjs@4)  # pure JS, no native binary
    python benchmarks/movenet_reference_check.py prepare --dir /tmp/movenet-ref [--num 8]
    NODE_PATH=/tmp/tfjs-ref/node_modules node benchmarks/movenet_reference_check.mjs /tmp/movenet-ref
    python benchmarks/movenet_reference_check.py compare --dir /tmp/movenet-ref

``prepare`` cuts ``--num`` square person crops (box x 1.25, zero padding outside the image; half from
coco_mini_train's keypoint boxes, half from lspet_400's joint boxes, read in place from ../shared/data),
resizes them with PIL bilinear to 192 (Lightning) and 256 (Thunder), and writes them as raw little-endian
int32 NHWC RGB (``inputs_<variant>.bin``) with ``manifest.json`` (shapes, crop sources, the model.json paths).
The Node script runs each graph once per crop (the graph takes batch 1) and writes its keypoints (N, 17, 3)
and the four raw head outputs (N, h, w, C) as float32 ``tfjs_<variant>_*.bin``, and its per-crop times.
``compare`` runs :func:`lowres_hps.models.movenet.load_movenet` on the same int32 inputs and prints, per
variant, the max / mean absolute difference of y, x (normalised) and score, the fraction of keypoints whose
y or x differs by more than one heatmap cell (1/48 Lightning, 1/64 Thunder), the max head difference, and
the per-crop times of both runtimes (batch 1, one thread each). The numbers also go to ``<dir>/summary.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data"
COCO_KEYPOINTS = SHARED / "coco_mini_train/annotations/person_keypoints_train2017.json"
COCO_IMAGES = SHARED / "coco_mini_train/train2017"
LSPET_JOINTS = SHARED / "lspet_400/joints.mat"
LSPET_IMAGES = SHARED / "lspet_400/images"
# Head name in lowres_hps -> the TFJS node that produces it (NHWC).
HEAD_NODES = {"center": "StatefulPartitionedCall/center_0/conv2d_4/BiasAdd",
              "kpt_regress": "StatefulPartitionedCall/kpt_regress_0/conv2d_6/BiasAdd",
              "kpt_heatmap": "StatefulPartitionedCall/kpt_heatmap_0/conv2d_5/BiasAdd",
              "kpt_offset": "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd"}
SCALE_FACTOR = 1.25


def person_boxes(num: int) -> list[tuple[Path, tuple[float, float, float, float], str]]:
    """``num`` (image, box x0 y0 x1 y1, label): half COCO people with >= 12 keypoints, half LSPET."""
    from scipy.io import loadmat

    for path in (COCO_KEYPOINTS, LSPET_JOINTS):
        if not path.is_file():
            sys.exit(f"shared data not found: {path} (this check reads ../shared/data in place)")
    coco = json.loads(COCO_KEYPOINTS.read_text())
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    boxes, seen = [], set()
    for ann in coco["annotations"]:
        if len(boxes) == num // 2:
            break
        if ann["iscrowd"] or ann["num_keypoints"] < 12 or ann["image_id"] in seen:
            continue
        seen.add(ann["image_id"])
        x, y, w, h = ann["bbox"]
        boxes.append((COCO_IMAGES / files[ann["image_id"]], (x, y, x + w, y + h), f"coco ann {ann['id']}"))
    joints = loadmat(LSPET_JOINTS)["joints"]  # (14, 3, N): x, y, visible
    for index in np.linspace(0, joints.shape[2] - 1, num - len(boxes)).round().astype(int):
        xy = joints[:, :2, index]
        boxes.append((LSPET_IMAGES / f"im{index + 1:05d}.jpg", (*xy.min(0), *xy.max(0)), f"lspet im{index + 1:05d}"))
    return boxes


def square_crop(image, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The square around ``box`` x 1.25 (zeros outside the image), PIL-bilinear resized -> (size, size, 3) uint8."""
    from PIL import Image

    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * SCALE_FACTOR
    region = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return np.asarray(image.crop(region).resize((size, size), Image.BILINEAR))


def prepare(folder: Path, num: int) -> None:
    from PIL import Image

    from lowres_hps.models.movenet import MOVENET_VARIANTS
    from lowres_hps.models.pretrained import find_pretrained

    folder.mkdir(parents=True, exist_ok=True)
    crops = person_boxes(num)
    manifest = {"crops": [{"image": str(path), "box": [float(v) for v in box], "label": label} for path, box, label in crops],
                "head_nodes": HEAD_NODES, "variants": {}}
    for name, spec in MOVENET_VARIANTS.items():
        size = spec.input_size
        images = np.stack([square_crop(Image.open(path).convert("RGB"), box, size) for path, box, _ in crops])
        file = f"inputs_{name}.bin"
        images.astype("<i4").tofile(folder / file)
        manifest["variants"][name] = {"model_json": str(find_pretrained(f"movenet_{name}")), "inputs": file,
                                      "shape": list(images.shape), "heatmap_size": size // 4}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(crops)} crops per variant written to {folder}; next: "
          f"NODE_PATH=<scratch>/node_modules node benchmarks/movenet_reference_check.mjs {folder}")


def compare(folder: Path, repeats: int) -> dict:
    import torch

    from lowres_hps.models.movenet import decode_movenet, load_movenet

    torch.set_num_threads(1)  # as TFJS's single-threaded CPU backend; and the machine is shared
    manifest = json.loads((folder / "manifest.json").read_text())
    summary = {}
    for name, spec in manifest["variants"].items():
        shape = spec["shape"]
        n, size, cells = shape[0], shape[1], spec["heatmap_size"]
        reference_file = folder / f"tfjs_{name}.json"
        if not reference_file.is_file():
            sys.exit(f"{reference_file} not found: run the Node script first (see this file's docstring)")
        reference = json.loads(reference_file.read_text())
        tf_keypoints = np.fromfile(folder / reference["keypoints"], "<f4").reshape(n, 17, 3)
        inputs = torch.from_numpy(np.fromfile(folder / spec["inputs"], "<i4").reshape(shape)).permute(0, 3, 1, 2)
        model = load_movenet(name, spec["model_json"])
        ours, heads, seconds = [], {}, []
        with torch.no_grad():
            for i in range(n):  # batch 1, as the graph
                crop = inputs[i:i + 1]
                for repeat in range(repeats + 1):
                    start = time.perf_counter()
                    outputs = model.head_outputs(crop)
                    if repeat:  # the first run warms up
                        seconds.append(time.perf_counter() - start)
                ours.append(decode_movenet(outputs)[0].numpy())
                for head, value in outputs.items():
                    heads.setdefault(head, []).append(value[0].permute(1, 2, 0).numpy())
        ours = np.stack(ours)
        diff = np.abs(ours - tf_keypoints)
        off_by_cell = (diff[..., :2] > 1.0 / cells).any(-1)
        head_diff = {}
        for head, channels in (("center", 1), ("kpt_regress", 34), ("kpt_heatmap", 17), ("kpt_offset", 34)):
            tf_head = np.fromfile(folder / reference["heads"][head], "<f4").reshape(n, cells, cells, channels)
            head_diff[head] = float(np.abs(np.stack(heads[head]) - tf_head).max())
        summary[name] = {
            "crops": n, "input": size,
            "y_abs_diff_max": float(diff[..., 0].max()), "y_abs_diff_mean": float(diff[..., 0].mean()),
            "x_abs_diff_max": float(diff[..., 1].max()), "x_abs_diff_mean": float(diff[..., 1].mean()),
            "score_abs_diff_max": float(diff[..., 2].max()), "score_abs_diff_mean": float(diff[..., 2].mean()),
            "keypoints_off_by_more_than_one_cell": f"{int(off_by_cell.sum())}/{off_by_cell.size}",
            "head_abs_diff_max": head_diff,
            "ms_per_crop_tfjs": float(np.median(reference["seconds"]) * 1e3),
            "ms_per_crop_ours": float(np.median(seconds) * 1e3),
            "tfjs": reference["runtime"], "torch": torch.__version__,
        }
        if off_by_cell.any():
            rows = [(int(i), int(k)) for i, k in zip(*np.nonzero(off_by_cell))]
            summary[name]["off_by_cell_crop_keypoint"] = rows
    return summary


def print_table(summary: dict) -> None:
    print("| variant | crops | y max / mean | x max / mean | score max / mean | > 1 cell | max head diff "
          "(center, regress, heatmap, offset) | ms/crop TFJS | ms/crop ours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in summary.items():
        heads = ", ".join(f"{v:.1e}" for v in r["head_abs_diff_max"].values())
        print(f"| {name} | {r['crops']} | {r['y_abs_diff_max']:.1e} / {r['y_abs_diff_mean']:.1e} "
              f"| {r['x_abs_diff_max']:.1e} / {r['x_abs_diff_mean']:.1e} "
              f"| {r['score_abs_diff_max']:.1e} / {r['score_abs_diff_mean']:.1e} "
              f"| {r['keypoints_off_by_more_than_one_cell']} | {heads} "
              f"| {r['ms_per_crop_tfjs']:.0f} | {r['ms_per_crop_ours']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the int32 crops and manifest.json")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--num", type=int, default=8)
    c = sub.add_parser("compare", help="run our port and compare with the Node script's outputs")
    c.add_argument("--dir", type=Path, required=True)
    c.add_argument("--repeats", type=int, default=3, help="timed runs per crop after one warm-up")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dir, args.num)
    else:
        summary = compare(args.dir, args.repeats)
        (args.dir / "summary.json").write_text(json.dumps(summary, indent=1))
        print_table(summary)


if __name__ == "__main__":
    main()
