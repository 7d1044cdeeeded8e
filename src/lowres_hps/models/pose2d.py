"""Top-down 2D pose: backbone + heatmap/offset head, its config, and the estimator that decodes it.

``build_pose_model(cfg)`` gives a :class:`TopDownPoseModel` (images 0..255 -> heatmaps and offsets);
:class:`TopDownEstimator` adds the codec and the flip test and implements
:class:`lowres_hps.models.estimator.PoseEstimator` (uint8 crops -> keypoints in input pixels). The module
registers the model kind ``kp2d`` (:mod:`lowres_hps.models.kinds`), with its ONNX graph (:func:`onnx_graph`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lowres_hps.body.keypoints import get_convention
from lowres_hps.core.checks import check_shape
from lowres_hps.models.backbones import BACKBONES, build_backbone
from lowres_hps.models.heads import HeatmapOffsetHead, MoveNetKeypointHead
from lowres_hps.models.kinds import OnnxGraph, card_fields, register_kind

HEADS = {"conv1x1": HeatmapOffsetHead, "movenet": MoveNetKeypointHead}

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Pose2DConfig",
    "TopDownPoseModel",
    "build_pose_model",
    "build_codec",
    "TopDownEstimator",
    "check_crops",
    "onnx_graph",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean of ImageNet, for images scaled to [0, 1]."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation of ImageNet, for images scaled to [0, 1]."""


