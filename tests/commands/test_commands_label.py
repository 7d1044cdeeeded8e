"""``lowres-hps label`` end to end with test teachers: datasets, images with boxes, video frames, bad input."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lowres_hps.commands import label as label_cmd
from lowres_hps.cli import main
from lowres_hps.data import CocoKeypointsReader
from lowres_hps.imaging.io import write_image_rgb

K = 17


class CentreTeacher:
    """Every joint at the crop centre (the box centre in the image), with score ``score``; records its calls."""

    input_size = (64, 48)
    scale_factor = 1.25
    convention = "coco17"

    def __init__(self, name, score=0.9):
        self.name, self.score, self.people = name, score, 0

    def __call__(self, crops, range_index=None):
        self.people += len(crops)
        h, w = self.input_size
        points = torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand(len(crops), K, 2)
        return points, torch.full((len(crops), K), self.score)


@pytest.fixture
def teachers(monkeypatch):
    made = {}

    def load(name):
        made[name] = CentreTeacher(name)
        return made[name]

    monkeypatch.setattr(label_cmd, "load_teacher", load)
    return made


def _write_coco_dataset(root: Path) -> Path:
    """people.json + images/: two images, three people; person 1 has two ground-truth joints."""
    (root / "images").mkdir(parents=True)
    images = [{"id": 5, "file_name": "a.png", "height": 120, "width": 160},
              {"id": 9, "file_name": "b.png", "height": 100, "width": 90}]
    for image in images:
        write_image_rgb(root / "images" / image["file_name"], np.full((image["height"], image["width"], 3), 40, np.uint8))
    truth = np.zeros((K, 3))
    truth[0] = (30.0, 20.0, 2)
    truth[15] = (35.0, 95.0, 1)
    other = np.zeros((K, 3))
    other[5] = (100.0, 50.0, 2)
    annotations = [
        {"id": 1, "image_id": 5, "bbox": [20.0, 10.0, 30.0, 90.0], "keypoints": truth.reshape(-1).tolist()},
        {"id": 2, "image_id": 5, "bbox": [90.0, 20.0, 40.0, 80.0], "keypoints": other.reshape(-1).tolist()},
        {"id": 3, "image_id": 9, "bbox": [10.0, 10.0, 50.0, 70.0], "keypoints": other.reshape(-1).tolist()},
    ]
    for ann in annotations:
        ann.update(category_id=1, iscrowd=0, num_keypoints=sum(v > 0 for v in ann["keypoints"][2::3]))
    path = root / "people.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(K)]}]}))
    return path


def _check_coco(out: Path) -> dict:
    """labels.json is a valid COCO keypoints file whose images resolve from OUT/images; returns it."""
    data = json.loads((out / "labels.json").read_text())
    assert not (out / "labels.json.tmp").exists()
    image_ids = [image["id"] for image in data["images"]]
    assert image_ids == list(range(1, len(image_ids) + 1))
    for image in data["images"]:
        path = out / "images" / image["file_name"]
        assert path.is_file(), image["file_name"]
        assert cv2.imread(str(path)).shape[:2] == (image["height"], image["width"])
    ann_ids = [ann["id"] for ann in data["annotations"]]
    assert ann_ids == list(range(1, len(ann_ids) + 1))
    for ann in data["annotations"]:
        assert ann["image_id"] in image_ids and ann["category_id"] == 1
        assert len(ann["keypoints"]) == 3 * K and len(ann["keypoint_scores"]) == K
        assert ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3])
    assert data["categories"][0]["keypoints"][0] == "nose"
    return data


def test_label_a_dataset_keeps_its_ground_truth(tmp_path, teachers, capsys):
    source = _write_coco_dataset(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["label", "--dataset", f"coco:{source}", "--out", str(out), "--min-keypoints", "4"]) == 0
    assert set(teachers) == {"movenet_thunder", "movenet_lightning"}
    assert teachers["movenet_thunder"].people == 3 and teachers["movenet_lightning"].people == 3
    data = _check_coco(out)
    assert data["info"]["teachers"] == ["movenet_thunder", "movenet_lightning"]
    assert data["info"]["filters"]["min_keypoints"] == 4
    assert [os.path.basename(image["file_name"]) for image in data["images"]] == ["a.png", "b.png"]
    assert len(data["annotations"]) == 3 and "kept 3" in capsys.readouterr().out
    first = np.asarray(data["annotations"][0]["keypoints"]).reshape(K, 3)
    np.testing.assert_array_equal(first[0], [30, 20, 2])
    np.testing.assert_array_equal(first[15], [35, 95, 2])  # labelled-occluded ground truth, kept as labelled
    # The other joints: the teacher's, at the box centre.
    np.testing.assert_allclose(first[1, :2], [35.0, 55.0], atol=0.01)
    # The file reads back through the readers, images and all.
    reader = CocoKeypointsReader(out / "labels.json")
    assert len(reader) == 3 and reader.skipped == []
    sample = reader[0]
    assert Path(sample.image_path).resolve() == (tmp_path / "data" / "images" / "a.png").resolve()
    np.testing.assert_allclose(sample.keypoints2d, first, atol=1e-4)
    assert sample.load_image().shape == (120, 160, 3)


def test_label_a_dataset_slice_with_one_teacher(tmp_path, teachers):
    source = _write_coco_dataset(tmp_path / "data")
    out = tmp_path / "out"
    assert main(["label", "--dataset", f"coco:{source}", "--indices", "2:3", "--second-teacher", "none",
                 "--out", str(out)]) == 0
    assert list(teachers) == ["movenet_thunder"]
    data = _check_coco(out)
    assert len(data["images"]) == 1 and data["images"][0]["file_name"].endswith("b.png")
    assert len(data["annotations"]) == 1 and data["annotations"][0]["bbox"] == [10.0, 10.0, 50.0, 70.0]


def test_label_images_with_boxes(tmp_path, teachers):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("p1.png", "p2.png"):
        write_image_rgb(folder / name, np.full((100, 120, 3), 90, np.uint8))
    # Detections: boxes without keypoints, one too short for --min-height (40 px by default).
    boxes = {"images": [{"id": 1, "file_name": "p1.png"}, {"id": 2, "file_name": "p2.png"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 60]},
                             {"id": 2, "image_id": 1, "category_id": 1, "bbox": [60, 10, 30, 20]},
                             {"id": 3, "image_id": 2, "category_id": 1, "bbox": [50, 20, 40, 70]}],
             "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    assert main(["label", str(folder), "--boxes", str(tmp_path / "boxes.json"), "--out", str(out)]) == 0
    data = _check_coco(out)
    assert sorted(Path(image["file_name"]).name for image in data["images"]) == ["p1.png", "p2.png"]
    assert sorted(ann["bbox"] for ann in data["annotations"]) == [[10.0, 10.0, 30.0, 60.0], [50.0, 20.0, 40.0, 70.0]]
    assert teachers["movenet_thunder"].people == 2
    centre = np.asarray(data["annotations"][0]["keypoints"]).reshape(K, 3)[:, :2]
    box = data["annotations"][0]["bbox"]
    np.testing.assert_allclose(centre, np.broadcast_to([box[0] + box[2] / 2, box[1] + box[3] / 2], (K, 2)), atol=0.01)
    assert len(CocoKeypointsReader(out / "labels.json")) == 2


def test_label_video_frames(tmp_path, teachers, monkeypatch):
    from lowres_hps.apis import detector as detector_module

    class OneBoxDetector:
        def __call__(self, image):
            return np.array([[20.0, 10.0, 40.0, 70.0]]), np.array([0.9])

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", OneBoxDetector)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 96))
    for index in range(7):
        writer.write(np.full((96, 96, 3), 30 * index, np.uint8))
    writer.release()
    out = tmp_path / "out"
    assert main(["label", str(video), "--frames", "2:6", "--every", "2", "--out", str(out)]) == 0
    data = _check_coco(out)
    assert [(image["frame"], image["file_name"]) for image in data["images"]] == [
        (2, "clip_000002.jpg"), (4, "clip_000004.jpg"), (6, "clip_000006.jpg")]
    assert all(image["video"] == str(video) for image in data["images"])
    assert [ann["image_id"] for ann in data["annotations"]] == [1, 2, 3]


def test_label_with_multipose_boxes(tmp_path, teachers, monkeypatch):
    from lowres_hps.apis import detector as detector_module

    made = []

    class OneBox:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def __call__(self, image):
            return np.array([[20.0, 10.0, 40.0, 70.0]]), np.array([0.9])

    monkeypatch.setattr(detector_module, "MultiPoseDetector", OneBox)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((96, 96, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main(["label", str(image), "--detector", "multipose", "--out", str(out)]) == 0
    data = _check_coco(out)
    assert made == [{"upscale": 2.0, "min_score": 0.25}] and data["info"]["boxes"] == "detector: multipose"
    assert len(data["annotations"]) == 1


def test_missing_teacher_files_are_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path / "empty"))
    source = _write_coco_dataset(tmp_path / "data")
    assert main(["label", "--dataset", f"coco:{source}", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("lowres-hps label: error:") and "scripts/get_pretrained.sh" in error
    assert "Traceback" not in error


@pytest.mark.parametrize(("arguments", "message"), [
    ([], "give images, folders or videos, or --dataset"),
    (["x.png", "--dataset", "coco:x.json"], "not both"),
    (["x.png", "--every", "0"], "--every must be >= 1"),
    (["--dataset", "coco"], "--dataset must be FORMAT:PATH"),
    (["--dataset", "coco:{source}", "--indices", "3:1"], "--indices must be A:B with 0 <= A <= B"),
    (["--dataset", "coco:{source}", "--indices", "a:b"], "--indices must be A:B with integers"),
])
def test_bad_arguments(tmp_path, teachers, arguments, message):
    source = _write_coco_dataset(tmp_path / "data")
    arguments = [a.replace("{source}", str(source)) for a in arguments]
    with pytest.raises(SystemExit, match=message):
        main(["label", *arguments, "--out", str(tmp_path / "out")])


def test_out_must_be_a_folder(tmp_path, teachers):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="not a folder"):
        main(["label", "--dataset", "coco:x.json", "--out", str(tmp_path / "file")])
