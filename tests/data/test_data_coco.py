"""COCO-style keypoint json readers: COCO, CrowdPose, OCHuman."""
from __future__ import annotations

import itertools
import json
import logging

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from lowres_hps.data import CocoKeypointsReader, CrowdPoseReader, DatasetFileError, OCHumanReader
from lowres_hps.data.coco import CocoPeople, segmentation_to_mask

H, W = 60, 80


def _person(ann_id, image_id=1, keypoints=None, bbox=(10, 5, 30, 50), **fields):
    if keypoints is None:
        keypoints = [0.0] * 51
        keypoints[0:3] = [20, 10, 2]    # nose
        keypoints[15:18] = [15, 20, 1]  # left shoulder, occluded
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(bbox),
            "keypoints": keypoints, "num_keypoints": sum(v > 0 for v in keypoints[2::3]), **fields}


def _write_coco(tmp_path, annotations, images=None, name="people.json", make_images=True):
    images = images or [{"id": 1, "file_name": "a.jpg", "height": H, "width": W}]
    if make_images:
        for image in images:
            cv2.imwrite(str(tmp_path / image["file_name"]), np.zeros((image["height"], image["width"], 3), np.uint8))
    path = tmp_path / name
    path.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
    }))
    return path


def test_reads_keypoints_box_and_ids(tmp_path):
    reader = CocoKeypointsReader(_write_coco(tmp_path, [_person(7)]))
    assert len(reader) == 1 and reader.skipped == []
    sample = reader[0]
    assert sample.image_path == tmp_path / "a.jpg"
    assert sample.keypoints2d.shape == (17, 3) and sample.keypoints2d.dtype == np.float32
    np.testing.assert_array_equal(sample.keypoints2d[0], [20, 10, 2])
    np.testing.assert_array_equal(sample.keypoints2d[5], [15, 20, 1])
    assert (sample.keypoints2d[1:5] == 0).all()
    np.testing.assert_array_equal(sample.bbox, [10, 5, 30, 50])
    assert (sample.image_id, sample.ann_id, sample.dataset, sample.convention) == (1, 7, "coco", "coco17")
    assert sample.extra["image_size"] == (H, W)
    assert sample.load_image().shape == (H, W, 3)
    assert [s.ann_id for s in reader] == [7]
    assert reader[-1].ann_id == 7
    with pytest.raises(IndexError):
        reader[1]


def test_unlabelled_coordinates_are_zeroed(tmp_path):
    keypoints = [5.0, 6.0, 0.0] + [20.0, 10.0, 2.0] * 16
    sample = CocoKeypointsReader(_write_coco(tmp_path, [_person(1, keypoints=keypoints)]))[0]
    np.testing.assert_array_equal(sample.keypoints2d[0], [0, 0, 0])


def test_bad_annotations_are_reported_and_skipped(tmp_path, caplog):
    nan_keypoints = [20.0, 10.0, 2.0] * 17
    nan_keypoints[3] = float("nan")
    anns = [
        _person(1),
        _person(2, keypoints=[20.0, 10.0, 2.0] * 16),        # 16 keypoints in a coco17 file
        _person(3, keypoints=nan_keypoints),
        _person(4, bbox=(10, 5, 0, 50)),                     # zero-width box
        _person(5, keypoints=[20.0, 10.0, 3.0] * 17),        # visibility 3
        _person(6, image_id=99),                             # no such image
        {k: v for k, v in _person(8).items() if k != "bbox"},
    ]
    with caplog.at_level(logging.WARNING):
        reader = CocoKeypointsReader(_write_coco(tmp_path, anns))
    assert [s.ann_id for s in reader] == [1]
    reasons = dict(reader.skipped)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8]
    assert "(17, 3)" in reasons[2] and "(16, 3)" in reasons[2]
    assert "non-finite" in reasons[3]
    assert "zero size" in reasons[4]
    assert "outside 0/1/2" in reasons[5]
    assert "99" in reasons[6]
    assert "bbox" in reasons[8]
    assert sum("skipping sample" in r.message for r in caplog.records) == 6


def test_crowd_and_few_keypoints_are_filtered_not_skipped(tmp_path):
    crowd = _person(2, iscrowd=1)
    empty = _person(3, keypoints=[0.0] * 51)
    path = _write_coco(tmp_path, [_person(1), crowd, empty])
    reader = CocoKeypointsReader(path)
    assert [s.ann_id for s in reader] == [1]
    assert reader.skipped == []
    assert reader.filtered == {"crowd": 1, "fewer than 1 keypoints": 1}
    assert [s.ann_id for s in CocoKeypointsReader(path, include_crowd=True)] == [1, 2]
    assert [s.ann_id for s in CocoKeypointsReader(path, min_keypoints=0)] == [1, 3]
    assert len(CocoKeypointsReader(path, min_keypoints=3)) == 0


