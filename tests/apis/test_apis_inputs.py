"""Inputs of predict: path collection, defensive image reading and conversion, videos, --boxes lookup."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from lowres_hps.apis.inputs import (
    InputError,
    PersonBoxes,
    VideoReader,
    box_problem_in_image,
    collect_inputs,
    is_stream,
    load_image,
    to_rgb8,
)
from lowres_hps.imaging.io import read_image_rgb


def _rgb(height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_video(path, frames, fourcc="MJPG", fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, frames[0].shape[1::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_collect_inputs_folders_files_and_probing(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "notes.txt", "c.avi"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (tmp_path / "empty").mkdir()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    png_without_suffix = tmp_path / "frame.dat"
    cv2.imwrite(str(tmp_path / "real.png"), _rgb())
    png_without_suffix.write_bytes((tmp_path / "real.png").read_bytes())
    avi_without_suffix = tmp_path / "clip.bin"
    _write_video(tmp_path / "real.avi", [_rgb()] * 2)
    avi_without_suffix.write_bytes((tmp_path / "real.avi").read_bytes())
    (tmp_path / "junk.xyz").write_bytes(b"not media")

    sources, errors = collect_inputs([folder, video, tmp_path / "missing.png", tmp_path / "empty",
                                      png_without_suffix, avi_without_suffix, tmp_path / "junk.xyz"])
    assert [(s.path.name, s.kind) for s in sources] == [
        ("a.JPG", "image"), ("b.png", "image"), ("clip.mp4", "video"), ("frame.dat", "image"), ("clip.bin", "video")]
    messages = [str(e) for e in errors]
    assert len(messages) == 3 and all(isinstance(e, InputError) for e in errors)
    assert "missing.png" in messages[0] and "empty" in messages[1] and "junk.xyz" in messages[2]


def test_valid_jpeg_and_exif_orientation_like_read_image_rgb(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "plain.jpg")
    image, notes = load_image(tmp_path / "plain.jpg")
    assert notes == [] and image.dtype == np.uint8
    np.testing.assert_array_equal(image, read_image_rgb(tmp_path / "plain.jpg"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(_rgb()).save(tmp_path / "rotated.jpg", exif=exif)
    rotated, _ = load_image(tmp_path / "rotated.jpg")
    assert rotated.shape == (64, 48, 3)
    np.testing.assert_array_equal(rotated, read_image_rgb(tmp_path / "rotated.jpg"))


def test_unusable_images_raise_errors_naming_the_file(tmp_path):
    Image.fromarray(_rgb(120, 160)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(tmp_path / "full.png"), _rgb(120, 160))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "line.png"), np.zeros((1, 40, 3), np.uint8))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello, not a png")
    cases = {"truncated.jpg": "truncated", "truncated.png": "cannot decode", "one.png": "too small",
             "line.png": "too small", "empty.png": "empty file", "text.png": "cannot decode",
             "absent.png": "not found"}
    for name, reason in cases.items():
        with pytest.raises(InputError, match=reason) as info:
            load_image(tmp_path / name)
        assert name in str(info.value)


def test_convertible_images_are_converted_with_a_note(tmp_path):
    gray16 = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    image, notes = load_image(tmp_path / "g16.png")
    assert notes == ["16-bit image converted to 8 bits", "grayscale image converted to RGB"]
    np.testing.assert_array_equal(image[..., 0], np.round(gray16 / 257.0).astype(np.uint8))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])

    gray = _rgb()[..., 0]
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    image, notes = load_image(tmp_path / "gray.png")
    assert notes == ["grayscale image converted to RGB"] and image.shape == (48, 64, 3)
    np.testing.assert_array_equal(image[..., 1], gray)

    rgba = np.dstack([_rgb(), np.full((48, 64), 100, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image, notes = load_image(tmp_path / "rgba.png")
    assert notes == ["RGBA image: alpha channel ignored"]
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_to_rgb8():
    bgr = _rgb()
    np.testing.assert_array_equal(to_rgb8(bgr)[0], bgr[..., ::-1])
    rgb, notes = to_rgb8(np.dstack([bgr, bgr[..., 0]]))
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    assert notes == ["alpha channel ignored"]
    rgb, notes = to_rgb8(np.array([[[-1.0, 0.5, 2.0]] * 2] * 2, np.float32))
    assert rgb[0, 0].tolist() == [255, 128, 0] and "floating-point" in notes[0]
    with pytest.raises(ValueError, match="sample type"):
        to_rgb8(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="channel"):
        to_rgb8(np.zeros((4, 4, 2), np.uint8))


def test_streams_are_cameras_and_urls_read_as_videos(tmp_path):
    assert is_stream("camera:0") and is_stream("rtsp://cam.local:554/live") and is_stream("file:///tmp/a.mp4")
    assert not is_stream("camera") and not is_stream("clip.mp4") and not is_stream("/data/rtsp/clip.mp4")
    sources, errors = collect_inputs(["camera:3", "rtsp://cam.local:554/live"])
    assert not errors and [s.kind for s in sources] == ["video", "video"]
    assert [s.stream for s in sources] == ["camera:3", "rtsp://cam.local:554/live"]
    assert [s.path.stem for s in sources] == ["camera_3", "rtsp_cam_local_554_live"]  # file-safe output names
    frames = [_rgb(64, 80, seed=i) for i in range(4)]
    _write_video(tmp_path / "clip.avi", frames)
    with VideoReader(f"file://{tmp_path / 'clip.avi'}") as reader:
        assert len(list(reader)) == 4 and reader.path.stem.endswith("clip_avi")
    with pytest.raises(InputError, match="cannot open the stream.*camera:97"):
        VideoReader("camera:97")


def test_video_frames_and_truncated_video(tmp_path):
    frames = [_rgb(120, 160, seed=i) for i in range(8)]
    frames[3] = np.zeros_like(frames[3]) + np.array([20, 120, 220], np.uint8)  # BGR, flat: JPEG keeps it
    _write_video(tmp_path / "clip.avi", frames)
    with VideoReader(tmp_path / "clip.avi") as reader:
        read = list(reader)
        assert reader.fps == pytest.approx(10) and reader.frame_count == 8
    assert [i for i, _ in read] == list(range(8)) and read[0][1].shape == (120, 160, 3)
    assert reader.problem is None
    # Frames were written in BGR and come back in RGB.
    np.testing.assert_allclose(read[3][1].reshape(-1, 3).mean(0), [220, 120, 20], atol=3)

    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    reader = VideoReader(tmp_path / "cut.avi")
    count = sum(1 for _ in reader)
    assert 0 < count < 8
    assert reader.problem == (f"video ended after {count} of 8 frames (truncated file or broken frames): "
                              f"{tmp_path / 'cut.avi'}")
    with pytest.raises(RuntimeError, match="already read"):
        list(reader)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="cannot open video"):
        VideoReader(tmp_path / "bad.mp4")


def _coco(tmp_path):
    dataset = {
        "images": [{"id": 7, "file_name": "train2017/a.jpg"}, {"id": 8, "file_name": "b.jpg"},
                   {"id": 9, "file_name": "x/c.jpg"}, {"id": 10, "file_name": "y/c.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 30, 60], "num_keypoints": 5},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [50, 2, 30, 60], "num_keypoints": 0},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 90, 90], "num_keypoints": 3, "iscrowd": 1},
            {"id": 4, "image_id": 7, "category_id": 3, "bbox": [9, 9, 9, 9], "num_keypoints": 0},
            {"id": 5, "image_id": 8, "category_id": 1, "bbox": [5, 5, 0, 10], "num_keypoints": 2},
            {"id": 6, "image_id": 8, "category_id": 1, "bbox": [5, 5, 10, 20], "keypoints": [1, 1, 2] + [0] * 48},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(dataset))
    return path


def test_person_boxes_from_coco(tmp_path):
    boxes = PersonBoxes.from_coco(_coco(tmp_path))
    assert boxes.boxes[7].tolist() == [[1, 2, 30, 60]] and boxes.boxes[8].tolist() == [[5, 5, 10, 20]]
    assert boxes.boxes[9].shape == (0, 4) and boxes.skipped_without_keypoints == 1
    every = PersonBoxes.from_coco(_coco(tmp_path), all_boxes=True)
    assert every.boxes[7].tolist() == [[1, 2, 30, 60], [50, 2, 30, 60]] and every.skipped_without_keypoints == 0

    assert boxes.lookup(tmp_path / "coco" / "train2017" / "a.jpg") == 7  # trailing part of the path
    assert boxes.lookup("elsewhere/a.jpg") == 7  # file name alone, unique
    assert boxes.lookup("/data/b.jpg") == 8
    assert boxes.lookup("/data/x/c.jpg") == 9
    with pytest.raises(InputError, match="2 images of --boxes are named 'c.jpg'"):
        boxes.lookup("/data/z/c.jpg")
    with pytest.raises(InputError, match="not in the --boxes annotations"):
        boxes.lookup("d.jpg")
    (tmp_path / "bad.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="not a COCO annotation file"):
        PersonBoxes.from_coco(tmp_path / "bad.json")


# ---------------------------------------------------------------------------------------------
# Issue 9: bounded image size, corrupted video frames, bad --boxes entries


def test_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    Image.fromarray(_rgb(200, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded an image above the limit"))
    with pytest.raises(InputError, match=r"image too large: 300 x 200 px .*big\.png"):
        load_image(tmp_path / "big.png", max_pixels=300 * 200 - 1)


def test_no_raw_decompression_bomb_warning_or_error(tmp_path, monkeypatch):
    # Pillow warns above its MAX_IMAGE_PIXELS and refuses above twice that; load_image has its own limit.
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "a.jpg", quality=90)
    for pillow_limit in (8000, 4000):  # warning, then DecompressionBombError
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            image, notes = load_image(tmp_path / "a.jpg")
        assert image.shape == (100, 100, 3) and notes == []
        assert Image.MAX_IMAGE_PIXELS == pillow_limit  # restored


def _corrupt_mjpeg_frames(path, frames):
    """Zero the first bytes of the JPEG data of the given frames of an MJPEG AVI (a damaged frame)."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    for frame in frames:
        data[starts[frame]:starts[frame] + 2000] = bytes(2000)
    path.write_bytes(bytes(data))


