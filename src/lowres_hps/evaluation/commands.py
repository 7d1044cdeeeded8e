"""`lowres-hps evaluate kp2d|kp3d`: score prediction files, print one JSON object of metrics.

Root alignment of ``kp3d`` (used by MPJPE, 3DPCK and AUC; PA-MPJPE aligns by itself):

- ``--root-index I``: joint ``I``.
- ``--root none``: no alignment (absolute positions).
- ``--root hips``: mean of ``left_hip`` and ``right_hip`` of ``--convention``.
- ``--root NAME``: joint ``NAME`` of ``--convention``; ``pelvis`` falls back to ``hips`` where the
  convention has no pelvis (COCO, LSP), any other missing name is an error.
- no ``--root``: ``pelvis`` (with its fallback) when ``--convention`` is given, ``none`` otherwise.

The JSON says which root was used. Undefined values (e.g. COCO ``APm`` without medium-sized
people) are printed as ``null``.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from lowres_hps.body.keypoints import KeypointConvention, get_convention
from lowres_hps.evaluation.keypoints2d import coco_keypoint_ap
from lowres_hps.evaluation.keypoints3d import Root, auc3d, mpjpe, pa_mpjpe, pck3d

__all__ = ["main", "evaluate_kp2d", "evaluate_kp3d", "resolve_root"]


def _json_safe(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def _parse_sigmas(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sigmas must be comma separated numbers, got {text!r}") from None


def evaluate_kp2d(gt: str | Path, pred: str | Path, sigmas: list[float] | None = None) -> dict[str, float]:
    """COCO OKS AP/AR of a results file against keypoint annotations (see ``coco_keypoint_ap``)."""
    return coco_keypoint_ap(gt, pred, sigmas)


def resolve_root(root: str | None, root_index: int | None, convention: KeypointConvention | None,
                 num_joints: int) -> tuple[Root, str]:
    """The root of the module docstring's rules as ``(indices or None, description)``."""
    if root_index is not None:
        if not -num_joints <= root_index < num_joints:
            raise ValueError(f"--root-index {root_index} out of range for {num_joints} joints")
        return root_index, f"index {root_index}"
    if root is None:
        root = "pelvis" if convention is not None else "none"
    if root == "none":
        return None, "none"
    if convention is None:
        raise ValueError(f"--root {root} needs --convention to find the joint (or use --root-index / --root none)")
    hips = ("left_hip", "right_hip")
    if root == "pelvis" and "pelvis" not in convention.names and all(h in convention.names for h in hips):
        root = "hips"
    if root == "hips":
        missing = [h for h in hips if h not in convention.names]
        if missing:
            raise ValueError(f"convention {convention.name} has no {' or '.join(missing)} for --root hips")
        return [convention.index(h) for h in hips], "hips"
    if root not in convention.names:
        raise ValueError(f"convention {convention.name} has no joint {root!r}; joints: {', '.join(convention.names)}")
    return convention.index(root), root


def _load_npz(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable npz file: {exc}") from None
    if "keypoints3d" not in arrays:
        raise ValueError(f"{path} has no 'keypoints3d' array (found: {', '.join(arrays) or 'nothing'})")
    keypoints = arrays["keypoints3d"]
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"{path}: keypoints3d must be (N, K, 3), got {keypoints.shape}")
    if "mask" in arrays and arrays["mask"].shape != keypoints.shape[:2]:
        raise ValueError(f"{path}: mask must be (N, K) = {keypoints.shape[:2]}, got {arrays['mask'].shape}")
    return arrays


def evaluate_kp3d(gt: str | Path, pred: str | Path, root: str | None = None, root_index: int | None = None,
                  convention: str | None = None, pck_threshold: float = 0.15) -> dict:
    """MPJPE, PA-MPJPE (mm), 3DPCK and AUC (0-150 mm) of two npz files, averaged over the samples
    that have at least one counted joint. The mask comes from ``gt`` (else ``pred``, else all joints)."""
    gt_arrays, pred_arrays = _load_npz(gt), _load_npz(pred)
    gt_kp, pred_kp = gt_arrays["keypoints3d"], pred_arrays["keypoints3d"]
    if gt_kp.shape != pred_kp.shape:
        raise ValueError(f"keypoints3d of {pred} is {pred_kp.shape} but that of {gt} is {gt_kp.shape}")
    num_samples, num_joints = gt_kp.shape[:2]
    conv = None
    if convention is not None:
        conv = get_convention(convention)
        if len(conv) != num_joints:
            raise ValueError(f"convention {conv.name} has {len(conv)} joints but {gt} has {num_joints}")
    root_joints, root_name = resolve_root(root, root_index, conv, num_joints)

    mask = gt_arrays.get("mask", pred_arrays.get("mask"))
    gt_t = torch.as_tensor(gt_kp, dtype=torch.float64)
    pred_t = torch.as_tensor(pred_kp, dtype=torch.float64)
    mask_t = None if mask is None else torch.as_tensor(mask != 0)

    per_sample = {
        "mpjpe_mm": 1000 * mpjpe(pred_t, gt_t, mask_t, root=root_joints),
        "pa_mpjpe_mm": 1000 * pa_mpjpe(pred_t, gt_t, mask_t),
        "pck3d": pck3d(pred_t, gt_t, mask_t, threshold=pck_threshold, root=root_joints),
        "auc": auc3d(pred_t, gt_t, mask_t, root=root_joints),
    }
    scored = ~per_sample["mpjpe_mm"].isnan()
    if not bool(scored.any()):
        raise ValueError(f"no sample of {gt} has a counted joint ({num_samples} samples, mask all zero?)")
    metrics: dict = {name: float(values[scored].mean()) for name, values in per_sample.items()}
    metrics.update(num_samples=int(scored.sum()), num_joints=int(num_joints), root=root_name,
                   pck_threshold_mm=1000 * pck_threshold)
    return metrics


def main(args: argparse.Namespace) -> int:
    if args.task == "kp2d":
        metrics = evaluate_kp2d(args.gt, args.pred, _parse_sigmas(args.sigmas))
    elif args.task == "kp3d":
        metrics = evaluate_kp3d(args.gt, args.pred, root=args.root, root_index=args.root_index,
                                convention=args.convention, pck_threshold=args.pck_threshold)
    else:
        raise ValueError(f"unknown evaluation task {args.task!r}")
    print(json.dumps(_json_safe(metrics)))
    return 0
