"""SimpleBaseline (Xiao et al. 2018): a torchvision ResNet trunk and x2 upsampling layers."""
from __future__ import annotations

import os
from collections.abc import Sequence

import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from lowres_hps.models.backbones.common import (
    TrunkNeckBackbone,
    load_start,
    resolve_trunk_stride,
)

__all__ = ["ResNetBackbone"]

_RESNETS = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}


class ResNetBackbone(TrunkNeckBackbone):
    """ResNet-18/34/50 trunk (``weights=None``) + upsampling neck -> features at ``stride``.

    Args:
        input_size: network input ``(h, w)``; fixes the trunk stride when ``trunk_stride`` is None.
        stride: output stride (4 as in SimpleBaseline; 2 or 1 give finer heatmaps at 64 x 48).
        depth: 18, 34 or 50.
        neck_channels: width of each x2 upsampling layer, one int for all of them or one per layer
            (``log2(trunk_stride / stride)`` layers; SimpleBaseline R50 is 3 x 256).
        trunk_stride: 32, 16 or 8. Below 32 the first block of the last stage(s) keeps stride 1
            (no dilation). None: the largest that divides the input size.
        upsample: ``"deconv"`` (SimpleBaseline) or ``"bilinear"`` (+ 3x3 conv).
        pretrained: path to a torchvision ImageNet checkpoint of the same depth (never downloaded);
            ``None`` or ``"none"``: random initialisation.
    """

    def __init__(
        self,
        input_size: Sequence[int],
        stride: int = 4,
        depth: int = 18,
        neck_channels: int | Sequence[int] = 128,
        trunk_stride: int | None = None,
        upsample: str = "deconv",
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if depth not in _RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(_RESNETS)}, got {depth}")
        trunk_stride = resolve_trunk_stride(input_size, stride, trunk_stride)
        net = _RESNETS[depth](weights=None)
        load_start(net, pretrained, f"resnet{depth}")
        stages = [net.layer1, net.layer2, net.layer3, net.layer4]
        # Stage i ends at stride 4 * 2**i; the stages past trunk_stride keep the resolution.
        for stage_index, stage in enumerate(stages[1:], start=1):
            if 4 * 2**stage_index > trunk_stride:
                _remove_stage_stride(stage)
        trunk_channels = stages[-1][-1].bn2.num_features if depth < 50 else stages[-1][-1].bn3.num_features
        self._set_trunk(nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *stages), trunk_channels,
                        neck_channels, trunk_stride, stride, upsample)


def _remove_stage_stride(stage: nn.Sequential) -> None:
    first = stage[0]
    if isinstance(first, BasicBlock):
        first.conv1.stride = (1, 1)
    elif isinstance(first, Bottleneck):
        first.conv2.stride = (1, 1)  # torchvision's ResNet v1.5 strides in the 3x3 conv
    else:
        raise TypeError(f"unexpected ResNet block {type(first).__name__}")
    first.stride = 1
    if first.downsample is not None:
        first.downsample[0].stride = (1, 1)
