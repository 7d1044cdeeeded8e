"""Silhouette topology (Rakesh, Kundu et al. 2021): chessboard distance maps against scipy, skeletons of bars and
squares, spatial chamfer values, float64 gradchecks at differentiable points, mirror-symmetric gradients, and
descents that move a mask (free pixels, or a "rendered" bar's centre) onto a displaced target."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_cdt

from lowres_hps.losses.silhouette import (
    binarize, default_steps, erosion_distance, inward_distance, outward_distance, silhouette_chamfer_loss,
    silhouette_l2_loss, spatial_chamfer, topological_skeleton, topology_chamfer_loss, topology_l2_loss,
)


def _blobs(*batch, size=(40, 48), dtype=torch.float64, seed=0, level=0.0):
    """Random binary blob masks (..., H, W): smoothed noise, thresholded; they touch the border."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(int(np.prod(batch)) if batch else 1, 1, *size, generator=g, dtype=torch.float64)
    for _ in range(3):
        noise = F.avg_pool2d(noise, 5, stride=1, padding=2, count_include_pad=False)
    return (noise > level).to(dtype).reshape(*batch, *size)


def _bar(size=(64, 64), rows=(31, 34), cols=(8, 56), dtype=torch.float64):
    mask = torch.zeros(size, dtype=dtype)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = 1
    return mask


def _chessboard(mask: np.ndarray, pad_value: int, cap: int) -> np.ndarray:
    """scipy's chessboard distance to the nearest 0 pixel, with the border padded by ``pad_value``, capped."""
    padded = np.pad(mask, 1, constant_values=pad_value)
    if not (padded == 0).any():  # scipy returns -1 when there is no 0 pixel at all
        return np.full(mask.shape, cap)
    return np.minimum(distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1], cap)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_distances_match_scipy_chessboard(dtype, batch):
    masks = _blobs(*batch, dtype=dtype, seed=len(batch))
    flat = masks.reshape(-1, *masks.shape[-2:]).numpy().astype(np.int64)
    for steps in (3, 30):  # 3 caps most distances, 30 caps none inside a 40x48 image
        inward, outward = inward_distance(masks, steps), outward_distance(masks, steps)
        assert inward.shape == outward.shape == masks.shape and inward.dtype == outward.dtype == dtype
        want_in = np.stack([_chessboard(m, 0, steps + 1) for m in flat]).reshape(masks.shape)
        want_out = np.stack([_chessboard(1 - m, 1, steps + 1) for m in flat]).reshape(masks.shape)
        np.testing.assert_array_equal(inward.numpy(), want_in)
        np.testing.assert_array_equal(outward.numpy(), want_out)


def test_one_pixel_holes_and_empty_masks(device):
    mask = torch.zeros(16, 16, device=device)
    mask[3:12, 3:12] = 1
    mask[7, 7] = 0  # a one-pixel hole: background, so its inward distance is 0 and its neighbours' is 1
    inward = inward_distance(mask, 10)
    assert inward[7, 7] == 0 and inward[6:9, 6:9].sum() == 8
    dot = torch.zeros(16, 16, device=device)
    dot[5, 5] = 1  # an isolated pixel: outward distance 0 on it
    assert outward_distance(dot, 10)[5, 5] == 0 and outward_distance(dot, 10)[5, 8] == 3
    empty = torch.zeros(2, 16, 16, device=device)
    assert (outward_distance(empty, 6) == 7).all() and (inward_distance(empty, 6) == 0).all()
    assert (erosion_distance(empty + 1, 20, outside=1.0) == 21).all()  # nothing ever erodes


def test_skeleton_of_a_bar_is_its_middle_row(device):
    bar = _bar(rows=(30, 35), cols=(8, 56)).to(device)  # 5 px tall: inward distances 1, 2, 3, 2, 1
    skeleton = topological_skeleton(bar, 32)
    expected = torch.zeros_like(bar)
    expected[32, 10:54] = 1  # the centre row, minus the 2 px at each end where the distance is still rising
    torch.testing.assert_close(skeleton, expected, rtol=0, atol=0)


def test_skeleton_is_a_binary_subset_of_the_mask_and_holds_a_squares_centre():
    square = torch.zeros(32, 32)
    square[8:21, 10:23] = 1  # 13x13, centre (14, 16)
    skeleton = topological_skeleton(square, 16)
    assert skeleton[14, 16] == 1 and skeleton.sum() == 1
    masks = _blobs(4, dtype=torch.float32, seed=3)
    skeletons = topological_skeleton(masks, default_steps(40, 48))
    assert set(skeletons.unique().tolist()) <= {0.0, 1.0}
    assert (skeletons <= masks).all() and (skeletons.sum((-2, -1)) > 0).all()


