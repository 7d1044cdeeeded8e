"""2D accuracy with GT boxes, on a synthetic set where a colour-reading double finds every keypoint."""
import json

import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import COCO17, LSP14
from lowres_hps.apis.accuracy import coco_ap_with_gt_boxes, pck_with_gt_boxes
from lowres_hps.imaging.io import write_image_rgb

COLOURS = np.array([[(37 * k) % 256, (97 * k + 60) % 256, (151 * k + 120) % 256] for k in range(17)], np.float32)


class ColourFinder:
    """Estimator double: keypoint k is the pixel whose colour is closest to COLOURS[k]."""

    input_size = (192, 144)
    scale_factor = 1.25
    convention = "coco17"

    def __call__(self, crops, range_index=None):
        pixels = crops.permute(0, 2, 3, 1).float()  # (B, h, w, 3)
        distance = ((pixels[:, None] - torch.from_numpy(COLOURS)[None, :, None, None]) ** 2).sum(-1)
        flat = distance.flatten(2).argmin(-1)
        w = crops.shape[-1]
        keypoints = torch.stack([flat % w, flat // w], dim=-1).float()
        return keypoints, torch.ones(keypoints.shape[:2])


def _dataset(tmp_path, count=3):
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        image = np.zeros((160, 140, 3), np.uint8)
        keypoints = np.zeros((17, 3))
        for k in range(17):
            x, y = rng.integers(30, 110), rng.integers(20, 140)
            while (np.abs(keypoints[:k, :2] - (x, y)).max(axis=1) < 6).any():
                x, y = rng.integers(30, 110), rng.integers(20, 140)
            image[y - 2:y + 3, x - 2:x + 3] = COLOURS[k]
            keypoints[k] = (x, y, 2)
        write_image_rgb(tmp_path / "images" / f"{i}.png", image)
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 160, "width": 140})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": [25, 15, 90, 130],
                            "area": 90 * 130.0, "num_keypoints": 17, "keypoints": keypoints.reshape(-1).tolist()})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []}]}
    (tmp_path / "annotations.json").write_text(json.dumps(gt))
    return tmp_path / "annotations.json", annotations


def test_perfect_estimator_scores_full_ap(tmp_path):
    ann_file, _ = _dataset(tmp_path)
    metrics = coco_ap_with_gt_boxes(ColourFinder(), ann_file, tmp_path / "images")
    assert metrics["AP"] == pytest.approx(1.0) and metrics["num_people"] == 3
    # Degrading people to 24 px blurs the dots together: the score must drop.
    low = coco_ap_with_gt_boxes(ColourFinder(), ann_file, tmp_path / "images", person_height=24)
    assert low["AP"] < metrics["AP"]


def test_pck_maps_names_into_the_reader_convention(tmp_path):
    from lowres_hps.data.coco import CocoKeypointsReader

    ann_file, _ = _dataset(tmp_path)
    reader = CocoKeypointsReader(ann_file, tmp_path / "images")
    assert pck_with_gt_boxes(ColourFinder(), reader)["pck@0.2"] == pytest.approx(1.0)

    class LspView:  # the same people seen as LSP-14: head top and neck are not predicted by a COCO model
        convention = "lsp14"

        def __len__(self):
            return len(reader)

        def __getitem__(self, index):
            from lowres_hps.body.keypoints import get_mapping, map_keypoints

            sample = reader[index]
            mapped, mask = map_keypoints(sample.keypoints2d[:, :2], get_mapping("coco17", "lsp14"))
            sample.keypoints2d = np.concatenate([mapped, 2 * mask[:, None]], axis=1).astype(np.float32)
            sample.convention = "lsp14"
            return sample

    result = pck_with_gt_boxes(ColourFinder(), LspView())
    assert result["pck@0.2"] == pytest.approx(1.0)
    assert result["num_joints"] == 3 * (len(LSP14) - 2)


def test_a_3d_model_is_scored_on_its_projected_3d_keypoints(tmp_path, monkeypatch):
    """keypoints="3d" scores PersonPrediction.keypoints_3d_projected (scores 1), not the 2D keypoints."""
    from lowres_hps.apis.predictor import PersonPrediction, Predictor
    from lowres_hps.models.estimator import BodyEstimator

    class Body3DDouble(ColourFinder):
        body = None

        def predict_bodies(self, crops, range_index, with_vertices=True):
            raise AssertionError("the predictor is replaced below")

    ann_file, annotations = _dataset(tmp_path)
    people = iter(annotations)  # images come in id order, one person each

    def predict_images(self, images, boxes):
        def person(box):
            truth = np.asarray(next(people)["keypoints"], float).reshape(-1, 3)
            return PersonPrediction(bbox=box, keypoints=np.zeros((17, 3)), score=0.0,
                                    keypoints_3d_projected=truth[:, :2])
        return [[person(box) for box in image_boxes] for image_boxes in boxes]

    monkeypatch.setattr(Predictor, "predict_images", predict_images)
    estimator = Body3DDouble()
    assert isinstance(estimator, BodyEstimator)
    metrics = coco_ap_with_gt_boxes(estimator, ann_file, tmp_path / "images", keypoints="3d")
    assert metrics["AP"] == pytest.approx(1.0) and metrics["num_people"] == 3
    with pytest.raises(ValueError, match="not a BodyEstimator"):
        coco_ap_with_gt_boxes(ColourFinder(), ann_file, tmp_path / "images", keypoints="3d")
    with pytest.raises(ValueError, match="keypoints must be one of"):
        coco_ap_with_gt_boxes(estimator, ann_file, tmp_path / "images", keypoints="both")
