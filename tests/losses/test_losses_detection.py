"""CenterNet's focal loss and the L1 at peak cells."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.losses.detection import center_focal_loss, masked_l1
from lowres_hps.models.codecs.base import gather_cells


def test_focal_loss_is_small_for_the_target_and_large_for_its_opposite():
    target = torch.zeros(1, 1, 8, 8)
    target[0, 0, 3, 4] = 1.0
    target[0, 0, 3, 5] = 0.6
    good = torch.logit(target.clamp(1e-4, 1 - 1e-4))
    assert center_focal_loss(good, target) < 0.01
    assert center_focal_loss(-good, target) > 1.0
    # Cells near a peak are penalised less for being high than far ones (the (1 - y)^beta reduction).
    near, far = torch.full_like(target, -9.0), torch.full_like(target, -9.0)
    near[0, 0, 3, 5] = 2.0
    far[0, 0, 7, 0] = 2.0
    assert center_focal_loss(near, target) < center_focal_loss(far, target)


def test_focal_loss_has_gradients_and_checks_shapes():
    logits = torch.zeros(2, 1, 4, 4, requires_grad=True)
    center_focal_loss(logits, torch.zeros(2, 1, 4, 4)).backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="one shape"):
        center_focal_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


def test_l1_at_cells_counts_only_weighted_people():
    maps = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).view(2, 2, 3, 3)
    got = gather_cells(maps, torch.tensor([[0, 4], [8, 0]]))
    assert got[0, 1].tolist() == [4.0, 13.0] and got[1, 0].tolist() == [26.0, 35.0]
    pred, target = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    assert masked_l1(pred, target, torch.tensor([[1.0, 0.0]])).item() == 1.0
