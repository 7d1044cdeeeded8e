"""3D body pose and shape regression from a person crop: HMR-style network, its config and estimator.

``build_body3d_model(cfg)`` gives a :class:`Body3DNet`: backbone (optionally RSC-Net's resolution-aware
ResNet) -> global average pooling -> feature ``phi`` -> iterative regressor -> ``[pose vector | camera]``.
The pose vector is the body model's regression vector (:mod:`lowres_hps.body.pose`; Anny: 126) with
its root rotation in camera axes; the camera is SPIN's weak-perspective ``[s, tx, ty]`` of the crop,
turned into a translation of a perspective crop camera whose focal is 5000 px for a 224 px crop
(scaled with the canvas, so every canvas sees the same field of view).

The body model is not part of the network (so the network exports to ONNX alone):
:class:`Body3DEstimator` runs it after the network and gives 3D keypoints, vertices and 2D keypoints.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lowres_hps.body.keypoints import get_convention
from lowres_hps.models.backbones.resolution_aware import ResolutionAwareResNet
from lowres_hps.models.heads.iterative_regressor import IterativeRegressor
from lowres_hps.models.pose2d import IMAGENET_MEAN, IMAGENET_STD, check_crops

__all__ = [
    "Body3DConfig",
    "Body3DNet",
    "BodyPrediction",
    "Body3DEstimator",
    "build_body3d_model",
    "project_to_crop",
    "default_mean_params",
    "SPIN_FOCAL_224",
]

MIN_CAMERA_SCALE = 0.05
"""Smallest weak-perspective scale used for projection (a person 1/20 of the crop)."""
SPIN_FOCAL_224 = 5000.0
"""Focal length (px) of SPIN's crop camera for a 224 px crop."""
_BACKBONE_DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50}


@dataclass
class Body3DConfig:
    """Everything needed to rebuild a 3D body regressor.

    Attributes:
        backbone: ``"resnet18"``, ``"resnet34"`` or ``"resnet50"`` (torchvision trunks).
        resolution_aware: RSC-Net's per-range residual weights (RA); False is the baseline (Ba).
        num_ranges: resolution ranges P (the protocol's 5).
        canvas: side of the square network input; the paper upsamples every crop to 224, smaller
            canvases (128, 96, 64) make CPU training practical.
        body_model: ``"anny"`` (default), ``"smpl"`` or ``"smplx"``: sets the pose vector.
        convention: keypoint convention of the outputs.
        iterations, hidden, dropout: the iterative regressor.
        scale_factor: context margin of the crop around the aspect-fixed person box.
        pretrained: path to a torchvision ImageNet checkpoint for the trunk (never downloaded).
        mean, std: RGB normalisation for images in [0, 1]; applied inside the network to 0..255 inputs.
    """

    backbone: str = "resnet18"
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
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.backbone not in _BACKBONE_DEPTHS:
            raise ValueError(f"backbone must be one of {sorted(_BACKBONE_DEPTHS)}, got {self.backbone!r}")
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
        return SPIN_FOCAL_224 * self.canvas / 224.0

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
    """Starting point of the regression: rest pose, upright and facing the camera, at SPIN's mean scale."""
    from lowres_hps.geometry.rotations import body_to_opencv_rotation

    spec = cfg.pose_spec
    rotations, shape = spec.split(spec.rest_vector(1))
    rotations = rotations.clone()
    rotations[:, 0] = body_to_opencv_rotation(dtype=rotations.dtype)  # root in camera axes
    camera = torch.tensor([[0.9, 0.0, 0.0]])
    return torch.cat([spec.join(rotations, shape), camera], dim=1)[0]


