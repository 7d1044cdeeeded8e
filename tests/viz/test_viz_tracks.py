"""Trajectory plots of tracked people."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lowres_hps.viz.tracks import plot_trajectories


def test_paths_are_drawn_on_the_frame_at_its_size(tmp_path):
    frame = np.full((90, 160, 3), 200, np.uint8)
    boxes = np.array([[10.0 + 10 * t, 20.0, 10.0, 40.0] for t in range(10)])  # feet at y = 60, x 15 .. 105
    path = plot_trajectories(frame, {7: boxes}, tmp_path / "sub" / "paths.png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert image.shape == (90, 160, 3)
    assert np.abs(image[59:62, 40:80] - 200).sum(axis=-1).max() > 100  # the path along the feet
    assert np.abs(image[5:15, 130:150] - 200).max() < 10  # the rest of the frame as it was


def test_a_bad_frame_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError):
        plot_trajectories(np.zeros((4, 4)), {}, tmp_path / "x.png")