def test_non_person_categories_are_ignored(tmp_path):
    other = dict(_person(2), category_id=5)
    reader = CocoKeypointsReader(_write_coco(tmp_path, [_person(1), other]))
    assert len(reader) == 1 and reader.skipped == [] and reader.filtered == {}


def test_check_images_skips_missing_files(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
              {"id": 2, "file_name": "missing.jpg", "height": H, "width": W}]
    path = _write_coco(tmp_path, [_person(1), _person(2, image_id=2)], images=images, make_images=False)
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((H, W, 3), np.uint8))
    assert len(CocoKeypointsReader(path)) == 2
    reader = CocoKeypointsReader(path, check_images=True)
    assert [s.ann_id for s in reader] == [1]
    assert reader.skipped[0][0] == 2 and "missing.jpg" in reader.skipped[0][1]


def test_masks_from_polygon_and_rle(tmp_path):
    square = [[10, 10, 30, 10, 30, 30, 10, 30]]  # 20 x 20 px
    grid = np.zeros((H, W), np.uint8)
    grid[40:50, 50:70] = 1
    compressed = mask_utils.encode(np.asfortranarray(grid))
    compressed["counts"] = compressed["counts"].decode("ascii")
    # Uncompressed RLE: run lengths of the column-major pixels, starting with a run of zeros.
    runs = [len(list(group)) for _, group in itertools.groupby(grid.flatten(order="F"))]
    uncompressed = {"size": [H, W], "counts": runs}
    anns = [_person(1, segmentation=square, area=400.0), _person(2, segmentation=compressed),
            _person(3, segmentation=uncompressed), _person(4)]
    path = _write_coco(tmp_path, anns)

    lazy = CocoKeypointsReader(path)
    assert lazy.has_mask and all(s.mask is None for s in lazy)
    masks = [s.mask for s in CocoKeypointsReader(path, load_masks=True)]
    assert masks[0].shape == (H, W) and masks[0].dtype == np.uint8
    assert abs(int(masks[0].sum()) - 400) <= 45  # polygon rasterisation covers the border pixels partly
    assert masks[0][20, 20] == 1 and masks[0][5, 5] == 0
    np.testing.assert_array_equal(masks[1], grid)
    np.testing.assert_array_equal(masks[2], grid)
    assert masks[3] is None  # no segmentation


def test_malformed_segmentations_are_skipped_when_loading_masks(tmp_path):
    anns = [_person(1, segmentation=[[10, 10, 30, 10, 30, 30, 10, 30]]),
            _person(2, segmentation=[[10, 10, 30, 10]]),  # a two-point "polygon"
            _person(3, segmentation={"counts": "abc"})]   # RLE without size
    path = _write_coco(tmp_path, anns)
    assert len(CocoKeypointsReader(path)) == 3  # not decoded, not checked
    reader = CocoKeypointsReader(path, load_masks=True)
    assert [s.ann_id for s in reader] == [1]
    reasons = dict(reader.skipped)
    assert "polygons" in reasons[2] and "RLE" in reasons[3]


