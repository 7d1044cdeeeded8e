"""MoveNet's keypoint heatmap and offset heads, as a :class:`HeatmapOffsetHead`-compatible head.

Starting a low-resolution student from all of MoveNet (trunk, FPN and these heads) means that before any
training it already decodes people as MoveNet does (argmax of the heatmap plus the offset there), so
fine-tuning adapts a working detector of joints to small, degraded people instead of learning one.
"""
from __future__ import annotations

import torch
from torch import nn

from lowres_hps.models.movenet import MOVENET_VARIANTS, MoveNet, MoveNetHead

__all__ = ["MoveNetKeypointHead"]


class MoveNetKeypointHead(nn.Module):
    """MoveNet's ``kpt_heatmap`` (sigmoid) and ``kpt_offset`` heads on 24-channel FPN features.

    ``forward(features (B, 24, h, w)) -> (heatmaps (B, K, h, w), offsets (B, K, 2, h, w) or None)``; heatmaps are
    probabilities in [0, 1] (sigmoid), or logits with ``heatmap_activation="none"``.
    Offsets are ``(x, y)`` in units of ``offset_scale`` heatmap pixels (the codec's), converted from MoveNet's
    ``(y, x)`` in heatmap cells when the weights are loaded.

    Args:
        in_channels: must be 24 (MoveNet's FPN width).
        num_keypoints: 17 (COCO) to load MoveNet's weights; any other number starts from scratch.
        with_offsets: predict offsets (the codec decodes them).
        offset_scale: heatmap pixels per offset unit of the codec.
        pretrained: ``"movenet"`` copies the heads of MoveNet ``variant``; ``None``/``"none"`` starts fresh.
        variant: ``"lightning"`` or ``"thunder"``.
        heatmap_activation: ``"sigmoid"`` (probabilities, for L2 losses on Gaussian targets) or ``"none"``
            (logits, for cross-entropy losses such as UDP's).
    """

    def __init__(self, in_channels: int = 24, num_keypoints: int = 17, with_offsets: bool = True,
                 offset_scale: float = 1.0, pretrained: str | None = None, variant: str = "lightning",
                 heatmap_activation: str = "sigmoid") -> None:
        super().__init__()
        if in_channels != 24:
            raise ValueError(f"MoveNet heads read 24-channel FPN features, got {in_channels} channels")
        if pretrained not in (None, "none", "movenet"):
            raise ValueError(f"pretrained must be 'movenet', 'none' or None, got {pretrained!r}")
        if pretrained == "movenet" and num_keypoints != 17:
            raise ValueError(f"MoveNet's heads predict 17 COCO keypoints, not {num_keypoints}")
        if variant not in MOVENET_VARIANTS:
            raise ValueError(f"unknown MoveNet variant {variant!r}; known: {', '.join(MOVENET_VARIANTS)}")
        if heatmap_activation not in ("sigmoid", "none"):
            raise ValueError(f"heatmap_activation must be 'sigmoid' or 'none', got {heatmap_activation!r}")
        self.heatmap_activation = heatmap_activation
        self.num_keypoints = num_keypoints
        self.with_offsets = with_offsets
        self.heatmap = MoveNetHead(num_keypoints)
        self.offset = MoveNetHead(2 * num_keypoints) if with_offsets else None
        if pretrained == "movenet":
            from lowres_hps.models.movenet import load_movenet

            self.load_movenet_heads(load_movenet(variant), offset_scale)

    @torch.no_grad()
    def load_movenet_heads(self, source: MoveNet, offset_scale: float = 1.0) -> None:
        """Copy MoveNet's heatmap and offset heads, re-ordering offsets to ``(x, y)`` and rescaling them."""
        self.heatmap.load_state_dict(source.heads["kpt_heatmap"].state_dict())
        if self.offset is None:
            return
        self.offset.hidden.load_state_dict(source.heads["kpt_offset"].hidden.state_dict())
        out = source.heads["kpt_offset"].out
        swap = torch.arange(2 * self.num_keypoints).view(-1, 2).flip(-1).reshape(-1)  # (y, x) -> (x, y)
        self.offset.out.weight.copy_(out.weight[swap] / offset_scale)
        self.offset.out.bias.copy_(out.bias[swap] / offset_scale)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not torch.jit.is_tracing() and (features.ndim != 4 or features.shape[1] != 24):
            raise ValueError(f"features must be (B, 24, h, w), got {tuple(features.shape)}")
        heatmaps = self.heatmap(features)
        if self.heatmap_activation == "sigmoid":
            heatmaps = torch.sigmoid(heatmaps)
        if self.offset is None:
            return heatmaps, None
        return heatmaps, self.offset(features).unflatten(1, (self.num_keypoints, 2))
