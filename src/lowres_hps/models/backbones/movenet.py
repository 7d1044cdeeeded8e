"""MoveNet's person-pretrained MobileNetV2-FPN as a backbone for low-resolution students.

The features are MoveNet's 24-channel FPN output at stride 4 (for MoveNet's own heads), or the
96-channel hidden layer of its keypoint-heatmap head (for a fresh 1x1 head). Inputs are normalised as MoveNet's (``x / 127.5 - 1``: mean = std = 0.5).
Any input size works: the FPN resizes each upsampled level to its lateral's size, so sides need
not be multiples of 32 (64 x 48 gives a 16 x 12 output at stride 4).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from lowres_hps.models.backbones.common import Backbone
from lowres_hps.models.movenet import MOVENET_VARIANTS, MoveNet

__all__ = ["MoveNetBackbone", "MOVENET_MEAN", "MOVENET_STD"]

MOVENET_MEAN = (0.5, 0.5, 0.5)
MOVENET_STD = (0.5, 0.5, 0.5)


class MoveNetBackbone(Backbone):
    """MoveNet trunk + FPN + keypoint-heatmap hidden layer -> (B, 96, ceil(h / 4), ceil(w / 4)).

    Args:
        input_size: network input ``(h, w)``; each side a multiple of 4.
        stride: must be 4 (MoveNet's output stride).
        variant: ``"lightning"`` (MobileNetV2 x1.0) or ``"thunder"`` (x1.75).
        pretrained: ``"movenet"`` loads the published weights from the local TFJS files
            (:func:`lowres_hps.models.pretrained.find_pretrained`); ``None`` or ``"none"`` starts from scratch.
        output: ``"fpn"``: the 24-channel FPN features (for MoveNet's own heads,
            :class:`~lowres_hps.models.heads.movenet_head.MoveNetKeypointHead`); ``"heatmap_hidden"``: the
            96-channel hidden layer of the keypoint-heatmap head (for a 1x1 head).
    """

    def __init__(self, input_size: Sequence[int], stride: int = 4, variant: str = "lightning",
                 pretrained: str | None = "movenet", output: str = "fpn") -> None:
        super().__init__()
        if stride != 4:
            raise ValueError(f"MoveNet backbones have output stride 4, got {stride}")
        h, w = (int(v) for v in input_size)
        if h % 4 or w % 4:
            raise ValueError(f"input size {h}x{w}: both sides must be multiples of 4 for stride 4")
        if variant not in MOVENET_VARIANTS:
            raise ValueError(f"unknown MoveNet variant {variant!r}; known: {', '.join(MOVENET_VARIANTS)}")
        if pretrained not in (None, "none", "movenet"):
            raise ValueError(f"pretrained must be 'movenet', 'none' or None for MoveNet backbones, got {pretrained!r}")
        if pretrained == "movenet":
            from lowres_hps.models.movenet import load_movenet

            source = load_movenet(variant)
        else:
            source = MoveNet(MOVENET_VARIANTS[variant].width_mult)
        if output not in ("fpn", "heatmap_hidden"):
            raise ValueError(f"output must be 'fpn' or 'heatmap_hidden', got {output!r}")
        self.features = source.features
        self.hidden = source.heads["kpt_heatmap"].hidden if output == "heatmap_hidden" else None
        self.out_channels = 96 if output == "heatmap_hidden" else 24
        self.stride = 4
        self.variant = variant

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        return features if self.hidden is None else self.hidden(features)
