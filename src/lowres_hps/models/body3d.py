"""3D body pose and shape regression from a person crop: HMR-style network, its config and estimator.

``build_body3d_model(cfg)`` gives a :class:`Body3DNet`: backbone (optionally RSC-Net's resolution-aware
ResNet) -> global average pooling -> feature ``phi`` -> iterative regressor -> ``[pose vector | camera]``.
The pose vector is the body model's regression vector (:mod:`lowres_hps.body.pose`; Anny: 126) with
its root rotation in camera axes; the camera is SPIN's weak-perspective ``[s, tx, ty]`` of the crop,
turned into a translation of a perspective crop camera whose focal is 5000 px for a 224 px crop
(scaled with the canvas, so every canvas sees the same field of view).

The body model is not part of the network (so the network exports to ONNX alone):
:class:`Body3DEstimator` runs it after the network and gives 3D keypoints, vertices and 2D keypoints. The
module registers the model kind ``hps3d`` (:mod:`lowres_hps.models.kinds`), with its ONNX graph
(:func:`onnx_graph`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lowres_hps.body.flip import merge_mirrored_pose_vectors
from lowres_hps.body.keypoints import get_convention
from lowres_hps.fitting import KeypointFitConfig, fit_body_to_keypoints
from lowres_hps.geometry.camera import MIN_CAMERA_SCALE, SPIN_CROP_SIZE, SPIN_FOCAL_LENGTH, project_to_crop
from lowres_hps.models.backbones.movenet import MOVENET_MEAN, MOVENET_STD
from lowres_hps.models.backbones.resolution_aware import ResolutionAwareResNet
from lowres_hps.models.backbones.resolution_aware_movenet import MOVENET_3D_BACKBONES, ResolutionAwareMoveNet
from lowres_hps.models.estimator import BodyPrediction
from lowres_hps.models.heads.iterative_regressor import IterativeRegressor
from lowres_hps.models.kinds import OnnxGraph, register_kind
from lowres_hps.models.pose2d import IMAGENET_MEAN, IMAGENET_STD, check_crops

__all__ = [
    "Body3DConfig",
    "Body3DNet",
    "Body3DEstimator",
    "FlipTestNet",
    "build_body3d_model",
    "project_to_crop",
    "default_mean_params",
    "onnx_graph",
]

PERSON_BOX_METRES = 1.5
"""Metres an average person box spans: the regression starts at ``s = 2 / (scale_factor * 1.5)``, 1.07 at the
1.25 margin. Measured: the 2000 SynthLR-test people (Anny) need s = 1.064 on average in their protocol crops
(``benchmarks/body3d_scale.py``). SPIN's start of 0.9 belongs to its own crops: rsc_r18_c64, trained from it,
predicts 0.98 on average there, with little spread (issue 11). Networks keep their start in their weights."""
_BACKBONE_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50}


@dataclass
class Body3DConfig:
    """Everything needed to rebuild a 3D body regressor.

    Attributes:
        backbone: ``"resnet18"``, ``"resnet34"`` or ``"resnet50"`` (torchvision trunks), or ``"movenet_lightning"``
            / ``"movenet_thunder"`` (MoveNet's person-pretrained MobileNetV2-FPN and keypoint-heatmap head,
            :class:`~lowres_hps.models.backbones.resolution_aware_movenet.ResolutionAwareMoveNet`).
        backbone_params: keyword arguments of the MoveNet backbone (e.g. ``heatmap_grid``).
        resolution_aware: RSC-Net's per-range residual weights (RA); False is the baseline (Ba).
        num_ranges: resolution ranges P (the protocol's 5).
        canvas: side of the square network input; the paper upsamples every crop to 224, smaller
            canvases (128, 96, 64) make CPU training practical.
        body_model: ``"anny"`` (default), ``"smpl"`` or ``"smplx"``: sets the pose vector.
        convention: keypoint convention of the outputs.
        iterations, hidden, dropout: the iterative regressor.
        scale_factor: context margin of the crop around the aspect-fixed person box.
        pretrained: ResNet: path to a torchvision ImageNet checkpoint for the trunk (never downloaded); MoveNet:
            ``"movenet"`` for MoveNet's published weights (local TFJS files, ``make pretrained``).
        mean, std: RGB normalisation for images in [0, 1]; applied inside the network to 0..255 inputs. Default:
            ImageNet's for ResNets, MoveNet's (0.5, 0.5) for MoveNet.
        flip_test: at inference, also regress the mirrored crop and average the two bodies (the mirrored one
            mirrored back; twice the network's cost). An inference setting: training ignores it.
    """

    backbone: str = "resnet18"
    backbone_params: dict[str, Any] = field(default_factory=dict)
    resolution_aware: bool = True
    num_ranges: int = 5
    canvas: int = 128
    body_model: str = "anny"
    convention: str = "coco17"
    iterations: int = 3
    hidden: int = 1024
    dropout: float = 0.5
    scale_factor: float = 1.25
    pretrained: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    flip_test: bool = False

    def __post_init__(self) -> None:
        known = sorted(_BACKBONE_DEPTHS) + sorted(MOVENET_3D_BACKBONES)
        if self.backbone not in known:
            raise ValueError(f"backbone must be one of {known}, got {self.backbone!r}")
        if self.backbone_params and self.backbone not in MOVENET_3D_BACKBONES:
            raise ValueError(f"backbone_params are for MoveNet backbones, not {self.backbone!r}")
        movenet = self.backbone in MOVENET_3D_BACKBONES
        if self.mean is None:
            self.mean = MOVENET_MEAN if movenet else IMAGENET_MEAN
        if self.std is None:
            self.std = MOVENET_STD if movenet else IMAGENET_STD
        if int(self.canvas) != self.canvas or self.canvas < 32:
            raise ValueError(f"canvas must be an integer of at least 32, got {self.canvas}")
        self.canvas = int(self.canvas)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        get_convention(self.convention)
        self.pose_spec  # noqa: B018 - fails early on an unknown body model

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.canvas, self.canvas)

    @property
    def crop_focal(self) -> float:
        """Focal (px) of the crop camera: SPIN's 5000 px at 224, scaled with the canvas."""
        return SPIN_FOCAL_LENGTH * self.canvas / SPIN_CROP_SIZE

    @property
    def pose_spec(self):
        from lowres_hps.body.pose import ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC

        specs = {"anny": ANNY_POSE_SPEC, "smpl": SMPL_POSE_SPEC, "smplx": SMPLX_POSE_SPEC}
        if self.body_model not in specs:
            raise ValueError(f"body_model must be one of {sorted(specs)}, got {self.body_model!r}")
        return specs[self.body_model]

    @property
    def param_dim(self) -> int:
        """Regressed vector size: pose vector + 3 camera values."""
        return self.pose_spec.vector_size + 3

    def to_dict(self) -> dict[str, Any]:
        from lowres_hps.core.config import dump_config

        return dump_config(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Body3DConfig:
        from lowres_hps.core.config import load_config

        return load_config(data, cls)


def default_mean_params(cfg: Body3DConfig) -> torch.Tensor:
    """Starting point of the regression: rest pose, upright and facing the camera, the crop scale of an average
    person box (:data:`PERSON_BOX_METRES`) for the config's margin. Shape (param_dim,)."""
    from lowres_hps.geometry.rotations import body_to_opencv_rotation

    spec = cfg.pose_spec
    rotations, shape = spec.split(spec.rest_vector(1))
    rotations = rotations.clone()
    rotations[:, 0] = body_to_opencv_rotation(dtype=rotations.dtype)  # root in camera axes
    camera = torch.tensor([[2.0 / (cfg.scale_factor * PERSON_BOX_METRES), 0.0, 0.0]])
    return torch.cat([spec.join(rotations, shape), camera], dim=1)[0]


class Body3DNet(nn.Module):
    """Crop -> ``{"pose_vector" (B, D), "camera" (B, 3) [s, tx, ty], "features" (B, F)}``.

    ``forward(images, range_index)``: RGB ``(B, 3, S, S)`` uint8 or float 0..255 (normalised inside),
    ``range_index (B,)`` the resolution range of each input (needed when resolution-aware).
    """

    def __init__(self, cfg: Body3DConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.config = copy.deepcopy(cfg)
        if cfg.backbone in MOVENET_3D_BACKBONES:
            self.backbone = ResolutionAwareMoveNet(MOVENET_3D_BACKBONES[cfg.backbone], cfg.num_ranges,
                                                   cfg.resolution_aware, pretrained=cfg.pretrained if pretrained else None,
                                                   **cfg.backbone_params)
        else:
            self.backbone = ResolutionAwareResNet(_BACKBONE_DEPTHS[cfg.backbone], cfg.num_ranges,
                                                  cfg.resolution_aware, pretrained=cfg.pretrained if pretrained else None)
        self.regressor = IterativeRegressor(self.backbone.feature_dim, cfg.param_dim, cfg.iterations, cfg.hidden,
                                            cfg.dropout)
        self.regressor.set_mean_params(default_mean_params(cfg))
        self.register_buffer("pixel_mean", 255.0 * torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", 255.0 * torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        features = self.backbone(x, range_index)
        # The regressor runs in float32 under mixed precision: bf16 rotations are off by up to 0.4%.
        with torch.autocast(features.device.type, enabled=False):
            params = self.regressor(features.float())
        return {"pose_vector": params[:, :-3], "camera": params[:, -3:], "features": features}


class FlipTestNet(nn.Module):
    """A 3D network with the flip test: each crop and its mirror image go through ``network`` in one batch, and
    the two bodies are averaged (the mirrored one mirrored back, :func:`~lowres_hps.body.flip.merge_mirrored_pose_vectors`;
    the crop camera's ``tx`` changes sign in the mirror, its principal point being the crop's centre). The same
    call, config and output keys as ``network`` (``features`` are the unmirrored crops').
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.config = network.config

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        batch = images.shape[0]
        ranges = None if range_index is None else range_index.repeat(2)
        out = self.network(torch.cat([images, images.flip(-1)]), ranges)
        pose_vector, camera = out["pose_vector"], out["camera"]
        mirror = torch.tensor([1.0, -1.0, 1.0], dtype=camera.dtype, device=camera.device)
        return {"pose_vector": merge_mirrored_pose_vectors(pose_vector[:batch], pose_vector[batch:], self.config.pose_spec),
                "camera": 0.5 * (camera[:batch] + camera[batch:] * mirror), "features": out["features"][:batch]}


def build_body3d_model(cfg: Body3DConfig, pretrained: bool = True) -> Body3DNet:
    """The network of ``cfg``, freshly initialised; ``pretrained=False`` ignores ``cfg.pretrained``."""
    return Body3DNet(cfg, pretrained=pretrained)


class _OnnxOutputs(nn.Module):
    """Body3DNet with tuple outputs in :data:`ONNX_OUTPUT_NAMES` order (``range_index`` optional: the
    baseline network does not use it)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out = self.model(images, range_index)
        return tuple(out[name] for name in ONNX_OUTPUT_NAMES)


ONNX_OUTPUT_NAMES = ("pose_vector", "camera", "features")
"""Outputs of an exported 3D body network, in order."""


def onnx_graph(network: Body3DNet) -> OnnxGraph:
    """The ONNX export of a 3D body network alone: ``images`` (B, 3, S, S) uint8 RGB and ``range_index`` (B,)
    int64 (a baseline, not resolution-aware, network has no such input) -> ``pose_vector`` (B, D), ``camera``
    (B, 3) and ``features`` (B, F). The body model is not in the graph: it runs after the network. The
    metadata documents preprocessing, crop protocol, range index, outputs, crop camera and body model."""
    from lowres_hps.imaging.protocol import HIGH_RESOLUTION, RESOLUTION_RANGES

    cfg = network.config
    spec = cfg.pose_spec
    s = cfg.canvas
    module = _OnnxOutputs(network).eval()
    device = next(network.parameters()).device

    def sample_inputs(batch: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        inputs = {"images": torch.randint(0, 256, (batch, 3, s, s), generator=generator, dtype=torch.uint8)}
        if cfg.resolution_aware:
            inputs["range_index"] = torch.randint(0, cfg.num_ranges, (batch,), generator=generator)
        return inputs

    with torch.no_grad():
        feature_dim = module(*(v.to(device) for v in sample_inputs(1).values()))[2].shape[1]
    mean = [round(255.0 * m, 4) for m in cfg.mean]
    std = [round(255.0 * v, 4) for v in cfg.std]
    full = HIGH_RESOLUTION / cfg.scale_factor
    last = len(RESOLUTION_RANGES) - 1
    bounds = ([f"0 for h >= {full:g} (= {HIGH_RESOLUTION} / scale_factor)",
               f"1 for [{RESOLUTION_RANGES[1][0]}, {full:g})"]
              + [f"{i} for [{low}, {high})" for i, (low, high) in enumerate(RESOLUTION_RANGES) if 1 < i < last]
              + [f"{last} below {RESOLUTION_RANGES[last][1]}"])
    if cfg.resolution_aware:
        ranges = (f"int64 (B,), the resolution range of each crop from its person height h in source image px (the "
                  f"height of the aspect-fixed person box, i.e. the side of the crop region / {cfg.scale_factor:g}): "
                  f"{', '.join(bounds)}; clipped to [0, {cfg.num_ranges - 1}]. "
                  f"lowres_hps.imaging.protocol.input_range_index(h, {cfg.scale_factor:g}), given by the protocol as "
                  f"LowResCrop.range_index. It picks the row of RSC-Net's per-range residual weights.")
    else:
        ranges = "not an input: this baseline (not resolution-aware) network runs every resolution alike."
    pose_layout = (f"{spec.num_joints} joint rotations x 6 values (the first two columns of the 3x3 rotation, "
                   f"row-major [R00, R01, R10, R11, R20, R21]; Gram-Schmidt gives the rotation) for joints "
                   f"{list(spec.joint_names)}, the root first and in camera axes (x right, y down, z forward); "
                   f"then {spec.shape_size} shape values {list(spec.shape_names)}")
    focal = cfg.crop_focal
    centre = (s - 1) / 2
    metadata = {
        "task": "hps3d: 3D body pose and shape of a person crop",
        "input": f"images: uint8 (B, 3, {s}, {s}), NCHW" + ("; range_index: int64 (B,)" * cfg.resolution_aware),
        "input_size": f"{s}x{s} (height x width)",
        "color_order": "RGB",
        "value_range": "0..255 uint8 pixel values (cast to float32 inside the graph)",
        "normalization": f"applied inside the model: (x - {mean}) / {std} per RGB channel "
                         f"(mean {list(cfg.mean)} and std {list(cfg.std)} times 255)",
        "crop_protocol": (f"top-down person crop: grow the person box to a square about its centre, enlarge it by "
                          f"scale_factor {cfg.scale_factor:g}, warp that region to {s}x{s} (bicubic, antialiased when "
                          f"shrinking; zeros outside the image); "
                          f"lowres_hps.imaging.protocol.LowResProtocol(({s}, {s}), {cfg.scale_factor:g}, "
                          f"setting='upsample')"),
        "scale_factor": f"{cfg.scale_factor:g}",
        "aspect_ratio": "1",
        "range_index": ranges,
        "outputs": (f"pose_vector (B, {spec.vector_size}); camera (B, 3) weak-perspective [s, tx, ty] of the crop; "
                    f"features (B, {feature_dim}) the pooled image feature (RSC-Net's phi)"),
        "pose_vector_layout": pose_layout,
        "camera": (f"crop camera: focal {focal:g} px (SPIN's {SPIN_FOCAL_LENGTH:g} px at {SPIN_CROP_SIZE} px, scaled "
                   f"to the {s} px canvas), principal point ({centre:g}, {centre:g}) (pixel centres at integer "
                   f"coordinates); root translation t = (tx, ty, 2 * {focal:g} / ({s} * max(s, {MIN_CAMERA_SCALE:g}))) "
                   f"metres; a body point X (root-relative, camera axes, metres) projects to "
                   f"{focal:g} * (X + t)[:2] / (X + t)[2] + ({centre:g}, {centre:g})"),
        "body_model": (f"{cfg.body_model}, NOT in this graph: run it after the network on pose_vector "
                       f"(lowres_hps.body.load_body_model({cfg.body_model!r}).forward_vector(pose_vector)) for the "
                       f"vertices and {cfg.convention} keypoints, root at the origin; then add the camera translation"),
        "keypoint_convention": cfg.convention,
        "keypoint_names": json.dumps(list(get_convention(cfg.convention).names)),
    }
    return OnnxGraph(
        module=module, sample_inputs=sample_inputs, output_names=list(ONNX_OUTPUT_NAMES),
        doc=(f"lowres-hps 3D body network {{name}}: {cfg.backbone} "
             f"{'resolution-aware ' if cfg.resolution_aware else ''}backbone, {cfg.body_model} pose vector, "
             f"input {s}x{s} RGB uint8 + range_index; the body model runs after it; see metadata_props"),
        metadata=metadata,
        summary=(f"input {s}x{s} RGB uint8 + range_index, outputs {', '.join(ONNX_OUTPUT_NAMES)}; the "
                 f"{cfg.body_model} body model runs after the network"))


@register_kind("hps3d", "3D body", config=Body3DConfig, build=build_body3d_model, export=onnx_graph)
class Body3DEstimator:
    """A :class:`Body3DNet` with its body model: a :class:`~lowres_hps.models.estimator.BodyEstimator`, crops
    at their resolution ranges -> bodies, and keypoints (the bodies' projections, score 1).

    Args:
        model: the network (put in eval mode), or its ONNX export run by ONNX Runtime
            (:class:`~lowres_hps.apis.export.OnnxBody3DNet`: the same call, config and outputs).
        body: the body model of ``model.config.body_model`` (e.g. ``load_body_model("anny")``).
        card: the model card it was loaded with, if any.
        flip_test: overrides ``config.flip_test`` when given: each crop and its mirror image are regressed in one
            batch and their bodies averaged (:func:`~lowres_hps.body.flip.merge_mirrored_pose_vectors`; the
            camera's ``tx`` changes sign in the mirror).
    """

    def __init__(self, model: Body3DNet, body, card: Any = None, flip_test: bool | None = None) -> None:
        self.model = model.eval()
        self.config: Body3DConfig = model.config
        self.flip_test = bool(self.config.flip_test) if flip_test is None else bool(flip_test)
        if body.name != self.config.body_model:
            raise ValueError(f"the network regresses {self.config.body_model} parameters, got a {body.name} body model")
        self.body = body
        self.card = card
        self.input_size: tuple[int, int] = self.config.input_size
        self.scale_factor: float = float(self.config.scale_factor)
        self.convention: str = self.config.convention
        self.resolution_aware: bool = self.config.resolution_aware

    @classmethod
    def from_network(cls, network: Body3DNet, card: Any = None, device: torch.device | str | None = None,
                     body=None, flip_test: bool | None = None, **options) -> Body3DEstimator:
        """The estimator of a network (built by the registry from ``card``) with its body model (``body``, else
        ``load_body_model(config.body_model)``), on ``device``; ``flip_test`` overrides the card's setting."""
        from lowres_hps.body import load_body_model

        if options:
            name = getattr(card, "name", type(network).__name__)
            raise ValueError(f"model {name!r} is a 3D body model: it has no "
                             f"{', '.join(k.replace('_', ' ') for k in options)} setting")
        device = device or "cpu"
        body = load_body_model(network.config.body_model, device=device) if body is None else body.to(device)
        return cls(network.to(device), body, card=card, flip_test=flip_test)

    @property
    def device(self) -> torch.device:
        device = getattr(self.model, "device", None)  # an exported network run by ONNX Runtime says where it is
        return device if device is not None else self.model.pixel_mean.device

    def _ranges(self, range_index: torch.Tensor, batch: int) -> torch.Tensor:
        """(B,) int64 ranges of the protocol (``LowResCrop.range_index``), clipped to the network's ranges."""
        if range_index is None:
            raise ValueError("a 3D body estimator needs the range_index (B,) of its crops "
                             "(LowResCrop.range_index from lowres_hps.imaging.protocol.LowResProtocol)")
        ranges = torch.as_tensor(range_index).to("cpu", torch.int64).reshape(-1)
        if ranges.shape != (batch,) or bool((ranges < 0).any()):
            raise ValueError(f"range_index must be {batch} non-negative range indices, got {ranges.tolist()}")
        return ranges.clamp(max=self.config.num_ranges - 1)

    def predict_bodies(self, crops: torch.Tensor, range_index: torch.Tensor,
                       with_vertices: bool = True) -> BodyPrediction:
        """Bodies of (B, 3, S, S) uint8 crops; ``range_index`` (B,) (the crops' resolution ranges) picks the
        rows of RSC-Net's ``alpha``; ranges beyond the network's last one use the last one.

        A crop camera whose scale has collapsed (at or below ``MIN_CAMERA_SCALE``, which the projection clamps: the
        body would be a point 1 / 0.05 = 20 times too far away) is replaced by the regression's starting camera, the
        body at the crop's centre and nominal size; :meth:`fit_bodies` restarts such people from their keypoints."""
        pose_vector, camera, ranges = self._regress(crops, range_index)
        collapsed = camera[:, 0] <= MIN_CAMERA_SCALE
        if bool(collapsed.any()):
            nominal = self.model.regressor.mean_params[-3:].to(camera)
            camera = torch.where(collapsed[:, None], nominal, camera)
        return self.bodies(pose_vector, camera, ranges, with_vertices=with_vertices)

    def _regress(self, crops: torch.Tensor, range_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The network alone: ``(pose_vector (B, D), camera (B, 3), ranges (B,))``."""
        check_crops(crops, self.input_size)
        ranges = self._ranges(range_index, crops.shape[0])
        # no_grad, not inference_mode: roma caches a constant on its first call, and one made in
        # inference mode would break later training in the same process.
        network = FlipTestNet(self.model) if self.flip_test else self.model
        with torch.no_grad():
            out = network(crops.to(self.device), ranges.to(self.device))
        return out["pose_vector"], out["camera"], ranges

    def bodies(self, pose_vector: torch.Tensor, camera: torch.Tensor, range_index: torch.Tensor,
               with_vertices: bool = True, fitted: torch.Tensor | None = None) -> BodyPrediction:
        """The body model run on (B, D) pose vectors with their (B, 3) crop cameras: keypoints, mesh and
        projection in the crop camera (what :meth:`predict_bodies` gives after the network)."""
        with torch.no_grad():  # without a mesh to return, Anny skips skinning it (keypoints equal to rounding)
            body = self.body.forward_vector(pose_vector.to(self.device, self.body.dtype), keypoints_only=not with_vertices)
            keypoints, _ = body.keypoints(self.convention)
            pixels, translation = project_to_crop(keypoints, camera.to(self.device, keypoints.dtype),
                                                  self.config.canvas, self.config.crop_focal)
            vertices = body.vertices + translation[:, None] if with_vertices else None
        cpu = lambda t: None if t is None else t.detach().float().cpu()  # noqa: E731
        return BodyPrediction(pose_vector=cpu(pose_vector), camera=cpu(camera),
                              translation=cpu(translation), keypoints3d=cpu(keypoints + translation[:, None]),
                              keypoints2d=cpu(pixels), vertices=cpu(vertices), faces=body.faces.cpu(),
                              range_index=torch.as_tensor(range_index).cpu(), crop_focal=float(self.config.crop_focal),
                              crop_size=int(self.config.canvas), fitted=None if fitted is None else fitted.cpu())

    def fit_bodies(self, crops: torch.Tensor, range_index: torch.Tensor, keypoints2d: torch.Tensor,
                   scores: torch.Tensor, config: KeypointFitConfig | None = None,
                   with_vertices: bool = True) -> BodyPrediction:
        """:meth:`predict_bodies` with each body fitted to 2D keypoints in its crop after the network: (B, K, 2)
        crop px in this model's convention, with (B, K) scores (e.g. a 2D keypoint model's); see
        :func:`lowres_hps.fitting.fit_body_to_keypoints`. People with too few keypoints keep the network's body.
        The body model runs once, on the fitted parameters."""
        pose_vector, camera, ranges = self._regress(crops, range_index)
        fit = fit_body_to_keypoints(self.body, pose_vector, camera, keypoints2d.to(self.device),
                                    scores.to(self.device), canvas=self.config.canvas,
                                    crop_focal=self.config.crop_focal, convention=self.convention, config=config)
        return self.bodies(fit.pose_vector, fit.camera, ranges, with_vertices, fitted=fit.fitted)

    def __call__(self, crops: torch.Tensor, range_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bodies = self.predict_bodies(crops, range_index, with_vertices=False)
        points = bodies.keypoints2d
        return points.to(crops.device), torch.ones(points.shape[:2], device=crops.device)

    def __repr__(self) -> str:
        return (f"Body3DEstimator(backbone={self.config.backbone!r}, canvas={self.config.canvas}, "
                f"resolution_aware={self.resolution_aware}, body_model={self.config.body_model!r}, "
                f"flip_test={self.flip_test})")
