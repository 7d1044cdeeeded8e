"""``lowres-hps predict`` end to end: with a 2D test double (COCO results, ids, bad inputs, videos) and with a
small random 3D model (keypoints_3d, bodies, meshes, the default 3D model, and ``evaluate kp3d`` on the output)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from lowres_hps.apis import detector as detector_module
from lowres_hps.apis import registry
from lowres_hps.models import weights as named_weights
from lowres_hps.commands import predict as predict_cmd
from lowres_hps.apis.predictor import PersonPrediction, Predictor
from lowres_hps.apis.registry import ModelCard, save_checkpoint
from lowres_hps.cli import main
from lowres_hps.imaging.crop import crop_box
from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

K = 17


class CentreEstimator:
    """Test double: keypoint 0 at the crop centre, keypoint 1 at its top-left edge corner, the rest at the centre."""

    def __init__(self):
        self.input_size = (64, 48)
        self.scale_factor = 1.25
        self.convention = "coco17"
        self.flip_test = False
        self.crops: list[torch.Tensor] = []

    def __call__(self, crops, range_index=None):
        self.crops.extend(crops)
        h, w = self.input_size
        points = torch.tensor([[(w - 1) / 2, (h - 1) / 2]]).repeat(K, 1)
        points[1] = torch.tensor([-0.5, -0.5])
        return points.expand(len(crops), K, 2), torch.full((len(crops), K), 0.8)


class FixedDetector:
    """Stands in for the HOG detector: one person in the middle of every image, score 0.5."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __call__(self, image):
        h, w = image.shape[:2]
        return np.array([[w / 4, h / 8, w / 2, 3 * h / 4]]), np.array([0.5])


_real_default_detector = predict_cmd.default_detector


@pytest.fixture(autouse=True)
def _hog_unless_said(monkeypatch):
    """``--detector auto`` picks HOG here whatever pretrained files this machine has (the tests stub HOG)."""
    monkeypatch.setattr(predict_cmd, "default_detector", lambda: "hog")


@pytest.fixture
def estimator(monkeypatch):
    double = CentreEstimator()
    loaded = []
    monkeypatch.setattr(predict_cmd, "load_estimator", lambda name, device=None: loaded.append(name) or double)
    monkeypatch.setattr(predict_cmd, "default_model3d", lambda: None)  # 2D only, whatever is installed
    double.loaded = loaded
    return double


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["predict", *argv])
    return code, out.getvalue(), err.getvalue()


def _scene(seed=0, size=(120, 160)):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 30, (*size, 3)), 0, 255).astype(np.uint8)


def _ground_truth(tmp_path, names, boxes):
    """A tiny COCO keypoint file: one labelled person per image, ids 101, 102, ..."""
    images, annotations = [], []
    for n, (name, box) in enumerate(zip(names, boxes)):
        images.append({"id": 101 + n, "file_name": f"val/{name}", "width": 160, "height": 120})
        keypoints = [box[0] + box[2] / 2, box[1] + box[3] / 2, 2] * K
        annotations.append({"id": n + 1, "image_id": 101 + n, "category_id": 1, "bbox": box, "area": box[2] * box[3],
                            "iscrowd": 0, "num_keypoints": K, "keypoints": keypoints})
    annotations.append({"id": 99, "image_id": 101, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                        "iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * (3 * K)})
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(K)], "skeleton": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(dataset))
    return path


@pytest.mark.parametrize("person_height", [None, "20"])
def test_boxes_give_ids_and_coco_results_in_image_coordinates(tmp_path, estimator, person_height):
    folder = tmp_path / "imgs"
    folder.mkdir()
    names, boxes = ["a.png", "b.png"], [[30.0, 20.0, 40.0, 80.0], [100.5, 10.0, 30.0, 60.0]]
    for n, name in enumerate(names):
        Image.fromarray(_scene(n)).save(folder / name)
    gt = _ground_truth(tmp_path, names, boxes)
    out = tmp_path / "out"
    argv = [str(folder), "--boxes", str(gt), "--out", str(out)]
    code, stdout, stderr = _run(argv + (["--person-height", person_height] if person_height else []))
    assert code == 0, stderr
    assert "1 person boxes without labelled keypoints left out" in stderr
    summary = json.loads(stdout)
    assert summary["people"] == 2 and summary["images"] == 2 and summary["failed"] == 0
    assert estimator.loaded == [predict_cmd.DEFAULT_MODEL]
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [101, 102]
    for result, box in zip(results, boxes):
        keypoints = np.asarray(result["keypoints"]).reshape(K, 3)
        # predictions.json rounds to 0.01 px (0.005) after float32 model outputs (~1e-5 px of round-off at 100 px,
        # which may tip a value at the rounding boundary either way on another CPU).
        rounding = 0.005 + 1e-4
        np.testing.assert_allclose(keypoints[0, :2], [box[0] + box[2] / 2, box[1] + box[3] / 2], atol=rounding)
        np.testing.assert_allclose(keypoints[1, :2], crop_box(np.asarray(box), (64, 48), 1.25)[:2], atol=rounding)
        assert result["category_id"] == 1 and result["bbox"] == box
        assert result["score"] == pytest.approx(0.8) and np.allclose(keypoints[:, 2], 0.8)
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = COCO(str(gt)).loadRes(str(out / "predictions.json"))
    assert sorted(loaded.getImgIds()) == [101, 102] and len(loaded.getAnnIds()) == 2
    assert not (out / "images.json").exists()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.jpg", "b.jpg"]
    # --person-height reached the model: it saw the protocol's crop degraded to R = 20.
    if person_height:
        expected = Predictor(CentreEstimator(), person_height=20.0).crop(_scene(0), np.asarray(boxes[0]))
        torch.testing.assert_close(estimator.crops[0], expected.image, rtol=0, atol=0)


def test_bad_inputs_are_reported_and_the_rest_processed(tmp_path, estimator):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(_scene(0)).save(folder / "good.jpg", quality=95)
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(folder / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(folder / "deep.png"), (_scene(1).astype(np.uint16) * 257))
    cv2.imwrite(str(folder / "gray.png"), _scene(2)[..., 0])
    Image.fromarray(np.dstack([_scene(3), np.full((120, 160), 90, np.uint8)]), "RGBA").save(folder / "alpha.png")
    (folder / "empty.png").write_bytes(b"")
    names = ["alpha.png", "deep.png", "empty.png", "good.jpg", "gray.png", "tiny.png", "truncated.jpg"]
    gt = _ground_truth(tmp_path, names, [[20.0, 10.0, 40.0, 90.0]] * len(names))
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(folder), str(tmp_path / "nowhere.png"), "--boxes", str(gt), "--out", str(out)])
    assert code == 1
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 4
    for name, reason in [("empty.png", "empty file"), ("tiny.png", "too small"), ("truncated.jpg", "truncated"),
                         ("nowhere.png", "not found")]:
        assert any(name in line and reason in line for line in errors), (name, errors)
    notes = [line for line in stderr.splitlines() if ": note: " in line]
    assert any("16-bit" in line and "deep.png" in line for line in notes)
    assert any("grayscale" in line and "gray.png" in line for line in notes)
    assert any("alpha" in line and "alpha.png" in line for line in notes)
    results = json.loads((out / "predictions.json").read_text())
    assert sorted(r["image_id"] for r in results) == [101, 102, 104, 105]  # alpha, deep, good, gray
    assert json.loads(stdout)["failed"] == 4


