"""Silhouette-topology transforms and spatial-chamfer losses of Rakesh, Kundu et al., "Aligning Silhouette
Topology for Self-Adaptive 3D Human Pose Recovery" (NeurIPS 2021), Sections 3.2-3.3.

Every step is a convolution, a pooling or an element-wise op on the (..., H, W) maps, so nothing maps pixels to
point sets and gradients reach the (rendered) silhouette everywhere:

    hard = binarize(rendered)                   # M2S: 0/1 forward, straight-through (identity) backward
    d_in = inward_distance(hard, steps)         # S2D, Eq. 2: recursive 8-neighbour erosion, summed
    skel = topological_skeleton(hard, steps)    # D2T, Eq. 3: ridge (local maxima) of d_in, masked
    loss = silhouette_chamfer_loss(hard, target, steps) + topology_chamfer_loss(hard, target, steps)  # L_S + L_T

Distances are chessboard (8-neighbour) distances in pixels, capped at ``steps + 1``
(:func:`default_steps` picks ``steps`` for an image size). The chamfer losses are normalised by the number of
active pixels (our choice, see :func:`spatial_chamfer`); the paper uses the raw L1 sum of Eq. 5.

These ops are written by hand in plain PyTorch because no maintained library provides them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lowres_hps.core.checks import check_shape

__all__ = [
    "binarize", "erosion_distance", "inward_distance", "outward_distance", "topological_skeleton",
    "spatial_chamfer", "silhouette_chamfer_loss", "topology_chamfer_loss", "silhouette_l2_loss",
    "topology_l2_loss", "default_steps",
]

# S2D's threshold m = n^2 - 2 for the n = 3 neighbourhood: a pixel survives only with all 8 neighbours on.
_ERODE_THRESHOLD = 7.0


def _check_maps(x: torch.Tensor, name: str) -> None:
    check_shape(x, "* H W", name)
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check_maps(pred, "pred")
    _check_maps(target, "target")
    if target.shape != pred.shape:
        raise ValueError(f"target {tuple(target.shape)} must match pred {tuple(pred.shape)}")
    return target.to(pred.dtype)


def _check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    return int(steps)


class _Binarize(torch.autograd.Function):
    """Hubara et al.'s straight-through estimator: hard threshold forward, identity backward."""

    @staticmethod
    def forward(ctx, soft: torch.Tensor, threshold: float) -> torch.Tensor:
        return (soft >= threshold).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def binarize(soft: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """M2S's binary activation: ``soft >= threshold`` as 0/1 in ``soft``'s dtype, with an identity gradient.

    A custom autograd function rather than ``soft + (hard - soft).detach()``: the latter rounds, so its
    forward is not exactly 0/1, and the erosion's ``relu(conv - 7)`` needs exact 0/1 to stay binary.

    Args:
        soft: (..., H, W) soft silhouette, e.g. a differentiable renderer's coverage in [0, 1].
        threshold: the cut.

    Returns:
        (..., H, W) exact 0/1 map; its gradient w.r.t. ``soft`` is the identity.
    """
    _check_maps(soft, "soft")
    return _Binarize.apply(soft, threshold)


def _neighbour_sum(x: torch.Tensor, outside: float) -> torch.Tensor:
    """(..., H, W) sum of the 8 neighbours, i.e. ``conv(x, N)`` with N = 3x3 ones and a 0 centre.

    The borders are padded with ``outside``. Written as a separable box sum of shifted slices (minus the centre)
    instead of ``conv2d``: the same kernel, exact for integer-valued maps, any leading batch shape, and its
    backward stores nothing.
    """
    padded = F.pad(x, (1, 1, 1, 1), value=float(outside))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    return box - x


def erosion_distance(masks: torch.Tensor, steps: int, outside: float = 0.0) -> torch.Tensor:
    """S2D (Eq. 2): the sum of recursive 8-neighbour erosions, a chessboard distance map for binary masks.

    ``S_0 = masks``, ``S_{i+1} = relu(conv(S_i, N) - 7) * S_i`` with N the 3x3 ones kernel with a 0 centre,
    and ``D = sum_{i=0..steps} S_i``. ``relu(conv - 7)`` is the paper's op; the extra ``* S_i`` is ours: without
    it a 0 pixel whose 8 neighbours are all 1 (a one-pixel hole) turns on in ``S_1``, so ``D`` there would be 1,
    not 0, and an isolated skeleton pixel's outward map would not vanish on it. For binary maps the factor
    changes nothing else (``S_i`` for ``i >= 2`` lies inside ``S_0`` either way).

    For binary ``masks``, ``D`` is the chessboard distance from each pixel to the nearest 0 pixel (pixels beyond
    the border count as ``outside``), capped at ``steps + 1``; it is 0 on 0 pixels. The recursion stops early once
    some ``S_i`` is zero everywhere (the rest would be zero, gradient included); this costs a host sync per step.

    Args:
        masks: (..., H, W) binary(-ish) maps in [0, 1].
        steps: the number of erosions ``l`` (>= 0).
        outside: the value beyond the border: 0 (the image ends in background; inward maps) or 1 (outward maps,
            computed on the complement, whose outside is "on").

    Returns:
        (..., H, W) the distance map, same dtype and device.
    """
    _check_maps(masks, "masks")
    steps = _check_steps(steps)
    eroded = masks
    total = masks
    for _ in range(steps):
        eroded = torch.relu(_neighbour_sum(eroded, outside) - _ERODE_THRESHOLD) * eroded
        if not bool(eroded.any()):
            break
        total = total + eroded
    return total


def inward_distance(masks: torch.Tensor, steps: int) -> torch.Tensor:
    """D_in of Eq. 1 via S2D: on each foreground pixel the chessboard distance to the nearest background pixel.

    Pixels beyond the image are background, so a mask touching the border is 1 there. 0 on background, capped
    at ``steps + 1``.

    Args:
        masks: (..., H, W) binary(-ish) silhouettes.
        steps: the number of erosions; distances above ``steps + 1`` read ``steps + 1``.

    Returns:
        (..., H, W) the inward distance map.
    """
    return erosion_distance(masks, steps, outside=0.0)


def outward_distance(masks: torch.Tensor, steps: int) -> torch.Tensor:
    """D_out of Eq. 1 via ``S2D(1 - S)``: on each background pixel the chessboard distance to the nearest
    foreground pixel.

    Only foreground pixels inside the image count (the complement is padded with 1, i.e. beyond the image is
    background). 0 on foreground, capped at ``steps + 1``; an empty mask's map is ``steps + 1`` everywhere.

    Args:
        masks: (..., H, W) binary(-ish) maps (silhouettes or skeletons).
        steps: the number of erosions of the complement.

    Returns:
        (..., H, W) the outward distance map.
    """
    _check_maps(masks, "masks")
    return erosion_distance(1 - masks, steps, outside=1.0)


def topological_skeleton(masks: torch.Tensor, steps: int) -> torch.Tensor:
    """D2T (Eq. 3): ``T = relu(D_in - maxpool3x3(D_in) + 1) * masks``, the ridge (local maxima) of D_in.

    For binary masks D_in is integer-valued, so ``relu(. + 1)`` is 1 exactly on the 8-neighbourhood local maxima
    and 0 elsewhere: T is binary and a subset of the mask. The max-pool (stride 1) pads with -inf, so pixels
    beyond the border never count as a higher neighbour; as D_in >= 0 and the window holds the pixel itself,
    padding with 0 (background's D_in) would give the same maps. Its gradient is shared equally among tied
    maxima rather than sent to the top-left one as ``max_pool2d`` does (see ``_local_max``): same values,
    mirror-symmetric gradients.

    Args:
        masks: (..., H, W) binary(-ish) silhouettes.
        steps: erosions for D_in (:func:`inward_distance`); use at least half the body's thickness in pixels,
            or the plateau at ``steps + 1`` turns into a thick "ridge".

    Returns:
        (..., H, W) the skeleton map.
    """
    distance = inward_distance(masks, steps)
    return torch.relu(distance - _local_max(distance) + 1) * masks


def _local_max(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) 3x3 max-pool (stride 1, -inf padding) whose gradient is shared equally among tied maxima.

    The integer distance maps are full of ties (a ridge is a plateau), and ``max_pool2d`` sends the whole gradient
    to the first maximum in scan order, the top-left one: summed along a ridge this telescopes into a push at one
    end and a pull at the other, and a bar fitted with the topology loss drifts left. ``amax`` over the unfolded
    windows has the same forward value and splits the gradient evenly between equal values (mirror-symmetric).
    """
    shape = x.shape
    flat = x.reshape(-1, 1, *shape[-2:])  # (N, 1, H, W) for unfold
    windows = F.unfold(F.pad(flat, (1, 1, 1, 1), value=float("-inf")), kernel_size=3)  # (N, 9, H * W)
    return windows.amax(1).reshape(shape)


def spatial_chamfer(pred: torch.Tensor, target: torch.Tensor, steps: int) -> torch.Tensor:
    """Eq. 5's convolution-friendly two-way chamfer between two binary(-ish) maps, per map.

    ``(sum(D_out(pred) * target) + sum(D_out(target) * pred)) / max(1, sum(pred) + sum(target))``. The
    normalisation is our choice (Eq. 5 is the raw L1 sum): it reads as the mean chessboard distance, in pixels,
    from each active pixel to the other map, comparable across image sizes and body sizes. The denominator is
    detached, so it only rescales the gradient; gradients reach ``pred`` through both terms (its outward
    distance map and its masking of the target's). Distances above ``steps + 1`` saturate at ``steps + 1``.

    Args:
        pred: (..., H, W) predicted map, binary in the forward pass (e.g. :func:`binarize`).
        target: (..., H, W) target map (cast to ``pred``'s dtype).
        steps: erosions for the outward maps (:func:`default_steps`).

    Returns:
        (...,) the loss per map; 0 for identical maps and for two empty maps.
    """
    target = _check_pair(pred, target)
    steps = _check_steps(steps)
    dims = (-2, -1)
    cost = (outward_distance(pred, steps) * target).sum(dims) + (outward_distance(target, steps) * pred).sum(dims)
    count = (pred.sum(dims) + target.sum(dims)).detach().clamp(min=1)
    return cost / count


def silhouette_chamfer_loss(pred: torch.Tensor, target: torch.Tensor, steps: int) -> torch.Tensor:
    """L_S: :func:`spatial_chamfer` on the silhouettes themselves.

    Args:
        pred: (..., H, W) predicted silhouette (binary forward).
        target: (..., H, W) target silhouette.
        steps: erosions for the outward maps.

    Returns:
        (...,) mean distance in pixels per map.
    """
    return spatial_chamfer(pred, target, steps)


def topology_chamfer_loss(pred: torch.Tensor, target: torch.Tensor, steps: int) -> torch.Tensor:
    """L_T (Eq. 5): :func:`spatial_chamfer` between the silhouettes' topological skeletons.

    Skeletons follow the limbs' centre lines and ignore their thickness, so this measures pose, not body build.

    Args:
        pred: (..., H, W) predicted silhouette (binary forward).
        target: (..., H, W) target silhouette.
        steps: erosions for both the skeletons' inward maps and the outward maps.

    Returns:
        (...,) mean distance in pixels per map.
    """
    target = _check_pair(pred, target)
    return spatial_chamfer(topological_skeleton(pred, steps), topological_skeleton(target, steps), steps)


def silhouette_l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Baseline B1: the mean squared pixel difference of the silhouettes, per map.

    Args:
        pred: (..., H, W) predicted silhouette.
        target: (..., H, W) target silhouette.

    Returns:
        (...,) the mean over H, W of ``(pred - target)^2``.
    """
    target = _check_pair(pred, target)
    return (pred - target).square().mean((-2, -1))


def topology_l2_loss(pred: torch.Tensor, target: torch.Tensor, steps: int) -> torch.Tensor:
    """B3's extra term: the mean squared pixel difference of the topological skeletons, per map.

    Args:
        pred: (..., H, W) predicted silhouette (binary forward).
        target: (..., H, W) target silhouette.
        steps: erosions for the skeletons.

    Returns:
        (...,) the mean over H, W of ``(T(pred) - T(target))^2``.
    """
    target = _check_pair(pred, target)
    return (topological_skeleton(pred, steps) - topological_skeleton(target, steps)).square().mean((-2, -1))


def default_steps(height: int, width: int) -> int:
    """A ``steps`` for (height, width) images: ``max(height, width) // 2`` (at least 1).

    Enough for the outward map of a person centred in a crop to reach the crop's edges (and for any inward map,
    whose distances are at most ``min(height, width) / 2``), so the losses saturate only for far-off pixels.
    Fewer steps are cheaper (cost is linear in ``steps``) and cap the distances lower.
    """
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive integers, got {(height, width)}")
    return max(1, max(int(height), int(width)) // 2)
