"""MILI (Li et al., Fundamental Research 2023): every person's box, mask, 2D keypoints and body from one
low-resolution image.

The network, on MoveNet MultiPose's person-pretrained MobileNetV2-FPN (:mod:`lowres_hps.models.movenet`):

* **spatial attention per branch** (Eq. 1, :class:`SpatialAttention`): ``y_i = R(phi_i(x_i) x x_i)``, branch 0
  for high-resolution images, 1 for low-resolution ones; only branch 1 runs at inference.
* **detector**: MultiPose's dense CenterNet heads on the FPN's stride-4 output (``center``, ``box_scale``,
  ``box_offset``; :class:`~lowres_hps.models.codecs.centernet.CenterNetBoxCodec`).
* **restoration network** (Eq. 6, :class:`Restoration`): an encoder-decoder on the FPN's top level (64 channels,
  stride 32), trained to turn low-resolution top-level features into high-resolution ones; its output feeds the
  FPN's top-down path on the low-resolution branch, so its effect reaches every head.
* **RoI heads** (:class:`RoIHeads`) on ``roi_align`` of the stride-4 features in each person's box: 17 keypoint
  heatmaps, the occlusion-aware instance mask (Eq. 5) and the body (Anny or SMPL pose vector and shape with a
  weak-perspective crop camera, HMR's iterative regressor, as :class:`~lowres_hps.models.body3d.Body3DNet`).

Each part is a switch of :class:`MILIConfig` (``attention``, ``restoration``, ``mask_head``) so that the paper's
ablations are configs. Training (two branches, contrastive and RoI terms) is :mod:`lowres_hps.methods.mili`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from lowres_hps.core.checks import check_shape
from lowres_hps.geometry.camera import project_to_crop
from lowres_hps.imaging.frame import long_side_factor, resize_and_pad
from lowres_hps.models.codecs.centernet import CenterNetBoxCodec
from lowres_hps.models.heads.iterative_regressor import IterativeRegressor
from lowres_hps.models.kinds import OnnxGraph, register_kind
from lowres_hps.models.movenet import MULTIPOSE_WIDTH, MobileNetV2FPN, MoveNetHead

__all__ = ["MILIConfig", "MILINet", "MILIEstimator", "SpatialAttention", "Restoration", "RoIHeads", "DENSE_HEADS",
           "roi_boxes", "crop_regions", "build_mili_model"]

DENSE_HEADS = {"center": 1, "box_scale": 2, "box_offset": 2}
"""The detector's dense heads (MultiPose's names and channels)."""
HIGH, LOW = 0, 1
"""Branch indices of Eq. 1."""


@dataclass
class MILIConfig:
    """Everything needed to rebuild a MILI network.

    Attributes:
        width_mult: MobileNetV2 width of the trunk (MultiPose's 1.5).
        pretrained: ``"multipose"`` starts the trunk, FPN and dense heads from MoveNet MultiPose's published
            weights (local TFJS files, ``make pretrained``); None starts from scratch.
        attention: the per-branch spatial attention of Eq. 1.
        restoration: the restoration network of Eq. 6 on the low-resolution branch.
        mask_head: the occlusion-aware mask head of Eq. 5.
        roi_size: ``(h, w)`` of the RoI grid on the stride-4 features (keypoint heatmaps are twice as fine).
        roi_channels: width of the RoI heads.
        body_model: ``"anny"`` or ``"smpl"``: the body head's pose vector.
        convention: keypoint convention of the keypoint head (17 COCO keypoints).
        body_canvas: side (px) of the square virtual crop whose weak-perspective camera the body head regresses.
        scale_factor: context margin of that crop around the person box (as the 3D crops).
        iterations, hidden, dropout: the body head's iterative regressor.
        max_people: people decoded per image at inference.
    """

    width_mult: float = MULTIPOSE_WIDTH
    pretrained: str | None = "multipose"
    attention: bool = True
    restoration: bool = True
    mask_head: bool = True
    roi_size: tuple[int, int] = (24, 16)
    roi_channels: int = 64
    body_model: str = "anny"
    convention: str = "coco17"
    body_canvas: int = 64
    scale_factor: float = 1.25
    iterations: int = 3
    hidden: int = 512
    dropout: float = 0.2
    max_people: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pretrained not in (None, "none", "multipose"):
            raise ValueError(f"pretrained must be 'multipose' or None, got {self.pretrained!r}")
        if self.pretrained == "multipose" and self.width_mult != MULTIPOSE_WIDTH:
            raise ValueError(f"MultiPose's weights are width {MULTIPOSE_WIDTH}, got width_mult {self.width_mult}")
        self.roi_size = tuple(int(v) for v in self.roi_size)
        if len(self.roi_size) != 2 or min(self.roi_size) < 4:
            raise ValueError(f"roi_size must be (h, w) of at least 4 each, got {self.roi_size}")
        if self.convention != "coco17":
            raise ValueError(f"the keypoint head is COCO-17, got convention {self.convention!r}")
        self.pose_spec  # noqa: B018 - fails early on an unknown body model

    @property
    def pose_spec(self):
        from lowres_hps.body.pose import ANNY_POSE_SPEC, SMPL_POSE_SPEC

        specs = {"anny": ANNY_POSE_SPEC, "smpl": SMPL_POSE_SPEC}
        if self.body_model not in specs:
            raise ValueError(f"body_model must be one of {sorted(specs)}, got {self.body_model!r}")
        return specs[self.body_model]

    @property
    def param_dim(self) -> int:
        return self.pose_spec.vector_size + 3

    @property
    def crop_focal(self) -> float:
        """Focal (px) of the body head's crop camera: SPIN's 5000 px at 224, scaled with ``body_canvas``."""
        from lowres_hps.geometry.camera import SPIN_CROP_SIZE, SPIN_FOCAL_LENGTH

        return SPIN_FOCAL_LENGTH * self.body_canvas / SPIN_CROP_SIZE

    def to_dict(self) -> dict[str, Any]:
        from lowres_hps.core.config import dump_config

        return dump_config(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MILIConfig:
        from lowres_hps.core.config import load_config

        return load_config(data, cls)


class SpatialAttention(nn.Module):
    """Eq. 1's ``phi``: a 7 x 7 convolution of the channel mean and maximum, ``x -> x * 2 sigmoid(conv)``
    (CBAM's spatial attention). Zero-initialised, so it starts as the identity and the pretrained trunk sees
    what it was trained on."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * (2.0 * torch.sigmoid(self.conv(pooled)))


class Restoration(nn.Module):
    """Eq. 6's restoration network: an encoder-decoder with a skip connection on the FPN's top level,
    ``x -> x + decoder(encoder(x))`` (Fig. 3: convolution and pooling down, then up). The last convolution is
    zero-initialised: the network starts as the identity."""

    def __init__(self, channels: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.MaxPool2d(2, ceil_mode=True),
                                     nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 3, padding=1))
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = F.interpolate(self.encoder(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x + self.decoder(code)


class RoIHeads(nn.Module):
    """Per-person heads on RoI features (R, C_in, h, w): keypoint heatmaps (R, 17, 2h, 2w), mask logits (R, 1, h, w)
    or None, and the body's parameter vector (R, D + 3) from the iterative regressor."""

    def __init__(self, cfg: MILIConfig, in_channels: int = 24) -> None:
        super().__init__()
        c = cfg.roi_channels
        # Group normalisation keeps the fresh heads' activations O(1) on the pretrained features: without it the
        # keypoint logits start ~1e-3 apart and the heads learn hundreds of times slower (measured).
        groups = 8 if c % 8 == 0 else 1
        self.tower = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.GroupNorm(groups, c), nn.ReLU(inplace=True),
                                   nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(groups, c), nn.ReLU(inplace=True))
        self.keypoints = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                       nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(groups, c), nn.ReLU(inplace=True),
                                       nn.Conv2d(c, 17, 1))
        self.mask = nn.Conv2d(c, 1, 1) if cfg.mask_head else None
        self.body_features = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                           nn.AdaptiveAvgPool2d((3, 2)), nn.Flatten())
        self.regressor = IterativeRegressor(2 * c * 6, cfg.param_dim, cfg.iterations, cfg.hidden, cfg.dropout)

    def forward(self, roi_features: torch.Tensor) -> dict[str, torch.Tensor | None]:
        x = self.tower(roi_features)
        features = self.body_features(x)
        with torch.autocast(x.device.type, enabled=False):  # rotations in float32 (see Body3DNet)
            params = self.regressor(features.float())
        return {"keypoint_heatmaps": self.keypoints(x), "mask_logits": None if self.mask is None else self.mask(x),
                "pose_vector": params[:, :-3], "camera": params[:, -3:]}