def test_detector_path_assigns_ids_and_writes_images_json(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    for name in ("z.png", "y.png"):
        Image.fromarray(_scene()).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "z.png"), str(tmp_path / "broken.png"), str(tmp_path / "y.png"),
                                 "--out", str(out), "--no-overlay", "--flip-test"])
    assert code == 1 and "broken.png" in stderr and estimator.flip_test is True
    images = json.loads((out / "images.json").read_text())
    assert [(i["id"], i["file_name"].rsplit("/", 1)[-1]) for i in images] == [(1, "z.png"), (2, "broken.png"),
                                                                              (3, "y.png")]
    assert "error" in images[1] and images[0]["width"] == 160
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [1, 3]
    assert results[0]["score"] == pytest.approx(0.4)  # mean keypoint score 0.8 x detector score 0.5
    assert results[0]["bbox"] == [40.0, 15.0, 80.0, 90.0]
    assert not (out / "overlays").exists()


def test_overlays_draw_the_people_and_keep_same_named_files_apart(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(tmp_path / folder / "same.png")
    out = tmp_path / "out"
    code, stdout, _ = _run([str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)])
    assert code == 0 and json.loads(stdout)["overlay_images"] == str(out / "overlays")
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["same.jpg", "same_2.jpg"]
    overlay = cv2.imread(str(out / "overlays" / "same.jpg"))
    assert overlay[15, 80].min() > 200  # the white box's top edge (box 40, 15, 80, 90)
    assert overlay[60, 80].max() > 100  # keypoints (score 0.8) drawn at the box centre
    assert overlay[5, 5].max() < 30  # the rest stays black


def _write_video(path, count=5, size=(96, 128)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, size[::-1])
    for i in range(count):
        writer.write(_scene(i, size))
    writer.release()


def _frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_video_gets_an_overlay_video_with_every_frame(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4")
    Image.fromarray(_scene()).save(tmp_path / "still.png")
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "still.png"), str(tmp_path / "walk.mp4"), "--out", str(out),
                                 "--batch-size", "2"])
    assert code == 0, stderr
    assert _frame_count(out / "walk_overlay.mp4") == 5
    summary = json.loads(stdout)
    assert summary["frames"] == 5 and summary["images"] == 1
    assert summary["overlay_videos"] == [str(out / "walk_overlay.mp4")]
    images = json.loads((out / "images.json").read_text())
    assert [i["id"] for i in images] == [1, 2, 3, 4, 5, 6]  # the image first, then the frames
    assert [i.get("frame_index") for i in images] == [None, 0, 1, 2, 3, 4]
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(results[3]["keypoints"][:2], [64.0, 48.0], atol=0.005)  # 128 x 96 frame centre


def test_videos_are_tracked_with_mot_file_per_track_outputs_and_a_trajectory_plot(tmp_path, estimator, monkeypatch):
    from lowres_hps.tracking import read_mot

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4")
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(out), "--no-overlay", "--batch-size", "2"])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["frames_per_second"] > 0
    assert summary["tracks"] == [str(out / "walk_mot.txt"), str(out / "tracks/walk.json"),
                                 str(out / "tracks/walk_trajectories.png")]
    results = json.loads((out / "predictions.json").read_text())
    assert [r["track_id"] for r in results] == [1] * 5
    rows = read_mot(out / "walk_mot.txt")
    assert rows[:, 0].tolist() == [1, 2, 3, 4, 5] and set(rows[:, 1]) == {1}
    np.testing.assert_allclose(rows[0, 2:6], results[0]["bbox"], atol=0.01)
    tracks = json.loads((out / "tracks/walk.json").read_text())["tracks"]
    assert [t["track_id"] for t in tracks] == [1] and tracks[0]["frames"] == [0, 1, 2, 3, 4]
    assert Image.open(out / "tracks/walk_trajectories.png").size == (128, 96)  # the frame's size

    code, stdout, _ = _run([str(tmp_path / "walk.mp4"), "--out", str(tmp_path / "plain"), "--no-overlay", "--no-track"])
    assert code == 0 and "tracks" not in json.loads(stdout)
    assert not (tmp_path / "plain/walk_mot.txt").exists()
    assert all("track_id" not in r for r in json.loads((tmp_path / "plain/predictions.json").read_text()))


def test_detect_every_k_frames_follows_the_tracks_between(tmp_path, estimator, monkeypatch):
    calls = []

    class CountingDetector(FixedDetector):
        def __call__(self, image):  # one person in the middle; from the second call on, a second one on the left
            calls.append(image.shape)
            boxes, scores = super().__call__(image)
            if len(calls) > 1:
                boxes, scores = np.vstack([boxes, [[2.0, 10.0, 20.0, 60.0]]]), np.append(scores, 0.5)
            return boxes, scores

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", CountingDetector)
    _write_video(tmp_path / "walk.mp4")
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(out), "--no-overlay", "--detect-every", "3"])
    assert code == 0, stderr
    assert len(calls) == 2  # frames 0 and 3
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results if r["track_id"] == 1] == [1, 2, 3, 4, 5]
    # A person first detected on frame 3 is reported at once and followed on frame 4 (no second detection needed).
    assert [r["image_id"] for r in results if r["track_id"] == 2] == [4, 5]
    assert all(r["score"] == pytest.approx(0.8 * 0.5, abs=1e-3) for r in results)  # the detector's box score kept
    code, _, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(out), "--detect-every", "2", "--no-track"])
    assert code == 2 and "--detect-every needs --track" in stderr


def test_boxes_between_detections_move_with_the_confident_keypoints():
    from lowres_hps.commands.predict import _moved_with_keypoints

    keypoints = np.column_stack([np.arange(17.0), np.arange(17.0) * 2, np.full(17, 0.9)])
    old = PersonPrediction(bbox=np.array([10.0, 20.0, 30.0, 60.0]), keypoints=keypoints, score=0.5, box_score=0.7)
    moved = keypoints + [5.0, -2.0, 0.0]
    moved[0, :2] += 100.0  # a keypoint the model is unsure of does not count
    moved[0, 2] = 0.1
    new = PersonPrediction(bbox=old.bbox.copy(), keypoints=moved, score=0.8, box_score=1.0)
    result = _moved_with_keypoints(new, old)
    np.testing.assert_allclose(result.bbox, [15.0, 18.0, 30.0, 60.0])
    assert result.box_score == 0.7 and result.score == pytest.approx(moved[:, 2].mean() * 0.7)


