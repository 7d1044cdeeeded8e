"""CAL (Wang et al.): confidence-aware learning for low-resolution 2D keypoints, with its baselines.

One trainable task whose parts switch on and off, so every row of the paper's ablations is a
config (see ``configs/kp2d/``):

* ``codec``: ``msra`` (Gaussian heatmap only), ``udp`` (binary heatmap + offsets, Eqs. 6-9),
  ``cal`` (Gaussian-weighted binary heatmap G = B*C + offsets, Eq. 10).
* ``heatmap_loss``: ``l2`` (CAL, MSRA) or ``ce`` (UDP).
* ``offset_loss``: ``l1`` (CAL), ``smooth_l1`` (UDP) or ``l2``.
* ``offset_weighting``: ``codec`` (the codec's own weights: B for UDP, G for CAL, i.e. Eq. 14 in
  stage 1), ``binary`` (the disc B whatever the codec), and in stage 2 ``mgm`` (Mixed Gaussian
  Masks, Eq. 15 / Algorithm 1) with ``gmm_components`` components.
* ``stage2_epoch``: epoch at which stage 2 starts; ``None`` trains one stage, 0 uses MGM throughout.
* ``heatmap_reduction``: ``sum`` over each map's pixels, as the paper's equations (default), or ``mean``
  (mmpose's ``KeypointMSELoss``, with which the offset term outweighs the heatmaps by about ``h * w``; the
  ``cal_*`` models shipped before 2026-11-30 were trained so).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lowres_hps.data import build_readers
from lowres_hps.data.keypoint_dataset import AugmentConfig, TopDownKeypointDataset
from lowres_hps.core.config import load_config
from lowres_hps.engine.trainer import Task
from lowres_hps.imaging.protocol import LowResProtocol
from lowres_hps.losses.keypoints import heatmap_ce_loss, heatmap_l2_loss, offset_loss
from lowres_hps.models.codecs.gmm import mixed_gaussian_masks
from lowres_hps.models.pose2d import Pose2DConfig, build_codec, build_pose_model

__all__ = ["MODEL_KIND", "cal_task", "CALLoss"]

MODEL_KIND = "kp2d"
"""The model kind (:mod:`lowres_hps.models.kinds`) this task trains: how its runs load (``load_run``)."""


class CALLoss:
    """The training loss of all CAL-family rows; ``stage`` switches the offset weighting to MGM."""

    def __init__(self, codec, heatmap_loss: str, offset_loss_kind: str, offset_weighting: str,
                 alpha: float, gmm_components: int, stage2_epoch: int | None, heatmap_reduction: str = "sum"):
        if heatmap_loss not in ("l2", "ce"):
            raise ValueError(f"heatmap_loss must be 'l2' or 'ce', got {heatmap_loss!r}")
        if heatmap_reduction not in ("sum", "mean"):
            raise ValueError(f"heatmap_reduction must be 'sum' or 'mean', got {heatmap_reduction!r}")
        self.heatmap_reduction = heatmap_reduction
        if offset_weighting not in ("codec", "binary"):
            raise ValueError(f"offset_weighting must be 'codec' or 'binary', got {offset_weighting!r}")
        self.codec = codec
        self.heatmap_loss = heatmap_loss
        self.offset_loss_kind = offset_loss_kind
        self.offset_weighting = offset_weighting
        self.alpha = alpha
        self.gmm_components = gmm_components
        self.stage2_epoch = stage2_epoch
        self.use_mgm = stage2_epoch == 0

    def on_epoch_start(self, epoch: int) -> None:
        self.use_mgm = self.stage2_epoch is not None and epoch >= self.stage2_epoch

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        outputs = model(batch["image"])
        targets = self.codec.encode(batch["keypoints"], batch["visible"])
        heatmaps = outputs["heatmaps"]
        if self.heatmap_loss == "l2":
            loss_heatmap = heatmap_l2_loss(heatmaps, targets.heatmaps, targets.keypoint_weights)
        else:
            loss_heatmap = heatmap_ce_loss(heatmaps, targets.heatmaps, targets.keypoint_weights)
        if self.heatmap_reduction == "sum":
            # Eqs. 3, 8, 14, 15 sum the heatmap term over the pixels of each map; the pixel mean above is
            # h * w times weaker than the offset term, which is a weighted mean per keypoint.
            loss_heatmap = loss_heatmap * heatmaps.shape[-1] * heatmaps.shape[-2]
        logs = {"loss_heatmap": loss_heatmap.detach()}
        if targets.offsets is None or outputs.get("offsets") is None:
            return loss_heatmap, logs
        weights = targets.offset_weights
        if self.offset_weighting == "binary":
            weights = (weights > 0).to(weights.dtype)
        if self.use_mgm:
            radius = float(getattr(self.codec, "radius"))
            weights = mixed_gaussian_masks(
                heatmaps.detach(), targets.keypoints_hm, targets.keypoint_weights, radius,
                self.gmm_components, fallback_weights=weights,
            )
        loss_offset = offset_loss(outputs["offsets"], targets.offsets, weights, targets.keypoint_weights,
                                  kind=self.offset_loss_kind)
        logs["loss_offset"] = loss_offset.detach()
        return loss_heatmap + self.alpha * loss_offset, logs


def _evaluate_factory(codec, dataset: TopDownKeypointDataset):
    """Validation: PCK@0.1 of the input size (crop pixels) on the validation crops, and mean error."""

    def evaluate(model, batches) -> dict[str, float]:
        errors, weights = [], []
        for batch in batches:
            outputs = model(batch["image"])
            keypoints, _ = codec.decode(outputs["heatmaps"], outputs.get("offsets"))
            errors.append((keypoints - batch["keypoints"]).norm(dim=-1).cpu())
            weights.append(batch["visible"].cpu())
        error, weight = torch.cat(errors), torch.cat(weights)
        size = max(dataset.protocol.input_size)
        correct = ((error <= 0.1 * size).float() * weight).sum() / weight.sum().clamp(min=1)
        return {"pck@0.1": float(correct), "mean_error_px": float((error * weight).sum() / weight.sum().clamp(min=1))}

    return evaluate


def cal_task(
    model: dict,
    synthlr: list[str] = (),
    lspet: str | None = None,
    lspet_indices: tuple[int, int] | None = (0, 300),
    coco: str | None = None,
    heatmap_loss: str = "l2",
    offset_loss: str = "l1",
    offset_weighting: str = "codec",
    alpha: float = 1.0,
    stage2_epoch: int | None = None,
    gmm_components: int = 1,
    augment: dict | None = None,
    val_synthlr: str | None = None,
    val_max: int = 300,
    train_subset: int | None = None,
    extra_datasets: list[dict] = (),
    protocol_setting: str = "native",
    crop_cache_height: float | None = None,
    val_datasets: list[dict] = (),
    val_person_height: float | None = None,
    heatmap_reduction: str = "sum",
    init_from: str | None = None,
) -> Task:
    """Build the task (a factory named in the YAML config as ``lowres_hps.methods.cal:cal_task``).

    ``protocol_setting``: ``"native"`` (CAL: the small input is the resolution) or ``"upsample"`` (each
    person degraded to a random height ``augment.person_heights`` first, then resized to the input, as
    ``predict --person-height`` does); the backbone starts from ``model.backbone_params.pretrained``.
    ``crop_cache_height``: keep every training person in memory, cut and shrunk so its box is at most this
    tall (:class:`~lowres_hps.data.crop_cache.CroppedReader`); None reads the images every time.
    ``val_datasets``: validation sources in the form of ``extra_datasets`` (instead of ``val_synthlr``),
    evaluated with every person degraded to ``val_person_height`` (None: source resolution).
    ``init_from`` starts the whole network from a 2D checkpoint of the same architecture (a registered name such
    as ``lrmove_l_128``, or a ``.safetensors`` path): fine-tuning.
    """
    cfg = load_config(model, Pose2DConfig)
    network = build_pose_model(cfg, pretrained=init_from is None)
    if init_from:
        from lowres_hps.models.weights import load_network_weights

        load_network_weights(network, init_from)
    codec = build_codec(cfg)
    protocol = LowResProtocol(input_size=cfg.input_size, scale_factor=cfg.scale_factor, setting=protocol_setting)
    augment_cfg = load_config(augment or {}, AugmentConfig)
    readers = build_readers(list(synthlr), lspet, tuple(lspet_indices) if lspet_indices else None, coco,
                            list(extra_datasets))
    if not readers:
        raise ValueError("no training data: set synthlr, lspet and/or coco in task_args")
    if crop_cache_height is not None:
        from lowres_hps.data.crop_cache import CroppedReader

        readers = [CroppedReader(reader, max_height=crop_cache_height) for reader in readers]
    train = TopDownKeypointDataset(readers, protocol, cfg.convention, augment=augment_cfg)
    if train_subset is not None and train_subset < len(train):
        from torch.utils.data import Subset

        # A fixed random subset (same for every run), so budget-limited ablations see the same data.
        keep = np.random.default_rng(0).permutation(len(train))[:train_subset]
        train = Subset(train, np.sort(keep).tolist())
    loss = CALLoss(codec, heatmap_loss, offset_loss, offset_weighting, alpha, gmm_components, stage2_epoch,
                   heatmap_reduction)
    val, evaluate = None, None
    if val_datasets:
        from torch.utils.data import Subset

        val_readers = build_readers([], None, None, None, list(val_datasets))
        full = TopDownKeypointDataset(val_readers, protocol, cfg.convention, person_height=val_person_height)
        val = Subset(full, range(min(val_max, len(full))))
        evaluate = _evaluate_factory(codec, full)
    elif val_synthlr:
        from torch.utils.data import Subset

        from lowres_hps.data import SynthLRReader

        full = TopDownKeypointDataset([SynthLRReader(val_synthlr)], protocol, cfg.convention)
        val = Subset(full, range(min(val_max, len(full))))
        evaluate = _evaluate_factory(codec, full)
    return Task(model=network, train_dataset=train, loss=loss, val_dataset=val, evaluate=evaluate,
                on_epoch_start=loss.on_epoch_start)
