"""Silhouette contact sheets: the grid, the outlines in their colours, and shape checks."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.viz.silhouettes import silhouette_sheet


def test_sheet_outlines_each_mask_in_its_cell():
    images = np.zeros((3, 3, 16, 16), np.uint8)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[:, 4:12, 6:10] = 1
    others = np.zeros_like(masks)
    others[2, 2:6, 2:6] = 1
    sheet = silhouette_sheet(images, masks, columns=2, others=others)
    assert sheet.shape == (32, 32, 3)
    first = sheet[:16, :16]
    assert (first[4, 6] == (255, 64, 32)).all() and (first[8, 8] == 0).all()  # outline, not fill
    third = sheet[16:, :16]
    assert (third[2, 2] == (32, 200, 255)).all()
    assert (sheet[16:, 16:] == 0).all()  # the empty cell


def test_sheet_takes_channels_last_and_checks_shapes():
    images = np.full((2, 8, 8, 3), 100, np.uint8)
    assert silhouette_sheet(images, np.zeros((2, 8, 8), np.uint8)).shape == (8, 16, 3)
    with pytest.raises(ValueError, match="silhouettes"):
        silhouette_sheet(images, np.zeros((2, 9, 9), np.uint8))
