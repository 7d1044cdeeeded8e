"""MILI (Li et al., 2023): training the multi-person network of :mod:`lowres_hps.models.mili` on paired
high- and low-resolution images.

Each step runs the low-resolution image through branch 1 with the full supervision ``L_mul`` (CenterNet
detection: focal loss on the centre heatmap, L1 on box size and offset; RoI keypoint heatmaps; the body's
parameters, 3D keypoints and reprojected 2D keypoints as RSC-Net's Eq. 7; RoI keypoints by the cross-entropy of
a spatial softmax) and, with ``two_branch``, the same
scene at high resolution through branch 0 without gradient (the paper fine-tunes that branch first and then
keeps it fixed), for the guidance terms:

* ``contrastive`` (Eq. 3): InfoNCE between the pooled FPN top levels, the high-resolution one detached, cosine
  similarity over temperature ``temperature`` (0.01), negatives a queue of ``queue_size`` (400) low-resolution
  features of other scenes, weight ``lambda_cs``;
* ``roi_mse`` (Eq. 4): squared distance, in input pixels, between the boxes both branches predict at the people's
  centres, weight ``lambda_roi`` (the paper's 1e-8, "due to the large RoI value"; read here as the RoIs' box
  coordinates, since Eq. 4's feature form would duplicate Eq. 6);
* ``restoration`` (Eq. 6): MSE between the restoration network's output on the low branch and the high branch's
  FPN top level, divided by the latter's mean square (scale-free: the plain MSE of MultiPose's features is ~1e3),
  weight ``lambda_res``.

``occlusion`` (Eq. 5) adds the MSE between the RoI mask head's probabilities and the people's instance masks
(low branch only). ``high_supervised`` also trains branch 0 with ``L_mul`` (with gradient), the paper's first
stage. Switching a term off while its module exists leaves the module untrained but in place; the model config's
``attention`` / ``restoration`` / ``mask_head`` remove the modules themselves.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
import torchvision

from lowres_hps.body.keypoints import hips_root
from lowres_hps.core.config import load_config
from lowres_hps.data.scenes import SceneAugmentConfig, SceneDataset
from lowres_hps.engine.trainer import Task
from lowres_hps.geometry.camera import project_to_crop
from lowres_hps.losses.consistency import FeatureQueue, feature_consistency_loss
from lowres_hps.losses.detection import center_focal_loss, masked_l1
from lowres_hps.models.codecs.base import gather_cells
from lowres_hps.models.codecs.centernet import CenterNetBoxCodec
from lowres_hps.models.mili import HIGH, LOW, MILIConfig, MILINet, build_mili_model, crop_regions, roi_boxes

__all__ = ["MODEL_KIND", "MILILoss", "mili_task", "evaluate_mili", "keypoint_roi_targets"]

MODEL_KIND = "mili"
"""The model kind this task trains."""


def keypoint_roi_targets(keypoints: torch.Tensor, rois: torch.Tensor, grid: tuple[int, int], sigma: float = 1.0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian heatmap targets of keypoints (R, K, 3) image px (pixel centres at integers, visibility) on each
    RoI's ``grid`` (h, w) -> (targets (R, K, h, w), weights (R, K): labelled and inside the RoI)."""
    h, w = grid
    x0, y0, x1, y1 = (rois[:, i, None] for i in range(1, 5))
    gx = (keypoints[..., 0] + 0.5 - x0) * w / (x1 - x0).clamp(min=1e-3) - 0.5
    gy = (keypoints[..., 1] + 0.5 - y0) * h / (y1 - y0).clamp(min=1e-3) - 0.5
    weight = ((keypoints[..., 2] > 0) & (gx > -0.5) & (gx < w - 0.5) & (gy > -0.5) & (gy < h - 0.5)).float()
    ys = torch.arange(h, dtype=keypoints.dtype, device=keypoints.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=keypoints.dtype, device=keypoints.device).view(1, 1, 1, w)
    targets = torch.exp(-((ys - gy[..., None, None]) ** 2 + (xs - gx[..., None, None]) ** 2) / (2 * sigma ** 2))
    return targets * weight[..., None, None], weight


