"""Losses of heatmap and offset-field keypoint models (MSRA, UDP, CAL), weighted per keypoint and per pixel.

The heatmap losses average over all ``B * K * h * w`` elements (as mmpose's ``KeypointMSELoss`` and
``BCELoss`` with ``use_target_weight``); the offset loss is a weighted mean over pixels, normalised by the
sum of its weights, so that swapping binary, Gaussian or MGM pixel weights changes where the loss looks
and not its scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["heatmap_l2_loss", "heatmap_ce_loss", "offset_loss", "OFFSET_LOSS_KINDS"]

OFFSET_LOSS_KINDS = ("l1", "smooth_l1", "l2")


def _check_heatmap_args(pred: torch.Tensor, target: torch.Tensor, keypoint_weights: torch.Tensor | None) -> None:
    if pred.ndim != 4:
        raise ValueError(f"heatmaps must be (B, K, h, w), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target {tuple(target.shape)} must match the prediction {tuple(pred.shape)}")
    if keypoint_weights is not None and keypoint_weights.shape != pred.shape[:2]:
        raise ValueError(f"keypoint_weights must be {tuple(pred.shape[:2])}, got {tuple(keypoint_weights.shape)}")


def heatmap_l2_loss(
    pred: torch.Tensor, target: torch.Tensor, keypoint_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared heatmap error: ``mean over B, K, h, w of (w_bk * (pred - target))^2``.

    This is mmpose's ``KeypointMSELoss(use_target_weight=True)`` (weights multiply both maps before the
    MSE), and Eq. 3 / the first term of Eqs. 14-15 up to the constant ``h * w``.

    Args:
        pred: (B, K, h, w) predicted heatmaps.
        target: (B, K, h, w) target heatmaps.
        keypoint_weights: (B, K), e.g. ``KeypointTargets.keypoint_weights``; all ones when None.

    Returns:
        Scalar loss.
    """
    _check_heatmap_args(pred, target, keypoint_weights)
    diff = pred - target
    if keypoint_weights is not None:
        diff = diff * keypoint_weights[..., None, None]
    return (diff**2).mean()


def heatmap_ce_loss(
    logits: torch.Tensor, target: torch.Tensor, keypoint_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy on heatmap logits (UDP, Eq. 8): ``mean over B, K, h, w of w_bk * BCE``.

    Args:
        logits: (B, K, h, w) predicted heatmap logits.
        target: (B, K, h, w) targets in [0, 1] (the binary disc of UDP).
        keypoint_weights: (B, K); all ones when None.

    Returns:
        Scalar loss.
    """
    _check_heatmap_args(logits, target, keypoint_weights)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if keypoint_weights is not None:
        loss = loss * keypoint_weights[..., None, None]
    return loss.mean()


def offset_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    pixel_weights: torch.Tensor,
    keypoint_weights: torch.Tensor | None = None,
    kind: str = "l1",
    beta: float = 1.0,
) -> torch.Tensor:
    """Weighted offset-field loss (second term of Eqs. 8, 14 and 15).

    With ``W_bkp = pixel_weights[b, k, p] * keypoint_weights[b, k]`` and the per-pixel error
    ``e_bkp = sum over the x and y components of rho(pred - target)``::

        loss = sum_bkp W_bkp e_bkp / max(sum_bkp W_bkp, eps)

    so the loss is the ``W``-weighted mean per-pixel error (0 when all weights are 0). ``rho`` is ``|x|``
    (``"l1"``, CAL), ``smooth_l1`` with threshold ``beta`` (``"smooth_l1"``, UDP / G-RMI) or ``x^2``
    (``"l2"``). The balance ``alpha`` of the equations is left to the caller.

    Args:
        pred: (B, K, 2, h, w) predicted offsets.
        target: (B, K, 2, h, w) target offsets (same units, e.g. ``KeypointTargets.offsets``).
        pixel_weights: (B, K, h, w) binary disc ``B``, Gaussian ``G`` or Mixed Gaussian Masks.
        keypoint_weights: (B, K); all ones when None.
        kind: one of ``"l1"``, ``"smooth_l1"``, ``"l2"``.
        beta: ``smooth_l1`` threshold (in offset units).

    Returns:
        Scalar loss.
    """
    if pred.ndim != 5 or pred.shape[2] != 2:
        raise ValueError(f"offsets must be (B, K, 2, h, w), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target {tuple(target.shape)} must match the prediction {tuple(pred.shape)}")
    weights_shape = pred.shape[:2] + pred.shape[3:]
    if pixel_weights.shape != weights_shape:
        raise ValueError(f"pixel_weights must be {tuple(weights_shape)}, got {tuple(pixel_weights.shape)}")
    if keypoint_weights is not None and keypoint_weights.shape != pred.shape[:2]:
        raise ValueError(f"keypoint_weights must be {tuple(pred.shape[:2])}, got {tuple(keypoint_weights.shape)}")
    if kind == "l1":
        error = (pred - target).abs()
    elif kind == "smooth_l1":
        error = F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    elif kind == "l2":
        error = (pred - target) ** 2
    else:
        raise ValueError(f"kind must be one of {OFFSET_LOSS_KINDS}, got {kind!r}")
    weights = pixel_weights if keypoint_weights is None else pixel_weights * keypoint_weights[..., None, None]
    total = (error.sum(dim=2) * weights).sum()
    return total / weights.sum().clamp_min(torch.finfo(total.dtype).eps)
