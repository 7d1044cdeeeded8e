"""Shape checks: layouts with exact sizes, named sizes and any leading dimensions; dtypes; clear messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.core.checks import check_image, check_shape, check_size, check_trailing


@pytest.mark.parametrize("shape, spec", [((2, 3, 64, 48), "B 3 H W"), ((3, 64, 48), "* C H W"),
                                         ((5, 4, 3, 8, 8), "* 3 H W"), ((7, 2), "* 2"), ((2,), "* 2")])
def test_matching_layouts_pass(shape, spec):
    check_shape(torch.zeros(shape), spec, "x")
    check_shape(np.zeros(shape), spec, "x")


@pytest.mark.parametrize("shape, spec, message", [
    ((3, 64, 48), "B 3 H W", r"images must be \(B, 3, H, W\), got \(3, 64, 48\)"),
    ((2, 4, 64, 48), "B 3 H W", r"\(B, 3, H, W\), got \(2, 4, 64, 48\)"),
    ((2, 3, 64, 40), "B 3 64 48", r"\(B, 3, 64, 48\)"),
    ((7, 3), "* 2", r"\(\.\.\., 2\)"),
    ((), "* 2", r"\(\.\.\., 2\), got \(\)"),
])
def test_other_layouts_name_the_argument_and_the_layout(shape, spec, message):
    with pytest.raises(ValueError, match=message):
        check_shape(torch.zeros(shape), spec, "images")


def test_dtype_and_type():
    check_shape(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "B 3 H W", "crops", torch.uint8)
    with pytest.raises(ValueError, match=r"crops must be \(B, 3, H, W\) torch.uint8, got .* torch.float32"):
        check_shape(torch.zeros(1, 3, 4, 4), "B 3 H W", "crops", torch.uint8)
    with pytest.raises(ValueError, match=r"\(H, W, C\) uint8, got \(4, 4, 3\) float64"):
        check_shape(np.zeros((4, 4, 3)), "H W C", "crop", np.uint8)
    with pytest.raises(TypeError, match="list"):
        check_shape([1, 2], "* 2", "points")


def test_check_image():
    check_image(np.zeros((4, 5, 3), np.uint8))
    for bad in (np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8), np.zeros((4, 5, 3)), [[0]]):
        with pytest.raises(ValueError, match=r"frame must be an \(H, W, 3\) uint8 RGB array"):
            check_image(bad, "frame")


def test_trailing_and_size():
    check_trailing(torch.zeros(4, 2, 3), (2, 3), "affine")
    with pytest.raises(ValueError, match=r"affine must be \(\.\.\., 2, 3\)"):
        check_trailing(torch.zeros(4, 3, 3), (2, 3), "affine")
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_trailing(np.zeros((4, 3)), (3,), "points")
    assert check_size((64.0, 48), "size") == (64, 48)
    with pytest.raises(ValueError, match="two positive integers"):
        check_size((64, 0), "size")
