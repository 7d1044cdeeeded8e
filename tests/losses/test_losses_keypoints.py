import pytest
import torch
import torch.nn.functional as F

from lowres_hps.losses import OFFSET_LOSS_KINDS, heatmap_ce_loss, heatmap_l2_loss, offset_loss
from lowres_hps.models.codecs import CALCodec


def tensors(*shapes, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).to(device) for s in shapes]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_heatmap_l2_matches_mmpose_definition(dtype, device):
    pred, target = tensors((2, 3, 4, 5), (2, 3, 4, 5), dtype=dtype, device=device)
    weights = torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype=dtype, device=device)
    loss = heatmap_l2_loss(pred, target, weights)
    # mmpose KeypointMSELoss(use_target_weight=True): MSE of the weighted maps.
    expected = F.mse_loss(pred * weights[..., None, None], target * weights[..., None, None])
    assert loss.dtype == dtype and torch.allclose(loss, expected)
    assert torch.allclose(heatmap_l2_loss(pred, target), F.mse_loss(pred, target))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_heatmap_ce(dtype, device):
    logits, target = tensors((2, 3, 4, 5), (2, 3, 4, 5), dtype=dtype, device=device)
    target = (target > 0).to(dtype)
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=dtype, device=device)
    loss = heatmap_ce_loss(logits, target, weights)
    per_pixel = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits))
    assert torch.allclose(loss, (per_pixel * weights[..., None, None]).mean())
    # Zero-weight keypoints contribute nothing, whatever their prediction.
    changed = logits.clone()
    changed[0, 1] = 100.0
    assert torch.allclose(heatmap_ce_loss(changed, target, weights), loss)


@pytest.mark.parametrize("kind", OFFSET_LOSS_KINDS)
def test_offset_loss_definition(kind, device):
    pred, target = tensors((2, 3, 2, 4, 5), (2, 3, 2, 4, 5), device=device)
    pixel_weights = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pixel_weights = pixel_weights.to(device)
    keypoint_weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64, device=device)
    loss = offset_loss(pred, target, pixel_weights, keypoint_weights, kind=kind)
    diff = pred - target
    rho = {"l1": diff.abs(), "l2": diff**2,
           "smooth_l1": torch.where(diff.abs() < 1, 0.5 * diff**2, diff.abs() - 0.5)}[kind]
    weights = pixel_weights * keypoint_weights[..., None, None]
    expected = (rho.sum(dim=2) * weights).sum() / weights.sum()
    assert torch.allclose(loss, expected)
    # Normalised by the weight sum: scaling every weight leaves the loss unchanged.
    assert torch.allclose(offset_loss(pred, target, 7 * pixel_weights, keypoint_weights, kind=kind), loss)


def test_offset_loss_edge_cases():
    pred, target = tensors((1, 2, 2, 3, 3), (1, 2, 2, 3, 3))
    zero = offset_loss(pred, target, torch.zeros(1, 2, 3, 3, dtype=torch.float64))
    assert zero == 0 and torch.isfinite(zero)
    assert offset_loss(target, target, torch.ones(1, 2, 3, 3, dtype=torch.float64)) == 0
    # smooth_l1's beta: errors below it are quadratic.
    small = offset_loss(target + 0.1, target, torch.ones(1, 2, 3, 3, dtype=torch.float64), kind="smooth_l1",
                        beta=0.5)
    assert float(small) == pytest.approx(2 * 0.5 * 0.1**2 / 0.5)
    with pytest.raises(ValueError, match="kind"):
        offset_loss(pred, target, torch.ones(1, 2, 3, 3), kind="huber")
    with pytest.raises(ValueError):
        offset_loss(pred, target, torch.ones(1, 2, 3, 4))
    with pytest.raises(ValueError):
        offset_loss(pred[:, :, :1], target[:, :, :1], torch.ones(1, 2, 3, 3))
    with pytest.raises(ValueError):
        offset_loss(pred, target, torch.ones(1, 2, 3, 3), torch.ones(2, 2))
    with pytest.raises(ValueError):
        heatmap_l2_loss(pred[:, :, 0], target[:, :, 0, :2])
    with pytest.raises(ValueError):
        heatmap_ce_loss(pred[:, :, 0], target[:, :, 0], torch.ones(1, 3))


def test_gradcheck_heatmap_losses():
    pred, target = tensors((2, 2, 3, 3), (2, 2, 3, 3))
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.2]], dtype=torch.float64)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: heatmap_l2_loss(p, target, weights), (pred,))
    assert torch.autograd.gradcheck(lambda p: heatmap_ce_loss(p, target.sigmoid(), weights), (pred,))


@pytest.mark.parametrize("kind", OFFSET_LOSS_KINDS)
def test_gradcheck_offset_loss(kind):
    pred, target = tensors((1, 2, 2, 3, 3), (1, 2, 2, 3, 3))
    pixel_weights = torch.rand(1, 2, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # Keep every error away from the kinks of |x| (0) and smooth_l1 (+-beta).
    gap = (pred - target).abs()
    pred = torch.where((gap < 0.05) | ((gap - 1).abs() < 0.05), pred + 0.2, pred).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: offset_loss(p, target, pixel_weights, kind=kind), (pred,))


def test_losses_on_cal_targets_vanish_at_the_target():
    codec = CALCodec((64, 48))
    keypoints = torch.rand(2, 17, 2, generator=torch.Generator().manual_seed(3)) * torch.tensor([47.0, 63.0])
    targets = codec.encode(keypoints)
    assert heatmap_l2_loss(targets.heatmaps, targets.heatmaps, targets.keypoint_weights) == 0
    assert offset_loss(targets.offsets, targets.offsets, targets.offset_weights, targets.keypoint_weights) == 0
    shifted = offset_loss(targets.offsets + 0.1, targets.offsets, targets.offset_weights, targets.keypoint_weights)
    assert float(shifted) == pytest.approx(0.2, rel=1e-5)  # |0.1| in x plus |0.1| in y at every weighted pixel