def test_chamfer_is_zero_for_identical_maps_and_symmetric():
    a, b = _blobs(3, seed=4), _blobs(3, seed=5)
    steps = default_steps(40, 48)
    assert (spatial_chamfer(a, a, steps) == 0).all()
    loss = spatial_chamfer(a, b, steps)
    assert loss.shape == (3,) and (loss > 0).all()
    torch.testing.assert_close(loss, spatial_chamfer(b, a, steps), rtol=0, atol=0)
    assert (spatial_chamfer(a * 0, a * 0, steps) == 0).all()  # two empty maps: no NaN


@pytest.mark.parametrize("shift", [1, 2, 3, 4])
def test_chamfer_of_a_shifted_line_is_the_shift(shift, device):
    line = _bar(rows=(20, 21), cols=(10, 50)).to(device)
    down = torch.roll(line, shift, dims=0)
    diagonal = torch.roll(line, (shift, shift), dims=(0, 1))  # chessboard: a diagonal step is one pixel
    assert spatial_chamfer(line, down, 8).item() == pytest.approx(shift)
    assert spatial_chamfer(diagonal, line, 8).item() == pytest.approx(shift)


def test_topology_ignores_body_build():
    thin = _bar(rows=(31, 34))  # 3 px and 15 px tall, the same centre row 32
    thick = _bar(rows=(25, 40))
    steps = default_steps(64, 64)
    silhouette = silhouette_chamfer_loss(thin, thick, steps).item()
    topology = topology_chamfer_loss(thin, thick, steps).item()
    assert silhouette > 2 and topology < 1  # the skeletons differ only by 6 px at each end of the thin one
    topology_l2 = topology_l2_loss(thin, thick, steps)
    assert 0 < topology_l2 < silhouette_l2_loss(thin, thick)


def test_binarize_is_a_straight_through_step():
    soft = torch.tensor([[-0.2, 0.2, 0.5], [0.7, 1.0, 1.3]], dtype=torch.float64, requires_grad=True)
    hard = binarize(soft)
    assert hard.dtype == soft.dtype and hard.tolist() == [[0, 0, 1], [1, 1, 1]]
    weights = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    (hard * weights).sum().backward()
    torch.testing.assert_close(soft.grad, weights, rtol=0, atol=0)
    assert binarize(soft.detach(), threshold=0.9).tolist() == [[0, 0, 0], [0, 1, 1]]


def _soft(mask, seed=0):
    """A soft version of a binary mask, chosen so that no relu argument of the erosions of it or of ``1 - it``
    (outside = 0 or 1) comes near the kink: gradcheck's finite differences then see a smooth function.

    "On" pixels are in [0.9, 0.94], "off" in [0.06, 0.1] (so ``1 - mask`` has the same ranges). First erosion:
    8 on neighbours sum to >= 7.2, 7 on and 1 off to <= 6.68; at a border padded with 1 the worst cases are
    3 + 4 * 0.94 + 0.1 = 6.86 (edge) and 5 + 2 * 0.94 + 0.1 = 6.98 (corner), against >= 7.5 and >= 7.7 when all
    are on. Its values are then <= 0.49 inside, <= 0.66 on an edge and <= 0.78 at a corner, so the second
    erosion's sums stay <= 5 + 2 * 0.66 + 0.49 < 6.9: the recursion stops after one erosion. (Measured on the
    inputs below, no argument is within 0.19 of 0.)
    """
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(mask.shape, generator=g, dtype=torch.float64)
    return torch.where(mask > 0, 0.9 + 0.04 * u, 0.06 + 0.04 * u)


@pytest.mark.parametrize("outside", [0.0, 1.0])
def test_gradcheck_erosion_distance_away_from_the_relu_kinks(outside):
    masks = _soft(_blobs(2, size=(12, 14), seed=6)).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: erosion_distance(m, 5, outside=outside), (masks,))


def test_gradcheck_the_linear_chamfer_term():
    # (D_out(target) * pred).sum() is linear in pred: differentiable everywhere, including at binary pred.
    target = _blobs(2, size=(12, 14), seed=7)
    pred = _blobs(2, size=(12, 14), seed=8).requires_grad_()
    distance = outward_distance(target, 8)
    assert torch.autograd.gradcheck(lambda p: (distance * p).sum(), (pred,))


def test_gradcheck_spatial_chamfer_and_its_detached_normalisation():
    target = _blobs(2, size=(12, 14), seed=9)
    pred = _soft(_blobs(2, size=(12, 14), seed=10), seed=1).requires_grad_()
    count = lambda p: (p.sum((-2, -1)) + target.sum((-2, -1))).clamp(min=1).detach()  # noqa: E731

    # The normaliser is detached, so finite differences would see it move but autograd would not; multiplying the
    # same detached count back leaves exactly Eq. 5's raw sum for both, whose gradient through both terms
    # (pred's outward map and its masking of target's) is what gradcheck compares.
    assert torch.autograd.gradcheck(lambda p: spatial_chamfer(p, target, 8) * count(p), (pred,))
    # ... and the loss's own gradient is that raw gradient over the count.
    (grad,) = torch.autograd.grad(spatial_chamfer(pred, target, 8).sum(), pred)
    (raw_grad,) = torch.autograd.grad((spatial_chamfer(pred, target, 8) * count(pred)).sum(), pred)
    torch.testing.assert_close(grad, raw_grad / count(pred)[:, None, None])


