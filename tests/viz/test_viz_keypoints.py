"""Keypoint drawing and contact sheets."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.body.keypoints import LSP14
from lowres_hps.viz.keypoints import contact_sheet, draw_keypoints


def _lsp_points(visibility: float = 2.0) -> np.ndarray:
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[:, 2] = 0
    keypoints[LSP14.index("left_hip")] = [20, 20, visibility]
    keypoints[LSP14.index("left_knee")] = [20, 80, visibility]
    return keypoints


def test_draws_labelled_points_and_limbs_on_a_copy():
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_keypoints(image, _lsp_points(), "lsp14", radius=4, thickness=2)
    assert image.max() == 0  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[20, 20].max() > 0 and out[80, 20].max() > 0  # both joints
    assert out[50, 20].max() > 0  # the left thigh between them
    assert out[50, 60].max() == 0 and out[0, 0].max() == 0
    # Left limbs and points share one colour, distinct from the right side's.
    right = _lsp_points()
    right[[LSP14.index("right_hip"), LSP14.index("right_knee")]] = right[
        [LSP14.index("left_hip"), LSP14.index("left_knee")]]
    right[[LSP14.index("left_hip"), LSP14.index("left_knee")], 2] = 0
    out_right = draw_keypoints(image, right, LSP14, radius=4, thickness=2)
    assert not np.array_equal(out[20, 20], out_right[20, 20])


def test_visibility_controls_drawing():
    image = np.zeros((100, 100, 3), np.uint8)
    assert draw_keypoints(image, _lsp_points(0.0), "lsp14").max() == 0  # unlabelled: nothing
    occluded = draw_keypoints(image, _lsp_points(1.0), "lsp14", radius=8, thickness=1)
    visible = draw_keypoints(image, _lsp_points(2.0), "lsp14", radius=8, thickness=1)
    # Occluded joints are hollow circles, visible ones filled: compare a pixel inside the circle, off the limb.
    assert occluded[20 - 4, 20 + 4].max() == 0 and visible[20 - 4, 20 + 4].max() > 0
    # (K, 2) keypoints are all drawn.
    assert draw_keypoints(image, _lsp_points()[:, :2], "lsp14")[20, 20].max() > 0


def test_non_finite_points_are_not_drawn():
    keypoints = _lsp_points()
    keypoints[LSP14.index("left_knee"), 0] = np.nan
    out = draw_keypoints(np.zeros((100, 100, 3), np.uint8), keypoints, "lsp14", radius=3)
    assert out[20, 20].max() > 0 and out[50, 20].max() == 0


def test_shape_checks():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="lsp14"):
        draw_keypoints(image, np.zeros((17, 3)), "lsp14")
    with pytest.raises(ValueError, match="uint8"):
        draw_keypoints(image.astype(np.float32), np.zeros((14, 3)), "lsp14")
    with pytest.raises(ValueError, match="image"):
        draw_keypoints(image[..., 0], np.zeros((14, 3)), "lsp14")


def test_contact_sheet_layout():
    tiles = [np.full((4, 6, 3), value, np.uint8) for value in (10, 20, 30)]
    sheet = contact_sheet(tiles, columns=2, pad=1, background=255)
    assert sheet.shape == (2 * 5 + 1, 2 * 7 + 1, 3)
    assert (sheet[1:5, 1:7] == 10).all() and (sheet[1:5, 8:14] == 20).all() and (sheet[6:10, 1:7] == 30).all()
    assert (sheet[6:10, 8:14] == 255).all() and (sheet[0] == 255).all()
    assert contact_sheet(tiles, columns=8).shape == (4 + 2 * 2, 3 * 6 + 4 * 2, 3)  # columns capped at the count
    with pytest.raises(ValueError, match="no tiles"):
        contact_sheet([])
    with pytest.raises(ValueError, match="shape"):
        contact_sheet([tiles[0], np.zeros((5, 6, 3), np.uint8)])
