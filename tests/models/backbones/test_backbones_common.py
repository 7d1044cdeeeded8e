"""Trunk-stride choice, upsampling neck, checkpoint loading and the backbone registry."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.backbones import BACKBONES, build_backbone
from lowres_hps.models.backbones.common import (
    UpsamplingNeck,
    load_classifier_checkpoint,
    resolve_neck_channels,
    resolve_trunk_stride,
)


@pytest.mark.parametrize(("input_size", "stride", "expected"), [
    ((64, 48), 4, 16),  # 48 / 32 is not an integer
    ((128, 96), 4, 32),
    ((256, 192), 4, 32),
    ((64, 48), 2, 16),
    ((40, 24), 4, 8),
    ((64, 48), 16, 16),
])
def test_auto_trunk_stride_divides_the_input(input_size, stride, expected):
    assert resolve_trunk_stride(input_size, stride, None) == expected


@pytest.mark.parametrize(("input_size", "stride", "trunk_stride", "message"), [
    ((64, 48), 4, 32, "not divisible by trunk_stride 32"),
    ((64, 48), 3, None, "power of two"),
    ((66, 48), 4, None, "not divisible by the output stride"),
    ((64, 48), 16, 8, "finer than the output stride"),
    ((64, 48), 4, 12, "must be one of"),
    ((36, 28), 4, None, "no trunk stride"),
])
def test_trunk_stride_errors(input_size, stride, trunk_stride, message):
    with pytest.raises(ValueError, match=message):
        resolve_trunk_stride(input_size, stride, trunk_stride)


def test_neck_channels_one_per_x2_layer():
    assert resolve_neck_channels(64, 32, 4) == (64, 64, 64)
    assert resolve_neck_channels([256, 128], 16, 4) == (256, 128)
    assert resolve_neck_channels(64, 8, 8) == ()
    with pytest.raises(ValueError, match="takes 3 upsampling layers"):
        resolve_neck_channels([64, 64], 32, 4)


@pytest.mark.parametrize("mode", ["deconv", "bilinear"])
def test_neck_doubles_the_size_per_layer(mode):
    neck = UpsamplingNeck(12, (8, 6), mode).eval()
    out = neck(torch.randn(2, 12, 3, 5))
    assert out.shape == (2, 6, 12, 20)
    assert neck.out_channels == 6
    assert UpsamplingNeck(12, ()).out_channels == 12
    with pytest.raises(ValueError, match="upsampling mode"):
        UpsamplingNeck(12, (8,), "nearest")


def test_build_backbone_by_name_and_errors():
    backbone = build_backbone("mobilenet_v3_small", (64, 48), 4, width_mult=0.25, neck_channels=8)
    assert (backbone.stride, backbone.out_channels, backbone.trunk_stride) == (4, 8, 16)
    assert {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small"} <= set(BACKBONES)
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg", (64, 48))
    with pytest.raises(ValueError, match="bad parameters"):
        build_backbone("resnet18", (64, 48), no_such_option=1)
    with pytest.raises(ValueError, match="fixes"):
        build_backbone("resnet18", (64, 48), depth=50)


def test_load_classifier_checkpoint(tmp_path):
    import torchvision

    source = torchvision.models.mobilenet_v3_small(weights=None, width_mult=0.25)
    torch.save(source.state_dict(), tmp_path / "mnv3.pth")
    target = torchvision.models.mobilenet_v3_small(weights=None, width_mult=0.25)
    load_classifier_checkpoint(target, tmp_path / "mnv3.pth")
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="backbone checkpoint not found"):
        load_classifier_checkpoint(target, tmp_path / "missing.pth")
    wrong = torchvision.models.mobilenet_v3_small(weights=None, width_mult=0.5)
    with pytest.raises(ValueError, match="does not fit"):
        load_classifier_checkpoint(wrong, tmp_path / "mnv3.pth")
