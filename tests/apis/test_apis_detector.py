"""HOG people detector: upscaling for small people, exact box mapping, NMS, scores; the Detector protocol."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lowres_hps.apis.detector import HOG_PERSON_EXTENT, Detector, HOGPeopleDetector, hog_available

pytestmark = pytest.mark.skipif(not hog_available(), reason="this OpenCV has no HOG (opencv-contrib needed in 5.x)")


class _StubHOG:
    """Stands in for cv2.HOGDescriptor: returns fixed windows (upscaled px) and SVM margins, records the call."""

    def __init__(self, rects, margins):
        self.rects, self.margins = rects, margins
        self.seen = None

    def detectMultiScale(self, image, **kwargs):
        self.seen = (image.shape, kwargs)
        return np.asarray(self.rects, dtype=np.int32).reshape(-1, 4), np.asarray(self.margins, np.float64)


def _with_stub(detector, rects, margins):
    detector._hog = _StubHOG(rects, margins)
    return detector


def test_is_a_detector():
    assert isinstance(HOGPeopleDetector(), Detector)


def test_windows_map_back_to_the_image_and_shrink_to_the_person():
    detector = _with_stub(HOGPeopleDetector(upscale=2.0), [[100, 40, 64, 128]], [1.0])
    boxes, scores = detector(np.zeros((100, 150, 3), np.uint8))
    shape, kwargs = detector._hog.seen
    assert shape == (200, 300, 3) and kwargs["hitThreshold"] == pytest.approx(0.0)
    # Upscaled window edges 99.5 .. 163.5 and 39.5 .. 167.5 are 49.5 .. 81.5 and 19.5 .. 83.5 in the image.
    window = np.array([49.5, 19.5, 32.0, 64.0])
    centre, size = window[:2] + window[2:] / 2, window[2:] * np.array(HOG_PERSON_EXTENT)
    np.testing.assert_allclose(boxes, [[*(centre - size / 2), *size]])
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-1.0))])


def test_edges_follow_the_resize_pixel_convention():
    # A bright band in the image, upscaled 3x by the same cv2.resize, keeps its centre through the box mapping.
    image = np.zeros((60, 90, 3), np.uint8)
    image[:, 40:50] = 255
    up = cv2.resize(image, (270, 180), interpolation=cv2.INTER_LINEAR)
    columns = np.flatnonzero(up[0, :, 0] > 127)
    rect = [columns[0], 0, columns[-1] - columns[0] + 1, 180]
    boxes, _ = _with_stub(HOGPeopleDetector(upscale=3.0), [rect], [2.0])(image)
    assert boxes[0, 0] + boxes[0, 2] / 2 == pytest.approx(44.5, abs=0.2)  # band centre: columns 40..49


def test_nms_and_min_score():
    rects = [[0, 0, 64, 128], [4, 4, 64, 128], [200, 0, 64, 128], [400, 0, 64, 128]]
    margins = [0.5, 2.0, 1.0, -0.5]  # the last is below the boundary (grouped windows may report one)
    boxes, scores = _with_stub(HOGPeopleDetector(upscale=1.0), rects, margins)(np.zeros((300, 600, 3), np.uint8))
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-np.array([2.0, 1.0]))))  # best first
    np.testing.assert_allclose(boxes[:, 0] + boxes[:, 2] / 2, [35.5, 231.5])
    detector = _with_stub(HOGPeopleDetector(upscale=1.0, min_score=0.8), rects, margins)
    _, scores = detector(np.zeros((300, 600, 3), np.uint8))
    assert detector._hog.seen[1]["hitThreshold"] == pytest.approx(np.log(0.8 / 0.2))
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))])


def test_blank_and_tiny_images_give_nothing():
    detector = HOGPeopleDetector()
    for image in (np.zeros((240, 320, 3), np.uint8), np.full((30, 20, 3), 128, np.uint8)):
        boxes, scores = detector(image)
        assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_bad_arguments():
    for kwargs in ({"upscale": 0}, {"min_score": 1.0}, {"nms_iou": 0}, {"scale_step": 1.0}, {"win_stride": 0}):
        with pytest.raises(ValueError):
            HOGPeopleDetector(**kwargs)
    with pytest.raises(ValueError, match="uint8"):
        HOGPeopleDetector()(np.zeros((200, 200), np.uint8))


@pytest.mark.shared_data
def test_finds_the_small_people_of_vtest(shared_data):
    capture = cv2.VideoCapture(str(shared_data / "opencv_samples" / "vtest.avi"))
    for _ in range(3):
        ok, frame = capture.read()
    capture.release()
    assert ok
    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # 768 x 576, people about 60-90 px tall
    boxes, scores = HOGPeopleDetector(upscale=2.0)(frame)
    native, _ = HOGPeopleDetector(upscale=1.0)(frame)
    assert len(boxes) >= 3 and len(native) < len(boxes)  # the upscale is what finds them
    assert np.all((boxes[:, 3] > 50) & (boxes[:, 3] < 110)) and np.all((scores > 0.5) & (scores < 1))
    assert np.all(boxes[:, :2] >= -0.5) and np.all(boxes[:, :2] + boxes[:, 2:] <= [768, 576])
    # The walker in the middle of the frame (around x 512, y 200) is one of them.
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.min(np.linalg.norm(centres - [512, 200], axis=1)) < 15


def test_large_image_is_detected_on_a_bounded_copy_and_boxes_map_back():
    # 800 x 600 with max_pixels 120000: no 2x upscale, a 0.5x reduced copy (400 x 300) instead.
    detector = _with_stub(HOGPeopleDetector(upscale=2.0, max_pixels=120_000), [[100, 40, 64, 128]], [1.0])
    boxes, _ = detector(np.zeros((600, 800, 3), np.uint8))
    assert detector._hog.seen[0] == (300, 400, 3)
    # Reduced-copy window edges 99.5 .. 163.5, 39.5 .. 167.5 are 199.5 .. 327.5, 79.5 .. 335.5 in the image.
    window = np.array([199.5, 79.5, 128.0, 256.0])
    centre, size = window[:2] + window[2:] / 2, window[2:] * np.array(HOG_PERSON_EXTENT)
    np.testing.assert_allclose(boxes, [[*(centre - size / 2), *size]])
    # Small images keep the full upscale.
    small = _with_stub(HOGPeopleDetector(upscale=2.0, max_pixels=120_000), [], [])
    small(np.zeros((100, 150, 3), np.uint8))
    assert small._hog.seen[0] == (200, 300, 3)
    with pytest.raises(ValueError, match="finite"):
        HOGPeopleDetector(upscale=float("inf"))
