"""Unlabelled real training people for SSPSE (issue 14) from this project's own label folders.

    python scripts/make_unlabelled_sets.py [data/labels/lspet_train data/labels/coco_train data/labels/vtest_1_400]

Each folder holds a ``lowres-hps label`` file (``labels.json``: boxes and teacher keypoints) and the
``blazepose.json`` of ``scripts/blazepose_labels.py`` (BlazePose's person mask per annotation, a stand-in for
the paper's Mask R-CNN). Written: ``<folder>/unlabelled.json``, the people BlazePose found with their box and
mask, keypoints removed (zeros, ``num_keypoints`` 0), read by ``CocoKeypointsReader(..., min_keypoints=0,
load_masks=True)`` with the folder's ``images/``. People BlazePose did not find have no mask and are left out.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = ["data/labels/lspet_train", "data/labels/coco_train", "data/labels/vtest_1_400"]


def main(folders: list[str]) -> None:
    for folder in map(Path, folders):
        labels = json.loads((folder / "labels.json").read_text())
        teacher = json.loads((folder / "blazepose.json").read_text())["annotations"]
        people = []
        for ann in labels["annotations"]:
            found = teacher.get(str(ann["id"]))
            if not found or not found.get("detected") or not found.get("segmentation"):
                continue
            segmentation = found["segmentation"]
            people.append({key: ann[key] for key in ("id", "image_id", "bbox", "iscrowd", "category_id")}
                          | {"keypoints": [0] * len(ann["keypoints"]), "num_keypoints": 0,
                             "segmentation": segmentation, "area": ann.get("area", 0)})
        used = {p["image_id"] for p in people}
        out = {"info": {"description": "lowres-hps unlabelled people (keypoints removed)",
                        "source": str(folder / "labels.json"), "masks": "BlazePose GHUM person segmentation",
                        "people": len(people)},
               "images": [im for im in labels["images"] if im["id"] in used],
               "annotations": people, "categories": labels["categories"]}
        (folder / "unlabelled.json").write_text(json.dumps(out))
        print(f"{folder}: {len(people)} of {len(labels['annotations'])} people with a mask -> {folder / 'unlabelled.json'}")


if __name__ == "__main__":
    main(sys.argv[1:] or DEFAULT)
