"""2D keypoint metrics: COCO OKS AP/AR (through pycocotools), OKS, PCK and PCKh with their normalisers."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lowres_hps.body.keypoints import KeypointConvention, get_convention

__all__ = [
    "COCO17_SIGMAS",
    "COCO_KEYPOINT_STATS",
    "coco_keypoint_ap",
    "count_nonfinite_results",
    "oks",
    "oks_keypoint_scale",
    "pck",
    "pckh",
    "torso_size",
    "head_size",
    "head_size_from_box",
    "bbox_size",
]

# Per-keypoint OKS sigmas of COCO-17 (the values COCOeval uses by default).
COCO17_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)


def oks_keypoint_scale(power: float = 2.0) -> dict[str, float]:
    """Per-keypoint weights that make a pixel cost what it costs COCO's OKS: ``(max sigma / sigma_k) ** power``.

    OKS scores a keypoint by ``exp(-d^2 / (2 s^2 (2 sigma_k)^2))``, so at equal distance a face keypoint (sigma
    0.025) loses what a hip (0.107) loses only at 4.3 times the distance: ``power`` 2 weighs squared pixel errors
    as OKS does, 1 halfway (in log). The widest keypoints (the hips) keep 1. Keys are COCO-17 keypoint names, the
    form of :class:`lowres_hps.fitting.KeypointFitConfig`'s ``keypoint_scale``.
    """
    from lowres_hps.body.keypoints import get_convention

    if power < 0:
        raise ValueError(f"oks_keypoint_scale needs power >= 0, got {power}")
    widest = max(COCO17_SIGMAS)
    return {name: (widest / sigma) ** power for name, sigma in zip(get_convention("coco17").names, COCO17_SIGMAS)}


# Order of COCOeval.stats for iouType="keypoints".
COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequences


# --------------------------------------------------------------------------- COCO OKS AP


def _load_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} file {path} is not valid JSON: {exc}") from None


def _coco_from_dict(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _num_keypoints(coco: COCO) -> int:
    for ann in coco.dataset.get("annotations", []):
        if "keypoints" in ann:
            return len(ann["keypoints"]) // 3
    raise ValueError("ground truth has no annotation with 'keypoints'")


def coco_keypoint_ap(
    gt: str | Path | dict | COCO,
    results: str | Path | list[dict],
    sigmas: Sequence[float] | np.ndarray | None = None,
    *,
    results_name: str | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR at OKS thresholds 0.50:0.05:0.95, computed by pycocotools' COCOeval.

    Args:
        gt: COCO keypoint annotations (json path, the loaded dict, or a ``COCO``).
        results: COCO keypoint results (json path or list of
            ``{"image_id", "category_id", "keypoints": [x, y, v] * K, "score"}``).
        sigmas: (K,) per-keypoint OKS sigmas; ``None`` means COCO-17 (then K must be 17).
        results_name: how errors about the results name them (default: the path, when one is given).

    Returns:
        ``{name: value}`` for :data:`COCO_KEYPOINT_STATS` in [0, 1]. A value that COCOeval cannot
        define (``-1`` in its stats, e.g. ``APm`` when no ground truth is medium-sized) is NaN.
        Empty results are scored, not rejected: every AP/AR where ground truth exists is 0.
        A keypoint with a non-finite (NaN, inf, null) coordinate is a miss: zero similarity, while its
        detection still counts (pycocotools alone would take a NaN OKS as a perfect match).

    Raises:
        ValueError: malformed results, unknown image ids, or results with a non-finite score.
    """
    if isinstance(gt, COCO):
        coco_gt = gt
    elif isinstance(gt, dict):
        coco_gt = _coco_from_dict(gt)
    else:
        coco_gt = _coco_from_dict(_load_json(gt, "ground-truth"))

    num_keypoints = _num_keypoints(coco_gt)
    sigmas = np.asarray(COCO17_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    if sigmas.shape != (num_keypoints,):
        raise ValueError(f"ground truth has {num_keypoints} keypoints but {sigmas.shape[0]} sigmas were given")

    if results_name is None and not isinstance(results, list):
        results_name = str(results)
    where = f"{results_name}: " if results_name else ""
    if not isinstance(results, list):
        loaded = _load_json(results, "results")
        if not isinstance(loaded, list):
            raise ValueError(f"results file {results} must hold a JSON list of detections")
        results = loaded
    # loadRes writes id/area/bbox into the dicts it is given.
    results = copy.deepcopy(results)
    for i, det in enumerate(results):
        missing = {"image_id", "category_id", "keypoints", "score"} - set(det)
        if missing:
            raise ValueError(f"{where}result {i} lacks {sorted(missing)}")
        if len(det["keypoints"]) != 3 * num_keypoints:
            raise ValueError(f"{where}result {i} has {len(det['keypoints'])} keypoint values, "
                             f"expected {3 * num_keypoints}")
    bad_scores = [i for i, det in enumerate(results) if not _is_finite_number(det["score"])]
    if bad_scores:
        # No rank is neutral for a detection of unknown confidence (last is the kindest place for a false
        # positive), so such results are refused rather than scored.
        raise ValueError(f"{where}{len(bad_scores)} of {len(results)} results have a non-finite or missing score "
                         f"(first: result {bad_scores[0]})")
    broken = [i for i, det in enumerate(results) if _nonfinite_keypoints_as_misses(det)]

    # np.errstate: loadRes multiplies the infinite extents of misses (inf * 0), fixed just after.
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(invalid="ignore"):
        if results:
            try:
                coco_dt = coco_gt.loadRes(results)
            except AssertionError:
                raise ValueError(f"{where}results refer to image ids that are not in the ground truth") from None
            for i in broken:  # loadRes ids are 1 + the index in ``results``
                _box_from_finite_keypoints(coco_dt.anns[i + 1])
        else:
            # loadRes cannot take an empty list; an empty result set scores 0 through the same path.
            coco_dt = _coco_from_dict({"images": coco_gt.dataset.get("images", []),
                                       "categories": coco_gt.dataset.get("categories", []),
                                       "annotations": []})
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: (math.nan if value < 0 else float(value))
            for name, value in zip(COCO_KEYPOINT_STATS, evaluator.stats)}


