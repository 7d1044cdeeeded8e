import math

import numpy as np
import pytest
import torch

from lowres_hps.evaluation.masks import (
    binary_mask_metrics,
    confusion_matrix,
    metrics_from_confusion,
    segmentation_metrics,
)

# 4x4 masks: gt has 6 foreground pixels, pred 5, overlapping on 4 -> TP 4, FP 1, FN 2, TN 9.
GT = torch.tensor([[0, 1, 1, 0],
                   [0, 1, 1, 0],
                   [0, 1, 1, 0],
                   [0, 0, 0, 0]], dtype=torch.uint8)
PRED = torch.tensor([[0, 1, 1, 1],
                     [0, 1, 1, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0]], dtype=torch.uint8)


def test_binary_mask_metrics_hand_computed(device):
    m = binary_mask_metrics(PRED.to(device), GT.to(device))
    assert m.accuracy.item() == pytest.approx(13 / 16)
    assert m.iou.item() == pytest.approx(4 / 7)
    assert m.f1.item() == pytest.approx(8 / 11)
    assert m.iou.device.type == device.type


def test_binary_mask_metrics_batch_valid_and_empty():
    pred = torch.stack([PRED, PRED, torch.zeros_like(PRED)]).bool()
    gt = torch.stack([GT, PRED, torch.zeros_like(GT)]).bool()
    m = binary_mask_metrics(pred, gt)
    assert m.iou.shape == (3,)
    assert m.iou[1].item() == 1.0 and m.f1[1].item() == 1.0 and m.accuracy[1].item() == 1.0
    assert torch.isnan(m.iou[2]) and torch.isnan(m.f1[2]) and m.accuracy[2].item() == 1.0
    valid = torch.ones(4, 4, dtype=torch.bool)
    valid[:, 3] = False  # hides the false positive at (0, 3)
    m = binary_mask_metrics(PRED, GT, valid)
    assert m.accuracy.item() == pytest.approx(10 / 12)
    assert m.iou.item() == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="same"):
        binary_mask_metrics(PRED, GT[:3])


def test_segmentation_metrics_hand_computed():
    gt = torch.tensor([[0, 0, 1, 1],
                       [0, 2, 2, 1]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 2, 0, 3]])
    cm = confusion_matrix(pred, gt, num_classes=5)
    expected = torch.zeros(5, 5, dtype=torch.int64)
    for g, p in [(0, 0), (0, 1), (1, 1), (1, 1), (0, 0), (2, 2), (2, 0), (1, 3)]:
        expected[g, p] += 1
    torch.testing.assert_close(cm, expected)

    m = segmentation_metrics(pred, gt, num_classes=5)
    # class: TP FP FN -> 0: 2 1 1, 1: 2 1 1, 2: 1 0 1, 3: 0 1 0, 4: absent
    assert m.accuracy.item() == pytest.approx(5 / 8)
    torch.testing.assert_close(m.iou[:4], torch.tensor([0.5, 0.5, 0.5, 0.0]))
    torch.testing.assert_close(m.f1[:4], torch.tensor([4 / 6, 4 / 6, 2 / 3, 0.0]))
    assert torch.isnan(m.iou[4]) and torch.isnan(m.f1[4])
    assert m.present.tolist() == [True, True, True, True, False]
    assert m.mean_iou.item() == pytest.approx(1.5 / 4)
    assert m.mean_f1.item() == pytest.approx(2.0 / 4)


def test_segmentation_ignore_index_and_pooling():
    gt = torch.tensor([[0, 1, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 0]])
    m = segmentation_metrics(pred, gt, num_classes=2, ignore_index=255)
    assert m.accuracy.item() == 1.0 and m.mean_f1.item() == 1.0
    # Summing confusion matrices over batches equals evaluating the concatenation.
    a, b = torch.randint(0, 3, (2, 2, 6, 6), generator=torch.Generator().manual_seed(0))
    c, d = torch.randint(0, 3, (2, 2, 6, 6), generator=torch.Generator().manual_seed(1))
    pooled = metrics_from_confusion(confusion_matrix(a, c, 3) + confusion_matrix(b, d, 3))
    joint = segmentation_metrics(torch.cat([a, b]), torch.cat([c, d]), 3)
    torch.testing.assert_close(pooled.f1, joint.f1)


def test_segmentation_errors():
    with pytest.raises(ValueError, match=r"pred labels must lie in \[0, 2\)"):
        confusion_matrix(torch.tensor([0, 2]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="gt labels"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 255]), 2)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(torch.zeros(3), torch.zeros(3), 2)


def test_f1_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, size=(3, 8, 8))
    pred = np.where(rng.random((3, 8, 8)) < 0.7, gt, rng.integers(0, 4, size=(3, 8, 8)))
    m = segmentation_metrics(torch.as_tensor(pred), torch.as_tensor(gt), num_classes=4)
    expected = metrics.f1_score(gt.ravel(), pred.ravel(), average=None, labels=range(4))
    np.testing.assert_allclose(m.f1.numpy(), expected, rtol=1e-6)
    assert m.accuracy.item() == pytest.approx(metrics.accuracy_score(gt.ravel(), pred.ravel()))
    fg = binary_mask_metrics(torch.as_tensor(pred[0] > 1), torch.as_tensor(gt[0] > 1))
    assert fg.f1.item() == pytest.approx(metrics.f1_score((gt[0] > 1).ravel(), (pred[0] > 1).ravel()))
    assert not math.isnan(fg.iou.item())
