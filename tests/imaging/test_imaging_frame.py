"""Whole-frame resize for whole-image networks."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.imaging.frame import long_side_factor, resize_and_pad


def test_factor_brings_the_long_side_to_its_target_within_bounds():
    assert long_side_factor(576, 768) == pytest.approx(1024 / 768)
    assert long_side_factor(115, 154) == 4.0
    assert long_side_factor(1080, 1920) == 1.0
    assert long_side_factor(576, 768, max_pixels=576 * 768) == pytest.approx(1.0)


def test_resize_and_pad_to_multiples():
    image = np.full((30, 40, 3), 200, np.uint8)
    padded, (h, w) = resize_and_pad(image, 1.6)
    assert (h, w) == (48, 64) and padded.shape == (64, 64, 3)
    assert padded[:48].min() == 200 and padded[48:].max() == 0
    same, size = resize_and_pad(np.zeros((64, 96, 3), np.uint8), 1.0)
    assert size == (64, 96) and same.shape == (64, 96, 3)