def test_segmentation_to_mask_polygon_area():
    mask = segmentation_to_mask([[0, 0, 40, 0, 40, 20, 0, 20]], 30, 50)
    assert mask.shape == (30, 50)
    assert 800 <= mask.sum() <= 41 * 21


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        CocoKeypointsReader(tmp_path / "nothing.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"images": [')
    with pytest.raises(DatasetFileError, match="corrupt.json"):
        CocoKeypointsReader(corrupt)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(DatasetFileError, match="list.json"):
        CocoKeypointsReader(listing)


def test_default_image_root_follows_coco_layout(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    path = _write_coco(tmp_path / "annotations", [_person(1)], name="person_keypoints_val2017.json",
                       make_images=False)
    assert CocoKeypointsReader(path).image_root == tmp_path / "val2017"
    assert CocoKeypointsReader(path, image_root=tmp_path).image_root == tmp_path


def test_crowdpose_reader(tmp_path):
    keypoints = [0.0] * 42
    keypoints[36:42] = [30, 5, 1, 31, 15, 2]  # head top, neck
    images = [{"id": 1, "file_name": "a.jpg", "height": H, "width": W, "crowdIndex": 0.4}]
    path = _write_coco(tmp_path, [_person(1, keypoints=keypoints)], images=images)
    sample = CrowdPoseReader(path)[0]
    assert sample.convention == "crowdpose14" and sample.dataset == "crowdpose"
    np.testing.assert_array_equal(sample.keypoints2d[12], [30, 5, 1])
    assert sample.extra["crowd_index"] == pytest.approx(0.4)
    # A 14-keypoint file read as COCO-17 is reported person by person, not misread.
    wrong = CocoKeypointsReader(path)
    assert len(wrong) == 0 and "(17, 3)" in wrong.skipped[0][1]


def test_ochuman_mask_only_people(tmp_path):
    mask_only = _person(2)
    mask_only["keypoints"] = None
    mask_only["segmentation"] = [[10, 10, 30, 10, 30, 30, 10, 30]]
    no_field = {k: v for k, v in _person(3).items() if k != "keypoints"}
    path = _write_coco(tmp_path, [_person(1), mask_only, no_field])
    assert [s.ann_id for s in OCHumanReader(path)] == [1]
    everyone = OCHumanReader(path, min_keypoints=0, load_masks=True)
    assert [s.ann_id for s in everyone] == [1, 2, 3]
    assert (everyone[1].keypoints2d == 0).all() and everyone[1].mask.sum() > 0
    assert everyone[1].dataset == "ochuman"


def test_coco_people_applies_the_filters_every_coco_reader_shares():
    boxes_only = {k: v for k, v in _person(7).items() if k != "keypoints"}  # a box file: num_keypoints only
    annotations = [
        _person(1), _person(2, iscrowd=1), _person(3, keypoints=[0.0] * 51), _person(4, image_id=99),
        {k: v for k, v in _person(5).items() if k != "bbox"}, _person(6, bbox=(1, 2, -3, 4)), boxes_only,
        _person(8, bbox=(1, 2, 3)), _person(9, bbox=(1, 2, float("inf"), 4)), _person(10, category_id=3),
    ]
    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
    people = CocoPeople(data, "x.json", min_keypoints=1)
    assert [p.key for p in people.people] == [1, 7]
    assert [p.num_labelled for p in people.people] == [2, 2]
    assert people.people[0].bbox.dtype == np.float64 and people.people[0].image["file_name"] == "a.jpg"
    reasons = dict(people.skipped)
    assert sorted(reasons) == [4, 5, 6, 8, 9]
    assert "99" in reasons[4] and "bbox" in reasons[5] and "zero size" in reasons[6]
    assert "(4,)" in reasons[8] and "non-finite" in reasons[9]
    assert people.filtered == {"crowd": 1, "fewer than 1 keypoints": 1}
    assert [p.key for p in CocoPeople(data, "x.json", include_crowd=True).people] == [1, 2, 3, 7]
    with pytest.raises(DatasetFileError, match="x.json"):
        CocoPeople({"images": []}, "x.json")


# --- shared data -------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_mmpose_coco_sample(shared_data):
    path = shared_data / "mmpose_testdata" / "coco" / "test_coco.json"
    anns = json.loads(path.read_text())["annotations"]
    reader = CocoKeypointsReader(path, check_images=True)
    assert len(reader) == sum(a["num_keypoints"] > 0 for a in anns) == 12
    assert reader.skipped == [] and reader.filtered == {"fewer than 1 keypoints": 2}
    sample = reader[0]
    assert sample.ann_id == 442619
    np.testing.assert_array_equal(sample.keypoints2d[0], [367, 81, 2])
    np.testing.assert_allclose(sample.bbox, [280.79, 44.73, 218.7, 346.68], rtol=1e-6)
    assert sample.load_image().shape == (425, 640, 3) == sample.extra["image_size"] + (3,)
    by_id = {a["id"]: a for a in anns}
    for s in reader:
        assert int((s.keypoints2d[:, 2] > 0).sum()) == by_id[s.ann_id]["num_keypoints"]


@pytest.mark.shared_data
def test_coco_mini_train_masks_match_areas(shared_data):
    path = shared_data / "coco_mini_train" / "annotations" / "person_keypoints_train2017.json"
    reader = CocoKeypointsReader(path, load_masks=True)
    assert reader.image_root == shared_data / "coco_mini_train" / "train2017"
    assert len(reader) == 86 and reader.filtered == {"crowd": 5, "fewer than 1 keypoints": 81}
    relative = []
    for sample in reader:
        assert sample.mask.shape == sample.extra["image_size"]
        assert sample.mask.sum() > 0
        relative.append(abs(int(sample.mask.sum()) - sample.extra["area"]) / sample.extra["area"])
    assert np.median(relative) < 0.01 and max(relative) < 0.05
    image = reader[0].load_image()
    assert image.shape[:2] == reader[0].extra["image_size"]


@pytest.mark.shared_data
def test_crowdpose_sample(shared_data):
    reader = CrowdPoseReader(shared_data / "mmpose_testdata" / "crowdpose" / "test_crowdpose.json",
                             check_images=True)
    assert len(reader) == 4 and reader.filtered == {"fewer than 1 keypoints": 1}
    sample = reader[0]
    assert sample.ann_id == 123803 and sample.extra["crowd_index"] == pytest.approx(0.33)
    np.testing.assert_array_equal(sample.keypoints2d[12], [256, 27, 1])  # head top, occluded
    np.testing.assert_array_equal(sample.keypoints2d[0], [0, 0, 0])
    assert sample.load_image().shape == (425, 640, 3)


@pytest.mark.shared_data
def test_ochuman_rle_masks(shared_data):
    path = shared_data / "mmpose_testdata" / "ochuman" / "test_ochuman.json"
    anns = {a["id"]: a for a in json.loads(path.read_text())["annotations"]}
    reader = OCHumanReader(path, load_masks=True, check_images=True)
    assert len(reader) == len(anns) == 5 and reader.has_mask
    for sample in reader:
        ann = anns[sample.ann_id]
        area = int(sample.mask.sum())
        assert area == int(mask_utils.area(ann["segmentation"])) > 0
        x, y, w, h = (int(v) for v in sample.bbox)
        assert ann["area"] == w * h > area  # OCHuman's "area" is the box area
        inside = int(sample.mask[y:y + h + 1, x:x + w + 1].sum())
        # Annotation 3 of this test file carries a copy of annotation 2's mask (IoU 0.94), partly outside its box.
        assert inside >= (0.75 if sample.ann_id == 3 else 0.99) * area
    assert reader[0].load_image().shape == (864, 900, 3) == reader[0].mask.shape + (3,)


def test_teacher_world3d_becomes_weak_keypoints3d(tmp_path):
    ann = _write_coco(tmp_path, [_person(7), _person(8)])
    world = np.arange(33 * 3, dtype=np.float32).reshape(33, 3) / 100
    landmarks = np.zeros((33, 3), np.float32)
    landmarks[:, 2] = 0.9
    landmarks[15, 2] = 0.2  # a hidden wrist: left out
    (tmp_path / "blazepose.json").write_text(json.dumps({
        "info": {"convention": "blazepose33"},
        "annotations": {"7": {"detected": True, "world_landmarks": world.tolist(), "landmarks": landmarks.tolist()},
                        "8": {"detected": False}}}))
    reader = CocoKeypointsReader(ann, world3d=tmp_path / "blazepose.json")
    first, second = reader[0], reader[1]
    assert first.convention3d == "blazepose33" and first.extra["keypoints3d_weak"]
    np.testing.assert_allclose(first.keypoints3d[:, :3], world)
    assert first.keypoints3d[15, 3] == 0 and first.keypoints3d[0, 3] == 1
    assert second.keypoints3d is None and "keypoints3d_weak" not in second.extra
    (tmp_path / "bad.json").write_text(json.dumps({"annotations": {}}))
    with pytest.raises(DatasetFileError, match="bad.json: not a teacher 3D keypoints file"):
        CocoKeypointsReader(ann, world3d=tmp_path / "bad.json")


def test_body_fits_become_pose_labels_and_keypoints3d(tmp_path):
    ann = _write_coco(tmp_path, [_person(7), _person(8)])
    vector = np.linspace(-1, 1, 20).astype(np.float32)
    points = np.arange(17 * 3, dtype=np.float32).reshape(17, 3) / 100
    (tmp_path / "eft.json").write_text(json.dumps({
        "info": {"body_model": "anny", "convention": "coco17"},
        "annotations": {"7": {"pose_vector": vector.tolist(), "keypoints3d": points.tolist(), "error": 0.02}}}))
    reader = CocoKeypointsReader(ann, body_params=tmp_path / "eft.json")
    first, second = reader[0], reader[1]
    assert first.body_model == "anny" and first.convention3d == "coco17"
    np.testing.assert_allclose(first.body_params["pose_vector"], vector)
    np.testing.assert_allclose(first.keypoints3d[:, :3], points)
    assert (first.keypoints3d[:, 3] == 1).all() and "keypoints3d_weak" not in first.extra  # full 3D, not weak
    assert second.body_params is None and second.keypoints3d is None  # a person without a fit keeps its 2D only
    with pytest.raises(ValueError, match="world3d or body_params, not both"):
        CocoKeypointsReader(ann, body_params=tmp_path / "eft.json", world3d=tmp_path / "eft.json")
    (tmp_path / "bad.json").write_text(json.dumps({"info": {"body_model": "anny", "convention": "coco17"},
                                                   "annotations": {"7": {"pose_vector": [float("nan")],
                                                                         "keypoints3d": points.tolist()}}}))
    with pytest.raises(DatasetFileError, match="bad.json: not a body-fit file.*non-finite"):
        CocoKeypointsReader(ann, body_params=tmp_path / "bad.json")