def test_streams_are_predicted_like_videos_and_a_missing_camera_is_reported(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4")
    url = f"file://{tmp_path / 'walk.mp4'}"
    out = tmp_path / "out"
    code, stdout, stderr = _run([url, "camera:97", "--out", str(out), "--no-overlay"])
    assert code == 1 and "cannot open the stream" in stderr and "camera:97" in stderr
    assert json.loads(stdout)["frames"] == 5
    images = json.loads((out / "images.json").read_text())
    assert {i["file_name"] for i in images} == {url}
    assert len(list(out.glob("*_mot.txt"))) == 1


def test_shards_take_every_nth_input_and_merge_with_unique_ids(tmp_path, estimator, monkeypatch):
    from lowres_hps.commands.predict import merge_shards, parse_shard

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in range(5):
        Image.fromarray(_scene(n)).save(folder / f"{n}.png")
    for k in range(2):
        code, stdout, _ = _run([str(folder), "--out", str(tmp_path / "out"), "--no-overlay", "--shard", f"{k}/2"])
        assert code == 0 and json.loads(stdout)["images"] == (3, 2)[k]
    outs = [tmp_path / "out" / "shards" / str(k) for k in range(2)]
    files = [[i["file_name"] for i in json.loads((o / "images.json").read_text())] for o in outs]
    assert [Path(f).name for f in files[0]] == ["0.png", "2.png", "4.png"]
    merged = merge_shards(outs, tmp_path)
    images = json.loads((tmp_path / "images.json").read_text())
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert merged["images"] == 5 and sorted(i["id"] for i in images) == [1, 2, 3, 4, 5]
    assert sorted(p["image_id"] for p in predictions) == [1, 2, 3, 4, 5]
    assert {Path(i["file_name"]).name for i in images} == {f"{n}.png" for n in range(5)}
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert parse_shard("auto") == (1, 4) and parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    with pytest.raises(ValueError, match="--shard"):
        parse_shard("3/3")


def test_workers_run_shards_in_child_processes_and_merge(tmp_path):
    """Two real child processes (a tiny 2D checkpoint, given boxes: no detector, no download)."""
    from lowres_hps.apis.registry import ModelCard, save_checkpoint
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    cfg = Pose2DConfig(backbone="mobilenet_v3_small", input_size=(64, 48),
                       backbone_params={"width_mult": 0.25, "neck_channels": 8})
    model = save_checkpoint(build_pose_model(cfg), ModelCard.from_config("tiny", cfg), tmp_path / "tiny.safetensors")
    folder = tmp_path / "val"
    folder.mkdir()
    names = [f"{n}.png" for n in range(3)]
    for n, name in enumerate(names):
        Image.fromarray(_scene(n)).save(folder / name)
    gt = _ground_truth(tmp_path, names, [[30.0, 20.0, 40.0, 80.0]] * 3)
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(folder), "--boxes", str(gt), "--model", str(model), "--model3d", "none",
                                 "--out", str(out), "--no-overlay", "--workers", "2"])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["workers"] == 2 and summary["exit_codes"] == [0, 0]
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(p["image_id"] for p in predictions) == [101, 102, 103]  # the --boxes file's ids


def test_smoothing_parameters_reach_the_tracker_and_bad_ones_are_refused(tmp_path, estimator, monkeypatch):
    from lowres_hps.apis import people_tracker

    made = []
    real = people_tracker.PeopleTracker
    monkeypatch.setattr(people_tracker, "PeopleTracker",
                        lambda config, fps, **kwargs: made.append(config) or real(config, fps, **kwargs))
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4")
    code, _, _ = _run([str(tmp_path / "walk.mp4"), "--out", str(tmp_path / "out"), "--no-overlay",
                       "--smooth-position", "1.5", "0.02", "--smooth-rotation", "3", "0.5"])
    assert code == 0
    assert (made[-1].position.min_cutoff, made[-1].position.beta) == (1.5, 0.02)
    assert (made[-1].rotation.min_cutoff, made[-1].rotation.beta) == (3.0, 0.5)
    code, _, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(tmp_path / "out2"), "--smooth-position", "0", "1"])
    assert code == 2 and "--smooth-position: min_cutoff must be a positive frequency" in stderr