class MILILoss:
    """``L_mul`` on the low branch plus the guidance terms of the module docstring."""

    def __init__(self, config: MILIConfig, body, *, two_branch: bool = True, contrastive: bool = True,
                 roi_mse: bool = True, occlusion: bool = True, restoration: bool = True,
                 high_supervised: bool = False, lambda_center: float = 1.0, lambda_box: float = 0.1,
                 lambda_offset: float = 1.0, lambda_keypoints: float = 0.5, lambda_mask: float = 1.0,
                 lambda_params: float = 1.0, lambda_3d: float = 5.0, lambda_2d: float = 5.0, lambda_cs: float = 0.1,
                 lambda_roi: float = 1e-8, lambda_res: float = 1.0, temperature: float = 0.01,
                 queue_size: int = 400, box_jitter: float = 0.05) -> None:
        if occlusion and not config.mask_head:
            raise ValueError("occlusion (Eq. 5) needs the model's mask head (model.mask_head: true)")
        if restoration and two_branch and not config.restoration:
            raise ValueError("restoration (Eq. 6) needs the model's restoration network (model.restoration: true)")
        self.config = config
        self.body = body
        self.two_branch = two_branch
        self.terms = {"contrastive": contrastive and two_branch, "roi_mse": roi_mse and two_branch,
                      "restoration": restoration and two_branch and config.restoration, "occlusion": occlusion}
        self.high_supervised = high_supervised and two_branch
        self.lambdas = {"center": lambda_center, "box": lambda_box, "offset": lambda_offset,
                        "keypoints": lambda_keypoints, "mask": lambda_mask, "params": lambda_params, "3d": lambda_3d,
                        "2d": lambda_2d, "cs": lambda_cs, "roi": lambda_roi, "res": lambda_res}
        self.temperature = float(temperature)
        self.queue = FeatureQueue(64, int(queue_size))
        self.box_jitter = float(box_jitter)
        self.codec = CenterNetBoxCodec(stride=4)

    def _jittered(self, boxes: torch.Tensor) -> torch.Tensor:
        """GT boxes moved and resized by up to ``box_jitter`` of their size (the RoIs the heads will see come
        from the detector, never exact)."""
        if self.box_jitter <= 0:
            return boxes
        noise = (torch.rand_like(boxes) * 2 - 1) * self.box_jitter
        x, y, w, h = boxes.unbind(-1)
        return torch.stack([x + noise[..., 0] * w, y + noise[..., 1] * h, w * (1 + noise[..., 2]),
                            h * (1 + noise[..., 3])], dim=-1)

    def supervised(self, out: dict, batch: dict, targets, rois: torch.Tensor, prefix: str = ""
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_mul`` (and Eq. 5 on the low branch) of one branch's outputs."""
        lam = self.lambdas
        valid = batch["valid"].bool()
        logs = {}
        loss_center = center_focal_loss(out["center"], targets.heatmap)
        loss_box = masked_l1(gather_cells(out["box_scale"].float(), targets.index), targets.box_scale, targets.weight)
        loss_offset = masked_l1(gather_cells(out["box_offset"].float(), targets.index), targets.box_offset,
                                targets.weight)
        loss = lam["center"] * loss_center + lam["box"] * loss_box + lam["offset"] * loss_offset
        logs.update(loss_center=loss_center, loss_box=loss_box, loss_offset=loss_offset)

        # Keypoints: cross-entropy between the softmax over each RoI grid and the normalised Gaussian target (a
        # per-pixel MSE on sigmoid maps lets the head fall to zero everywhere: the targets are mostly zero).
        heatmaps = out["keypoint_heatmaps"].float()
        kp_targets, kp_weight = keypoint_roi_targets(batch["keypoints2d"][valid].float(), rois, heatmaps.shape[-2:])
        distribution = kp_targets.flatten(2) / kp_targets.flatten(2).sum(-1, keepdim=True).clamp(min=1e-6)
        per_kp = -(distribution * F.log_softmax(heatmaps.flatten(2), dim=-1)).sum(-1)
        loss_kp = (per_kp * kp_weight).sum() / kp_weight.sum().clamp(min=1)
        loss = loss + lam["keypoints"] * loss_kp
        logs["loss_keypoints"] = loss_kp

        if self.terms["occlusion"] and not prefix:
            m = batch["masks"].shape[1]
            b_idx, p_idx = torch.nonzero(valid, as_tuple=True)
            mask_rois = torch.cat([(b_idx * m + p_idx).to(rois.dtype)[:, None], rois[:, 1:]], dim=1)
            h4, w4 = batch["masks"].shape[-2:]
            gt_masks = torchvision.ops.roi_align(batch["masks"].reshape(-1, 1, h4, w4).float(), mask_rois,
                                                 self.config.roi_size, spatial_scale=0.25, sampling_ratio=2,
                                                 aligned=True)
            has_mask = batch["has_mask"][valid].float()
            per_person = (torch.sigmoid(out["mask_logits"].float()) - gt_masks).pow(2).mean(dim=(1, 2, 3))
            loss_mask = (per_person * has_mask).sum() / has_mask.sum().clamp(min=1)
            loss = loss + lam["mask"] * loss_mask
            logs["loss_mask"] = loss_mask

        pose, camera = out["pose_vector"].float(), out["camera"].float()
        has_params, has_3d = batch["has_params"][valid].float(), batch["has_3d"][valid].float()
        loss_params = ((pose - batch["pose_vector"][valid].float()).pow(2).mean(-1) * has_params).sum() / \
            has_params.sum().clamp(min=1)
        if self.body.device != pose.device:
            self.body.to(pose.device)
        with torch.autocast(pose.device.type, enabled=False):
            keypoints3d, _ = self.body.forward_vector(pose.to(self.body.dtype), keypoints_only=True).keypoints("coco17")
        keypoints3d = keypoints3d.to(pose.dtype)
        rooted = keypoints3d - hips_root(keypoints3d)
        vis3d = batch["visible3d"][valid].float()
        error3d = ((rooted - batch["keypoints3d"][valid].float()).pow(2).sum(-1) * vis3d).sum(-1) / \
            vis3d.sum(-1).clamp(min=1)
        loss_3d = (error3d * has_3d).sum() / has_3d.sum().clamp(min=1)
        canvas = self.config.body_canvas
        crops = crop_regions(rois, self.config.scale_factor)
        pixels, _ = project_to_crop(rooted, camera, canvas, self.config.crop_focal)
        kp2d = batch["keypoints2d"][valid].float()
        gt_crop = (kp2d[..., :2] + 0.5 - crops[:, None, :2]) * canvas / crops[:, None, 2:] - 0.5
        vis2d = (kp2d[..., 2] > 0).float()
        loss_2d = (((pixels - gt_crop) / canvas).pow(2).sum(-1) * vis2d).sum() / vis2d.sum().clamp(min=1)
        loss = loss + lam["params"] * loss_params + lam["3d"] * loss_3d + lam["2d"] * loss_2d
        logs.update(loss_params=loss_params, loss_3d=loss_3d, loss_2d=loss_2d)
        return loss, {prefix + k: v.detach() for k, v in logs.items()}

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        valid = batch["valid"].bool()
        low_images, high_images = batch["image_low"], batch["image_high"]
        rois = roi_boxes(self._jittered(batch["boxes"].float()), valid)
        low = model(low_images, LOW, rois)
        targets = self.codec.encode(batch["boxes"].float(), valid, low["center"].shape[-2:])
        loss, logs = self.supervised(low, batch, targets, rois)
        if not self.two_branch:
            return loss, logs
        lam = self.lambdas
        if self.high_supervised:
            high = model(high_images, HIGH, rois)
            high_loss, high_logs = self.supervised(high, batch, targets, rois, prefix="high_")
            loss = loss + high_loss
            logs.update(high_logs)
        else:
            with torch.no_grad():
                high = model(high_images, HIGH)
        if self.terms["contrastive"]:
            pooled = torch.stack([high["top_level"].detach().float().mean(dim=(-2, -1)),
                                  low["top_level"].float().mean(dim=(-2, -1))], dim=1)  # (B, 2, 64)
            weights = torch.zeros(pooled.shape[0], 2, 2, device=pooled.device)
            weights[:, 0, 1] = 1.0  # the high-resolution feature teaches the low one (Eq. 3)
            self.queue.to(pooled.device)
            loss_cs = feature_consistency_loss(pooled, weights, "contrastive", self.queue, self.temperature)
            self.queue.enqueue(pooled[:, 1].detach())
            loss = loss + lam["cs"] * loss_cs
            logs["loss_cs"] = loss_cs.detach()
        if self.terms["roi_mse"]:
            def boxes_at(out):
                scale = gather_cells(out["box_scale"].float(), targets.index)
                offset = gather_cells(out["box_offset"].float(), targets.index)
                return torch.cat([offset, scale], dim=-1) * self.codec.stride  # (B, N, 4) px
            diff = (boxes_at(low) - boxes_at(high).detach()).pow(2).sum(-1) * targets.weight
            loss_roi = diff.sum() / max(1, low_images.shape[0])
            loss = loss + lam["roi"] * loss_roi
            logs["loss_roi"] = loss_roi.detach()
        if self.terms["restoration"]:
            # MSE relative to the target's mean square: MultiPose's top level is large (MSE ~1e3 at the start), and
            # the plain MSE would swamp every other term.
            target = high["top_level"].detach().float()
            loss_res = F.mse_loss(low["restored"].float(), target) / target.pow(2).mean().clamp(min=1e-6)
            loss = loss + lam["res"] * loss_res
            logs["loss_res"] = loss_res.detach()
        return loss, logs


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of x, y, w, h boxes (N, 4) x (M, 4) -> (N, M)."""
    return torchvision.ops.box_iou(torch.cat([a[:, :2], a[:, :2] + a[:, 2:]], 1),
                                   torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1))


def evaluate_mili(model: MILINet, body, batches, pck_threshold: float = 0.15) -> dict[str, float]:
    """On centre-cut validation scenes, low-resolution branch: box AP / AP50 (pycocotools), and for the people
    with 3D labels that a detection matches (IoU >= 0.5, best first): MPJPE, PA-MPJPE (mm, hips-rooted, COCO-17),
    3DPCK at ``pck_threshold`` m, and the fraction matched."""
    from lowres_hps.evaluation.detection import coco_box_ap, detections_to_coco
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe

    net = getattr(model, "module", model)
    images, annotations, results = [], [], []
    pred3d, gt3d, vis3d, matched, labelled = [], [], [], 0, 0
    image_id = 0
    for batch in batches:
        people = net.detect(batch["image_low"], min_score=0.05)
        for i, found in enumerate(people):
            image_id += 1
            h, w = batch["image_low"].shape[-2:]
            images.append({"id": image_id, "height": int(h), "width": int(w)})
            valid = batch["valid"][i].bool()
            gt_boxes = batch["boxes"][i][valid].float()
            for box in gt_boxes.tolist():
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                    "bbox": [box[0] + 0.5, box[1] + 0.5, box[2], box[3]], "area": box[2] * box[3]})
            results += detections_to_coco(image_id, found["boxes"].cpu().numpy(), found["scores"].cpu().numpy())
            has_3d = batch["has_3d"][i][valid] > 0
            labelled += int(has_3d.sum())
            if len(found["boxes"]) == 0 or not bool(has_3d.any()):
                continue
            iou = _iou(gt_boxes, found["boxes"].float())
            used = set()
            for g in torch.argsort(-iou.max(dim=1).values).tolist():
                if not bool(has_3d[g]):
                    continue
                order = torch.argsort(-iou[g]).tolist()
                d = next((j for j in order if j not in used and float(iou[g, j]) >= 0.5), None)
                if d is None:
                    continue
                used.add(d)
                matched += 1
                pred3d.append(found["pose_vector"][d])
                gt3d.append(batch["keypoints3d"][i][valid][g])
                vis3d.append(batch["visible3d"][i][valid][g])
    stats = coco_box_ap({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]},
                        results)
    metrics = {"box_ap": stats["AP"], "box_ap50": stats["AP50"], "matched_3d": matched / max(1, labelled)}
    if pred3d:
        vectors = torch.stack(pred3d).to(body.dtype)
        keypoints, _ = body.forward_vector(vectors.to(body.device), keypoints_only=True).keypoints("coco17")
        p = (keypoints - hips_root(keypoints)).double().cpu()
        g = torch.stack(gt3d).double()
        m = torch.stack(vis3d) > 0
        metrics["mpjpe_mm"] = float(1000 * mpjpe(p, g, m).nanmean())
        metrics["pa_mpjpe_mm"] = float(1000 * pa_mpjpe(p, g, m).nanmean())
        distance = (p - g).norm(dim=-1)
        metrics["pck3d"] = float(((distance < pck_threshold) & m).sum() / m.sum().clamp(min=1))
    return metrics


def mili_task(
    model: dict,
    scenes: list[str] = (),
    extra_datasets: list[dict] = (),
    two_branch: bool = True,
    contrastive: bool = True,
    roi_mse: bool = True,
    occlusion: bool = True,
    restoration: bool = True,
    high_supervised: bool = False,
    lambdas: dict | None = None,
    temperature: float = 0.01,
    queue_size: int = 400,
    augment: dict | None = None,
    frozen: list[str] = ("features.smooth",),
    val_scenes: str | None = None,
    val_max: int = 100,
) -> Task:
    """Build the task (``task: lowres_hps.methods.mili:mili_task`` in a YAML config).

    ``scenes``: SynthLR scene folders (``lowres-hps synth --layout scenes``); ``extra_datasets``: other COCO-style
    sources with boxes (and masks, keypoints), e.g. ``{format: coco, path: data/real/coco_train.json}``; all are
    read with masks and every person (``min_keypoints: 0``). ``lambdas``: any of :class:`MILILoss`'s ``lambda_*``
    (without the prefix). ``frozen``: parameter-name prefixes kept fixed; by default MultiPose's FPN output
    convolutions (``features.smooth``), whose weights are ~1e-3 RMS: one Adam step of 3e-5 on them raised the centre
    loss from 3 to 3000 (measured), while with them fixed the same steps at 1e-4 lower it steadily.
    ``val_scenes``: a held-out scene folder scored by :func:`evaluate_mili` after each epoch.
    """
    from lowres_hps.body import load_body_model
    from lowres_hps.data import SynthLRReader, open_reader

    cfg = load_config(model, MILIConfig)
    network = build_mili_model(cfg)
    for name, parameter in network.named_parameters():
        if any(name.startswith(prefix) for prefix in frozen):
            parameter.requires_grad_(False)
    readers = [SynthLRReader(path, load_masks=True) for path in scenes]
    for source in extra_datasets:
        options = dict(source)
        format_name, path = options.pop("format"), options.pop("path")
        options.setdefault("min_keypoints", 0)
        options.setdefault("load_masks", True)
        readers.append(open_reader(format_name, path, options.pop("images", None), **options))
    if not readers:
        raise ValueError("no training data: set scenes and/or extra_datasets in task_args")
    augment_cfg = load_config(augment or {}, SceneAugmentConfig)
    train = SceneDataset(readers, augment_cfg, pose_size=cfg.pose_spec.vector_size)
    body = load_body_model(cfg.body_model)
    loss = MILILoss(cfg, body, two_branch=two_branch, contrastive=contrastive, roi_mse=roi_mse, occlusion=occlusion,
                    restoration=restoration, high_supervised=high_supervised, temperature=temperature,
                    queue_size=queue_size, **{f"lambda_{k}": v for k, v in (lambdas or {}).items()})
    val, evaluate = None, None
    if val_scenes:
        from torch.utils.data import Subset

        val_augment = load_config({**(augment or {}), "centre_crop": True}, SceneAugmentConfig)
        full = SceneDataset([SynthLRReader(val_scenes, load_masks=True)], val_augment,
                            pose_size=cfg.pose_spec.vector_size)
        val = Subset(full, range(min(val_max, len(full))))
        evaluate = lambda net, batches: evaluate_mili(net, body, batches)  # noqa: E731
    return Task(model=network, train_dataset=train, loss=loss, val_dataset=val, evaluate=evaluate)
