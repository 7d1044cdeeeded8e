"""SimpleBaseline ResNet backbones: shapes at the CAL input sizes, strides, checkpoint loading."""
from __future__ import annotations

import pytest
import torch
import torchvision

from lowres_hps.models.backbones import ResNetBackbone


@pytest.mark.parametrize(("depth", "input_size"), [
    (18, (64, 48)), (18, (128, 96)), (18, (256, 192)),
    (50, (64, 48)), (50, (128, 96)), pytest.param(50, (256, 192), marks=pytest.mark.slow),
])
def test_features_at_stride_4(depth, input_size):
    backbone = ResNetBackbone(input_size, stride=4, depth=depth, neck_channels=8).eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, *input_size))
    h, w = input_size
    assert out.shape == (1, 8, h // 4, w // 4)
    assert backbone.out_channels == 8


@pytest.mark.parametrize(("stride", "trunk_stride", "num_layers"), [(1, 16, 4), (2, 16, 3), (4, 8, 1), (8, 8, 0)])
def test_finer_strides_take_more_upsampling_layers(stride, trunk_stride, num_layers):
    backbone = ResNetBackbone((64, 48), stride=stride, depth=18, neck_channels=4, trunk_stride=trunk_stride).eval()
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in backbone.neck) == num_layers
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 48))
    assert out.shape[2:] == (64 // stride, 48 // stride)


def test_trunk_stride_16_keeps_the_last_stage_resolution():
    backbone = ResNetBackbone((128, 96), depth=50, neck_channels=[8, 8], trunk_stride=16).eval()
    with torch.no_grad():
        trunk = backbone.trunk(torch.randn(1, 3, 128, 96))
    assert trunk.shape == (1, 2048, 8, 6)


def test_bilinear_neck_and_per_layer_widths():
    backbone = ResNetBackbone((128, 96), depth=18, neck_channels=[32, 16, 8], upsample="bilinear").eval()
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 128, 96)).shape == (1, 8, 32, 24)


def test_user_checkpoint_is_loaded_into_the_trunk(tmp_path):
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    backbone = ResNetBackbone((64, 48), depth=18, pretrained=tmp_path / "r18.pth")
    assert torch.equal(backbone.trunk[0].weight, source.conv1.weight)
    assert torch.equal(backbone.trunk[-1][-1].conv2.weight, source.layer4[-1].conv2.weight)
    with pytest.raises(ValueError, match="does not fit"):
        ResNetBackbone((64, 48), depth=34, pretrained=tmp_path / "r18.pth")


def test_unknown_depth():
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNetBackbone((64, 48), depth=101)
