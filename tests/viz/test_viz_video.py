"""RGB video writer."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from lowres_hps.viz.video import VideoWriterRGB


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_writes_rgb_frames_that_read_back(tmp_path, name, fourcc):
    path = tmp_path / "sub" / name
    with VideoWriterRGB(path, fps=12, fourcc=fourcc) as writer:
        for value in range(5):
            writer.write(np.full((64, 80, 3), (200, 100, 20 + 40 * value), np.uint8))
    assert writer.frames_written == 5
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 5 and frames[0].shape == (64, 80, 3)
    np.testing.assert_allclose(frames[4].reshape(-1, 3).mean(0), [180, 100, 200], atol=4)  # BGR on disk


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        VideoWriterRGB(tmp_path / "a.mp4", fps=0)
    writer = VideoWriterRGB(tmp_path / "a.mp4", fps=10)
    with pytest.raises(ValueError, match="uint8 RGB"):
        writer.write(np.zeros((8, 8), np.uint8))
    writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="differs"):
        writer.write(np.zeros((16, 32, 3), np.uint8))
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.zeros((32, 32, 3), np.uint8))