def count_nonfinite_results(results: Sequence[dict]) -> int:
    """How many COCO keypoint results have a non-finite (NaN, inf or null) keypoint coordinate; those
    keypoints count as misses in :func:`coco_keypoint_ap`."""
    count = 0
    for det in results:
        try:
            values = np.asarray(det.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):  # malformed: coco_keypoint_ap says how
            continue
        count += int(not np.isfinite(values[:, :2]).all())
    return count


def _is_finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _nonfinite_keypoints_as_misses(det: dict) -> bool:
    """Move the keypoints of ``det`` whose x or y is not finite to infinity, so that COCOeval's OKS gives
    them zero similarity (a miss) instead of NaN, which its matching takes as a perfect match. True when
    any was moved."""
    values = np.asarray(det["keypoints"], dtype=np.float64).reshape(-1, 3)
    bad = ~np.isfinite(values[:, :2]).all(1)
    if not bad.any():
        return False
    values[bad] = (np.inf, np.inf, 0.0)
    det["keypoints"] = values.reshape(-1).tolist()
    return True


def _box_from_finite_keypoints(ann: dict) -> None:
    """loadRes derives a result's box and area from all its keypoints; with infinite ones the area would be
    infinite and an unmatched detection would fall outside every area range, i.e. be ignored instead of
    counted as a false positive. Recompute them from the finite keypoints (area 0 without any)."""
    values = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    finite = values[np.isfinite(values[:, :2]).all(1), :2]
    if len(finite):
        (x0, y0), (x1, y1) = finite.min(0), finite.max(0)
    else:
        x0 = y0 = x1 = y1 = 0.0
    ann["area"] = float((x1 - x0) * (y1 - y0))
    ann["bbox"] = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


# --------------------------------------------------------------------------- OKS and PCK


