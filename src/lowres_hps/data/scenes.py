"""Whole images with every person in them, at two resolutions: the training samples of multi-person methods (MILI).

:class:`SceneDataset` groups the people of COCO-style readers (:class:`~lowres_hps.data.synthlr.SynthLRReader`
scenes, :class:`~lowres_hps.data.coco.CocoKeypointsReader`) by image. Each sample is one image, rescaled by a
random factor and cut to a fixed ``size`` (zero padding where the image is smaller), with:

* ``image_high`` (3, H, W) uint8 and ``image_low``: the same picture reduced by a random factor in
  ``low_factor`` (area averaging) and brought back to ``H x W`` (bilinear), as MILI's paired inputs;
* per person, padded to ``max_people``: ``boxes`` x, y, w, h (pixel centres at integers), ``valid``,
  ``keypoints2d`` (K, 3), ``masks`` (H / 4, W / 4) in [0, 1] with ``has_mask``, and where the reader has them
  the body's ``pose_vector`` (``has_params``) and root-relative ``keypoints3d`` / ``visible3d`` (``has_3d``).

People with less than ``min_inside`` of their box inside the cut are dropped; their pixels stay, unlabelled.
Randomness comes from numpy's global generator (the trainer seeds it per sample).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lowres_hps.body.keypoints import hips_root

__all__ = ["SceneAugmentConfig", "SceneDataset"]


@dataclass
class SceneAugmentConfig:
    """Augmentation of :class:`SceneDataset`.

    Attributes:
        size: ``(H, W)`` of every sample (multiples of 32 for MoveNet trunks).
        scale: range of the random rescale of the source image before the cut (log-uniform); ``(1, 1)``: none.
        low_factor: range of the low-resolution branch's reduction factor (the paper's 4: 832 x 512 from 208 x 128).
        min_inside: fraction of a box that must lie inside the cut for its person to count.
        max_people: people per sample (the rest, smallest first, are dropped).
        color_jitter: brightness and contrast jitter (0: none).
        centre_crop: cut the centre instead of a random window (validation).
    """

    size: tuple[int, int] = (256, 384)
    scale: tuple[float, float] = (0.35, 1.0)
    low_factor: tuple[float, float] = (2.0, 4.0)
    min_inside: float = 0.5
    max_people: int = 16
    color_jitter: float = 0.2
    centre_crop: bool = False

    def __post_init__(self) -> None:
        self.size = tuple(int(v) for v in self.size)
        if len(self.size) != 2 or self.size[0] % 32 or self.size[1] % 32:
            raise ValueError(f"size must be (H, W), multiples of 32, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] or not 1 <= self.low_factor[0] <= self.low_factor[1]:
            raise ValueError(f"scale must be 0 < lo <= hi and low_factor 1 <= lo <= hi, got {self.scale}, "
                             f"{self.low_factor}")


class SceneDataset(Dataset):
    """One sample per image of ``readers`` (people grouped by image id).

    Args:
        readers: COCO-style readers (they need ``image_ids()``); load masks with ``load_masks=True``.
        augment: :class:`SceneAugmentConfig`.
        pose_size: length of the body pose vector (zeros where a reader has none).
    """

    def __init__(self, readers: Sequence, augment: SceneAugmentConfig | None = None, pose_size: int = 126) -> None:
        self.readers = list(readers)
        self.augment = augment or SceneAugmentConfig()
        self.pose_size = int(pose_size)
        groups: dict[tuple[int, object], list[int]] = {}
        for r, reader in enumerate(self.readers):
            if not hasattr(reader, "image_ids"):
                raise TypeError(f"{type(reader).__name__} cannot group people by image (no image_ids())")
            for index, image_id in enumerate(reader.image_ids()):
                groups.setdefault((r, image_id), []).append(index)
        self.images = sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1])))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        (r, _), people = self.images[index]
        reader = self.readers[r]
        samples = [reader[i] for i in people]
        image = samples[0].load_image()
        cfg = self.augment
        out_h, out_w = cfg.size
        lo, hi = np.log(cfg.scale[0]), np.log(cfg.scale[1])
        # The rescale also fits the image's long side to the cut at most twice over (large photos).
        fit = min(out_h / image.shape[0], out_w / image.shape[1]) * 2.0
        scale = float(np.exp(np.random.uniform(lo, hi))) * min(1.0, fit)
        if cfg.centre_crop:
            scale = min(cfg.scale[1], fit / 2.0)
        new_h, new_w = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
        sy, sx = new_h / image.shape[0], new_w / image.shape[1]
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if cfg.centre_crop:
            top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
        else:
            top = int(np.random.randint(min(0, new_h - out_h), max(0, new_h - out_h) + 1))
            left = int(np.random.randint(min(0, new_w - out_w), max(0, new_w - out_w) + 1))
        high = np.zeros((out_h, out_w, 3), np.uint8)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + out_h, new_h), min(left + out_w, new_w)
        high[y0 - top:y1 - top, x0 - left:x1 - left] = resized[y0:y1, x0:x1]
        if cfg.color_jitter > 0 and not cfg.centre_crop:
            gain = 1 + np.random.uniform(-cfg.color_jitter, cfg.color_jitter)
            bias = 255 * np.random.uniform(-cfg.color_jitter, cfg.color_jitter) / 2
            high = np.clip(high.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        factor = float(np.random.uniform(*cfg.low_factor)) if not cfg.centre_crop else float(np.mean(cfg.low_factor))
        small = cv2.resize(high, (max(1, round(out_w / factor)), max(1, round(out_h / factor))),
                           interpolation=cv2.INTER_AREA)
        low = cv2.resize(small, (out_w, out_h), interpolation=cv2.INTER_LINEAR)

        m, k = cfg.max_people, samples[0].keypoints2d.shape[0]
        boxes = np.zeros((m, 4), np.float32)
        valid = np.zeros(m, bool)
        keypoints = np.zeros((m, k, 3), np.float32)
        masks = np.zeros((m, out_h // 4, out_w // 4), np.float32)
        has_mask = np.zeros(m, np.float32)
        pose = np.zeros((m, self.pose_size), np.float32)
        has_params = np.zeros(m, np.float32)
        kp3d = np.zeros((m, 17, 3), np.float32)
        vis3d = np.zeros((m, 17), np.float32)
        has_3d = np.zeros(m, np.float32)
        # Larger people first, so that a full sample drops the smallest.
        order = sorted(range(len(samples)), key=lambda i: -float(samples[i].bbox[2] * samples[i].bbox[3]))
        slot = 0
        for i in order:
            if slot == m:
                break
            s = samples[i]
            bx, by, bw, bh = (float(v) for v in s.bbox)
            # Source box (edges bx .. bx + bw in COCO's edge convention) -> the cut's pixel-centre convention.
            ex0, ey0 = bx * sx - left, by * sy - top
            ex1, ey1 = (bx + bw) * sx - left, (by + bh) * sy - top
            cx0, cy0, cx1, cy1 = max(ex0, 0), max(ey0, 0), min(ex1, out_w), min(ey1, out_h)
            area = max(ex1 - ex0, 1e-6) * max(ey1 - ey0, 1e-6)
            if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) < cfg.min_inside * area:
                continue
            boxes[slot] = (cx0 - 0.5, cy0 - 0.5, cx1 - cx0, cy1 - cy0)
            valid[slot] = True
            kp = s.keypoints2d.astype(np.float32).copy()
            kp[:, 0] = (kp[:, 0] + 0.5) * sx - 0.5 - left
            kp[:, 1] = (kp[:, 1] + 0.5) * sy - 0.5 - top
            outside = (kp[:, 0] < -0.5) | (kp[:, 1] < -0.5) | (kp[:, 0] > out_w - 0.5) | (kp[:, 1] > out_h - 0.5)
            kp[outside | (kp[:, 2] <= 0)] = 0.0
            keypoints[slot] = kp
            if s.mask is not None:
                full = np.zeros((out_h, out_w), np.float32)
                mask = cv2.resize(s.mask.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
                full[y0 - top:y1 - top, x0 - left:x1 - left] = mask[y0:y1, x0:x1]
                masks[slot] = cv2.resize(full, (out_w // 4, out_h // 4), interpolation=cv2.INTER_AREA)
                has_mask[slot] = 1.0
            params = s.body_params or {}
            if "pose_vector" in params and np.asarray(params["pose_vector"]).size == self.pose_size:
                pose[slot] = np.asarray(params["pose_vector"], np.float32)
                has_params[slot] = 1.0
            if s.keypoints3d is not None and s.convention3d == "coco17" and not s.extra.get("keypoints3d_weak"):
                points = s.keypoints3d[:, :3].astype(np.float32)
                kp3d[slot] = points - hips_root(torch.from_numpy(points)).numpy()
                vis3d[slot] = (s.keypoints3d[:, 3] > 0).astype(np.float32)
                has_3d[slot] = 1.0
            slot += 1
        as_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))  # noqa: E731
        return {"image_high": as_chw(high), "image_low": as_chw(low), "boxes": torch.from_numpy(boxes),
                "valid": torch.from_numpy(valid), "keypoints2d": torch.from_numpy(keypoints),
                "masks": torch.from_numpy(masks), "has_mask": torch.from_numpy(has_mask),
                "pose_vector": torch.from_numpy(pose), "has_params": torch.from_numpy(has_params),
                "keypoints3d": torch.from_numpy(kp3d), "visible3d": torch.from_numpy(vis3d),
                "has_3d": torch.from_numpy(has_3d), "low_factor": torch.tensor(factor, dtype=torch.float32)}
