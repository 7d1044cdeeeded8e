"""Losses of a CenterNet person detector: the penalty-reduced focal loss on the centre heatmap and L1 on
values read at the people's peak cells (Zhou et al. 2019; read them with
:func:`lowres_hps.models.codecs.base.gather_cells`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["center_focal_loss", "masked_l1"]


def center_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's focal loss, summed over cells and divided by the number of peaks (cells where the target is 1;
    at least 1).

    Args:
        logits: (B, 1, h, w) centre logits.
        target: (B, 1, h, w) Gaussian-splatted targets in [0, 1].
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have one shape, got {tuple(logits.shape)} and {tuple(target.shape)}")
    logits, target = logits.float(), target.float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    positive = target.ge(1.0 - 1e-4).float()
    pos_loss = -(1 - p).pow(alpha) * log_p * positive
    neg_loss = -(1 - target).pow(beta) * p.pow(alpha) * log_not_p * (1 - positive)
    return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the entries of people with ``weight`` (B, N) > 0; pred, target (B, N, C)."""
    w = weight.to(pred.dtype).unsqueeze(-1).expand_as(pred)
    return ((pred - target).abs() * w).sum() / w.sum().clamp(min=1)
