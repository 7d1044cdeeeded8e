import math

import pytest
import roma
import torch

from lowres_hps.evaluation.keypoints3d import align_root, auc3d, joint_errors, mpjpe, pa_mpjpe, pck3d, pve

DTYPES = [torch.float32, torch.float64]


def _pose(*batch, k=14, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(*batch, k, 3, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mpjpe_constant_offset(dtype, device):
    gt = _pose(2, 3, dtype=dtype, device=device)
    offset = torch.tensor([0.03, -0.04, 0.12], dtype=dtype, device=device)  # |offset| = 0.13
    pred = gt + offset
    value = mpjpe(pred, gt)
    assert value.shape == (2, 3) and value.dtype == dtype and value.device.type == device.type
    torch.testing.assert_close(value, torch.full_like(value, 0.13))
    for root in (0, [2, 3]):
        torch.testing.assert_close(mpjpe(pred, gt, root=root), torch.zeros_like(value))


def test_mpjpe_hand_case_and_mask():
    gt = torch.zeros(1, 3, 3)
    pred = torch.tensor([[[0.0, 0.0, 0.0], [0.3, 0.4, 0.0], [0.0, 0.0, 2.0]]])
    torch.testing.assert_close(mpjpe(pred, gt), torch.tensor([2.5 / 3]))
    torch.testing.assert_close(mpjpe(pred, gt, mask=torch.tensor([[1, 1, 0]])), torch.tensor([0.25]))
    torch.testing.assert_close(mpjpe(pred, gt, mask=torch.tensor([[True, False, False]])), torch.tensor([0.0]))
    # Joint 1 as root: pred - pred[1] vs gt - gt[1] -> errors 0.5, 0, |(-0.3, -0.4, 2)|
    expected = (0.5 + 0.0 + math.sqrt(0.09 + 0.16 + 4.0)) / 3
    assert mpjpe(pred, gt, root=1).item() == pytest.approx(expected, rel=1e-6)


def test_masked_joints_with_nan_and_empty_samples():
    gt = _pose(2, k=5, dtype=torch.float32)
    pred = gt.clone()
    pred[:, 4] = float("nan")  # placeholder for a missing joint
    mask = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
    for metric in (mpjpe, pa_mpjpe):
        value = metric(pred, gt, mask)
        assert value[0].item() == pytest.approx(0.0, abs=1e-5)
        assert torch.isnan(value[1])  # no counted joint
    assert pck3d(pred, gt, mask)[0].item() == 1.0
    assert torch.isnan(pck3d(pred, gt, mask)[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pa_mpjpe_invariant_to_similarity(dtype, device):
    gt = _pose(4, dtype=dtype, device=device)
    rotation = roma.random_rotmat(4, dtype=dtype, device=device)
    pred = 1.7 * gt @ rotation.transpose(-1, -2) + torch.tensor([0.5, -1.0, 3.0], dtype=dtype, device=device)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert pa_mpjpe(pred, gt).abs().max().item() < tol
    assert (mpjpe(pred, gt) > 0.1).all()
    assert (mpjpe(pred, gt, root=0) > 0.1).all()


def test_pa_mpjpe_ignores_masked_outlier():
    gt = _pose(1, k=8)
    pred = 0.5 * gt + 0.2
    pred[0, 7] += 5.0  # an outlier that would spoil the alignment if it counted
    mask = torch.ones(1, 8)
    mask[0, 7] = 0
    assert pa_mpjpe(pred, gt, mask).item() < 1e-9
    assert pa_mpjpe(pred, gt).item() > 0.1


def test_pve():
    gt = _pose(2, k=50)
    pred = gt + torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    torch.testing.assert_close(pve(pred, gt), torch.full((2,), 0.02, dtype=torch.float64))
    torch.testing.assert_close(pve(pred, gt, procrustes=True), torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)
    mask = torch.zeros(2, 50)
    mask[:, :10] = 1
    pred[:, 10:] += 1.0
    torch.testing.assert_close(pve(pred, gt, mask), torch.full((2,), 0.02, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pck3d_counts(dtype, device):
    gt = torch.zeros(1, 4, 3, dtype=dtype, device=device)
    pred = gt.clone()
    pred[0, :, 0] = torch.tensor([0.0, 0.10, 0.15, 0.2], dtype=dtype)
    # 0.15 itself counts (<=); float32 0.15 is the same number on both sides.
    assert pck3d(pred, gt).item() == pytest.approx(0.75)
    assert pck3d(pred, gt, threshold=0.05).item() == pytest.approx(0.25)
    assert pck3d(pred, gt, mask=torch.tensor([[0, 0, 1, 1]], device=device)).item() == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_auc(dtype, device):
    # Multiples of 1/8 m, so that root alignment below is exact (threshold 0 counts only exact joints).
    g = torch.Generator().manual_seed(0)
    gt = (torch.randint(-8, 8, (3, 14, 3), generator=g) / 8).to(device=device, dtype=dtype)
    torch.testing.assert_close(auc3d(gt.clone(), gt), torch.ones(3, dtype=dtype, device=device))
    far = gt + torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device)
    torch.testing.assert_close(auc3d(far, gt), torch.zeros(3, dtype=dtype, device=device))
    torch.testing.assert_close(auc3d(far, gt, root=0), torch.ones(3, dtype=dtype, device=device))
    # Every joint 0.0525 m off: correct at thresholds 0.055..0.15 (20 of 31).
    shifted = gt + torch.tensor([0.0525, 0.0, 0.0], dtype=dtype, device=device)
    torch.testing.assert_close(auc3d(shifted, gt), torch.full((3,), 20 / 31, dtype=dtype, device=device))


def test_align_root_and_joint_errors():
    kp = torch.arange(12.0).reshape(4, 3)
    torch.testing.assert_close(align_root(kp, 1)[1], torch.zeros(3))
    torch.testing.assert_close(align_root(kp, [0, 2]).mean(0), kp.mean(0) - kp[[0, 2]].mean(0))
    assert align_root(kp, None) is kp
    with pytest.raises(ValueError, match="out of range"):
        align_root(kp, 4)
    torch.testing.assert_close(joint_errors(kp + 1.0, kp), torch.full((4,), math.sqrt(3.0)))


def test_shape_errors():
    with pytest.raises(ValueError, match="same"):
        mpjpe(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="mask"):
        pa_mpjpe(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, 3\)"):
        pck3d(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2))


def test_gradcheck_float64():
    gt = _pose(2, k=6)
    pred = (gt + 0.05 * _pose(2, k=6, seed=1)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    assert torch.autograd.gradcheck(lambda p: mpjpe(p, gt, mask, root=0), (pred,))
    assert torch.autograd.gradcheck(lambda p: pa_mpjpe(p, gt, mask), (pred,))
