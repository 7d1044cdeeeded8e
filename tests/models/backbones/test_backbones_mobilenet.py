"""MobileNet backbones: shapes at the CAL input sizes, reduced trunk strides, last-conv drop."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.backbones import MobileNetBackbone


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"])
@pytest.mark.parametrize("input_size", [(64, 48), (128, 96), (256, 192)])
def test_features_at_stride_4(arch, input_size):
    backbone = MobileNetBackbone(input_size, stride=4, arch=arch, width_mult=0.25, neck_channels=8).eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, *input_size))
    h, w = input_size
    assert out.shape == (2, 8, h // 4, w // 4)


@pytest.mark.parametrize("trunk_stride", [8, 16, 32])
def test_trunk_stride(trunk_stride):
    backbone = MobileNetBackbone((128, 96), arch="mobilenet_v3_small", width_mult=0.25, neck_channels=4,
                                 trunk_stride=trunk_stride).eval()
    with torch.no_grad():
        trunk = backbone.trunk(torch.randn(1, 3, 128, 96))
    assert trunk.shape[2:] == (128 // trunk_stride, 96 // trunk_stride)
    assert backbone(torch.randn(1, 3, 128, 96)).shape[2:] == (32, 24)


@pytest.mark.parametrize(("arch", "channels"), [("mobilenet_v2", (320, 1280)), ("mobilenet_v3_small", (96, 576))])
def test_drop_last_conv(arch, channels):
    kept = MobileNetBackbone((64, 48), arch=arch, neck_channels=4, drop_last_conv=False)
    dropped = MobileNetBackbone((64, 48), arch=arch, neck_channels=4)  # the default
    assert kept.neck[0].in_channels == channels[1]
    assert dropped.neck[0].in_channels == channels[0]
    with torch.no_grad():
        assert dropped.eval()(torch.randn(1, 3, 64, 48)).shape == (1, 4, 16, 12)


def test_unknown_arch():
    with pytest.raises(ValueError, match="arch must be one of"):
        MobileNetBackbone((64, 48), arch="mobilenet_v1")