def _iou(a, b):
    return ((a * b).sum() / ((a + b) > 0).sum()).item()


def _fit_loss(pred, target, steps=12):  # 12 > the bars' half-height + shift: nothing relevant is capped
    return silhouette_chamfer_loss(pred, target, steps) + topology_chamfer_loss(pred, target, steps)


def test_descent_on_free_pixel_logits_moves_the_mask_onto_a_displaced_target():
    target = _bar(size=(48, 48), rows=(20, 27), cols=(6, 42))
    logits = (2 * torch.roll(target, (4, 3), dims=(0, 1)) - 1).requires_grad_()  # the bar, 4 px down, 3 px right
    optimizer = torch.optim.Adam([logits], lr=0.1)
    with torch.no_grad():
        first_loss = _fit_loss(binarize(torch.sigmoid(logits)), target).item()
        first_iou = _iou(binarize(torch.sigmoid(logits)), target)
    for _ in range(100):
        optimizer.zero_grad()
        _fit_loss(binarize(torch.sigmoid(logits)), target).backward()
        optimizer.step()
    with torch.no_grad():
        pred = binarize(torch.sigmoid(logits))
        assert _fit_loss(pred, target).item() < 0.5 * first_loss
        assert _iou(pred, target) > first_iou + 0.3  # 0.25 -> about 0.68


def test_descent_on_a_rendered_bar_recovers_its_position():
    # As in the paper, the gradient reaches a few scene parameters (here a bar's centre) through a soft
    # "renderer" (a sigmoid of the signed distance to the box) and M2S's straight-through binarisation.
    target = _bar(size=(48, 48), rows=(20, 27), cols=(6, 42))  # centre (23, 23.5), half-size (3.5, 18)
    ys, xs = torch.meshgrid(*(torch.arange(48, dtype=torch.float64),) * 2, indexing="ij")
    centre = torch.tensor([27.0, 26.5], dtype=torch.float64, requires_grad=True)  # 4 px down, 3 px right
    optimizer = torch.optim.Adam([centre], lr=0.2)
    for _ in range(100):
        optimizer.zero_grad()
        inside = torch.minimum(3.5 - (ys - centre[0]).abs(), 18.0 - (xs - centre[1]).abs())
        _fit_loss(binarize(torch.sigmoid(inside)), target).backward()
        optimizer.step()
    # Within a pixel; and no sideways drift along the bar (max_pool2d's top-left tie gradient drifted it ~4 px).
    assert abs(centre[0].item() - 23.0) < 1.0 and abs(centre[1].item() - 23.5) < 0.25


def test_gradients_are_mirror_symmetric():
    target = _bar(rows=(28, 35), cols=(12, 52))
    pred = torch.roll(_bar(rows=(26, 37), cols=(12, 48)), (3, 2), dims=(0, 1))

    def gradient(p, t):
        p = p.clone().requires_grad_()
        (grad,) = torch.autograd.grad(_fit_loss(p, t), p)
        return grad

    grad = gradient(pred, target)
    for dims in ((-1,), (-2,)):
        torch.testing.assert_close(gradient(pred.flip(dims), target.flip(dims)), grad.flip(dims))


def test_l2_losses_are_per_map_means():
    a, b = _blobs(2, 3, seed=11), _blobs(2, 3, seed=12)
    l2 = silhouette_l2_loss(a, b)
    assert l2.shape == (2, 3)
    torch.testing.assert_close(l2, (a != b).double().mean((-2, -1)))
    assert (topology_l2_loss(a, a, 10) == 0).all() and topology_l2_loss(a, b, 10).shape == (2, 3)


def test_default_steps():
    assert default_steps(128, 96) == 64 and default_steps(1, 1) == 1
    with pytest.raises(ValueError, match="height"):
        default_steps(0, 64)


def test_bad_arguments_raise_naming_the_argument():
    with pytest.raises(ValueError, match="masks"):
        inward_distance(torch.zeros(8), 3)
    with pytest.raises(ValueError, match="pred"):
        spatial_chamfer(torch.zeros(8), torch.zeros(8), 3)
    with pytest.raises(ValueError, match="target"):
        silhouette_chamfer_loss(torch.zeros(2, 8, 8), torch.zeros(3, 8, 8), 3)
    with pytest.raises(ValueError, match="steps"):
        erosion_distance(torch.zeros(8, 8), -1)
    with pytest.raises(TypeError, match="soft"):
        binarize(torch.zeros(8, 8, dtype=torch.bool))