def roi_boxes(boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Padded boxes (B, N, 4) x, y, w, h (pixel centres at integers) and ``valid`` (B, N) -> ``roi_align``'s (R, 5)
    ``batch index, x0, y0, x1, y1`` in edge coordinates, for the valid ones in (b, n) order."""
    b, n = valid.shape
    index = torch.arange(b, device=boxes.device, dtype=boxes.dtype).view(b, 1).expand(b, n)
    x, y, w, h = boxes.unbind(-1)
    rois = torch.stack([index, x + 0.5, y + 0.5, x + w + 0.5, y + h + 0.5], dim=-1)
    return rois[valid.bool()]


def crop_regions(rois: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """The square crop the body head's camera refers to, per RoI: (R, 5) -> (R, 3) ``x0, y0, side`` in edge
    coordinates (the box made square about its centre, enlarged by ``scale_factor``)."""
    x0, y0, x1, y1 = rois[:, 1], rois[:, 2], rois[:, 3], rois[:, 4]
    side = torch.maximum(x1 - x0, y1 - y0).clamp(min=1e-3) * scale_factor
    return torch.stack([(x0 + x1 - side) / 2, (y0 + y1 - side) / 2, side], dim=-1)


class MILINet(nn.Module):
    """Images -> dense detector outputs and features; RoI heads on given boxes.

    ``forward(images (B, 3, H, W) uint8 or float 0..255, branch=LOW)`` returns ``center (B, 1, H/4, W/4)``,
    ``box_scale`` and ``box_offset`` (B, 2, H/4, W/4), ``features`` (B, 24, H/4, W/4), ``top_level`` (B, 64, H/32,
    W/32; Eq. 3's feature) and ``restored`` (the restoration network's output on the low branch, else
    ``top_level``). ``H`` and ``W`` must be multiples of 32. :meth:`roi` runs the RoI heads; :meth:`detect` is
    the whole inference.
    """

    def __init__(self, cfg: MILIConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.config = copy.deepcopy(cfg)
        self.features = MobileNetV2FPN(cfg.width_mult)
        self.heads = nn.ModuleDict({name: MoveNetHead(c) for name, c in DENSE_HEADS.items()})
        if pretrained and cfg.pretrained == "multipose":
            from lowres_hps.models.movenet import load_movenet_multipose

            source = load_movenet_multipose()
            self.features.load_state_dict(source.features.state_dict())
            for name in DENSE_HEADS:
                self.heads[name].load_state_dict(source.heads[name].state_dict())
        self.attention = nn.ModuleList([SpatialAttention(), SpatialAttention()]) if cfg.attention else None
        self.restoration = Restoration(64) if cfg.restoration else None
        self.roi_heads = RoIHeads(cfg, self.features.out_channels)
        from lowres_hps.models.body3d import Body3DConfig, default_mean_params

        body_cfg = Body3DConfig(canvas=max(32, cfg.body_canvas), body_model=cfg.body_model,
                                scale_factor=cfg.scale_factor)
        self.roi_heads.regressor.set_mean_params(default_mean_params(body_cfg))
        self.codec = CenterNetBoxCodec(stride=4)

    def forward(self, images: torch.Tensor, branch: int = LOW, rois: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Dense outputs (see the class); with ``rois`` (R, 5) also the RoI heads' outputs (one call, so that data
        parallelism sees every parameter it trains)."""
        check_shape(images, "B 3 H W", "images")
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(f"images must have sides that are multiples of 32, got {tuple(images.shape[-2:])}")
        x = images.to(self.features.stem.weight.dtype) / 127.5 - 1.0
        if self.attention is not None:
            x = self.attention[branch](x)
        taps, top = self.features.encode(x)
        top_level = self.features.top(top)
        restored = self.restoration(top_level) if self.restoration is not None and branch == LOW else top_level
        fmap = self.features.decode(restored, taps)
        out = {name: head(fmap) for name, head in self.heads.items()}
        out.update(features=fmap, top_level=top_level, restored=restored)
        if rois is not None:
            out.update(self.roi(fmap, rois))
        return out

    def roi(self, features: torch.Tensor, rois: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """RoI heads on ``features`` (B, 24, H/4, W/4) for ``rois`` (R, 5) from :func:`roi_boxes`."""
        pooled = torchvision.ops.roi_align(features, rois.to(features.dtype), output_size=self.config.roi_size,
                                           spatial_scale=0.25, sampling_ratio=2, aligned=True)
        return self.roi_heads(pooled)

    def keypoints_in_image(self, heatmaps: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoint heatmaps (R, 17, h, w) of ``rois`` -> (keypoints (R, 17, 2) image px, pixel centres at integers,
        scores (R, 17)), with a quarter-cell shift towards the higher neighbour. The heads are trained as a spatial
        softmax: a score is the softmax mass in the 3 x 3 cells around the peak."""
        from lowres_hps.models.codecs.base import gather_at, heatmap_argmax
        from lowres_hps.models.codecs.msra import quarter_offset_refine

        maps = heatmaps.float()
        xy, _ = heatmap_argmax(maps)
        refined = quarter_offset_refine(maps, xy)
        probs = torch.softmax(maps.flatten(-2), dim=-1).view_as(maps)
        mass = F.avg_pool2d(probs.flatten(0, 1).unsqueeze(1), 3, stride=1, padding=1, count_include_pad=True) * 9
        peak = gather_at(mass.view_as(maps).unsqueeze(2), xy)[..., 0]
        h, w = maps.shape[-2:]
        x0, y0, x1, y1 = (rois[:, i, None] for i in range(1, 5))
        x = x0 + (refined[..., 0] + 0.5) * (x1 - x0) / w - 0.5
        y = y0 + (refined[..., 1] + 0.5) * (y1 - y0) / h - 0.5
        return torch.stack([x, y], dim=-1), peak.clamp(0, 1)

    @torch.no_grad()
    def detect(self, images: torch.Tensor, min_score: float = 0.2, max_people: int | None = None
               ) -> list[dict[str, torch.Tensor]]:
        """Every person in each image (low-resolution branch): per image a dict of ``boxes`` (P, 4) x, y, w, h
        and ``scores`` (P,), ``keypoints`` (P, 17, 2) and ``keypoint_scores`` (P, 17) in input px, ``masks``
        (P, h, w) mask probabilities on the RoI grid (absent without a mask head), ``pose_vector`` (P, D) and
        ``camera`` (P, 3) of the body head's square crop, ``crop`` (P, 3) that crop ``x0, y0, side`` (edges)."""
        out = self.forward(images, LOW)
        boxes, scores, _ = self.codec.decode(out["center"], out["box_scale"], out["box_offset"],
                                             max_people or self.config.max_people)
        h, w = images.shape[-2:]
        x0 = boxes[..., 0].clamp(-0.5, w - 0.5)
        y0 = boxes[..., 1].clamp(-0.5, h - 0.5)
        x1 = (boxes[..., 0] + boxes[..., 2]).clamp(-0.5, w - 0.5)
        y1 = (boxes[..., 1] + boxes[..., 3]).clamp(-0.5, h - 0.5)
        boxes = torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)
        keep = (scores >= min_score) & (boxes[..., 2] > 0) & (boxes[..., 3] > 0)
        results = []
        for i in range(images.shape[0]):
            b, s = boxes[i][keep[i]], scores[i][keep[i]]
            corners = torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
            order = torchvision.ops.nms(corners, s, 0.5)
            b, s = b[order], s[order]
            result = {"boxes": b, "scores": s}
            rois = roi_boxes(b.unsqueeze(0), torch.ones(1, len(b), dtype=torch.bool, device=b.device))
            rois[:, 0] = i
            heads = self.roi(out["features"], rois) if len(b) else None
            if heads is None:
                d = self.config.pose_spec.vector_size
                result.update(keypoints=b.new_zeros(0, 17, 2), keypoint_scores=b.new_zeros(0, 17),
                              pose_vector=b.new_zeros(0, d), camera=b.new_zeros(0, 3), crop=b.new_zeros(0, 3))
                if self.config.mask_head:
                    result["masks"] = b.new_zeros(0, *self.config.roi_size)
            else:
                kp, kp_scores = self.keypoints_in_image(heads["keypoint_heatmaps"], rois)
                result.update(keypoints=kp, keypoint_scores=kp_scores, pose_vector=heads["pose_vector"],
                              camera=heads["camera"], crop=crop_regions(rois, self.config.scale_factor))
                if heads["mask_logits"] is not None:
                    result["masks"] = torch.sigmoid(heads["mask_logits"][:, 0])
            results.append(result)
        return results

    def project_body_keypoints(self, keypoints3d: torch.Tensor, camera: torch.Tensor, crop: torch.Tensor
                               ) -> torch.Tensor:
        """Root-relative 3D keypoints (R, K, 3) through the body head's crop camera -> image px (R, K, 2)."""
        canvas = self.config.body_canvas
        pixels, _ = project_to_crop(keypoints3d, camera, canvas, self.config.crop_focal)
        side = crop[:, 2:3].unsqueeze(-1)
        return crop[:, None, :2] + (pixels + 0.5) * side / canvas - 0.5


def build_mili_model(cfg: MILIConfig, pretrained: bool = True) -> MILINet:
    """The network of ``cfg``; ``pretrained=False`` ignores ``cfg.pretrained``."""
    return MILINet(cfg, pretrained=pretrained)


class _DetectorOutputs(nn.Module):
    """The low-resolution branch's dense detector heads as a tuple (ONNX has no dict outputs)."""

    def __init__(self, network: MILINet) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.network(images, LOW)
        return out["center"], out["box_scale"], out["box_offset"]


def mili_onnx_graph(network: MILINet) -> OnnxGraph:
    """The ONNX export of a MILI network's person detector (the low-resolution branch up to its dense heads; the
    RoI heads stay in PyTorch): ``images`` (B, 3, H, W) float32 RGB 0..255, H and W any multiples of 32 ->
    ``center`` logits (B, 1, H/4, W/4), ``box_scale`` and ``box_offset`` (B, 2, H/4, W/4) in cells, decoded by
    :class:`~lowres_hps.models.codecs.centernet.CenterNetBoxCodec` (``lowres_hps.apis.detector.MILIDetector``)."""
    import json

    cfg = network.config
    metadata = {
        "input": "images: float32 (B, 3, H, W), NCHW, H and W multiples of 32 (zero-pad right and bottom)",
        "color_order": "RGB",
        "value_range": "0..255 (uint8 pixel values cast to float32; do not scale to [0, 1])",
        "normalization": "applied inside the model: x / 127.5 - 1 (MoveNet's)",
        "image_protocol": ("whole image resized so that its long side is 768 px (between x1 and x4, "
                           "lowres_hps.imaging.frame.long_side_factor), then zero-padded to multiples of 32"),
        "outputs": "center (B, 1, H/4, W/4) logits; box_scale (B, 2, H/4, W/4) (h, w) in cells; "
                   "box_offset (B, 2, H/4, W/4) (dy, dx) of the box centre from its peak cell, in cells",
        "decode": ("peaks of sigmoid(center) (3 x 3 max-pool test), strongest first; box centre = (cell + offset) x 4, "
                   "box size = box_scale x 4 (input px, pixel centres at integers); then non-maximum suppression"),
        "stride": "4",
        "branch": "low-resolution (Eq. 1's attention branch 1, restoration network on)",
        "parts": json.dumps({"attention": cfg.attention, "restoration": cfg.restoration}),
    }
    dtype = next(network.parameters()).dtype

    def sample_inputs(batch: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        images = torch.randint(0, 256, (batch, 3, 128, 96), generator=generator, dtype=torch.uint8)
        return {"images": images.to(dtype)}

    spatial = {2: "height", 3: "width"}
    return OnnxGraph(
        module=_DetectorOutputs(network).eval(), sample_inputs=sample_inputs,
        output_names=["center", "box_scale", "box_offset"],
        doc="lowres-hps MILI person detector {name}: whole RGB images 0..255 -> CenterNet heads; see metadata_props",
        metadata=metadata, summary="whole images RGB 0..255, sides multiples of 32 -> centre and box heads",
        dynamic_axes={"images": spatial, "center": spatial, "box_scale": spatial, "box_offset": spatial})


def mili_card_fields(cfg: MILIConfig) -> dict[str, Any]:
    """Model card summary fields of a MILI network (whole images, MoveNet's normalisation)."""
    return {"input_size": (0, 0), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "convention": cfg.convention,
            "scale_factor": float(cfg.scale_factor), "codec": "centernet", "codec_params": {"stride": 4}}


@register_kind("mili", "multi-person (MILI)", config=MILIConfig, build=build_mili_model, export=mili_onnx_graph,
               card_fields=mili_card_fields)
class MILIEstimator:
    """A :class:`MILINet` as a :class:`~lowres_hps.models.estimator.MultiPersonEstimator`: whole RGB images ->
    every person's box, score and 2D keypoints (:class:`~lowres_hps.models.estimator.ImagePeople`).

    Each image is resized so that its long side is ``target_long_side`` (between x1 and x``max_upscale``, as the
    paper upsamples its low-resolution inputs), zero-padded to multiples of 32, and run through the
    low-resolution branch; boxes and keypoints are mapped back to the image.
    """

    convention = "coco17"

    def __init__(self, model: MILINet, card: Any = None, min_score: float = 0.2, target_long_side: int = 1024,
                 max_upscale: float = 4.0) -> None:
        self.model = model.eval()
        self.card = card
        self.min_score = float(min_score)
        self.target_long_side = int(target_long_side)
        self.max_upscale = float(max_upscale)

    @classmethod
    def from_network(cls, network: MILINet, card: Any = None, device: torch.device | str | None = None,
                     **options) -> MILIEstimator:
        return cls(network.to(device or "cpu"), card=card, **options)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def factor(self, height: int, width: int) -> float:
        return long_side_factor(height, width, self.target_long_side, self.max_upscale)

    @torch.no_grad()
    def predict_people(self, images) -> list:
        """See :class:`~lowres_hps.models.estimator.MultiPersonEstimator`."""
        import numpy as np

        from lowres_hps.core.checks import check_image
        from lowres_hps.models.estimator import ImagePeople

        results = []
        for image in images:
            check_image(image)
            height, width = image.shape[:2]
            work, (new_h, new_w) = resize_and_pad(image, self.factor(height, width))
            tensor = torch.from_numpy(work).permute(2, 0, 1)[None].to(self.device)
            found = self.model.detect(tensor, min_score=self.min_score)[0]
            sx, sy = new_w / width, new_h / height
            boxes = found["boxes"].double().cpu().numpy()
            boxes = np.stack([(boxes[:, 0] + 0.5) / sx - 0.5, (boxes[:, 1] + 0.5) / sy - 0.5, boxes[:, 2] / sx,
                              boxes[:, 3] / sy], axis=1) if len(boxes) else np.zeros((0, 4))
            keypoints = found["keypoints"].double().cpu().numpy()
            if len(keypoints):
                keypoints = np.stack([(keypoints[..., 0] + 0.5) / sx - 0.5, (keypoints[..., 1] + 0.5) / sy - 0.5,
                                      found["keypoint_scores"].double().cpu().numpy()], axis=-1)
            else:
                keypoints = np.zeros((0, 17, 3))
            results.append(ImagePeople(boxes=boxes, keypoints=keypoints, scores=found["scores"].double().cpu().numpy()))
        return results

    def __repr__(self) -> str:
        name = getattr(self.card, "name", None) or "MILINet"
        return f"MILIEstimator({name}, min_score={self.min_score}, long side {self.target_long_side})"