@dataclass
class Pose2DConfig:
    """Everything needed to rebuild a top-down 2D pose model and decode its outputs.

    Attributes:
        backbone: a name of :data:`lowres_hps.models.backbones.BACKBONES`.
        backbone_params: keyword arguments of the backbone (e.g. ``neck_channels``, ``trunk_stride``,
            ``width_mult``, ``pretrained``: ``"imagenet"`` for the local ImageNet weights of
            ``mobilenet_v2`` / ``efficientnet_lite0`` (``make pretrained``), a checkpoint path, or
            ``"none"``). Set ``mean`` / ``std`` to the start's normalisation (0.5 for EfficientNet-Lite
            and MoveNet, ImageNet's for torchvision networks).
        head: ``"conv1x1"`` (:class:`~lowres_hps.models.heads.HeatmapOffsetHead`) or ``"movenet"``
            (:class:`~lowres_hps.models.heads.MoveNetKeypointHead`: MoveNet's heatmap and offset heads on a
            ``movenet_*`` backbone's FPN features, heatmaps through a sigmoid).
        head_params: keyword arguments of the head (``movenet``: ``pretrained: movenet``, ``variant``).
        input_size: network input ``(h, w)``: (64, 48), (128, 96), (256, 192) ...
        stride: input pixels per heatmap pixel (4: a 64 x 48 input gives 16 x 12 heatmaps).
        num_keypoints: ``K``; must match ``convention``.
        convention: keypoint convention of the outputs (see :mod:`lowres_hps.body.keypoints`).
        codec: ``"msra"``, ``"msra_dark"``, ``"udp"`` or ``"cal"``; the head predicts offsets exactly
            when the codec decodes them.
        codec_params: keyword arguments of the codec besides ``input_size`` and ``stride``
            (e.g. ``sigma``, ``radius``).
        scale_factor: context margin of the crop around the aspect-fixed person box (the protocol's).
        flip_test: average the outputs of each crop and of its mirror image at inference.
        mean, std: RGB normalisation for images in [0, 1]; applied inside the model to 0..255 inputs.
    """

    backbone: str = "resnet18"
    backbone_params: dict[str, Any] = field(default_factory=dict)
    head: str = "conv1x1"
    head_params: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (64, 48)
    stride: int = 4
    num_keypoints: int = 17
    convention: str = "coco17"
    codec: str = "cal"
    codec_params: dict[str, Any] = field(default_factory=dict)
    scale_factor: float = 1.25
    flip_test: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (h, w) with positive sides, got {self.input_size}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; known: {', '.join(BACKBONES)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; known: {', '.join(HEADS)}")
        convention = get_convention(self.convention)
        if self.num_keypoints != len(convention):
            raise ValueError(
                f"num_keypoints={self.num_keypoints} but convention {self.convention!r} has {len(convention)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std must be 3 values (std > 0), got {self.mean}, {self.std}")
        if not self.scale_factor > 0:
            raise ValueError(f"scale_factor must be > 0, got {self.scale_factor}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe data; ``Pose2DConfig.from_dict(cfg.to_dict()) == cfg``."""
        from lowres_hps.core.config import dump_config

        return dump_config(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pose2DConfig:
        """Config from :meth:`to_dict` data (unknown keys and wrong types raise ``ValueError``)."""
        from lowres_hps.core.config import load_config

        return load_config(data, cls)


class TopDownPoseModel(nn.Module):
    """Backbone + :class:`HeatmapOffsetHead`, with the input normalisation inside.

    ``forward(images)`` takes RGB ``(B, 3, h, w)`` crops, uint8 or float in 0..255, subtracts
    ``255 * mean`` and divides by ``255 * std`` (so an exported network takes raw pixel values), and
    returns ``{"heatmaps": (B, K, h', w'), "offsets": (B, K, 2, h', w') or None}`` with
    ``h' = h / stride``, ``w' = w / stride``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: HeatmapOffsetHead,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        # Not in the state dict: they are part of the config (and of the model card).
        self.register_buffer("pixel_mean", 255.0 * torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", 255.0 * torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.config: Pose2DConfig | None = None  # set by build_pose_model

    @property
    def stride(self) -> int:
        return self.backbone.stride

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) uint8 or float 0..255 -> ImageNet-normalised float of the model's dtype."""
        if not torch.jit.is_tracing():
            check_shape(images, "B 3 h w", "images")
        images = images.to(self.pixel_mean.dtype)
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | None]:
        heatmaps, offsets = self.head(self.backbone(self.normalize(images)))
        return {"heatmaps": heatmaps, "offsets": offsets}


def build_codec(cfg: Pose2DConfig):
    """The codec of ``cfg`` (:func:`lowres_hps.models.codecs.codec_from_config`) at its input size and stride."""
    from lowres_hps.models.codecs import codec_from_config

    return codec_from_config(cfg.codec, input_size=cfg.input_size, stride=cfg.stride, **cfg.codec_params)


def build_pose_model(cfg: Pose2DConfig, pretrained: bool = True) -> TopDownPoseModel:
    """The network of ``cfg``, freshly initialised (``model.config`` is ``cfg``).

    Args:
        cfg: the config.
        pretrained: load ``backbone_params["pretrained"]`` (``"imagenet"`` or a checkpoint path) when set;
            False ignores it (e.g. when trained weights are loaded right after).
    """
    codec = build_codec(cfg)  # fails early on a codec/size/stride mismatch
    params = dict(cfg.backbone_params)
    if not pretrained:
        params["pretrained"] = None  # not dropped: a backbone's default may be a start (MoveNet's is "movenet")
    backbone = build_backbone(cfg.backbone, cfg.input_size, cfg.stride, **params)
    head_params = dict(cfg.head_params)
    if cfg.head == "movenet":
        head_params.setdefault("offset_scale", float(getattr(codec, "offset_scale", 1.0)))
        if not pretrained:
            head_params["pretrained"] = None
    head = HEADS[cfg.head](backbone.out_channels, cfg.num_keypoints, with_offsets=codec.has_offsets, **head_params)
    model = TopDownPoseModel(backbone, head, cfg.mean, cfg.std)
    model.config = copy.deepcopy(cfg)
    return model


def check_crops(crops: torch.Tensor, input_size: tuple[int, int]) -> None:
    """``ValueError`` unless ``crops`` is (B, 3, h, w) with ``(h, w) == input_size``."""
    if not isinstance(crops, torch.Tensor):
        raise TypeError(f"crops must be a torch.Tensor, got {type(crops).__name__}")
    check_shape(crops, "B 3 {} {}".format(*input_size), "crops (RGB, made with this model's input size)")
    if crops.dtype != torch.uint8 and not crops.is_floating_point():
        raise TypeError(f"crops must be uint8 (or float 0..255), got {crops.dtype}")


class _OnnxOutputs(nn.Module):
    """Tuple outputs (ONNX has no dict outputs and no None)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return (out["heatmaps"],) if out["offsets"] is None else (out["heatmaps"], out["offsets"])


def _decode_text(config: Pose2DConfig, codec) -> str:
    """How to turn the outputs into keypoints in input pixels, in words (for non-Python users)."""
    h, w = config.input_size
    hh, hw = h // config.stride, w // config.stride
    to_input = (f"heatmap px -> input px: x_in = x_hm * {w - 1}/{hw - 1}, y_in = y_hm * {h - 1}/{hh - 1} "
                f"(pixel centres at integer coordinates, UDP mapping)")
    if getattr(codec, "has_offsets", False):
        score = "sigmoid(heatmap logit at the argmax)" if config.codec == "udp" else "heatmap value at the argmax"
        return (f"{config.codec}: per keypoint k, (x, y) = argmax of heatmaps[k] (integer heatmap px), then "
                f"add {codec.offset_scale:g} * offsets[k, :, y, x] (channel 0 = x, 1 = y); {to_input}; "
                f"score = {score}.")
    refine = ("DARK (Taylor expansion of the log of the blurred heatmap)" if getattr(codec, "decode_dark", False)
              else "a quarter pixel towards the higher neighbour along x and y")
    return (f"{config.codec}: per keypoint k, (x, y) = argmax of heatmaps[k] (integer heatmap px), refined by "
            f"{refine}; {to_input}; score = heatmap value at the argmax.")


def onnx_graph(network: TopDownPoseModel) -> OnnxGraph:
    """The ONNX export of a 2D network: ``images`` (B, 3, h, w) float32 RGB with raw pixel values 0..255
    (uint8 values as float; the normalisation is inside) -> ``heatmaps`` (B, K, h/s, w/s) and, for offset
    codecs, ``offsets`` (B, K, 2, h/s, w/s); the metadata documents preprocessing, crop protocol and decoding."""
    cfg = network.config
    codec = build_codec(cfg)
    h, w = cfg.input_size
    hh, hw = codec.heatmap_size
    mean = [round(255.0 * m, 4) for m in cfg.mean]
    std = [round(255.0 * s, 4) for s in cfg.std]
    outputs = f"heatmaps (B, {cfg.num_keypoints}, {hh}, {hw})"
    if codec.has_offsets:
        outputs += f"; offsets (B, {cfg.num_keypoints}, 2, {hh}, {hw}) as (x, y) per keypoint"
    metadata = {
        "input": f"images: float32 (B, 3, {h}, {w}), NCHW",
        "input_size": f"{h}x{w} (height x width)",
        "color_order": "RGB",
        "value_range": "0..255 (uint8 pixel values cast to float32; do not scale to [0, 1])",
        "normalization": f"applied inside the model: (x - {mean}) / {std} per RGB channel "
                         f"(ImageNet mean {list(cfg.mean)} and std {list(cfg.std)} times 255)",
        "crop_protocol": (f"top-down person crop: grow the person box to aspect w/h = {w / h:g} about its centre, "
                          f"enlarge it by scale_factor {cfg.scale_factor:g}, warp that region to {h}x{w} "
                          f"(antialiased when shrinking; zeros outside the image); "
                          f"lowres_hps.imaging.protocol.LowResProtocol(setting='native')"),
        "scale_factor": f"{cfg.scale_factor:g}",
        "aspect_ratio": f"{w / h:g}",
        "outputs": outputs,
        "heatmap_stride": str(cfg.stride),
        "codec": cfg.codec,
        "codec_params": json.dumps(cfg.codec_params),
        "decode": _decode_text(cfg, codec),
        "flip_test": (f"{cfg.flip_test}: average the outputs of the crop and of its mirror image after flipping "
                      f"the latter back (x -> w - 1 - x, left/right keypoints swapped, x offsets negated)"),
        "keypoint_convention": cfg.convention,
        "keypoint_names": json.dumps(list(get_convention(cfg.convention).names)),
    }
    dtype = next(network.parameters()).dtype

    def sample_inputs(batch: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        images = torch.randint(0, 256, (batch, 3, h, w), generator=generator, dtype=torch.uint8)
        return {"images": images.to(dtype)}

    return OnnxGraph(
        module=_OnnxOutputs(network).eval(), sample_inputs=sample_inputs,
        output_names=["heatmaps", "offsets"][:1 + codec.has_offsets],
        doc=(f"lowres-hps 2D keypoint model {{name}}: {cfg.backbone} backbone, {cfg.codec} codec, input {h}x{w} RGB "
             f"0..255; see metadata_props"),
        metadata=metadata, summary=f"input {h}x{w} RGB 0..255, codec {cfg.codec}")


def _card_fields(cfg: Pose2DConfig) -> dict[str, Any]:
    return {**card_fields(cfg), "codec": cfg.codec, "codec_params": dict(cfg.codec_params)}


@register_kind("kp2d", "2D keypoint", config=Pose2DConfig, build=build_pose_model, export=onnx_graph,
               card_fields=_card_fields)
class TopDownEstimator:
    """A :class:`TopDownPoseModel` with its codec: a :class:`~lowres_hps.models.estimator.PoseEstimator`.

    ``estimator(crops (B, 3, h, w) uint8, range_index) -> (keypoints (B, K, 2) input px, scores (B, K) in
    [0, 1])``, returned on the crops' device; the network is not resolution-aware and ignores ``range_index``.
    With ``flip_test`` the heatmaps (and offsets) of each crop and of its mirror image are averaged before
    decoding (:func:`lowres_hps.models.codecs.merge_flip`).

    Args:
        model: the network; it is put in eval mode.
        config: its config (default: ``model.config``).
        flip_test: overrides ``config.flip_test`` when given.
        card: the model card it was loaded with, if any (:class:`lowres_hps.apis.registry.ModelCard`).
    """

    @classmethod
    def from_network(cls, network: TopDownPoseModel, card: Any = None, device: torch.device | str | None = None,
                     flip_test: bool | None = None) -> TopDownEstimator:
        """The estimator of a network (built by the registry from ``card``), on ``device``."""
        return cls(network.to(device or "cpu"), flip_test=flip_test, card=card)

    def __init__(
        self,
        model: TopDownPoseModel,
        config: Pose2DConfig | None = None,
        flip_test: bool | None = None,
        card: Any = None,
    ) -> None:
        config = config if config is not None else model.config
        if config is None:
            raise ValueError("the model has no config; pass config=Pose2DConfig(...)")
        self.model = model.eval()
        self.config = config
        self.codec = build_codec(config)
        self.flip_test = config.flip_test if flip_test is None else bool(flip_test)
        self.card = card
        self.input_size: tuple[int, int] = tuple(config.input_size)
        self.scale_factor: float = float(config.scale_factor)
        self.convention: str = config.convention
        self.flip_permutation = get_convention(config.convention).flip_permutation

    @property
    def device(self) -> torch.device:
        return self.model.pixel_mean.device

    def to(self, device: torch.device | str) -> TopDownEstimator:
        self.model.to(device)
        return self

    def outputs(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network outputs ``(heatmaps, offsets or None)`` of a batch, flip-merged when ``flip_test``."""
        from lowres_hps.models.codecs import merge_flip

        check_crops(crops, self.input_size)
        images = crops.to(self.device)
        with torch.inference_mode():
            out = self.model(images)
            if not self.flip_test:
                return out["heatmaps"], out["offsets"]
            flipped = self.model(images.flip(-1))
            return merge_flip(out["heatmaps"], flipped["heatmaps"], self.flip_permutation,
                              out["offsets"], flipped["offsets"])

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, offsets = self.outputs(crops)
        keypoints, scores = self.codec.decode(heatmaps, offsets)
        return keypoints.to(crops.device), scores.clamp(0.0, 1.0).to(crops.device)

    def __repr__(self) -> str:
        return (f"TopDownEstimator(backbone={self.config.backbone!r}, input_size={self.input_size}, "
                f"codec={self.codec!r}, flip_test={self.flip_test})")
