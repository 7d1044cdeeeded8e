"""Mask metrics: per-sample foreground accuracy/IoU/F1 and pooled multi-class (body part) IoU/F1.

The LSP segmentation protocol of SMPLify/SPIN (FG-BG and 6-part "Acc." and "F1" tables) pools
pixel counts over the whole test set and reports the pixel accuracy and the F1 averaged over all
classes, background included: that is :func:`segmentation_metrics` with ``num_classes=2`` (FG-BG)
or 7 (background + 6 parts), or :func:`confusion_matrix` summed over batches then
:func:`metrics_from_confusion`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "BinaryMaskMetrics",
    "SegmentationMetrics",
    "binary_mask_metrics",
    "confusion_matrix",
    "metrics_from_confusion",
    "segmentation_metrics",
]


@dataclass
class BinaryMaskMetrics:
    """Per-sample foreground metrics, each (...); NaN where undefined (0/0: no foreground in either mask).

    Attributes:
        accuracy: fraction of pixels labelled correctly.
        iou: ``|P & G| / |P | G|``.
        f1: ``2 |P & G| / (|P| + |G|)`` (the Dice coefficient).
    """

    accuracy: torch.Tensor
    iou: torch.Tensor
    f1: torch.Tensor


@dataclass
class SegmentationMetrics:
    """Multi-class metrics pooled over all pixels given.

    Attributes:
        accuracy: 0-dim, fraction of non-ignored pixels labelled correctly.
        iou: (C,) per-class ``TP / (TP + FP + FN)``, NaN for classes absent from both pred and gt.
        f1: (C,) per-class ``2 TP / (2 TP + FP + FN)``, NaN likewise.
        present: (C,) bool, classes found in the prediction or the ground truth.
        mean_iou, mean_f1: 0-dim means over the present classes.
    """

    accuracy: torch.Tensor
    iou: torch.Tensor
    f1: torch.Tensor
    present: torch.Tensor
    mean_iou: torch.Tensor
    mean_f1: torch.Tensor


def binary_mask_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> BinaryMaskMetrics:
    """Foreground accuracy, IoU and F1 of each sample.

    Args:
        pred, gt: (..., H, W) masks, nonzero = foreground (binarise probabilities first).
        valid: optional (..., H, W), nonzero where the pixel counts (e.g. inside the image).

    Returns:
        :class:`BinaryMaskMetrics` of (...) float tensors (the default float dtype).
    """
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(f"expected pred and gt of the same (..., H, W) shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    p, g = pred != 0, gt.to(pred.device) != 0
    if valid is not None:
        if valid.shape != pred.shape:
            raise ValueError(f"valid must be {tuple(pred.shape)}, got {tuple(valid.shape)}")
        counted = valid.to(pred.device) != 0
        p, g = p & counted, g & counted
    else:
        counted = torch.ones_like(p)
    dtype = torch.get_default_dtype()

    def count(x: torch.Tensor) -> torch.Tensor:
        return x.sum((-2, -1)).to(dtype)

    tp, fp, fn = count(p & g), count(p & ~g), count(~p & g)
    total = count(counted)
    return BinaryMaskMetrics(
        accuracy=(total - fp - fn) / total,
        iou=tp / (tp + fp + fn),
        f1=2 * tp / (2 * tp + fp + fn),
    )


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """(C, C) int64 pixel counts, rows = ground-truth class, columns = predicted class.

    Args:
        pred, gt: integer label maps of the same shape (any shape), classes in [0, num_classes).
        ignore_index: ground-truth label whose pixels are skipped (e.g. 255 for "unlabelled").
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if pred.is_floating_point() or gt.is_floating_point():
        raise ValueError("pred and gt must be integer label maps")
    pred, gt = pred.reshape(-1).long(), gt.to(pred.device).reshape(-1).long()
    if ignore_index is not None:
        keep = gt != ignore_index
        pred, gt = pred[keep], gt[keep]
    for name, labels in (("pred", pred), ("gt", gt)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in [0, {num_classes}), found "
                             f"[{int(labels.min())}, {int(labels.max())}]")
    return torch.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def metrics_from_confusion(confusion: torch.Tensor) -> SegmentationMetrics:
    """Metrics of a (C, C) confusion matrix (rows = gt, columns = pred), e.g. summed over a dataset."""
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"expected a (C, C) confusion matrix, got {tuple(confusion.shape)}")
    counts = confusion.to(torch.float64)
    tp = counts.diagonal()
    fp = counts.sum(0) - tp
    fn = counts.sum(1) - tp
    present = (tp + fp + fn) > 0
    iou = tp / (tp + fp + fn)
    f1 = 2 * tp / (2 * tp + fp + fn)
    dtype = torch.get_default_dtype()
    return SegmentationMetrics(
        accuracy=(tp.sum() / counts.sum()).to(dtype),
        iou=iou.to(dtype),
        f1=f1.to(dtype),
        present=present,
        mean_iou=iou[present].mean().to(dtype),
        mean_f1=f1[present].mean().to(dtype),
    )


def segmentation_metrics(pred: torch.Tensor, gt: torch.Tensor, num_classes: int,
                         ignore_index: int | None = None) -> SegmentationMetrics:
    """Pixel accuracy, per-class IoU/F1 and their means over present classes, pooled over all pixels.

    Args:
        pred, gt: integer label maps of the same shape (e.g. (N, H, W)); 0 is usually background.
        num_classes: C, background included.
        ignore_index: ground-truth label to skip.
    """
    return metrics_from_confusion(confusion_matrix(pred, gt, num_classes, ignore_index))