def test_corrupted_frames_are_skipped_and_listed(tmp_path):
    frames = [_rgb(120, 160, seed=i) for i in range(8)]
    _write_video(tmp_path / "clip.avi", frames)
    _corrupt_mjpeg_frames(tmp_path / "clip.avi", [3, 5])
    reader = VideoReader(tmp_path / "clip.avi")
    read = list(reader)
    assert [i for i, _ in read] == [0, 1, 2, 4, 6, 7]  # the index of each frame in the stream
    assert reader.failed_frames == [3, 5] and reader.problem is None
    assert reader.frames_read == 8 and reader.frames_decoded == 6
    # The frames after a damaged one are the right ones (JPEG-compressed noise: the nearest original).
    originals = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB).astype(int) for f in frames]
    for index, frame in read:
        assert np.argmin([np.abs(frame.astype(int) - o).mean() for o in originals]) == index


def _coco_with_bad_boxes(tmp_path):
    def ann(ann_id, bbox, image_id=7, **extra):
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "num_keypoints": 3, **extra}

    annotations = [ann(1, [1, 2, 30, 60]), ann(2, None), ann(3, [1, 2, 30]), ann(4, [1, 2, 0, 60]),
                   ann(5, [1, 2, 30, -4]), ann(6, [1, 2, 30, 60], image_id=99), ann(7, ["a", 2, 3, 4]),
                   ann(8, [1, 2, float("nan"), 60]), {"id": 9, "image_id": 7, "category_id": 1, "num_keypoints": 2},
                   ann(10, None, num_keypoints=0)]  # unlabelled: left out by default, not a problem
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "a.jpg"}], "annotations": annotations,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


