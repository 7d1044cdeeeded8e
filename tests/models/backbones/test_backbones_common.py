"""Trunk-stride choice, upsampling neck, checkpoint loading, starts and the backbone registry."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.backbones import BACKBONES, build_backbone
from lowres_hps.models.backbones.common import (
    UpsamplingNeck,
    load_classifier_checkpoint,
    load_start,
    resolve_neck_channels,
    resolve_trunk_stride,
)
from lowres_hps.models.pretrained.imagenet import map_state_dict_by_order


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


def test_load_start_none_imagenet_or_a_path(tmp_path):
    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = target.weight.detach().clone()
    for start in (None, "none"):
        load_start(target, start, "toy")
        assert torch.equal(target.weight, before)
    torch.save(source.state_dict(), tmp_path / "toy.pth")
    load_start(target, tmp_path / "toy.pth", "toy")
    assert torch.equal(target.weight, source.weight)
    calls = []
    load_start(target, "imagenet", "toy", imagenet=calls.append)
    assert calls == [target]
    with pytest.raises(ValueError, match="no ImageNet weights are available locally for backbone 'resnet18'"):
        build_backbone("resnet18", (64, 48), pretrained="imagenet")
    build_backbone("resnet18", (64, 48), pretrained="none")


def test_map_state_dict_by_order_checks_shape_and_kind():
    target = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))
    source = {"stem.w.weight": torch.ones(4, 3, 1, 1), "bn.weight": torch.full((4,), 2.0), "bn.bias": torch.zeros(4),
              "bn.running_mean": torch.zeros(4), "bn.running_var": torch.ones(4), "bn.num_batches_tracked": torch.tensor(7)}
    mapped = map_state_dict_by_order(source, target, "toy.pth")
    assert list(mapped) == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    assert torch.equal(mapped["1.weight"], source["bn.weight"])
    swapped = {k: source[k] for k in ["stem.w.weight", "bn.bias", "bn.weight", "bn.running_mean", "bn.running_var"]}
    with pytest.raises(ValueError, match=r"toy.pth: bn.bias \(4,\) does not fit 1.weight"):
        map_state_dict_by_order(swapped, target, "toy.pth")
    with pytest.raises(ValueError, match="holds 4 tensors, but Sequential has 5"):
        map_state_dict_by_order(dict(list(source.items())[:4]), target, "toy.pth")


def test_backbone_start_names_the_published_weights_for_model_cards():
    from lowres_hps.models.backbones import backbone_start

    assert backbone_start("efficientnet_lite0", {"pretrained": "imagenet"}).licence == "Apache-2.0"
    assert backbone_start("mobilenet_v2", {"pretrained": "imagenet"}).licence == "MIT"
    assert "MoveNet" in backbone_start("movenet_lightning", {}).what  # "movenet" is that backbone's default
    assert backbone_start("movenet_lightning", {"pretrained": "none"}) is None
    assert backbone_start("mobilenet_v2", {}) is None
    assert backbone_start("resnet18", {"pretrained": "/weights/resnet18.pth"}) is None
    with pytest.raises(ValueError, match="unknown backbone"):
        backbone_start("vgg", {})