def test_real_hog_on_blank_frames_finds_nobody(tmp_path, estimator):
    if not detector_module.hog_available():
        pytest.skip("this OpenCV has no HOG (opencv-contrib needed in 5.x)")
    _write_video(tmp_path / "clip.mp4", count=3)
    code, stdout, stderr = _run([str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out")])
    assert code == 0, stderr
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == []
    assert [i["id"] for i in json.loads((tmp_path / "out" / "images.json").read_text())] == [1, 2, 3]
    assert _frame_count(tmp_path / "out" / "clip_overlay.mp4") == 3


def _write_mjpg_clip(path, frames: int = 8) -> None:
    """An MJPG AVI of ``frames`` 96x128 scenes: one JPEG per frame, so a test can cut or corrupt frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 96))
    for i in range(frames):
        writer.write(_scene(i, (96, 128)))
    writer.release()


def test_truncated_video_fails_after_its_good_frames(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_mjpg_clip(tmp_path / "full.avi")
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    code, stdout, stderr = _run([str(tmp_path / "cut.avi"), "--out", str(tmp_path / "out")])
    assert code == 1 and "cut.avi" in stderr and "of 8 frames" in stderr
    decoded = json.loads(stdout)["frames"]
    assert 0 < decoded < 8 and _frame_count(tmp_path / "out" / "cut_overlay.mp4") == decoded


def test_user_errors_exit_2(tmp_path, estimator, monkeypatch):
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    _write_video(tmp_path / "v.mp4", count=2)
    gt = _ground_truth(tmp_path, ["a.png"], [[1.0, 1.0, 20.0, 40.0]])
    code, _, stderr = _run([str(tmp_path / "v.mp4"), "--boxes", str(gt), "--out", str(tmp_path / "o")])
    assert code == 2 and "--boxes" in stderr
    code, _, stderr = _run([str(tmp_path / "a.png"), "--all-boxes", "--out", str(tmp_path / "o")])
    assert code == 2 and "--all-boxes needs --boxes" in stderr
    code, _, stderr = _run([str(tmp_path / "a.png"), "--person-height", "0", "--out", str(tmp_path / "o")])
    assert code == 2 and "--person-height" in stderr
    del estimator.flip_test
    code, _, stderr = _run([str(tmp_path / "a.png"), "--boxes", str(gt), "--no-flip-test",
                            "--out", str(tmp_path / "o")])
    assert code == 2 and "flip test" in stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    # The real loader: a model name nobody registered.
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    gt = _ground_truth(tmp_path, ["a.png"], [[1.0, 1.0, 20.0, 40.0]])
    code, _, stderr = _run([str(tmp_path / "a.png"), "--boxes", str(gt), "--model", "no_such_model_xyz",
                            "--out", str(tmp_path / "o")])
    assert code == 2 and "no_such_model_xyz" in stderr


def test_max_frames_stops_a_video_early(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4")
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(out), "--max-frames", "3"])
    assert code == 0, stderr
    assert json.loads(stdout)["frames"] == 3
    assert _frame_count(out / "walk_overlay.mp4") == 3
    assert [i["id"] for i in json.loads((out / "images.json").read_text())] == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# 3D


@pytest.fixture(scope="module")
def model3d(tmp_path_factory):
    """A small random 3D model checkpoint (ResNet-18 on a 64 px canvas, Anny)."""
    torch.manual_seed(0)
    cfg = Body3DConfig(canvas=64)
    path = tmp_path_factory.mktemp("weights3d") / "tiny_rsc.safetensors"
    save_checkpoint(build_body3d_model(cfg, pretrained=False), ModelCard.from_config("tiny_rsc", cfg), path)
    return path


SHIPPED_2D = registry.PACKAGE_WEIGHTS_DIR / f"{predict_cmd.DEFAULT_MODEL}.safetensors"


def _images_with_boxes(tmp_path, boxes=([30.0, 20.0, 40.0, 80.0], [100.5, 10.0, 30.0, 60.0])):
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = [f"{chr(97 + n)}.png" for n in range(len(boxes))]
    for n, name in enumerate(names):
        Image.fromarray(_scene(n)).save(folder / name)
    return folder, _ground_truth(tmp_path, names, [list(b) for b in boxes]), [list(b) for b in boxes]


def _project(points, body):
    points = np.asarray(points, dtype=np.float64)
    return body["focal"] * points[:, :2] / points[:, 2:] + np.asarray(body["principal_point"])


@pytest.mark.parametrize("as_model", [False, True], ids=["model3d", "model"])
def test_3d_model_adds_keypoints_3d_bodies_and_meshes(tmp_path, model3d, as_model):
    import trimesh

    folder, gt, boxes = _images_with_boxes(tmp_path)
    out = tmp_path / "out"
    fmt = "ply" if as_model else "obj"
    models = ["--model", str(model3d)] if as_model else ["--model", str(SHIPPED_2D), "--model3d", str(model3d)]
    code, stdout, stderr = _run([str(folder), "--boxes", str(gt), "--person-height", "32", "--out", str(out),
                                 "--mesh-format", fmt, *models])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["model3d"] == str(model3d) and summary["meshes"] == str(out / "meshes")
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [101, 102]
    for result, box in zip(results, boxes):
        keypoints_3d = np.asarray(result["keypoints_3d"])
        assert keypoints_3d.shape == (K, 3) and (keypoints_3d[:, 2] > 0).all()
        assert np.array_equal(keypoints_3d, np.round(keypoints_3d, 4))
        body = result["body"]
        assert body["focal"] == pytest.approx(200.0) and body["principal_point"] == [79.5, 59.5]  # 160 x 120
        # keypoints_3d_projected: those keypoints seen by that camera (what evaluate kp2d --from 3d scores).
        np.testing.assert_allclose(result["keypoints_3d_projected"], _project(keypoints_3d, body), atol=0.02)
        assert body["body_model"] == "anny" and body["range_index"] == 4 and len(body["camera"]) == 3
        keypoints = np.asarray(result["keypoints"]).reshape(K, 3)
        if as_model:  # 2D and 3D come from the same body
            assert np.abs(_project(keypoints_3d, body) - keypoints[:, :2]).max() < 0.05 * box[3]
            assert result["score"] == 1.0
        assert result["mesh"] == f"meshes/{'ab'[results.index(result)]}_0.{fmt}"
        mesh = trimesh.load(out / result["mesh"], process=False)
        assert mesh.vertices.shape == (13718, 3) and len(mesh.faces) == 27420
        # The mesh is the same body as keypoints_3d, in the same camera: it projects onto the person box.
        pixels = _project(mesh.vertices, body)
        centre = np.asarray(box[:2]) + np.asarray(box[2:]) / 2
        assert np.abs(np.median(pixels, 0) - centre).max() < 0.25 * box[3]
        assert np.abs(mesh.vertices[:, 2].mean() - keypoints_3d[:, 2].mean()) < 0.2
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.jpg", "b.jpg"]
    with contextlib.redirect_stdout(io.StringIO()):  # still a COCO results file
        assert len(COCO(str(gt)).loadRes(str(out / "predictions.json")).getAnnIds()) == 2


def test_flip_test_3d_changes_the_bodies_and_needs_a_3d_model(tmp_path, model3d):
    folder, gt, _ = _images_with_boxes(tmp_path)
    bodies = {}
    for flag in ("--flip-test-3d", "--no-flip-test-3d"):
        out = tmp_path / flag
        code, stdout, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(out), "--model", str(SHIPPED_2D),
                                     "--model3d", str(model3d), "--no-fit-keypoints", "--no-overlay", flag])
        assert code == 0, stderr
        assert json.loads(stdout)["flip_test_3d"] is (flag == "--flip-test-3d")  # the summary says which ran
        bodies[flag] = [r["body"]["pose_vector"] for r in json.loads((out / "predictions.json").read_text())]
    assert not np.allclose(bodies["--flip-test-3d"], bodies["--no-flip-test-3d"], atol=1e-3)
    code, _, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(tmp_path / "none"), "--model",
                            str(SHIPPED_2D), "--model3d", "none", "--flip-test-3d"])
    assert code == 2 and "--flip-test-3d needs a 3D model" in stderr


def test_overlay_shows_the_mesh(tmp_path, model3d, estimator):
    folder, gt, boxes = _images_with_boxes(tmp_path, boxes=([40.0, 10.0, 50.0, 100.0],))
    overlays = {}
    for name in ("none", str(model3d)):
        out = tmp_path / f"out_{len(overlays)}"
        # no skeleton: meshes only; no fit to the double's keypoints, which all sit at the crop centre
        code, _, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(out), "--model3d", name,
                                "--kpt-threshold", "1.1", "--no-fit-keypoints"])
        assert code == 0, stderr
        overlays[name] = cv2.imread(str(out / "overlays" / "a.jpg")).astype(int)
    difference = np.abs(overlays["none"] - overlays[str(model3d)]).max(-1)
    x, y, w, h = boxes[0]
    inside = difference[int(y) + 10:int(y + h) - 10, int(x) + 15:int(x + w) - 15]
    assert (inside > 40).mean() > 0.1  # the mesh covers part of the box
    assert difference[:, int(x + w) + 20:].max() < 20  # far right of the box: only JPEG noise


def test_bodies_are_fitted_to_the_2d_keypoints_by_default(tmp_path, model3d, estimator):
    folder, gt, boxes = _images_with_boxes(tmp_path)
    runs = {}
    for flag in (["--fit-steps", "30"], ["--no-fit-keypoints"]):
        out = tmp_path / f"out{len(runs)}"
        code, stdout, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(out), "--no-overlay",
                                     "--model3d", str(model3d), *flag])
        assert code == 0, stderr
        runs[flag[0]] = (json.loads(stdout), json.loads((out / "predictions.json").read_text()))
    fitted_summary, fitted = runs["--fit-steps"]
    plain_summary, plain = runs["--no-fit-keypoints"]
    assert fitted_summary["fit_keypoints"]["steps"] == 30 and plain_summary["fit_keypoints"] is None
    for person, reference in zip(fitted, plain):
        assert "fitted_to_keypoints" not in reference["body"] and person["body"]["fitted_to_keypoints"] is True
        keypoints = np.asarray(person["keypoints"]).reshape(K, 3)[:, :2]  # the double's: all but one at the centre

        def distance(result):
            return np.linalg.norm(np.asarray(result["keypoints_3d_projected"]) - keypoints, axis=1).mean()

        assert distance(person) < 0.8 * distance(reference)


def test_fit_keypoints_needs_a_separate_2d_model(tmp_path, model3d):
    folder, gt, _ = _images_with_boxes(tmp_path)
    code, _, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(tmp_path / "out"), "--model",
                            str(model3d), "--fit-keypoints"])
    assert code == 2 and "--fit-keypoints cannot run" in stderr and "also the 2D model" in stderr
    code, _, stderr = _run([str(folder), "--boxes", str(gt), "--out", str(tmp_path / "out2"), "--fit-steps", "0"])
    assert code == 2 and "--fit-steps must be at least 1" in stderr


def test_default_3d_model_runs_when_installed(tmp_path, model3d, monkeypatch):
    import shutil

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(model3d, weights / f"{predict_cmd.DEFAULT_MODEL_3D}.safetensors")
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(weights))
    monkeypatch.setattr(predict_cmd, "load_estimator", lambda name, device=None: CentreEstimator())  # 2D double
    folder, gt, _ = _images_with_boxes(tmp_path)
    base = [str(folder), "--boxes", str(gt), "--no-overlay"]
    code, stdout, stderr = _run([*base, "--out", str(tmp_path / "a")])
    assert code == 0, stderr
    assert json.loads(stdout)["model3d"] == predict_cmd.DEFAULT_MODEL_3D
    assert all("keypoints_3d" in r for r in json.loads((tmp_path / "a" / "predictions.json").read_text()))
    code, stdout, stderr = _run([*base, "--out", str(tmp_path / "b"), "--model3d", "none"])
    assert code == 0 and json.loads(stdout)["model3d"] is None and "3D" not in stderr
    assert not any("keypoints_3d" in r for r in json.loads((tmp_path / "b" / "predictions.json").read_text()))
    # Not installed: 2D only, said once on stderr.
    monkeypatch.delenv(registry.WEIGHTS_DIR_ENV)
    monkeypatch.setattr(named_weights, "PACKAGE_WEIGHTS_DIR", tmp_path / "empty")
    code, stdout, stderr = _run([*base, "--out", str(tmp_path / "c")])
    assert code == 0 and json.loads(stdout)["model3d"] is None
    assert stderr.count(f"the default 3D model '{predict_cmd.DEFAULT_MODEL_3D}' is not installed") == 1
    assert not any("keypoints_3d" in r for r in json.loads((tmp_path / "c" / "predictions.json").read_text()))


def test_video_frames_get_meshes(tmp_path, model3d, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_video(tmp_path / "walk.mp4", count=2)
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "walk.mp4"), "--out", str(out), "--model", str(model3d),
                                 "--mesh-format", "glb"])
    assert code == 0, stderr
    results = json.loads((out / "predictions.json").read_text())
    assert [r["mesh"] for r in results] == ["meshes/walk_000000_0.glb", "meshes/walk_000001_0.glb"]
    assert all((out / r["mesh"]).is_file() for r in results)
    assert _frame_count(out / "walk_overlay.mp4") == 2


def test_3d_user_errors_exit_2(tmp_path, estimator):
    folder, gt, _ = _images_with_boxes(tmp_path)
    base = [str(folder), "--boxes", str(gt), "--out", str(tmp_path / "o")]
    code, _, stderr = _run([*base, "--model3d", "none", "--mesh-format", "obj"])
    assert code == 2 and "--mesh-format needs a 3D model" in stderr
    code, _, stderr = _run([*base, "--model3d", str(SHIPPED_2D)])
    assert code == 2 and "is not a 3D body model" in stderr
    code, _, stderr = _run([*base, "--model3d", str(tmp_path / "missing.safetensors")])
    assert code == 2 and "missing.safetensors" in stderr


def _synthlr_folder(root, count=2, seed=0):
    """A SynthLR folder as ``lowres-hps synth`` lays it out, with noise images and random 3D people."""
    from lowres_hps.data.synth.writer import coco_categories, save_npz_deterministic

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for n in range(count):
        Image.fromarray(_scene(n, (224, 224))).save(root / "images" / f"{n:09d}.jpg")
        images.append({"id": n + 1, "file_name": f"{n:09d}.jpg", "width": 224, "height": 224, "focal": 500.0,
                       "principal_point": [111.5, 111.5]})
        keypoints = np.column_stack([rng.uniform(40, 180, (K, 2)), np.full(K, 2.0)])
        annotations.append({"id": n + 1, "image_id": n + 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
                            "bbox": [22.0, 22.0, 180.0, 180.0], "keypoints": keypoints.reshape(-1).tolist(),
                            "num_keypoints": K})
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": coco_categories()}))
    save_npz_deterministic(root / "annotations_3d.npz", {
        "ann_id": np.arange(1, count + 1), "image_id": np.arange(1, count + 1),
        "keypoints3d": rng.normal([0.0, 0.0, 4.0], 0.3, (count, K, 3)).astype(np.float32),
        "joints3d": np.zeros((count, 2, 3), np.float32), "pose_vector": np.zeros((count, 8), np.float32),
        "translation": np.tile(np.float32([0, 0, 4]), (count, 1)),
        "focal": np.full(count, 500.0, np.float32), "principal_point": np.full((count, 2), 111.5, np.float32)})
    return root


def _predict_then_evaluate(synth, out, model):
    code, _, stderr = _run([str(synth), "--boxes", str(synth / "annotations.json"), "--person-height", "32",
                            "--out", str(out), "--model", str(model), "--no-overlay"])
    assert code == 0, stderr
    assert "reading its images/ folder" in stderr
    evaluation = io.StringIO()
    with contextlib.redirect_stdout(evaluation):
        code = main(["evaluate", "kp3d", "--gt", str(synth), "--pred", str(out / "predictions.json")])
    assert code == 0
    return json.loads(evaluation.getvalue())


def test_predict_then_evaluate_kp3d_on_a_synthlr_folder(tmp_path, model3d):
    synth = _synthlr_folder(tmp_path / "synth")
    metrics = _predict_then_evaluate(synth, tmp_path / "out", model3d)
    assert metrics["num_samples"] == 2 and metrics["num_missing"] == 0 and metrics["root"] == "hips"
    assert 0 < metrics["pa_mpjpe_mm"] < metrics["mpjpe_mm"] < 5000


@pytest.mark.slow
def test_predict_then_evaluate_kp3d_on_generated_synthlr(tmp_path, model3d):
    from lowres_hps.data.synth.generator import SynthConfig
    from lowres_hps.data.synth.writer import generate_dataset

    synth = tmp_path / "synth"
    generate_dataset(synth, 2, seed=0, config=SynthConfig(layout="crops"), workers=1, progress=False)
    metrics = _predict_then_evaluate(synth, tmp_path / "out", model3d)
    assert metrics["num_samples"] + metrics["num_missing"] == metrics["num_gt"] == 2
    assert 0 < metrics["pa_mpjpe_mm"] < metrics["mpjpe_mm"] < 5000


# ---------------------------------------------------------------------------------------------
# Issue 9: nothing done is lost; bounded images; bad boxes; corrupted frames; refused arguments


class FailingEstimator(CentreEstimator):
    """CentreEstimator that raises ``error`` at its ``at``-th call (1-based), and can look at --out first."""

    def __init__(self, at, error, look=None):
        super().__init__()
        self.at, self.error, self.look, self.calls = at, error, look, 0

    def __call__(self, crops, range_index=None):
        self.calls += 1
        if self.look is not None:
            self.look(self.calls)
        if self.calls == self.at:
            raise self.error
        return super().__call__(crops)


def _three_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n, name in enumerate(["a.png", "b.png", "c.png"]):
        Image.fromarray(_scene(n)).save(folder / name)
    return folder


def _use_estimator(monkeypatch, double):
    monkeypatch.setattr(predict_cmd, "load_estimator", lambda name, device=None: double)
    monkeypatch.setattr(predict_cmd, "default_model3d", lambda: None)
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)


def test_a_failing_image_is_reported_and_the_others_kept(tmp_path, monkeypatch):
    _use_estimator(monkeypatch, FailingEstimator(2, RuntimeError("CUDA out of memory")))
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(_three_images(tmp_path)), "--out", str(out), "--batch-size", "1"])
    assert code == 1
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "b.png" in errors[0] and "CUDA out of memory" in errors[0]
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == [1, 3]
    images = json.loads((out / "images.json").read_text())
    assert [i["id"] for i in images] == [1, 2, 3] and images[1]["error"] == "prediction failed"
    assert json.loads(stdout)["images"] == 2


def test_a_failing_box_is_reported_and_the_other_boxes_of_its_image_kept(tmp_path, monkeypatch):
    # Both people of a.png in one batch, which fails: retried box by box, only the second box fails.
    calls = []

    def look(n):
        calls.append(n)
        if n in (1, 3):  # the batch of both boxes, then the second box alone
            raise ValueError("bad crop")

    _use_estimator(monkeypatch, FailingEstimator(None, None, look))
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    gt = _ground_truth(tmp_path, ["a.png"], [[30.0, 20.0, 40.0, 80.0]])
    dataset = json.loads(gt.read_text())
    dataset["annotations"].append({**dataset["annotations"][0], "id": 2, "bbox": [100.0, 10.0, 30.0, 60.0]})
    gt.write_text(json.dumps(dataset))
    code, _, stderr = _run([str(tmp_path / "a.png"), "--boxes", str(gt), "--out", str(tmp_path / "out")])
    assert code == 1 and calls == [1, 2, 3]
    assert "prediction failed for the box [100.0, 10.0, 30.0, 60.0]" in stderr
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [r["bbox"] for r in results] == [[30.0, 20.0, 40.0, 80.0]]


def test_results_reach_the_disk_chunk_by_chunk(tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = {}

    def look(n):  # what a crash at this point would leave behind
        path = out / "predictions.jsonl"
        seen[n] = [json.loads(line)["image_id"] for line in path.read_text().splitlines()] if path.exists() else None

    _use_estimator(monkeypatch, FailingEstimator(None, None, look))
    code, _, stderr = _run([str(_three_images(tmp_path)), "--out", str(out), "--batch-size", "1"])
    assert code == 0, stderr
    assert seen == {1: [], 2: [1], 3: [1, 2]}
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == [1, 2, 3]
    assert not (out / "predictions.jsonl").exists() and not (out / "images.jsonl").exists()


def test_ctrl_c_keeps_what_is_done_with_a_one_line_note(tmp_path, monkeypatch):
    _use_estimator(monkeypatch, FailingEstimator(3, KeyboardInterrupt()))
    out = tmp_path / "out"
    try:
        code, stdout, stderr = _run([str(_three_images(tmp_path)), "--out", str(out), "--batch-size", "1"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped predict: nothing was written")
    assert code == 130
    notes = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(notes) == 1 and "2 images" in notes[0] and "Traceback" not in stderr
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == [1, 2]
    assert [i["id"] for i in json.loads((out / "images.json").read_text())] == [1, 2]
    assert json.loads(stdout)["interrupted"] is True


def test_a_failed_final_write_keeps_the_results_in_the_journal(tmp_path, monkeypatch, estimator):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)

    def full_disk(self, predictions, images):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(predict_cmd._Journal, "assemble", full_disk)
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(_three_images(tmp_path)), "--out", str(out)])
    assert code == 1 and "No space left on device" in stderr and "predictions.jsonl" in stderr
    assert [json.loads(line)["image_id"] for line in (out / "predictions.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads(stdout)["predictions"] == str(out / "predictions.jsonl")


def test_image_above_the_pixel_limit_is_one_clear_error_and_the_rest_runs(tmp_path, estimator, monkeypatch):
    from lowres_hps.apis import inputs

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", 200 * 200)
    Image.fromarray(_scene(0, (300, 400))).save(tmp_path / "huge.jpg", quality=90)
    Image.fromarray(_scene(1)).save(tmp_path / "small.png")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw DecompressionBombWarning either
        code, _, stderr = _run([str(tmp_path / "huge.jpg"), str(tmp_path / "small.png"), "--out", str(out)])
    assert code == 1
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "image too large: 400 x 300 px" in errors[0] and "huge.jpg" in errors[0]
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == [2]


def test_images_in_memory_are_bounded_by_pixels_not_by_batch_size(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    monkeypatch.setattr(predict_cmd, "CHUNK_PIXELS", 2 * 120 * 160)
    batches = []
    original = Predictor.predict_images
    monkeypatch.setattr(Predictor, "predict_images",
                        lambda self, images, *a, **k: batches.append(len(images)) or original(self, images, *a, **k))
    code, _, stderr = _run([str(_three_images(tmp_path)), "--out", str(tmp_path / "out"), "--batch-size", "32"])
    assert code == 0, stderr
    assert batches == [2, 1]


def test_bad_boxes_are_reported_by_annotation_id_and_the_rest_processed(tmp_path, estimator):
    Image.fromarray(_scene()).save(tmp_path / "a.png")  # 160 x 120
    gt = _ground_truth(tmp_path, ["a.png"], [[30.0, 20.0, 40.0, 80.0]])
    dataset = json.loads(gt.read_text())
    good = dataset["annotations"][0]
    bad = {11: None, 12: [1.0, 2.0, 30.0], 13: [5.0, 5.0, 0.0, 10.0], 14: [5.0, 5.0, 10.0, -3.0],
           15: [500.0, 500.0, 10.0, 10.0], 16: [0.0, 0.0, 1e9, 1e9]}
    dataset["annotations"] += [{**good, "id": ann_id, "bbox": box} for ann_id, box in bad.items()]
    dataset["annotations"].append({**good, "id": 17, "image_id": 999})
    gt.write_text(json.dumps(dataset))
    code, stdout, stderr = _run([str(tmp_path / "a.png"), "--boxes", str(gt), "--out", str(tmp_path / "out")])
    assert code == 1 and "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    for ann_id, reason in [(11, "bbox is null"), (12, "4 numbers"), (13, "zero or negative size"),
                           (14, "zero or negative size"), (15, "lies outside the 160 x 120 image"),
                           (16, "more than 4 times"), (17, "image_id 999")]:
        assert sum(f"annotation {ann_id}" in line and reason in line for line in errors) == 1, (ann_id, errors)
    assert len(errors) == 7 and json.loads(stdout)["failed"] == 7
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [r["bbox"] for r in results] == [[30.0, 20.0, 40.0, 80.0]]


def test_corrupted_video_frames_are_reported_in_the_summary_and_images_json(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    _write_mjpg_clip(tmp_path / "clip.avi")
    data = bytearray((tmp_path / "clip.avi").read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    for frame in (2, 5):
        data[starts[frame]:starts[frame] + 2000] = bytes(2000)
    (tmp_path / "clip.avi").write_bytes(bytes(data))
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(tmp_path / "clip.avi"), "--out", str(out), "--no-overlay"])
    assert code == 1
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "frame indices 2, 5" in errors[0] and "clip.avi" in errors[0]
    summary = json.loads(stdout)
    assert summary["failed_frames"] == {str(tmp_path / "clip.avi"): [2, 5]} and summary["frames"] == 6
    images = json.loads((out / "images.json").read_text())
    assert [i["frame_index"] for i in images] == list(range(8))
    assert [i["frame_index"] for i in images if "error" in i] == [2, 5]
    results = json.loads((out / "predictions.json").read_text())
    assert [r["image_id"] for r in results] == [1, 2, 4, 5, 7, 8]  # frame index + 1


def _refused(tmp_path, *argv):
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    code, stdout, stderr = _run([str(tmp_path / "a.png"), *argv])
    assert code == 2 and stdout == "" and "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowres-hps predict: error: "), lines
    return lines[0]


@pytest.mark.parametrize("value", ["100000", "inf", "nan", "8", "-3"])
def test_person_height_outside_the_protocol_range_is_refused(tmp_path, estimator, value):
    error = _refused(tmp_path, "--person-height", value, "--out", str(tmp_path / "o"))
    assert "--person-height must be between 16 and 224 px" in error


def test_max_frames_below_one_is_refused(tmp_path, estimator):
    assert "--max-frames must be at least 1, got -3" in _refused(tmp_path, "--max-frames", "-3", "--out",
                                                                 str(tmp_path / "o"))


def test_out_that_cannot_be_a_folder_is_refused(tmp_path, estimator):
    (tmp_path / "file.txt").write_text("x")
    assert "is a file, not a folder" in _refused(tmp_path, "--out", str(tmp_path / "file.txt"))
    assert "cannot write there" in _refused(tmp_path, "--out", str(tmp_path / "file.txt" / "sub"))


def test_out_in_a_read_only_place_is_refused(tmp_path, estimator):
    target = Path("/sys/lowres_hps_out")
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _writable(Path("/sys")):
        pytest.skip("no read-only /sys here")
    assert "cannot write there" in _refused(tmp_path, "--out", str(target))


def _writable(folder):
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def test_unavailable_device_is_refused(tmp_path, estimator):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "no CUDA GPU is available" in _refused(tmp_path, "--device", "cuda", "--out", str(tmp_path / "o"))
    assert "not a torch device" in _refused(tmp_path, "--device", "gpu0", "--out", str(tmp_path / "o"))


def test_many_bad_boxes_are_listed_up_to_a_limit_and_counted(tmp_path, estimator):
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    gt = _ground_truth(tmp_path, ["a.png"], [[30.0, 20.0, 40.0, 80.0]])
    dataset = json.loads(gt.read_text())
    dataset["annotations"] += [{**dataset["annotations"][0], "id": 100 + n, "bbox": None} for n in range(25)]
    gt.write_text(json.dumps(dataset))
    code, stdout, stderr = _run([str(tmp_path / "a.png"), "--boxes", str(gt), "--out", str(tmp_path / "out")])
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert code == 1 and len(errors) == 21 and "5 more unusable person annotations" in errors[-1]
    assert json.loads(stdout)["failed"] == 25 and json.loads(stdout)["people"] == 1


def test_detector_choice_and_its_defaults(tmp_path, estimator, monkeypatch):
    made = []
    monkeypatch.setattr(detector_module, "MultiPoseDetector", lambda **kw: made.append(kw) or FixedDetector(**kw))
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    code, stdout, _ = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-overlay",
                            "--detector", "multipose"])
    assert code == 0 and made == [{"upscale": None, "min_score": 0.2}]
    code, _, _ = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out2"), "--no-overlay",
                       "--detector", "multipose", "--detector-upscale", "3", "--detector-min-score", "0.4"])
    assert code == 0 and made[-1] == {"upscale": 3.0, "min_score": 0.4}


def test_mili_detector_from_a_checkpoint_or_an_onnx_export(tmp_path, estimator, monkeypatch):
    from lowres_hps.apis.registry import ModelCard, save_checkpoint
    from lowres_hps.models.mili import MILIConfig, MILIEstimator, build_mili_model

    cfg = MILIConfig(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16, hidden=32)
    checkpoint = save_checkpoint(build_mili_model(cfg), ModelCard.from_config("tiny_mili", cfg), tmp_path / "m.safetensors")
    made = []
    monkeypatch.setattr(detector_module, "MILIDetector", lambda **kw: made.append(kw) or FixedDetector(**kw))
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    base = [str(tmp_path / "a.png"), "--no-overlay", "--detector", "mili"]
    code, stdout, _ = _run(base + ["--out", str(tmp_path / "o1"), "--detector-model", str(checkpoint)])
    assert code == 0 and isinstance(made[-1]["model"], MILIEstimator) and made[-1]["min_score"] == 0.2
    assert made[-1]["upscale"] is None and json.loads(stdout)["people"] == 1
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"stands in for an export")
    code, _, _ = _run(base + ["--out", str(tmp_path / "o2"), "--detector-model", str(onnx_file)])
    assert code == 0 and made[-1]["model"] == str(onnx_file)


def test_masks_from_the_detector_go_to_predictions_and_overlays(tmp_path, estimator, monkeypatch):
    from pycocotools import mask as mask_utils

    from lowres_hps.apis.detector import Detections

    class MaskedDetector(FixedDetector):
        masks = True

        def detect(self, image):
            boxes, scores = self(image)
            mask = np.zeros((1, *image.shape[:2]), bool)
            mask[0, 20:90, 40:120] = True
            return Detections(boxes, scores, mask)

    made = []
    monkeypatch.setattr(detector_module, "MILIDetector", lambda **kw: made.append(kw) or MaskedDetector(**kw))
    monkeypatch.setattr(predict_cmd, "_mili_model", lambda name, device: "stands in for a MILI model")
    flat = np.full((120, 160, 3), 120, np.uint8)  # flat, so that the JPEG overlay changes little by itself
    Image.fromarray(flat).save(tmp_path / "a.png")
    out = tmp_path / "out"
    code, _, _ = _run([str(tmp_path / "a.png"), "--out", str(out), "--detector", "mili", "--masks"])
    assert code == 0 and made[-1]["masks"] is True
    person = json.loads((out / "predictions.json").read_text())[0]
    decoded = mask_utils.decode({**person["segmentation"], "counts": person["segmentation"]["counts"].encode()})
    assert decoded.shape == (120, 160) and decoded.sum() == 70 * 80 and decoded[20:90, 40:120].all()
    overlay = np.asarray(Image.open(next((out / "overlays").iterdir()))).astype(float)
    change = np.abs(overlay - flat).mean(axis=-1)
    assert change[25:35, 45:60].mean() > 20 and change[0:10, 0:30].mean() < 3  # filled inside the mask only


def test_masks_need_the_mili_detector(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    code, _, stderr = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--masks"])
    assert code == 2 and "--masks needs --detector mili" in stderr


def test_detector_model_errors_name_the_problem(tmp_path, estimator, monkeypatch):
    from lowres_hps.apis.registry import ModelCard, save_checkpoint
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    cfg = Pose2DConfig(backbone="mobilenet_v3_small", input_size=(64, 48),
                       backbone_params={"width_mult": 0.25, "neck_channels": 8})
    pose = save_checkpoint(build_pose_model(cfg), ModelCard.from_config("pose", cfg), tmp_path / "pose.safetensors")
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    base = [str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-overlay"]
    cases = [(["--detector", "mili", "--detector-model", str(pose)], "a kp2d model, not a MILI model"),
             (["--detector", "mili", "--detector-model", str(tmp_path / "no.onnx")], "ONNX file not found"),
             (["--detector", "mili", "--detector-model", str(tmp_path / "no.safetensors")], "no.safetensors"),
             (["--detector", "hog", "--detector-model", str(pose)], "--detector-model is for --detector mili")]
    for extra, message in cases:
        code, _, stderr = _run(base + extra)
        assert code == 2 and message in stderr, (extra, stderr)


def test_multipose_without_its_weights_is_a_clear_error(tmp_path, estimator, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path / "nothing"))
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    code, _, stderr = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--detector", "multipose"])
    assert code == 2 and "--detector multipose" in stderr and "scripts/get_pretrained.sh" in stderr


def test_auto_detector_is_mili_then_multipose_then_hog(tmp_path, monkeypatch):
    from lowres_hps.models.pretrained import PRETRAINED_FILES

    assert _real_default_detector() == "mili"  # the shipped MILI model
    monkeypatch.setattr(predict_cmd, "DEFAULT_MILI_MODEL", "not_installed_model")
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    assert _real_default_detector() == "hog"
    json_file = tmp_path / PRETRAINED_FILES["movenet_multipose"].relative_path
    json_file.parent.mkdir(parents=True)
    json_file.write_text("{}")
    assert _real_default_detector() == "multipose"


def test_auto_detector_without_multipose_says_how_to_get_it(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    Image.fromarray(_scene()).save(tmp_path / "a.png")
    code, _, stderr = _run([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-overlay"])
    assert code == 0 and "make pretrained" in stderr and "HOG" in stderr


def test_fit_silhouettes_fits_bodies_to_the_foreground_of_a_static_camera(tmp_path, model3d, estimator, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apis"))
    from test_apis_adaptation import walkers_detector, write_walkers_video

    monkeypatch.setattr(predict_cmd, "build_detector", lambda args: walkers_detector())
    video = write_walkers_video(tmp_path / "walkers.avi", 32)
    out = tmp_path / "out"
    code, stdout, stderr = _run([str(video), "--out", str(out), "--no-overlay", "--model3d", str(model3d),
                                 "--fit-silhouettes", "--no-fit-keypoints", "--no-track"])
    assert code == 0, stderr
    assert json.loads(stdout)["fit_silhouettes"]["background"] == "mog2"
    results = json.loads((out / "predictions.json").read_text())
    frames = {}
    for person in results:
        frames.setdefault(person["image_id"], []).append(person["body"].get("fitted_to_silhouette"))
    early = [v for image_id, values in frames.items() if image_id <= 25 for v in values]
    late = [v for image_id, values in frames.items() if image_id > 27 for v in values]
    assert not any(early)  # the background is still being learnt: nothing to fit to
    assert late and all(v is True for v in late)
    code, _, stderr = _run([str(video), "--out", str(tmp_path / "b"), "--model3d", "none", "--fit-silhouettes"])
    assert code == 2 and "--fit-silhouettes needs a 3D model" in stderr


def test_facing_from_motion_reaches_the_tracker_with_the_refit(tmp_path, model3d, estimator, monkeypatch):
    from lowres_hps.apis import people_tracker

    monkeypatch.setattr(detector_module, "HOGPeopleDetector", FixedDetector)
    made = []

    class SpyTracker(people_tracker.PeopleTracker):
        def __init__(self, config=None, fps=25.0, refit=None, convention="coco17"):
            made.append((config, refit, convention))
            super().__init__(config, fps, refit, convention)

    monkeypatch.setattr(people_tracker, "PeopleTracker", SpyTracker)
    _write_video(tmp_path / "walk.mp4")
    video = str(tmp_path / "walk.mp4")
    code, stdout, stderr = _run([video, "--out", str(tmp_path / "out"), "--no-overlay", "--model3d", str(model3d),
                                 "--fit-steps", "5", "--facing-from-motion"])
    assert code == 0, stderr
    config, refit, convention = made[0]
    assert config.facing_from_motion and refit.__name__ == "refit_left_right" and convention == "coco17"
    assert config.heading_positions == "ground"
    summary = json.loads(stdout)
    assert summary["ground_planes"] == {}  # one person in a few frames: too few feet to fit the ground
    turned = [r for r in json.loads((tmp_path / "out/predictions.json").read_text())
              if r["body"].get("left_right_swapped")]
    assert summary["bodies_turned_by_motion"] == len(turned)  # a still box: no direction of travel, none turned
    code, stdout, _ = _run([video, "--out", str(tmp_path / "off"), "--no-overlay", "--model3d", str(model3d),
                            "--fit-steps", "5"])
    assert code == 0 and not made[-1][0].facing_from_motion and "bodies_turned_by_motion" not in json.loads(stdout)
    code, _, stderr = _run([video, "--out", str(tmp_path / "root"), "--no-overlay", "--model3d", str(model3d),
                            "--fit-steps", "5", "--facing-from-motion", "--heading-positions", "root"])
    assert code == 0, stderr
    assert made[-1][0].heading_positions == "root" and made[-1][0].facing_from_motion
    code, _, stderr = _run([video, "--out", str(tmp_path / "x"), "--facing-from-motion", "--no-track"])
    assert code == 2 and "--facing-from-motion needs --track" in stderr
    code, _, stderr = _run([video, "--out", str(tmp_path / "y"), "--model3d", str(model3d), "--no-fit-keypoints",
                            "--facing-from-motion"])
    assert code == 2 and "it needs --fit-keypoints" in stderr
