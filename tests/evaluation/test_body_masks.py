import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from lowres_hps.body.parts import BODY_PARTS
from lowres_hps.evaluation.body_masks import (
    IGNORE,
    SIX_PART_NAMES,
    SIX_PARTS,
    CropMasks,
    body_mask_metrics,
    render_part_masks,
    six_part_face_labels,
    six_part_lookup,
)
from lowres_hps.evaluation.masks import confusion_matrix, metrics_from_confusion

CROP = 64  # crop camera of the synthetic prediction: 64 px, the body 5 m away, about 52 px tall
FOCAL = 160.0


@pytest.fixture(scope="module")
def rest_prediction(anny_body):
    """The Anny rest body facing the camera, 5 m away in a 64 px crop camera (a BodyPrediction's render fields)."""
    with torch.no_grad():
        vertices = anny_body.forward_vector(anny_body.pose_spec.rest_vector()).vertices
    # Canonical +Y up -> OpenCV y down: half a turn about x; the body's left (+X) stays at image right.
    vertices = vertices * torch.tensor([1.0, -1.0, -1.0]) + torch.tensor([0.0, 0.0, 5.0])
    return SimpleNamespace(vertices=vertices.float(), faces=anny_body.faces, crop_focal=FOCAL, crop_size=CROP)


def test_six_parts_cover_the_body_parts():
    assert set(SIX_PARTS) == set(BODY_PARTS)
    lookup = six_part_lookup(BODY_PARTS)
    assert lookup[0] == 0 and set(lookup[1:].tolist()) == set(range(1, len(SIX_PART_NAMES)))
    assert lookup[BODY_PARTS.index("left_hand")] == SIX_PART_NAMES.index("left_arm")
    assert lookup[BODY_PARTS.index("right_foot")] == SIX_PART_NAMES.index("right_leg")
    with pytest.raises(ValueError, match="tail"):
        six_part_lookup(["background", "tail"])


def test_render_part_masks_labels_and_layout(anny_body, rest_prediction):
    face_parts = six_part_face_labels(anny_body)
    assert face_parts.shape == (anny_body.num_faces,) and int(face_parts.min()) >= 1 and int(face_parts.max()) <= 6
    labels = render_part_masks(rest_prediction, CROP, face_parts)
    assert labels.shape == (1, CROP, CROP) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) <= 6
    assert set(labels.unique().tolist()) == set(range(7))  # background and all six parts visible at rest
    rows, cols = torch.meshgrid(torch.arange(CROP), torch.arange(CROP), indexing="ij")

    def centre(label: int) -> tuple[float, float]:
        where = labels[0] == label
        return float(rows[where].float().mean()), float(cols[where].float().mean())

    head, torso = centre(SIX_PART_NAMES.index("head")), centre(SIX_PART_NAMES.index("torso"))
    assert head[0] < torso[0]  # the head above the torso
    left_arm, right_arm = centre(SIX_PART_NAMES.index("left_arm")), centre(SIX_PART_NAMES.index("right_arm"))
    assert left_arm[1] > torso[1] > right_arm[1]  # +X (the body's left) is image right
    # The camera scales with the size: twice the pixels, the same silhouette.
    large = render_part_masks(rest_prediction, 2 * CROP, face_parts)[0] > 0
    reduced = torch.nn.functional.avg_pool2d(large[None, None].float(), 2)[0, 0] >= 0.5
    small = labels[0] > 0
    assert (reduced & small).sum() / (reduced | small).sum() > 0.85


def test_fg_metrics_of_a_mask_against_itself_are_perfect(anny_body, rest_prediction):
    labels = render_part_masks(rest_prediction, CROP, six_part_face_labels(anny_body))
    fg = metrics_from_confusion(confusion_matrix((labels > 0).long(), (labels > 0).long(), 2))
    parts = metrics_from_confusion(confusion_matrix(labels, labels, 7))
    assert float(fg.accuracy) == 1.0 and float(fg.mean_f1) == 1.0
    assert float(parts.accuracy) == 1.0 and float(parts.mean_f1) == 1.0


def _tiny_set(folder, with_parts: bool):
    """A one-person COCO folder: 100 x 80 image, a rectangular person mask, part labels head over torso."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    height, width, box = 100, 80, (20, 10, 40, 80)
    cv2.imwrite(str(folder / "images/0.png"), np.full((height, width, 3), 128, np.uint8))
    mask = np.zeros((height, width), np.uint8)
    mask[10:90, 20:60] = 1
    parts = np.zeros((height, width), np.uint8)
    parts[10:30, 20:60] = BODY_PARTS.index("head")
    parts[30:90, 20:60] = BODY_PARTS.index("torso")
    parts[30:90, 55:60] = BODY_PARTS.index("left_hand")
    cv2.imwrite(str(folder / "labels/0_parts.png"), parts)
    rle = mask_utils.encode(np.asfortranarray(mask))
    image = {"id": 1, "file_name": "0.png", "height": height, "width": width}
    if with_parts:
        image["part_map"] = "labels/0_parts.png"
    data = {"info": {"part_names": list(BODY_PARTS)} if with_parts else {}, "images": [image],
            "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(17)]}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": list(box),
                             "keypoints": [0] * 51, "num_keypoints": 0,
                             "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")}}]}
    (folder / "annotations.json").write_text(json.dumps(data))
    from lowres_hps.data import CocoKeypointsReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset

    reader = CocoKeypointsReader(folder / "annotations.json", image_root=folder / "images", min_keypoints=0,
                                 load_masks=True)
    return MultiResolutionDataset([reader], canvas=32, person_heights=[0, 20])


def test_crop_masks_and_metrics(tmp_path, anny_body, rest_prediction):
    dataset = _tiny_set(tmp_path / "parts", with_parts=True)
    item = CropMasks(dataset, 50)[0]
    gt_mask, gt_parts = item["gt_mask"], item["gt_parts"]
    assert gt_mask.shape == gt_parts.shape == (50, 50) and item["has_mask"] == 1 and item["has_parts"] == 1
    # The crop region is 100 x 100 image px from x = -10: 5 crop columns each side lie outside the image.
    assert (gt_mask[:, :5] == IGNORE).all() and (gt_mask[:, -5:] == IGNORE).all() and (gt_mask[:, 5:-5] != IGNORE).all()
    assert int((gt_mask == 1).sum()) == pytest.approx(40 * 80 / 4, rel=0.1)
    assert set(gt_parts.unique().tolist()) == {0, 1, 2, 3, IGNORE}
    assert ((gt_parts > 0) & (gt_parts != IGNORE)).sum() == pytest.approx(int((gt_mask == 1).sum()), rel=0.1)

    class RestBody:  # every crop gets the rest body
        body = anny_body

        def predict_bodies(self, crops, range_index):
            b = len(crops)
            return SimpleNamespace(vertices=rest_prediction.vertices.expand(b, -1, -1), faces=anny_body.faces,
                                   crop_focal=FOCAL / 2, crop_size=32)

    results = body_mask_metrics(RestBody(), dataset, size=50, batch_size=2)
    assert set(results) == {"source", "20"}
    for row in results.values():
        assert set(row) == {"fg_accuracy", "fg_f1", "part_accuracy", "part_f1", "people"} and row["people"] == 1
        assert all(0 < row[k] < 1 for k in ("fg_accuracy", "fg_f1", "part_accuracy", "part_f1"))
    no_parts = body_mask_metrics(RestBody(), _tiny_set(tmp_path / "plain", with_parts=False), size=50)
    assert no_parts["source"]["part_f1"] is None and no_parts["source"]["fg_f1"] == results["source"]["fg_f1"]
