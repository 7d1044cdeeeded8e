"""RSC-Net (Xu et al., ECCV 2020): 3D body pose and shape from low-resolution crops.

One trainable task whose parts switch on and off, so every row of the paper's Tables 3-4 is a config
(see ``configs/hps3d/``):

* ``model.resolution_aware``: the resolution-aware ResNet (RA, Eq. 6) or the plain one (Ba).
* basic loss (Eq. 7): ``lambda_params`` x parameter MSE + ``lambda_3d`` x 3D keypoints + ``lambda_2d`` x
  2D keypoints, each term averaged over the people that have its label (SynthLR has all three, real
  2D sets only the last).
* ``lambda_weak3d``: a teacher's 3D keypoints on real images (BlazePose's world landmarks, ``world3d`` of the
  COCO reader) as weak 3D: only the directions of the limbs and of the shoulder and hip lines are compared
  (:func:`~lowres_hps.losses.bones.bone_direction_loss`), since the teacher's joints are defined differently.
* ``lambda_camera_floor``: a hinge on crop camera scales below ``camera_floor`` (squared shortfall). The projection
  clamps the scale at ``MIN_CAMERA_SCALE`` to keep bodies in front of the camera, which also stops its gradient: a
  network whose scale falls there gets no signal to grow it back (seen for people upside down). Real people fill
  their protocol crops at scales near 1, so the hinge costs nothing elsewhere. Not part of the paper.
* ``self_supervision``: ``directional`` (Eq. 9), ``symmetric`` (Eq. 8, "SS-o"), ``highest`` ("SS-h") or
  None, weighted by ``lambda_ss``; the compared outputs are the pose vector and the camera.
* ``feature_loss``: ``contrastive`` (Eqs. 10-11, "CL"), ``mse`` ("MS"), ``cosine`` ("CD") or None,
  weighted by ``lambda_feat``, with a queue of ``queue_size`` negatives and temperature ``temperature``.
* ``range_schedule``: progressive training (PT): the epoch at which each resolution range joins,
  highest first; None trains all ranges from the start ("w/o PT").
* ``ranges_per_step``: how many of the active ranges each step trains on, drawn at random per step (None:
  all of them, as in the paper). Fewer is cheaper per person (the network runs once per range): 2 gives 2.5x
  the people per CPU second at 5 ranges and keeps a pair for the consistency terms.

The terms of Eq. 7 are averaged over the active resolutions instead of summed (so progressive
training does not change the loss scale), and the consistency losses over their weighted pairs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lowres_hps.body.keypoints import hips_root
from lowres_hps.data.multires_dataset import MultiResAugmentConfig, MultiResolutionDataset
from lowres_hps.core.config import load_config
from lowres_hps.engine.trainer import Task
from lowres_hps.evaluation.body3d import evaluate_body3d
from lowres_hps.losses.consistency import (
    FEATURE_LOSSES,
    SELF_SUPERVISION_FORMS,
    FeatureQueue,
    feature_consistency_loss,
    pair_weights,
    self_supervision_loss,
)
from lowres_hps.losses.bones import bone_direction_loss, bone_indices
from lowres_hps.models.backbones.resolution_aware_movenet import ResolutionAwareMoveNet
from lowres_hps.models.body3d import Body3DConfig, Body3DNet, build_body3d_model, project_to_crop
from lowres_hps.models.weights import load_network_weights

__all__ = ["MODEL_KIND", "rsc_task", "RSCLoss", "hips_root", "evaluate_body3d", "mean_pose_vector",
           "load_trunk_from_pose2d", "load_network_weights"]

MODEL_KIND = "hps3d"
"""The model kind (:mod:`lowres_hps.models.kinds`) this task trains: how its runs load (``load_run``)."""

# Positions in the 2D ResNet backbone's nn.Sequential trunk -> torchvision ResNet attribute names.
_POSE2D_TRUNK_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


class RSCLoss:
    """Basic loss + self-supervision + feature consistency over the active resolutions of each batch."""

    def __init__(self, config: Body3DConfig, body, *, lambda_params: float = 1.0, lambda_3d: float = 5.0,
                 lambda_2d: float = 5.0, self_supervision: str | None = "directional", lambda_ss: float = 0.1,
                 feature_loss: str | None = "contrastive", lambda_feat: float = 0.1, temperature: float = 0.1,
                 queue_size: int = 8192, range_schedule: list[int] | None = (0, 0, 1, 2, 3),
                 lambda_weak3d: float = 0.0, ranges_per_step: int | None = None, lambda_camera_floor: float = 1.0,
                 camera_floor: float = 0.25) -> None:
        if self_supervision is not None and self_supervision not in SELF_SUPERVISION_FORMS:
            raise ValueError(f"self_supervision must be one of {SELF_SUPERVISION_FORMS} or null, got {self_supervision!r}")
        if feature_loss is not None and feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss must be one of {FEATURE_LOSSES} or null, got {feature_loss!r}")
        if range_schedule is not None and len(range_schedule) != config.num_ranges:
            raise ValueError(f"range_schedule needs one epoch per range ({config.num_ranges}), got {list(range_schedule)}")
        if ranges_per_step is not None and not 1 <= int(ranges_per_step) <= config.num_ranges:
            raise ValueError(f"ranges_per_step must be between 1 and {config.num_ranges} or null, got {ranges_per_step}")
        self.ranges_per_step = None if ranges_per_step is None else int(ranges_per_step)
        self.config = config
        self.body = body
        self.lambdas = {"params": lambda_params, "3d": lambda_3d, "2d": lambda_2d, "ss": lambda_ss, "feat": lambda_feat,
                        "weak3d": lambda_weak3d, "camera_floor": lambda_camera_floor}
        self.camera_floor = float(camera_floor)
        self.bones = bone_indices(config.convention)
        self.self_supervision = self_supervision
        self.feature_loss = feature_loss
        self.temperature = temperature
        self.queue = FeatureQueue(1, 1)  # replaced once the feature size is known
        self.queue_size = int(queue_size)
        self.range_schedule = None if range_schedule is None else [int(e) for e in range_schedule]
        self.active = list(range(config.num_ranges)) if range_schedule is None else \
            [i for i, e in enumerate(self.range_schedule) if e <= 0]

    def on_epoch_start(self, epoch: int) -> None:
        if self.range_schedule is not None:
            self.active = [i for i, e in enumerate(self.range_schedule) if e <= epoch]

    def step_ranges(self) -> list[int]:
        """The ranges this step trains on: every active one, or ``ranges_per_step`` of them at random (torch's
        generator, so the trainer's seed fixes the draw), in increasing order."""
        if self.ranges_per_step is None or self.ranges_per_step >= len(self.active):
            return list(self.active)
        picked = torch.randperm(len(self.active))[: self.ranges_per_step]
        return sorted(self.active[i] for i in picked.tolist())

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        active = self.step_ranges()
        images = batch["images"][:, active]  # (B, A, 3, S, S)
        ranges = batch["range_index"][:, active]
        b, a = images.shape[:2]
        out = model(images.flatten(0, 1), ranges.flatten())
        pose, camera, features = out["pose_vector"].float(), out["camera"].float(), out["features"].float()
        if self.body.device != pose.device:
            self.body.to(pose.device)
        # Only keypoints: no mesh (11x faster forward + backward for Anny at batch 64). Never in bf16 under mixed
        # precision: skinning in bf16 moves keypoints by centimetres.
        with torch.autocast(pose.device.type, enabled=False):
            body_out = self.body.forward_vector(pose.to(self.body.dtype), keypoints_only=True)
        keypoints3d, _ = body_out.keypoints(self.config.convention)
        keypoints3d = keypoints3d.to(pose.dtype)
        pixels, _ = project_to_crop(keypoints3d, camera, self.config.canvas, self.config.crop_focal)

        def per_person(values: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
            """(B*A,) -> mean over the people that have the label (0 when none has it)."""
            weights = has.to(values.dtype).repeat_interleave(a)
            return (values * weights).sum() / weights.sum().clamp(min=1)

        # Eq. 7, per resolution, averaged over resolutions and labelled people.
        gt_pose = batch["pose_vector"].repeat_interleave(a, dim=0)
        loss_params = per_person((pose - gt_pose).pow(2).mean(-1), batch["has_params"])
        gt3d = batch["keypoints3d"].repeat_interleave(a, dim=0)
        vis3d = batch["visible3d"].repeat_interleave(a, dim=0)
        error3d = ((keypoints3d - hips_root(keypoints3d)) - (gt3d - hips_root(gt3d))).pow(2).sum(-1)
        loss_3d = per_person((error3d * vis3d).sum(-1) / vis3d.sum(-1).clamp(min=1), batch["has_3d"])
        gt2d = batch["keypoints2d"].repeat_interleave(a, dim=0)
        vis2d = batch["visible2d"].repeat_interleave(a, dim=0)
        error2d = ((pixels - gt2d) / self.config.canvas).pow(2).sum(-1)
        loss_2d = (error2d * vis2d).sum() / vis2d.sum().clamp(min=1)
        lam = self.lambdas
        loss = lam["params"] * loss_params + lam["3d"] * loss_3d + lam["2d"] * loss_2d
        logs = {"loss_params": loss_params.detach(), "loss_3d": loss_3d.detach(), "loss_2d": loss_2d.detach(),
                "resolutions": torch.tensor(float(a))}
        if lam["camera_floor"] > 0:
            loss_floor = (self.camera_floor - camera[:, 0]).clamp(min=0).pow(2).mean()
            loss = loss + lam["camera_floor"] * loss_floor
            logs["loss_camera_floor"] = loss_floor.detach()
        if lam["weak3d"] > 0 and "has_weak3d" in batch:
            weak = bone_direction_loss(keypoints3d, gt3d, vis3d, self.bones.to(gt3d.device))
            loss_weak3d = per_person(weak, batch["has_weak3d"])
            loss = loss + lam["weak3d"] * loss_weak3d
            logs["loss_weak3d"] = loss_weak3d.detach()

        if self.self_supervision is not None:
            weights = pair_weights(ranges, self.self_supervision)
            outputs = torch.cat([pose, camera], dim=-1).view(b, a, -1)
            loss_ss = self_supervision_loss(outputs, weights, detach_targets=self.self_supervision != "symmetric")
            loss = loss + lam["ss"] * loss_ss
            logs["loss_ss"] = loss_ss.detach()
        if self.feature_loss is not None:
            if self.queue.features.shape[1] != features.shape[1]:
                self.queue = FeatureQueue(features.shape[1], self.queue_size)
            self.queue.to(features.device)
            weights = pair_weights(ranges, "directional")
            loss_feat = feature_consistency_loss(features.view(b, a, -1), weights, self.feature_loss, self.queue,
                                                 self.temperature)
            if self.feature_loss == "contrastive":
                self.queue.enqueue(features)
            loss = loss + lam["feat"] * loss_feat
            logs["loss_feat"] = loss_feat.detach()
        return loss, logs


def mean_pose_vector(readers, spec, body_model: str = "anny", limit: int = 5000) -> torch.Tensor | None:
    """Mean of the training pose vectors (rotations projected back onto SO(3)), or None without any."""
    import roma

    vectors = []
    for reader in readers:
        arrays = getattr(reader, "_arrays", None)  # SynthLR keeps its pose vectors in memory
        if arrays is not None and "pose_vector" in arrays and body_model == "anny":
            vectors.append(torch.as_tensor(arrays["pose_vector"][:limit], dtype=torch.float64))
    if not vectors:
        return None
    stacked = torch.cat(vectors)
    if stacked.shape[1] != spec.vector_size:
        return None
    rotations, shape = spec.split(stacked)
    mean_rotations = roma.special_procrustes(rotations.mean(dim=0))
    return spec.join(mean_rotations, shape.mean(dim=0)).float()


def load_trunk_from_pose2d(network: Body3DNet, path: str | Path) -> int:
    """Initialise the trunk of a 3D network from a lowres-hps 2D keypoint checkpoint of the same architecture.

    MoveNet backbones take the 2D model's trunk, FPN and keypoint-heatmap head (e.g. ``lrmove_l_128``, see
    :meth:`~lowres_hps.models.backbones.resolution_aware_movenet.ResolutionAwareMoveNet.load_pose2d_state`).
    ResNet backbones take the trunk of a ResNet 2D model of the same depth:

    The paper starts from SPIN's weights; nothing may be downloaded here, so the closest thing is a
    ResNet trained by this project for low-resolution 2D keypoints (e.g. ``cal_r18_128x96``). Its
    trunk (``backbone.trunk.*``, an ``nn.Sequential`` of torchvision's stem and stages; the stage
    strides do not change the weights) goes into ``network.backbone.trunk``. Returns the number of
    tensors loaded; raises ``ValueError`` when the checkpoint has no trunk of matching shapes.
    """
    import safetensors.torch

    from lowres_hps.models.weights import resolve_model_path

    state = safetensors.torch.load_file(str(resolve_model_path(path)))
    if isinstance(network.backbone, ResolutionAwareMoveNet):
        return network.backbone.load_pose2d_state(state, str(path))
    renamed = {}
    for key, value in state.items():
        if not key.startswith("backbone.trunk."):
            continue
        index, rest = key[len("backbone.trunk."):].split(".", 1)
        if index in _POSE2D_TRUNK_NAMES:
            renamed[f"{_POSE2D_TRUNK_NAMES[index]}.{rest}"] = value
    target = network.backbone.trunk.state_dict()
    expected = {k for k in target if not k.startswith("fc.")}
    if set(renamed) != expected or any(renamed[k].shape != target[k].shape for k in expected):
        raise ValueError(f"{path} has no ResNet trunk matching the 3D network's {network.config.backbone} "
                         f"({len(renamed)} trunk tensors found, {len(expected)} expected)")
    network.backbone.trunk.load_state_dict({k: v.to(target[k].dtype) for k, v in renamed.items()}, strict=False)
    return len(renamed)


def rsc_task(
    model: dict,
    synthlr: list[str] = (),
    lspet: str | None = None,
    lspet_indices: tuple[int, int] | None = (0, 300),
    coco: str | None = None,
    extra_datasets: list[dict] = (),
    lambda_params: float = 1.0,
    lambda_3d: float = 5.0,
    lambda_2d: float = 5.0,
    self_supervision: str | None = "directional",
    lambda_ss: float = 0.1,
    feature_loss: str | None = "contrastive",
    lambda_feat: float = 0.1,
    temperature: float = 0.1,
    queue_size: int = 8192,
    range_schedule: list[int] | None = (0, 0, 1, 2, 3),
    lambda_weak3d: float = 0.0,
    lambda_camera_floor: float = 1.0,
    camera_floor: float = 0.25,
    augment: dict | None = None,
    mean_from_data: bool = True,
    init_trunk_from: str | None = None,
    init_from: str | None = None,
    ranges_per_step: int | None = None,
    train_subset: int | None = None,
    val_synthlr: str | None = None,
    val_heights: list[float] = (96, 32),
    val_max: int = 100,
) -> Task:
    """Build the task (a factory named in the YAML config as ``lowres_hps.methods.rsc:rsc_task``).

    ``extra_datasets`` opens any other dataset through the foundation's readers, e.g. Human3.6M or
    MPI-INF-3DHP in SPIN's npz layout: ``{format: spin, path: h36m_train.npz, images: h36m/}``; their 3D
    keypoints feed the 3D term (their SMPL parameters are not used by an Anny network).
    ``init_trunk_from`` starts the trunk from a 2D keypoint model (name or path, see
    :func:`load_trunk_from_pose2d`). ``init_from`` starts the whole network from a 3D checkpoint of the same
    architecture (name or path, see :func:`load_network_weights`): fine-tuning; it overrides the data's mean
    start (``mean_from_data``), which the checkpoint's regressor already holds.
    """
    from lowres_hps.body import load_body_model
    from lowres_hps.data import build_readers

    cfg = load_config(model, Body3DConfig)
    network = build_body3d_model(cfg)
    if init_trunk_from:
        load_trunk_from_pose2d(network, init_trunk_from)
    readers = build_readers(list(synthlr), lspet, tuple(lspet_indices) if lspet_indices else None, coco,
                            list(extra_datasets))
    if not readers:
        raise ValueError("no training data: set synthlr, lspet, coco and/or extra_datasets in task_args")
    if init_from:
        load_network_weights(network, init_from)
    elif mean_from_data:
        mean = mean_pose_vector(readers, cfg.pose_spec, cfg.body_model)
        if mean is not None:
            start = network.regressor.mean_params.clone()
            # Body joints and shape from the data; the root stays upright facing the camera (the mean
            # of uniformly random yaws is no orientation at all).
            start[6: cfg.pose_spec.vector_size] = mean[6:]
            network.regressor.set_mean_params(start)
    augment_cfg = load_config(augment or {}, MultiResAugmentConfig)
    dataset_args = dict(canvas=cfg.canvas, convention=cfg.convention, body_model=cfg.body_model,
                        pose_size=cfg.pose_spec.vector_size, num_ranges=cfg.num_ranges, scale_factor=cfg.scale_factor)
    train = MultiResolutionDataset(readers, augment=augment_cfg, **dataset_args)
    if train_subset is not None and train_subset < len(train):
        from torch.utils.data import Subset

        keep = np.random.default_rng(0).permutation(len(train))[:train_subset]  # the same for every run
        train = Subset(train, np.sort(keep).tolist())
    body = load_body_model(cfg.body_model)
    loss = RSCLoss(cfg, body, lambda_params=lambda_params, lambda_3d=lambda_3d, lambda_2d=lambda_2d,
                   self_supervision=self_supervision, lambda_ss=lambda_ss, feature_loss=feature_loss,
                   lambda_feat=lambda_feat, temperature=temperature, queue_size=queue_size,
                   range_schedule=None if range_schedule is None else list(range_schedule),
                   lambda_weak3d=lambda_weak3d, ranges_per_step=ranges_per_step,
                   lambda_camera_floor=lambda_camera_floor, camera_floor=camera_floor)
    val, evaluate = None, None
    if val_synthlr:
        from torch.utils.data import Subset

        from lowres_hps.data import SynthLRReader

        heights = [float(h) for h in val_heights]
        full = MultiResolutionDataset([SynthLRReader(val_synthlr)], person_heights=heights, **dataset_args)
        val = Subset(full, range(min(val_max, len(full))))
        evaluate = lambda net, batches: evaluate_body3d(net, body, batches, heights)  # noqa: E731
    return Task(model=network, train_dataset=train, loss=loss, val_dataset=val, evaluate=evaluate,
                on_epoch_start=loss.on_epoch_start)
