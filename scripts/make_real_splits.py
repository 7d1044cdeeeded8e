"""Write the real-data splits used to train and evaluate the 2D models (COCO-format, into data/real/).

    python scripts/make_real_splits.py [--shared ../shared/data] [--out data/real]

- ``coco_train.json``: coco_mini_train images at positions 1, 2 (mod 3) of their sorted ids (about 2/3).
- ``coco_train_unlabelled_boxes.json``: the person boxes (>= 48 px tall) of the coco_mini_train images without
  keypoint labels, for teacher pseudo-labels (``lowres-hps label --boxes``).
- ``coco_holdout.json``: the other third of coco_mini_train, plus the COCO-17 test images of
  mmpose_testdata (coco, ochuman): real people no training run sees. Never used for training or tuning.
- ``lspet_test.json``: lspet_400[300:400] mapped to COCO-17 by joint name (the 12 body joints; the face
  joints LSP lacks are unlabelled), with the reader's keypoint boxes; area = box area.
File names are absolute, so the files work from anywhere on this machine (re-run the script elsewhere).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _absolute(data: dict, image_root: Path) -> dict:
    for image in data["images"]:
        image["file_name"] = str((image_root / image["file_name"]).resolve())
    return data


def _subset(data: dict, image_ids: set[int], id_offset: int = 0) -> dict:
    images = [dict(im, id=im["id"] + id_offset) for im in data["images"] if im["id"] in image_ids]
    anns = [dict(a, image_id=a["image_id"] + id_offset, id=a["id"] + id_offset)
            for a in data["annotations"] if a["image_id"] in image_ids]
    return {"images": images, "annotations": anns, "categories": data["categories"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "data" / "real"))
    args = parser.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    coco = _absolute(json.loads((shared / "coco_mini_train/annotations/person_keypoints_train2017.json").read_text()),
                     shared / "coco_mini_train/train2017")
    labelled = sorted({a["image_id"] for a in coco["annotations"] if a.get("num_keypoints", 0) > 0})
    holdout_ids = set(labelled[0::3])
    train = _subset(coco, set(labelled) - holdout_ids)
    # People without keypoint labels in the other images: boxes for teacher pseudo-labels (lowres-hps label --boxes).
    unlabelled_ids = {im["id"] for im in coco["images"]} - set(labelled)
    boxes = _subset(coco, unlabelled_ids)
    boxes["annotations"] = [a for a in boxes["annotations"] if not a.get("iscrowd", 0) and a["bbox"][3] >= 48]
    (out / "coco_train_unlabelled_boxes.json").write_text(json.dumps(boxes))
    holdout = _subset(coco, holdout_ids)
    for offset, name in ((10_000_000_000, "coco"), (20_000_000_000, "ochuman")):
        extra = _absolute(json.loads((shared / f"mmpose_testdata/{name}/test_{name}.json").read_text()),
                          shared / f"mmpose_testdata/{name}")
        part = _subset(extra, {im["id"] for im in extra["images"]}, offset)
        for ann in part["annotations"]:
            ann.setdefault("num_keypoints", int(sum(v > 0 for v in ann["keypoints"][2::3])))
            ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
            ann.setdefault("iscrowd", 0)
        holdout["images"] += part["images"]
        holdout["annotations"] += part["annotations"]
    (out / "coco_train.json").write_text(json.dumps(train))
    (out / "coco_holdout.json").write_text(json.dumps(holdout))

    import sys
    sys.path.insert(0, str(ROOT / "src"))
    from lowres_hps.body.keypoints import get_mapping, map_keypoints
    from lowres_hps.data import LspReader

    reader = LspReader(shared / "lspet_400/joints.mat", indices=range(300, 400))
    mapping = get_mapping("lsp14", "coco17")
    images, anns = [], []
    for i in range(len(reader)):
        s = reader[i]
        points, labelled_joints = map_keypoints(s.keypoints2d[:, :2].astype(np.float64), mapping,
                                                (s.keypoints2d[:, 2] > 0).astype(np.float64))
        from PIL import Image
        w, h = Image.open(s.image_path).size
        images.append({"id": i + 1, "file_name": str(Path(s.image_path).resolve()), "width": w, "height": h})
        kp = np.concatenate([points * labelled_joints[:, None], 2.0 * labelled_joints[:, None]], axis=1)
        box = [float(v) for v in s.bbox]
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": box,
                     "area": box[2] * box[3], "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                     "num_keypoints": int(labelled_joints.sum())})
    (out / "lspet_test.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                     "categories": coco["categories"]}))
    for name in ("coco_train", "coco_train_unlabelled_boxes", "coco_holdout", "lspet_test"):
        d = json.loads((out / f"{name}.json").read_text())
        n = sum(1 for a in d["annotations"] if a.get("num_keypoints", 0) > 0)
        print(f"{out / name}.json: {len(d['images'])} images, {len(d['annotations'])} people, {n} with keypoints")


if __name__ == "__main__":
    main()
