"""Unlabelled people for self-supervised training: a COCO file of boxes and masks that the COCO reader reads, from
a static-camera video (background subtraction) and from still images (an image segmenter); bad inputs reported,
the others kept; a moving camera and an empty result are clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lowres_hps.apis.adaptation import AdaptationError
from lowres_hps.apis.unlabelled import (
    TEACHER_FILE,
    label_people,
    IMAGES_FOLDER,
    PEOPLE_FILE,
    collect_unlabelled_people,
    mili_image_segmenter,
)
from lowres_hps.data.coco import CocoKeypointsReader
from lowres_hps.imaging.foreground import ForegroundConfig

H, W = 96, 128
FOREGROUND = ForegroundConfig(warmup_frames=10)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _background() -> np.ndarray:
    base = np.random.default_rng(0).integers(40, 140, size=(H // 8, W // 8, 3)).astype(np.uint8)
    return cv2.resize(base, (W, H), interpolation=cv2.INTER_LINEAR)


def _write_video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def walker_video(path: Path, frames: int = 40) -> Path:
    """A static camera and one bright, textured 14 x 36 px 'person' walking right (a uniform one would fade into
    the background model from inside)."""
    background = _background()
    texture = np.random.default_rng(1).integers(190, 256, size=(36, 14, 3)).astype(np.uint8)
    video = []
    for index in range(frames):
        frame = background.copy()
        x = 8 + 2 * index
        frame[40:76, x:x + 14] = texture
        video.append(frame)
    return _write_video(path, video)


def walker_detector(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The walker is where the (decoded) frame differs from the empty scene."""
    changed = (np.abs(frame.astype(int) - _background().astype(int)).max(-1) > 40).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(changed)
    boxes = np.array([s[:4] for s in stats[1:] if s[4] > 100], np.float64).reshape(-1, 4)
    return boxes, np.full(len(boxes), 0.9)


def no_detector(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4)), np.zeros(0)


def _image(path: Path) -> Path:
    image = np.random.default_rng(2).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)
    return path


def people_segmenter(image: np.ndarray):
    """Six people: one alone (kept), two touching, one scoring low, one short and one with an empty mask."""
    boxes = np.array([[5, 5, 12, 30], [40, 10, 10, 25], [50.5, 10, 10, 25], [20, 40, 10, 15], [65, 40, 8, 12],
                      [2, 38, 10, 21]], np.float64)
    scores = np.array([0.9, 0.8, 0.8, 0.1, 0.9, 0.9])
    masks = np.zeros((6, *image.shape[:2]), np.uint8)
    for mask, (x, y, w, h) in zip(masks[:5], boxes.astype(int)):
        mask[y + 2:y + h - 2, x + 2:x + w - 2] = 1
    return boxes, scores, masks


def test_video_people_are_written_as_coco_the_reader_reads(tmp_path):
    video = walker_video(tmp_path / "walk.avi")
    out = tmp_path / "out"
    ticks = []
    path, report = collect_unlabelled_people([video], out, walker_detector, detect_every=3, foreground=FOREGROUND,
                                             progress=ticks.append)
    assert path == out / PEOPLE_FILE and path.is_file()
    assert report.frames_read == 40 and ticks == list(range(1, 41))
    # 10 frames searched (30 with masks, every 3rd); early on the background model learns fast, so the first
    # silhouettes may fade below the fill threshold.
    assert 8 <= report.people <= 10 and report.masks == {str(video): "background subtraction (MOG2)"}
    assert sum(report.rejected.values()) == 10 - report.people
    data = json.loads(path.read_text())
    assert data["info"]["description"] == "lowres-hps unlabelled people"
    assert data["info"]["sources"] == [str(video)] and "date" in data["info"]
    assert all(ann["num_keypoints"] == 0 and len(ann["keypoints"]) == 51 for ann in data["annotations"])
    frames = sorted(p.name for p in (out / IMAGES_FOLDER).iterdir())
    assert frames == sorted(image["file_name"] for image in data["images"])
    assert len(frames) == report.people and frames[0] >= "walk_000011.jpg"  # after the 10-frame warm-up
    for image_root in (None, out / IMAGES_FOLDER):
        reader = CocoKeypointsReader(path, image_root, min_keypoints=0, load_masks=True, check_images=True)
        assert len(reader) == report.people and not reader.skipped and reader.has_mask
    sample = reader[-1]
    assert sample.image_path.is_file() and sample.mask.shape == (H, W)
    assert sample.mask.sum() == data["annotations"][-1]["area"] > 0.6 * 14 * 36
    # The silhouette lies in its box (person_silhouettes keeps it within 10% of the box around it).
    x, y, w, h = sample.bbox
    ys, xs = np.nonzero(sample.mask)
    assert xs.min() >= x - 0.1 * w - 1 and xs.max() <= x + 1.1 * w + 1
    assert ys.min() >= y - 0.1 * h - 1 and ys.max() <= y + 1.1 * h + 1
    assert f"{report.people} people kept" in report.summary()


