"""HeatmapOffsetHead: channel layout, heatmap-only mode, shape checks, gradients."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.heads import HeatmapOffsetHead


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_and_channel_layout(dtype):
    head = HeatmapOffsetHead(8, 5).to(dtype)
    features = torch.randn(2, 8, 6, 4, dtype=dtype)
    heatmaps, offsets = head(features)
    assert heatmaps.shape == (2, 5, 6, 4) and offsets.shape == (2, 5, 2, 6, 4)
    assert heatmaps.dtype == dtype
    raw = head.conv(features)
    # keypoint k: heatmap channel k, x offset channel K + 2k, y offset channel K + 2k + 1
    assert torch.equal(heatmaps[:, 3], raw[:, 3])
    assert torch.equal(offsets[:, 3, 0], raw[:, 5 + 6])
    assert torch.equal(offsets[:, 3, 1], raw[:, 5 + 7])


def test_heatmap_only():
    head = HeatmapOffsetHead(8, 17, with_offsets=False)
    heatmaps, offsets = head(torch.randn(1, 8, 16, 12))
    assert heatmaps.shape == (1, 17, 16, 12) and offsets is None
    assert head.conv.out_channels == 17


def test_shape_errors():
    head = HeatmapOffsetHead(8, 17)
    with pytest.raises(ValueError, match=r"\(B, 8, h, w\)"):
        head(torch.randn(1, 4, 16, 12))
    with pytest.raises(ValueError, match="must be >= 1"):
        HeatmapOffsetHead(8, 0)


def test_gradcheck_float64():
    head = HeatmapOffsetHead(3, 2).double()
    features = torch.randn(1, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: torch.cat([t.flatten() for t in head(x)]), (features,))
