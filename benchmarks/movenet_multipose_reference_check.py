"""Our PyTorch MoveNet MultiPose against the original TFJS graph run by TensorFlow.js, on the same int32 images.

Three steps, in a scratch folder outside the repository (as ``movenet_reference_check.py``):

    mkdir -p /tmp/tfjs-ref && (cd /tmp/tfjs-ref && npm init -y && npm install @tensorflow/tfjs@4)
    python benchmarks/movenet_multipose_reference_check.py prepare --dir /tmp/multipose-ref
    NODE_PATH=/tmp/tfjs-ref/node_modules node benchmarks/movenet_reference_check.mjs /tmp/multipose-ref 1
    python benchmarks/movenet_multipose_reference_check.py compare --dir /tmp/multipose-ref

``prepare`` writes two sets of whole images as raw int32 NHWC RGB: ``--num`` coco_mini_train images padded
to a square and resized to 256 x 256 (the graph's signature size), and ``--num`` vtest.avi frames (from
frames 1-400) resized to 384 x 288 (another size that is a multiple of 32). ``compare`` runs
:func:`lowres_hps.models.movenet.load_movenet_multipose` on them and prints the largest differences of the
six raw heads and of the decoded output (keypoints, boxes, scores), and the per-image times.
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
COCO_IMAGES = SHARED / "coco_mini_train/train2017"
VTEST = SHARED / "opencv_samples/vtest.avi"
_P = "StatefulPartitionedCall/"
HEAD_NODES = {"center": _P + "center_0/conv2d_4/BiasAdd", "box_scale": _P + "box_scale_0/conv2d_5/BiasAdd",
              "box_offset": _P + "box_offset_0/conv2d_6/BiasAdd", "kpt_heatmap": _P + "kpt_heatmap_0/conv2d_7/BiasAdd",
              "kpt_regress": _P + "kpt_regress_0/conv2d_8/BiasAdd", "kpt_offset": _P + "kpt_offset_0/conv2d_9/BiasAdd"}
CHANNELS = {"center": 1, "box_scale": 2, "box_offset": 2, "kpt_heatmap": 17, "kpt_regress": 34, "kpt_offset": 34}


def coco_images(num: int, size: int = 256) -> np.ndarray:
    from PIL import Image

    files = sorted(COCO_IMAGES.glob("*.jpg"))[:num]
    out = []
    for file in files:
        image = Image.open(file).convert("RGB")
        side = max(image.size)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(image, (0, 0))
        out.append(np.asarray(canvas.resize((size, size), Image.BILINEAR)))
    return np.stack(out)


def vtest_frames(num: int, size: tuple[int, int] = (384, 288)) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(VTEST))
    frames = []
    for index in np.linspace(0, 399, num).round().astype(int):  # frames 1-400 only
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if not ok:
            sys.exit(f"could not read frame {index} of {VTEST}")
        frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA))
    return np.stack(frames)


def prepare(folder: Path, num: int) -> None:
    from lowres_hps.models.pretrained import find_pretrained

    for path in (COCO_IMAGES, VTEST):
        if not path.exists():
            sys.exit(f"shared data not found: {path} (this check reads ../shared/data in place)")
    folder.mkdir(parents=True, exist_ok=True)
    model_json = str(find_pretrained("movenet_multipose"))
    manifest = {"variants": {}}
    for name, images in (("coco_256", coco_images(num)), ("vtest_288x384", vtest_frames(num))):
        file = f"inputs_{name}.bin"
        images.astype("<i4").tofile(folder / file)
        manifest["variants"][name] = {"model_json": model_json, "inputs": file, "shape": list(images.shape),
                                      "head_nodes": HEAD_NODES}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"written to {folder}; next: NODE_PATH=<scratch>/node_modules node benchmarks/movenet_reference_check.mjs "
          f"{folder} 1")


def compare(folder: Path, repeats: int) -> dict:
    import torch

    from lowres_hps.models.movenet import decode_multipose, load_movenet_multipose

    torch.set_num_threads(1)
    manifest = json.loads((folder / "manifest.json").read_text())
    summary = {}
    model = None
    for name, spec in manifest["variants"].items():
        n, h, w, _ = spec["shape"]
        reference = json.loads((folder / f"tfjs_{name}.json").read_text())
        tf_out = np.fromfile(folder / reference["keypoints"], "<f4").reshape(n, 6, 56)
        model = model or load_movenet_multipose(spec["model_json"])
        inputs = torch.from_numpy(np.fromfile(folder / spec["inputs"], "<i4").reshape(spec["shape"])).permute(0, 3, 1, 2)
        ours, heads, seconds = [], {}, []
        with torch.no_grad():
            for i in range(n):
                for repeat in range(repeats + 1):
                    start = time.perf_counter()
                    outputs = model.head_outputs(inputs[i:i + 1])
                    if repeat:
                        seconds.append(time.perf_counter() - start)
                ours.append(decode_multipose(outputs)[0].numpy())
                for head, value in outputs.items():
                    heads.setdefault(head, []).append(value[0].permute(1, 2, 0).numpy())
        ours = np.stack(ours)
        kp_ours, kp_tf = ours[..., :51].reshape(n, 6, 17, 3), tf_out[..., :51].reshape(n, 6, 17, 3)
        head_diff = {}
        for head, channels in CHANNELS.items():
            tf_head = np.fromfile(folder / reference["heads"][head], "<f4").reshape(n, h // 4, w // 4, channels)
            head_diff[head] = float(np.abs(np.stack(heads[head]) - tf_head).max())
        kp_diff = np.abs(kp_ours[..., :2] - kp_tf[..., :2])
        summary[name] = {
            "images": n, "input": [h, w],
            "head_abs_diff_max": head_diff,
            "keypoint_yx_abs_diff_max": float(kp_diff.max()),
            "keypoints_off_by_more_than_one_cell": f"{int((kp_diff > 4.0 / min(h, w)).any(-1).sum())}/{n * 6 * 17}",
            "keypoint_score_abs_diff_max": float(np.abs(kp_ours[..., 2] - kp_tf[..., 2]).max()),
            "box_abs_diff_max": float(np.abs(ours[..., 51:55] - tf_out[..., 51:55]).max()),
            "person_score_abs_diff_max": float(np.abs(ours[..., 55] - tf_out[..., 55]).max()),
            "people_scores_tfjs": tf_out[..., 55].round(3).tolist(),
            "ms_per_image_tfjs": float(np.median(reference["seconds"]) * 1e3),
            "ms_per_image_ours": float(np.median(seconds) * 1e3),
            "tfjs": reference["runtime"], "torch": torch.__version__,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--num", type=int, default=4)
    c = sub.add_parser("compare")
    c.add_argument("--dir", type=Path, required=True)
    c.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.dir, args.num)
    else:
        summary = compare(args.dir, args.repeats)
        (args.dir / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