def test_still_images_reference_their_files(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    first, second = _image(folder / "a.png"), _image(folder / "b.jpg")
    path, report = collect_unlabelled_people([folder, first], tmp_path / "out", no_detector, people_segmenter)
    assert report.images_read == 2 and report.people == 2  # a.png given twice: read once
    assert report.rejected == {"touching another person": 4, "shorter than 20 px": 2, "empty mask": 2,
                               "image given twice": 1}
    assert report.masks == {str(folder): "image segmenter people_segmenter"}
    for image_root in (None, tmp_path / "elsewhere"):  # absolute file names: any image root
        reader = CocoKeypointsReader(path, image_root, min_keypoints=0, load_masks=True, check_images=True)
        assert len(reader) == 2
        assert sorted(s.image_path for s in reader) == [first.resolve(), second.resolve()]
    sample = reader[0]
    assert sample.bbox.tolist() == [5, 5, 12, 30] and sample.mask.sum() == 8 * 26
    assert not any((tmp_path / "out" / IMAGES_FOLDER).iterdir())  # nothing copied


def test_bad_inputs_are_reported_and_the_others_kept(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = _image(tmp_path / "good.png")
    video = walker_video(tmp_path / "walk.avi", frames=20)
    _, report = collect_unlabelled_people([bad, tmp_path / "missing.jpg", good, video], tmp_path / "out",
                                          walker_detector, people_segmenter, detect_every=5, foreground=FOREGROUND)
    assert report.rejected["unreadable input"] == 2
    assert any("bad.png" in p for p in report.problems) and any("missing.jpg" in p for p in report.problems)
    assert report.images_read == 1 and report.frames_read == 20 and report.people > 1
    assert "bad.png" in report.summary()


def test_nobody_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = _image(tmp_path / "good.png")
    with pytest.raises(AdaptationError, match="no person collected") as error:
        collect_unlabelled_people([bad, good], tmp_path / "out", no_detector,
                                  lambda image: (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 60, 80), np.uint8)))
    assert "\n" not in str(error.value) and "bad.png" in str(error.value)
    # Still images without a segmenter: left out, and the error says what is missing.
    with pytest.raises(AdaptationError, match="image segmenter"):
        collect_unlabelled_people([good], tmp_path / "out", no_detector)
    assert not (tmp_path / "out" / PEOPLE_FILE).exists()


def test_a_moving_camera_names_the_video(tmp_path):
    background = _background()
    video = _write_video(tmp_path / "pan.avi", [np.roll(background, 9 * i, axis=1) for i in range(25)])
    with pytest.raises(AdaptationError, match=r"pan\.avi.*static camera"):
        collect_unlabelled_people([video], tmp_path / "out", no_detector,
                                  foreground=ForegroundConfig(warmup_frames=5, max_bad_frames=5))


def test_frame_range_and_max_frames(tmp_path):
    video = walker_video(tmp_path / "walk.avi", frames=40)
    _, report = collect_unlabelled_people([video], tmp_path / "out", walker_detector, frame_range=(3, 30),
                                          max_frames=20, detect_every=2, foreground=FOREGROUND)
    # Frames 3..22 are used, 13..22 have masks (10 frames of warm-up), every 2nd of those is searched.
    assert report.frames_read == 20 and 3 <= report.people <= 5
    assert not report.problems  # stopping early is not a truncated video
    names = sorted(p.name for p in (tmp_path / "out" / IMAGES_FOLDER).iterdir())
    assert len(names) == report.people and "walk_000013.jpg" <= names[0] and names[-1] <= "walk_000021.jpg"


