"""Bone-direction loss: zero for the same directions, scale- and offset-free, confidence-weighted, float64 gradcheck."""
from __future__ import annotations

import math

import pytest
import torch

from lowres_hps.losses.bones import LIMB_BONES, bone_direction_loss, bone_indices


def _people(batch=3, seed=0):
    return torch.randn(batch, 17, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_indices_name_the_limbs_in_coco17():
    bones = bone_indices("coco17")
    assert bones.shape == (len(LIMB_BONES), 2)
    assert bones[0].tolist() == [5, 7]  # left shoulder -> left elbow


def test_same_directions_give_zero_whatever_the_scale_and_origin():
    pred = _people()
    target = 0.3 * pred + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    loss = bone_direction_loss(pred, target, torch.ones(3, 17, dtype=torch.float64), bone_indices("coco17"))
    torch.testing.assert_close(loss, torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_opposite_bone_costs_two_and_confidence_weighs_bones():
    bones = torch.tensor([[0, 1], [1, 2]])
    pred = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]])
    target = torch.tensor([[[0.0, 0, 0], [-1, 0, 0], [-1, 1, 0]]])  # bone 0 reversed, bone 1 at 90 degrees
    both = bone_direction_loss(pred, target, torch.ones(1, 3), bones)
    assert both.item() == pytest.approx((2.0 + 1.0) / 2)
    only_second = bone_direction_loss(pred, target, torch.tensor([[0.0, 1, 1]]), bones)
    assert only_second.item() == pytest.approx(1.0)
    nothing = bone_direction_loss(pred, target, torch.zeros(1, 3), bones)
    assert nothing.item() == 0.0 and not math.isnan(nothing.item())


def test_gradcheck_float64():
    pred = _people(2).requires_grad_()
    target = _people(2, seed=1)
    confidence = torch.rand(2, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(lambda p: bone_direction_loss(p, target, confidence, bone_indices("coco17")),
                                    (pred,))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="confidence"):
        bone_direction_loss(_people(), _people(), torch.ones(3, 16), bone_indices("coco17"))
