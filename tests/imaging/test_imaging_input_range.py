"""``input_range_index``: the resolution range an input is run with, from its effective person height."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.imaging.protocol import (
    EVAL_MIDPOINTS,
    HIGH_RESOLUTION,
    LowResProtocol,
    input_range_index,
    resolution_to_range_index,
)

HEIGHTS = [500.0, 224.0, 180.0, 179.2, 179.1, 150.0, 128.0, 127.9, 64.0, 63.9, 40.0, 39.9, 24.0, 10.0]
RANGES = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_numbers_arrays_and_tensors_agree():
    for height, expected in zip(HEIGHTS, RANGES):
        got = input_range_index(height)
        assert got == expected and isinstance(got, int), height
    array = input_range_index(np.array(HEIGHTS).reshape(2, 7))
    assert array.dtype == np.int64 and array.shape == (2, 7)
    np.testing.assert_array_equal(array.reshape(-1), RANGES)
    for dtype in (torch.float32, torch.float64):
        tensor = input_range_index(torch.tensor(HEIGHTS, dtype=dtype))
        assert tensor.dtype == torch.int64
        torch.testing.assert_close(tensor, torch.tensor(RANGES))


def test_tensor_follows_the_device(device):
    out = input_range_index(torch.tensor([224.0, 32.0], device=device))
    assert out.device.type == device.type and out.tolist() == [0, 4]


def test_only_heights_shown_at_full_resolution_are_promoted():
    # Below the full-resolution height it is the protocol's own range of the height.
    for height in (179.0, 150.0, 96.0, 52.0, 32.0, 20.0):
        assert input_range_index(height) == resolution_to_range_index(height)
    assert [input_range_index(h) for h in EVAL_MIDPOINTS] == [1, 2, 3, 4]
    # The threshold is HIGH_RESOLUTION / scale_factor: a larger margin shows the person smaller.
    assert input_range_index(190.0, scale_factor=1.0) == 1 and input_range_index(224.0, scale_factor=1.0) == 0
    assert input_range_index(HIGH_RESOLUTION / 1.5, scale_factor=1.5) == 0
    assert input_range_index(HIGH_RESOLUTION / 1.5 - 0.1, scale_factor=1.5) == 1


def test_matches_the_effective_height_of_protocol_crops():
    image = np.random.default_rng(0).integers(0, 256, (600, 400, 3), dtype=np.uint8)
    protocol = LowResProtocol((224, 224), 1.25, "upsample")
    box = np.array([100.0, 50.0, 200.0, 400.0])  # a 400 px tall person
    for height, expected in ((None, 0), (200.0, 0), (150.0, 1), (96.0, 2), (52.0, 3), (32.0, 4)):
        crop = protocol(image, box, person_height=height)
        assert input_range_index(crop.person_height) == expected, height
        assert crop.range_index == expected, height  # the crop carries its range
    small = np.array([100.0, 50.0, 50.0, 100.0])  # a 100 px tall source person: never above range 2
    assert input_range_index(protocol(image, small, person_height=None).person_height) == 2
    assert protocol(image, small, person_height=200.0).range_index == 2
    # The range follows the protocol's margin: 150 px is range 0 with a 1.5 margin (224 / 1.5 = 149.3).
    assert LowResProtocol((224, 224), 1.5, "upsample")(image, box, person_height=150.0).range_index == 0