def test_mili_segmenter_gives_full_image_masks():
    from lowres_hps.models.mili import MILIConfig, build_mili_model

    torch.manual_seed(0)
    net = build_mili_model(MILIConfig(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16,
                                      hidden=32)).eval()
    torch.nn.init.zeros_(net.roi_heads.mask.weight)  # a mask head that says "person" everywhere
    torch.nn.init.constant_(net.roi_heads.mask.bias, 20.0)
    segmenter = mili_image_segmenter(net, upscale=1.0)
    assert segmenter.name == "MILINet mask head"
    forward = segmenter.detector._forward

    def one_person(work):  # the network's features, and dense heads with one person (an untrained net finds none)
        center, scale, offset, features = forward(work)
        center, scale, offset = torch.full_like(center, -10.0), torch.zeros_like(scale), torch.zeros_like(offset)
        center[0, 0, 8, 12] = 3.0
        scale[0, :, 8, 12] = torch.tensor([10.0, 5.0])  # cells: 40 x 20 px
        return center, scale, offset, features

    segmenter.detector._forward = one_person
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    boxes, scores, masks = segmenter(image)
    assert len(boxes) == len(scores) == 1 and masks.shape == (1, 64, 96) and masks.dtype == np.uint8
    # The mask is pasted from the RoI grid into the whole image: here exactly the box's pixels.
    x, y, w, h = boxes[0]
    ys, xs = np.nonzero(masks[0])
    assert set(np.unique(masks)) == {0, 1} and masks[0].sum() == round(w) * round(h)
    assert xs.min() >= x and xs.max() <= x + w and ys.min() >= y and ys.max() <= y + h


class _FakeTeacher:
    """Labels a person's box centre as its nose (joint 0) when the box is wider than 10 px; narrower people get None
    (too few joints)."""

    names = ["fake_teacher"]

    def __init__(self):
        self.images = []

    def label(self, image, boxes):
        self.images.append(image.shape)
        out = []
        for x, y, w, h in boxes:
            if w <= 10:
                out.append(None)
                continue
            keypoints = np.zeros((17, 3))
            keypoints[0] = [x + w / 2, y + h / 2, 2]
            out.append({"keypoints": keypoints.reshape(-1).tolist(), "keypoint_scores": [0.9] + [0.0] * 16,
                        "num_keypoints": 1})
        return out


def test_teacher_keypoints_are_added_and_masks_kept(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    _image(folder / "a.png")
    path, _ = collect_unlabelled_people([folder], tmp_path / "out", no_detector, people_segmenter)
    teacher = _FakeTeacher()
    out, labelled = label_people(path, teacher)
    assert out == path.with_name(TEACHER_FILE) and labelled == 1 and teacher.images == [(60, 80, 3)]
    data = json.loads(out.read_text())
    assert data["info"]["keypoints"]["teachers"] == ["fake_teacher"]
    reader = CocoKeypointsReader(out, None, min_keypoints=0, load_masks=True)
    sample = reader[0]
    assert sample.keypoints2d[0].tolist() == [11.0, 20.0, 2.0] and sample.keypoints2d[1:, 2].sum() == 0
    assert sample.mask.sum() == 8 * 26  # the mask is the collected one
    # a person the teacher cannot label stays, unlabelled; a file's old keypoints are not kept
    data["annotations"][0]["bbox"][2] = 8
    data["annotations"][0]["keypoint_scores"] = [1.0] * 17
    (tmp_path / "narrow.json").write_text(json.dumps(data))
    out, labelled = label_people(tmp_path / "narrow.json", _FakeTeacher(), tmp_path / "narrow_teacher.json",
                                 image_root=tmp_path / "out" / IMAGES_FOLDER)
    person = json.loads(out.read_text())["annotations"][0]
    assert labelled == 0 and person["num_keypoints"] == 0 and not any(person["keypoints"])
    assert "keypoint_scores" not in person and person["segmentation"]


def test_teacher_names_an_unreadable_image(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    image = _image(folder / "a.png")
    path, _ = collect_unlabelled_people([folder], tmp_path / "out", no_detector, people_segmenter)
    image.unlink()
    with pytest.raises(AdaptationError, match="a.png"):
        label_people(path, _FakeTeacher())