class Body3DNet(nn.Module):
    """Crop -> ``{"pose_vector" (B, D), "camera" (B, 3) [s, tx, ty], "features" (B, F)}``.

    ``forward(images, range_index)``: RGB ``(B, 3, S, S)`` uint8 or float 0..255 (normalised inside),
    ``range_index (B,)`` the resolution range of each input (needed when resolution-aware).
    """

    def __init__(self, cfg: Body3DConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.config = copy.deepcopy(cfg)
        self.backbone = ResolutionAwareResNet(_BACKBONE_DEPTHS[cfg.backbone], cfg.num_ranges, cfg.resolution_aware,
                                              pretrained=cfg.pretrained if pretrained else None)
        self.regressor = IterativeRegressor(self.backbone.feature_dim, cfg.param_dim, cfg.iterations, cfg.hidden,
                                            cfg.dropout)
        self.regressor.set_mean_params(default_mean_params(cfg))
        self.register_buffer("pixel_mean", 255.0 * torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", 255.0 * torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        features = self.backbone(x, range_index)
        params = self.regressor(features)
        return {"pose_vector": params[:, :-3], "camera": params[:, -3:], "features": features}


def build_body3d_model(cfg: Body3DConfig, pretrained: bool = True) -> Body3DNet:
    """The network of ``cfg``, freshly initialised; ``pretrained=False`` ignores ``cfg.pretrained``."""
    return Body3DNet(cfg, pretrained=pretrained)


def project_to_crop(points: torch.Tensor, camera: torch.Tensor, canvas: int,
                    crop_focal: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Project root-relative camera-axis points through the crop camera of ``camera = [s, tx, ty]``.

    Args:
        points: (B, K, 3) in metres, camera axes (x right, y down, z forward), root at the origin.
        camera: (B, 3) weak-perspective crop camera.
        canvas: crop side in px; the principal point is its centre ``(canvas - 1) / 2`` (pixel
            centres at integer coordinates).
        crop_focal: focal in px.

    Returns:
        ``(pixels (B, K, 2), translation (B, 3))``: crop pixels, and the root's position in the crop camera.
    """
    from lowres_hps.geometry.camera import perspective_project, weak_perspective_to_translation

    # Keep the scale positive: s <= 0 would put the body at or behind the camera.
    camera = torch.cat([camera[:, :1].clamp(min=MIN_CAMERA_SCALE), camera[:, 1:]], dim=1)
    translation = weak_perspective_to_translation(camera, crop_focal, float(canvas))
    centre = torch.full((points.shape[0], 2), (canvas - 1) / 2.0, dtype=points.dtype, device=points.device)
    pixels = perspective_project(points, crop_focal, centre, translation=translation)
    return pixels, translation


@dataclass
class BodyPrediction:
    """Bodies of a batch of crops (all tensors on the CPU).

    Attributes:
        pose_vector: (B, D) the body model's regression vector, root rotation in camera axes.
        camera: (B, 3) weak-perspective crop camera ``[s, tx, ty]``.
        translation: (B, 3) root position in the crop camera (metres).
        keypoints3d: (B, K, 3) keypoints in the crop camera (metres).
        keypoints2d: (B, K, 2) keypoints in crop pixels.
        vertices: (B, V, 3) mesh in the crop camera (metres), or None when not asked for.
        faces: (F, 3) triangles of the mesh.
        range_index: (B,) the resolution range each crop was run with.
    """

    pose_vector: torch.Tensor
    camera: torch.Tensor
    translation: torch.Tensor
    keypoints3d: torch.Tensor
    keypoints2d: torch.Tensor
    vertices: torch.Tensor | None
    faces: torch.Tensor
    range_index: torch.Tensor


class Body3DEstimator:
    """A :class:`Body3DNet` with its body model: crops -> bodies, and a 2D
    :class:`~lowres_hps.models.estimator.PoseEstimator` (the projected keypoints, score 1).

    Args:
        model: the network (put in eval mode).
        body: the body model of ``model.config.body_model`` (e.g. ``load_body_model("anny")``).
        card: the model card it was loaded with, if any.
    """

    def __init__(self, model: Body3DNet, body, card: Any = None) -> None:
        self.model = model.eval()
        self.config: Body3DConfig = model.config
        if body.name != self.config.body_model:
            raise ValueError(f"the network regresses {self.config.body_model} parameters, got a {body.name} body model")
        self.body = body
        self.card = card
        self.input_size: tuple[int, int] = self.config.input_size
        self.scale_factor: float = float(self.config.scale_factor)
        self.convention: str = self.config.convention
        self.resolution_aware: bool = self.config.resolution_aware

    @property
    def device(self) -> torch.device:
        return self.model.pixel_mean.device

    def range_index(self, person_heights: torch.Tensor) -> torch.Tensor:
        """Range index of each crop from its person height (px), clipped to the network's ranges."""
        from lowres_hps.imaging.protocol import input_range_index

        heights = torch.as_tensor(person_heights, dtype=torch.float64).reshape(-1)
        return input_range_index(heights, self.scale_factor).clamp(max=self.config.num_ranges - 1)

    def predict_bodies(self, crops: torch.Tensor, person_heights: torch.Tensor | None = None,
                       with_vertices: bool = True) -> BodyPrediction:
        """Bodies of (B, 3, S, S) uint8 crops; ``person_heights`` (B,) px pick the rows of ``alpha``
        (default: the highest resolution)."""
        check_crops(crops, self.input_size)
        batch = crops.shape[0]
        heights = torch.full((batch,), 224.0) if person_heights is None else torch.as_tensor(person_heights).float()
        ranges = self.range_index(heights)
        # no_grad, not inference_mode: roma caches a constant on its first call, and one made in
        # inference mode would break later training in the same process.
        with torch.no_grad():
            out = self.model(crops.to(self.device), ranges.to(self.device))
            body = self.body.forward_vector(out["pose_vector"].to(self.body.dtype))
            keypoints, _ = body.keypoints(self.convention)
            pixels, translation = project_to_crop(keypoints, out["camera"].to(keypoints.dtype), self.config.canvas,
                                                  self.config.crop_focal)
            vertices = body.vertices + translation[:, None] if with_vertices else None
        cpu = lambda t: None if t is None else t.detach().float().cpu()  # noqa: E731
        return BodyPrediction(pose_vector=cpu(out["pose_vector"]), camera=cpu(out["camera"]),
                              translation=cpu(translation), keypoints3d=cpu(keypoints + translation[:, None]),
                              keypoints2d=cpu(pixels), vertices=cpu(vertices), faces=body.faces.cpu(),
                              range_index=ranges)

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bodies = self.predict_bodies(crops, with_vertices=False)
        points = bodies.keypoints2d
        return points.to(crops.device), torch.ones(points.shape[:2], device=crops.device)

    def __repr__(self) -> str:
        return (f"Body3DEstimator(backbone={self.config.backbone!r}, canvas={self.config.canvas}, "
                f"resolution_aware={self.resolution_aware}, body_model={self.config.body_model!r})")