def test_person_boxes_report_unusable_annotations_by_id(tmp_path):
    boxes = PersonBoxes.from_coco(_coco_with_bad_boxes(tmp_path))
    assert boxes.boxes[7].tolist() == [[1, 2, 30, 60]] and boxes.annotation_ids[7] == [1]
    assert boxes.skipped_without_keypoints == 1
    problems = dict(p.split(": ", 1) for p in boxes.problems)
    assert list(problems) == [f"annotation {i}" for i in (2, 3, 4, 5, 6, 7, 8, 9)]
    assert problems["annotation 2"] == "bbox is null"
    assert problems["annotation 3"].startswith("bbox must be 4 numbers")
    assert "zero or negative size" in problems["annotation 4"] and "zero or negative size" in problems["annotation 5"]
    assert problems["annotation 6"] == "image_id 99 is not in the file's images"
    assert problems["annotation 7"].startswith("bbox must be 4 numbers")
    assert "non-finite" in problems["annotation 8"] and problems["annotation 9"] == "no bbox"


@pytest.mark.parametrize("box, problem", [
    ([10, 10, 20, 40], None),
    ([-40, 5, 30, 40], "lies outside"),  # right edge at -10: left of the image (its edge is -0.5)
    ([159.5, 5, 30, 40], "lies outside"),
    ([-100, -100, 150, 150], None),  # partly inside
    ([0, 0, 1e9, 1e9], "more than 4 times the 160 x 120 image"),
])
def test_box_problem_in_image(box, problem):
    found = box_problem_in_image(np.asarray(box, dtype=np.float64), 160, 120)
    assert found == problem if problem is None else problem in found