def _as_float_tensor(x: ArrayLike, like: torch.Tensor | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if like is not None:
        return t.to(device=like.device, dtype=like.dtype)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def oks(pred: ArrayLike, gt: ArrayLike, visibility: ArrayLike, area: ArrayLike, sigmas: ArrayLike) -> torch.Tensor:
    """Object keypoint similarity, as pycocotools' ``computeOks`` defines it.

    ``OKS = mean over labelled keypoints of exp(-d^2 / (2 * area * (2 * sigma)^2))``, with
    ``d`` the pixel distance and ``area`` the ground-truth object area (COCO: segment area).

    Args:
        pred, gt: (..., K, 2) keypoints in pixels (batch shapes broadcast, e.g. ``pred[:, None]``
            against ``gt[None]`` for the detections x ground truths matrix COCOeval builds).
        visibility: (..., K) ground-truth visibility; keypoints with visibility > 0 count.
        area: (...) ground-truth areas.
        sigmas: (K,) per-keypoint sigmas (e.g. :data:`COCO17_SIGMAS`).

    Returns:
        (...) OKS in [0, 1]; NaN where the ground truth has no labelled keypoint (COCOeval then
        falls back to a distance to the doubled box, which needs the box: use
        :func:`coco_keypoint_ap` for that case). numpy inputs are accepted; the output is a tensor.
    """
    pred = _as_float_tensor(pred)
    gt = _as_float_tensor(gt, pred)
    visibility = torch.as_tensor(visibility, device=pred.device)
    area = _as_float_tensor(area, pred)
    sigmas = _as_float_tensor(sigmas, pred)
    if pred.shape[-1] != 2 or gt.shape[-1] != 2 or pred.shape[-2] != gt.shape[-2]:
        raise ValueError(f"expected (..., K, 2) pred and gt, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    k = pred.shape[-2]
    if sigmas.shape != (k,) or visibility.shape[-1] != k:
        raise ValueError(f"expected (K,) sigmas and (..., K) visibility with K={k}, "
                         f"got {tuple(sigmas.shape)} and {tuple(visibility.shape)}")
    squared = ((pred - gt) ** 2).sum(-1)
    # np.spacing(1) keeps a zero area finite, exactly as COCOeval does.
    e = squared / ((2 * sigmas) ** 2) / (area[..., None] + float(np.spacing(1))) / 2
    labelled = visibility > 0
    similarity = torch.exp(-e) * labelled
    return similarity.sum(-1) / labelled.sum(-1)


def pck(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    normaliser: ArrayLike,
    threshold: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentage of correct keypoints: ``||pred - gt|| <= threshold * normaliser``.

    Args:
        pred, gt: (N, K, 2) keypoints in pixels.
        visible: (N, K) which ground-truth keypoints count (nonzero = counts).
        normaliser: (N,) per-sample reference length (:func:`torso_size`, :func:`head_size`,
            :func:`head_size_from_box`, :func:`bbox_size`). Samples with a normaliser <= 0 (or NaN)
            are left out entirely, as mmpose does.
        threshold: fraction of the normaliser.

    Returns:
        ``(overall, per_joint)``: 0-dim and (K,) tensors in [0, 1]. ``overall`` pools all counted
        keypoints (MPII/LSP "total"; mmpose's ``PCKAccuracy`` instead averages the per-joint
        values). Entries with no counted keypoint are NaN.
    """
    pred = _as_float_tensor(pred)
    gt = _as_float_tensor(gt, pred)
    normaliser = _as_float_tensor(normaliser, pred)
    visible = torch.as_tensor(visible, device=pred.device) != 0
    if pred.ndim != 3 or pred.shape[-1] != 2 or gt.shape != pred.shape:
        raise ValueError(f"expected (N, K, 2) pred and gt, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if visible.shape != pred.shape[:2] or normaliser.shape != pred.shape[:1]:
        raise ValueError(f"expected (N, K) visible and (N,) normaliser for N, K = {tuple(pred.shape[:2])}, "
                         f"got {tuple(visible.shape)} and {tuple(normaliser.shape)}")
    counted = visible & (normaliser > 0)[:, None]  # NaN > 0 is False
    distance = torch.linalg.vector_norm(pred - gt, dim=-1)
    correct = (distance <= threshold * normaliser[:, None]) & counted
    per_joint = correct.sum(0).to(pred.dtype) / counted.sum(0).to(pred.dtype)
    overall = correct.sum().to(pred.dtype) / counted.sum().to(pred.dtype)
    return overall, per_joint


def pckh(
    pred: ArrayLike, gt: ArrayLike, visible: ArrayLike, head: ArrayLike, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """PCKh: :func:`pck` normalised by the head size (``head`` (N,), see :func:`head_size_from_box`
    for MPII and :func:`head_size` for LSP); PCKh@0.5 by default."""
    return pck(pred, gt, visible, head, threshold)


def _joint_distance(keypoints: ArrayLike, convention: str | KeypointConvention, a: str, b: str,
                    visible: ArrayLike | None) -> torch.Tensor:
    conv = get_convention(convention)
    missing = [n for n in (a, b) if n not in conv.names]
    if missing:
        raise ValueError(f"convention {conv.name} has no {' or '.join(missing)}")
    keypoints = _as_float_tensor(keypoints)
    if keypoints.shape[-2:] != (len(conv), 2):
        raise ValueError(f"expected (..., {len(conv)}, 2) keypoints for {conv.name}, got {tuple(keypoints.shape)}")
    ia, ib = conv.index(a), conv.index(b)
    length = torch.linalg.vector_norm(keypoints[..., ia, :] - keypoints[..., ib, :], dim=-1)
    if visible is not None:
        visible = torch.as_tensor(visible, device=keypoints.device) != 0
        length = length * (visible[..., ia] & visible[..., ib])
    return length


def torso_size(keypoints: ArrayLike, convention: str | KeypointConvention, visible: ArrayLike | None = None) -> torch.Tensor:
    """Torso size as in LSP PCK (and mmpose's JHMDB tPCK): ``||right_shoulder - left_hip||``.

    Args:
        keypoints: (..., K, 2) ground-truth keypoints in ``convention`` (any convention with those
            two names, e.g. ``"coco17"``, ``"lsp14"``).
        visible: optional (..., K); where either joint is not visible the size is 0, so that
            :func:`pck` leaves the sample out.

    Returns:
        (...) lengths in pixels.
    """
    return _joint_distance(keypoints, convention, "right_shoulder", "left_hip", visible)


def head_size(keypoints: ArrayLike, convention: str | KeypointConvention, visible: ArrayLike | None = None) -> torch.Tensor:
    """Head segment length ``||head_top - neck||``, the PCKh reference for LSP (and MPII without head boxes).

    Needs a convention with ``head_top`` and ``neck`` (``lsp14``, ``mpii16``, ``crowdpose14``,
    ``mpi_inf_3dhp17``); COCO-17 has neither, so it raises ValueError. Shapes and ``visible`` as in
    :func:`torso_size`. Note this is not the official MPII reference: use :func:`head_size_from_box`
    when head boxes exist.
    """
    return _joint_distance(keypoints, convention, "head_top", "neck", visible)


def head_size_from_box(head_boxes: ArrayLike) -> torch.Tensor:
    """MPII PCKh reference: ``0.6 * ||(x2, y2) - (x1, y1)||``, 0.6 times the head box diagonal.

    Args:
        head_boxes: (..., 4) head boxes ``x1, y1, x2, y2`` in pixels.

    Returns:
        (...) head sizes.
    """
    boxes = _as_float_tensor(head_boxes)
    if boxes.shape[-1] != 4:
        raise ValueError(f"expected (..., 4) head boxes x1, y1, x2, y2, got {tuple(boxes.shape)}")
    return 0.6 * torch.linalg.vector_norm(boxes[..., 2:] - boxes[..., :2], dim=-1)


def bbox_size(boxes: ArrayLike, box_format: str = "xywh") -> torch.Tensor:
    """Box reference of mmpose's ``PCKAccuracy(norm_item="bbox")``: ``max(w, h)``.

    Args:
        boxes: (..., 4) boxes, ``x, y, w, h`` (``box_format="xywh"``, as in PersonSample) or
            ``x1, y1, x2, y2`` (``"xyxy"``, as in mmpose).

    Returns:
        (...) sizes in pixels.
    """
    boxes = _as_float_tensor(boxes)
    if boxes.shape[-1] != 4:
        raise ValueError(f"expected (..., 4) boxes, got {tuple(boxes.shape)}")
    if box_format == "xywh":
        wh = boxes[..., 2:]
    elif box_format == "xyxy":
        wh = boxes[..., 2:] - boxes[..., :2]
    else:
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
    return wh.amax(-1)
