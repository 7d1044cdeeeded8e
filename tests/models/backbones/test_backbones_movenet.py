"""MoveNet backbones: output shape at stride 4 for any input, the registry names, person-pretrained weights."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/models: the TFJS writers

from tfjs_fakes import write_movenet_tfjs  # noqa: E402

from lowres_hps.models.backbones import MoveNetBackbone, build_backbone  # noqa: E402
from lowres_hps.models.pretrained import PRETRAINED_FILES, MissingPretrainedError  # noqa: E402


@pytest.mark.parametrize("input_size", [(64, 48), (96, 72), (192, 192)])
@pytest.mark.parametrize(("output", "channels"), [("fpn", 24), ("heatmap_hidden", 96)])
def test_features_at_stride_4(input_size, output, channels):
    backbone = MoveNetBackbone(input_size, pretrained=None, output=output).eval()
    assert (backbone.out_channels, backbone.stride, backbone.variant) == (channels, 4, "lightning")
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, *input_size))
    h, w = input_size
    assert out.shape == (2, channels, math.ceil(h / 4), math.ceil(w / 4))
    assert (out >= 0).all()  # the ReLU of the FPN's last separable convolution, or of the hidden layer


def test_registry_names_fix_the_variant():
    lightning = build_backbone("movenet_lightning", (64, 48), pretrained="none")
    thunder = build_backbone("movenet_thunder", (64, 48), pretrained=None)
    assert isinstance(lightning, MoveNetBackbone) and lightning.variant == "lightning"
    assert thunder.variant == "thunder"
    # MobileNetV2 x1.0 and x1.75 stems (Keras rounding to multiples of 8).
    assert lightning.features.stem.out_channels == 32 and thunder.features.stem.out_channels == 56
    with torch.no_grad():
        assert thunder.eval()(torch.randn(1, 3, 64, 48)).shape == (1, 24, 16, 12)
    with pytest.raises(ValueError, match="fixes"):
        build_backbone("movenet_thunder", (64, 48), variant="lightning")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"stride": 8}, "output stride 4, got 8"),
    ({"stride": 2}, "output stride 4, got 2"),
    ({"input_size": (66, 48)}, "multiples of 4"),
    ({"variant": "fast"}, "unknown MoveNet variant 'fast'"),
    ({"pretrained": "imagenet"}, "pretrained must be 'movenet', 'none' or None"),
    ({"output": "logits"}, "output must be 'fpn' or 'heatmap_hidden'"),
])
def test_bad_arguments(kwargs, message):
    arguments = {"input_size": (64, 48), "pretrained": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        MoveNetBackbone(**arguments)


def test_pretrained_without_the_files_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(MissingPretrainedError, match="scripts/get_pretrained.sh"):
        MoveNetBackbone((64, 48))  # pretrained="movenet" is the default
    with pytest.raises(MissingPretrainedError):
        build_backbone("movenet_thunder", (64, 48), pretrained="movenet")


def test_pretrained_loads_movenet_trunk_and_heatmap_hidden_layer(tmp_path, monkeypatch):
    relative = Path(PRETRAINED_FILES["movenet_lightning"].relative_path)
    _, source = write_movenet_tfjs(tmp_path / relative.parent, name=relative.name)
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    backbone = MoveNetBackbone((64, 48), pretrained="movenet", output="heatmap_hidden").eval()
    source.eval()
    images = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        expected = source.heads["kpt_heatmap"].hidden(source.features(images))
        torch.testing.assert_close(backbone(images), expected, rtol=0, atol=0)
    trained = dict(backbone.named_parameters())
    assert torch.equal(trained["hidden.pointwise.bias"], source.heads["kpt_heatmap"].hidden.pointwise.bias)
    # Only the trunk and the heatmap head's hidden layer are kept: no other head.
    assert not any(name.startswith("heads.") for name in trained)
