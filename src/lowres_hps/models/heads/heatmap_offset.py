"""Top-down keypoint head: one heatmap and (optionally) one 2D offset field per keypoint."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["HeatmapOffsetHead"]


class HeatmapOffsetHead(nn.Module):
    """A 1x1 convolution to ``K`` heatmap channels, plus ``2K`` offset channels when ``with_offsets``.

    The offset fields are those of offset-based decoding (G-RMI, UDP, CAL Fig. 3): for each
    keypoint an ``(x, y)`` displacement per heatmap pixel; their unit and scale are the codec's.
    ``with_offsets=False`` is the plain heatmap head of SimpleBaseline / MSRA.

    ``forward(features (B, C, h, w)) -> (heatmaps (B, K, h, w), offsets (B, K, 2, h, w) or None)``.
    """

    def __init__(self, in_channels: int, num_keypoints: int, with_offsets: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or num_keypoints < 1:
            raise ValueError(f"in_channels and num_keypoints must be >= 1, got {in_channels}, {num_keypoints}")
        self.num_keypoints = num_keypoints
        self.with_offsets = with_offsets
        out_channels = num_keypoints * (3 if with_offsets else 1)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not torch.jit.is_tracing() and (features.ndim != 4 or features.shape[1] != self.conv.in_channels):
            raise ValueError(
                f"features must be (B, {self.conv.in_channels}, h, w), got {tuple(features.shape)}"
            )
        out = self.conv(features)
        k = self.num_keypoints
        heatmaps = out[:, :k]
        if not self.with_offsets:
            return heatmaps, None
        # Channels K.. are (x_0, y_0, x_1, y_1, ...): the x/y pair of keypoint k is adjacent.
        offsets = out[:, k:].unflatten(1, (k, 2))
        return heatmaps, offsets
