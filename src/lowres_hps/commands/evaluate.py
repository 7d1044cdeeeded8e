"""`lowres-hps evaluate kp2d|kp3d`: score prediction files, print one JSON object of metrics.

``kp2d`` scores a COCO keypoint results file (``--from 2d``, the default; the ``predictions.json`` of
``lowres-hps predict`` is one) or, with ``--from 3d``, the 3D keypoints of such a ``predictions.json`` seen by
the camera each entry reports: its ``keypoints_3d_projected`` (image px), or, in files written before that
field existed, ``keypoints_3d`` projected with the entry's ``body`` ``focal`` and ``principal_point``. Every
projected keypoint scores 1, and each person keeps the ``score`` of its entry: ``predict``'s person score, the
2D keypoints' mean score times the box score when a 2D model ran next to the 3D one (1 when missing). A 3D
model on its own gives no confidences (its people score their box score): that ranks people fairly only when
each is one detection, i.e. with ground-truth boxes (``predict --boxes``); equal scores keep the file's order.
Entries without 3D keypoints are left out (a note says how many).

``kp3d`` takes either two npz files (``keypoints3d`` (N, K, 3) each, same order), or a SynthLR folder as
``--gt`` with the ``predictions.json`` of ``lowres-hps predict`` (entries with ``keypoints_3d``) as
``--pred``. In the second case each ground-truth person is matched to the prediction of the same
``image_id`` whose ``bbox`` overlaps it best (one to one, greedily by IoU, at least ``--min-iou``); ground
truth people without a match are counted as ``num_missing``, and the metrics are over the matched ones.

Non-finite predictions never improve a score: ``kp2d`` counts NaN/inf keypoints as misses (zero similarity,
the detection still counts; a note says how many); ``kp3d`` refuses npz predictions with NaN/inf at counted
joints (an error naming the file and the count), and counts a SynthLR person whose matched prediction has
them as missing (``num_missing``, ``num_nonfinite_predictions``).

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
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from lowres_hps.body.keypoints import KeypointConvention, get_convention
from lowres_hps.data.errors import load_npz
from lowres_hps.evaluation.keypoints2d import _load_json, coco_keypoint_ap, count_nonfinite_results
from lowres_hps.evaluation.keypoints3d import Root, auc3d, mpjpe, pa_mpjpe, pck3d

__all__ = ["KP2D_SOURCES", "main", "evaluate_kp2d", "evaluate_kp3d", "evaluate_kp3d_synthlr", "match_predictions",
           "projected_3d_results", "resolve_root"]

KP2D_SOURCES = ("2d", "3d")
"""``evaluate kp2d --from`` choices: the results' own keypoints, or the projection of their 3D keypoints."""


def _json_safe(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def _parse_sigmas(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sigmas must be comma separated numbers, got {text!r}") from None


def evaluate_kp2d(gt: str | Path, pred: str | Path, sigmas: list[float] | None = None,
                  source: str = "2d") -> dict[str, float]:
    """COCO OKS AP/AR of a results file against keypoint annotations (see ``coco_keypoint_ap``).

    ``source="3d"`` scores the projected 3D keypoints of a ``predictions.json`` instead
    (:func:`projected_3d_results`). Keypoints with non-finite coordinates count as misses, with a note on
    stderr naming the file and the count; results with a non-finite score are an error naming the file.
    """
    if source not in KP2D_SOURCES:
        raise ValueError(f"--from must be one of {', '.join(KP2D_SOURCES)}, got {source!r}")
    results = _load_json(pred, "results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(f"results file {pred} must hold a JSON list of detections")
    if source == "3d":
        results = projected_3d_results(results, pred)
    broken = count_nonfinite_results(results)
    if broken:
        print(f"lowres-hps evaluate: note: {pred}: {broken} of {len(results)} results have non-finite keypoints "
              f"(NaN, inf or null); those keypoints count as misses", file=sys.stderr)
    return coco_keypoint_ap(gt, results, sigmas, results_name=str(pred))


def projected_3d_results(entries: list[dict], path: str | Path) -> list[dict]:
    """COCO keypoint results of the projected 3D keypoints of ``predict`` entries (module docstring):
    ``keypoints`` ``[x, y, 1] * K3`` in image px and ``score`` 1, for the entries that have ``keypoints_3d``.

    Raises:
        ValueError: naming ``path``: no entry has 3D keypoints, or one has malformed ones or no camera.
    """
    from lowres_hps.apis.predictor import project_to_image

    results, skipped = [], 0
    for n, entry in enumerate(entries):
        if "keypoints_3d" not in entry:
            skipped += 1
            continue
        if "image_id" not in entry:
            raise ValueError(f"{path}: entry {n} has keypoints_3d but no image_id")
        try:
            if "keypoints_3d_projected" in entry:
                pixels = np.asarray(entry["keypoints_3d_projected"], dtype=np.float64)
            else:  # written before the field existed: the same projection, from the body's camera
                pixels = project_to_image(np.asarray(entry["keypoints_3d"], dtype=np.float64), entry.get("body"))
                if pixels is None:
                    raise ValueError("no keypoints_3d_projected, and no body focal and principal_point to project with")
            if pixels.ndim != 2 or pixels.shape[1] != 2:
                raise ValueError(f"projected keypoints of shape {pixels.shape}, expected (K, 2)")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: entry {n} (image {entry['image_id']}): {exc}") from None
        keypoints = np.column_stack([pixels, np.ones(len(pixels))])
        results.append({"image_id": entry["image_id"], "category_id": entry.get("category_id", 1),
                        "keypoints": keypoints.reshape(-1).tolist(), "score": float(entry.get("score", 1.0))})
    if not results:
        raise ValueError(f"{path} has no keypoints_3d ({len(entries)} entries): --from 3d scores the 3D keypoints "
                         f"of lowres-hps predict with a 3D model (--model3d NAME|PATH)")
    if skipped:
        print(f"lowres-hps evaluate: note: {path}: {skipped} of {len(entries)} entries have no keypoints_3d and are "
              f"left out", file=sys.stderr)
    return results


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
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an npz file")
    if not zipfile.is_zipfile(path):  # np.load would try a .npy or a pickle, with misleading errors
        raise ValueError(f"{path} is not an npz file (the zip archive of arrays numpy.savez writes): truncated, "
                         f"or another format under an .npz name")
    arrays = load_npz(path)  # a damaged archive: DatasetFileError (a ValueError) naming the file
    if "keypoints3d" not in arrays:
        raise ValueError(f"{path} has no 'keypoints3d' array (found: {', '.join(arrays) or 'nothing'})")
    keypoints = arrays["keypoints3d"]
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"{path}: keypoints3d must be (N, K, 3), got {keypoints.shape}")
    if "mask" in arrays and arrays["mask"].shape != keypoints.shape[:2]:
        raise ValueError(f"{path}: mask must be (N, K) = {keypoints.shape[:2]}, got {arrays['mask'].shape}")
    return arrays


def _nonfinite_samples(keypoints: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(N,) bool: samples of (N, K, 3) ``keypoints`` with a non-finite value at a counted joint."""
    bad = ~np.isfinite(keypoints).all(-1)
    if mask is not None:
        bad &= mask != 0
    return bad.any(-1)


def _kp3d_metrics(gt: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor | None, root_joints, root_name: str,
                  pck_threshold: float, source: str) -> dict:
    """Metrics of (N, K, 3) arrays in metres, averaged over the samples with at least one counted joint.
    Both arrays must be finite at the counted joints (callers check, naming the file)."""
    per_sample = {
        "mpjpe_mm": 1000 * mpjpe(pred, gt, mask, root=root_joints),
        "pa_mpjpe_mm": 1000 * pa_mpjpe(pred, gt, mask),
        "pck3d": pck3d(pred, gt, mask, threshold=pck_threshold, root=root_joints),
        "auc": auc3d(pred, gt, mask, root=root_joints),
    }
    scored = ~per_sample["mpjpe_mm"].isnan()
    if not bool(scored.any()):
        raise ValueError(f"no sample of {source} has a counted joint ({gt.shape[0]} samples, mask all zero?)")
    metrics: dict = {name: float(values[scored].mean()) for name, values in per_sample.items()}
    metrics.update(num_samples=int(scored.sum()), num_joints=int(gt.shape[1]), root=root_name,
                   pck_threshold_mm=1000 * pck_threshold)
    return metrics


def _is_synthlr(path: Path) -> bool:
    return path.is_dir() or path.name == "annotations.json"


def evaluate_kp3d(gt: str | Path, pred: str | Path, root: str | None = None, root_index: int | None = None,
                  convention: str | None = None, pck_threshold: float = 0.15, min_iou: float = 0.5) -> dict:
    """MPJPE, PA-MPJPE (mm), 3DPCK and AUC (0-150 mm) of ``pred`` against ``gt``.

    Two npz files: sample ``n`` of one is sample ``n`` of the other, and the samples that have at least one
    counted joint are averaged; the mask comes from ``gt`` (else ``pred``, else all joints). A SynthLR folder
    and a ``predictions.json``: see :func:`evaluate_kp3d_synthlr` (``min_iou`` is only used there).
    """
    gt, pred = Path(gt), Path(pred)
    if not gt.exists():
        raise FileNotFoundError(f"file not found: {gt}")
    if _is_synthlr(gt) or pred.suffix.lower() == ".json":
        if not _is_synthlr(gt):
            raise ValueError(f"--pred {pred} is a json file (predictions of lowres-hps predict): --gt must then be a "
                             f"SynthLR folder (annotations.json, annotations_3d.npz), got {gt}")
        if pred.suffix.lower() != ".json":
            raise ValueError(f"--gt {gt} is a SynthLR folder: --pred must be the predictions.json written by "
                             f"lowres-hps predict, got {pred}")
        return evaluate_kp3d_synthlr(gt, pred, root=root, root_index=root_index, convention=convention,
                                     pck_threshold=pck_threshold, min_iou=min_iou)
    gt_arrays, pred_arrays = _load_npz(gt), _load_npz(pred)
    gt_kp, pred_kp = gt_arrays["keypoints3d"], pred_arrays["keypoints3d"]
    if gt_kp.shape != pred_kp.shape:
        raise ValueError(f"keypoints3d of {pred} is {pred_kp.shape} but that of {gt} is {gt_kp.shape}")
    mask = gt_arrays.get("mask", pred_arrays.get("mask"))
    # Sample n of one file is sample n of the other: a non-finite prediction has no score to give, and
    # leaving it out would raise the mean, so it is refused.
    for path, keypoints in ((pred, pred_kp), (gt, gt_kp)):
        bad = np.flatnonzero(_nonfinite_samples(keypoints, mask))
        if len(bad):
            raise ValueError(f"{path}: {len(bad)} of {len(keypoints)} samples have non-finite keypoints3d (NaN or "
                             f"inf) at counted joints (first: sample {bad[0]}); fix them, or set their mask to 0")
    num_joints = gt_kp.shape[1]
    conv = None
    if convention is not None:
        conv = get_convention(convention)
        if len(conv) != num_joints:
            raise ValueError(f"convention {conv.name} has {len(conv)} joints but {gt} has {num_joints}")
    root_joints, root_name = resolve_root(root, root_index, conv, num_joints)
    return _kp3d_metrics(torch.as_tensor(gt_kp, dtype=torch.float64), torch.as_tensor(pred_kp, dtype=torch.float64),
                         None if mask is None else torch.as_tensor(mask != 0), root_joints, root_name, pck_threshold,
                         str(gt))


def match_predictions(gt_boxes: np.ndarray, pred_boxes: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """One-to-one matching of boxes of one image, greedily by IoU (pycocotools), best pairs first.

    Args:
        gt_boxes: (N, 4) ``x, y, w, h``.
        pred_boxes: (M, 4) ``x, y, w, h``.
        min_iou: pairs below this IoU are never matched.

    Returns:
        (N,) int64: the matched prediction index per ground-truth box, -1 for none.
    """
    import pycocotools.mask as mask_utils

    matches = np.full(len(gt_boxes), -1, dtype=np.int64)
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return matches
    iou = np.asarray(mask_utils.iou(np.asarray(pred_boxes, np.float64).reshape(-1, 4),
                                    np.asarray(gt_boxes, np.float64).reshape(-1, 4),
                                    [0] * len(gt_boxes))).reshape(len(pred_boxes), len(gt_boxes)).T
    taken = np.zeros(len(pred_boxes), dtype=bool)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        g, p = divmod(int(flat), len(pred_boxes))
        if iou[g, p] < min_iou:
            break
        if matches[g] < 0 and not taken[p]:
            matches[g], taken[p] = p, True
    return matches


def _load_predictions(path: Path) -> dict[int, list[dict]]:
    """Entries of a predict ``predictions.json`` that carry ``keypoints_3d``, by image id."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable json file: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{path}: expected a list of prediction entries (the predictions.json of lowres-hps predict)")
    by_image: dict[int, list[dict]] = {}
    for n, entry in enumerate(entries):
        if "keypoints_3d" not in entry:
            continue
        if "image_id" not in entry or "bbox" not in entry:
            raise ValueError(f"{path}: entry {n} has keypoints_3d but no image_id or bbox")
        by_image.setdefault(int(entry["image_id"]), []).append(entry)
    if not by_image:
        raise ValueError(f"{path} has no keypoints_3d ({len(entries)} entries): run lowres-hps predict with a 3D "
                         f"model (--model3d NAME|PATH)")
    return by_image


def evaluate_kp3d_synthlr(gt: str | Path, pred: str | Path, root: str | None = None, root_index: int | None = None,
                          convention: str | None = None, pck_threshold: float = 0.15, min_iou: float = 0.5) -> dict:
    """Metrics of ``lowres-hps predict`` output against a SynthLR folder's 3D keypoints (camera metres).

    Each ground-truth person is matched to the prediction of its image whose ``bbox`` overlaps its box best
    (:func:`match_predictions`). Predictions are absolute positions in an assumed camera, so compare them
    after root alignment (MPJPE, default root: mid-hip for COCO-17) or Procrustes (PA-MPJPE).

    Returns:
        the metrics of :func:`evaluate_kp3d` over the matched people, plus ``num_gt`` (ground-truth people),
        ``num_missing`` (of them, without a matching prediction, or matched to one with non-finite
        ``keypoints_3d`` at a counted joint: a failed prediction is a missing one, never a dropped sample),
        ``num_nonfinite_predictions`` (those failed ones), ``num_unmatched_predictions`` and ``min_iou``.
    """
    from lowres_hps.data.synthlr import SynthLRReader

    gt, pred = Path(gt), Path(pred)
    annotations = gt / "annotations.json" if gt.is_dir() else gt
    if not annotations.is_file():
        raise FileNotFoundError(f"SynthLR annotations not found: {annotations}")
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"--min-iou must be in (0, 1], got {min_iou}")
    predictions = _load_predictions(pred)
    reader = SynthLRReader(gt)
    conv = get_convention(convention or reader.convention3d)
    if conv.name != reader.convention3d:
        raise ValueError(f"SynthLR 3D keypoints are {reader.convention3d}, not {conv.name}")
    num_joints = len(conv)
    root_joints, root_name = resolve_root(root, root_index, conv, num_joints)

    people_by_image: dict[int, list] = {}
    for sample in reader:
        people_by_image.setdefault(int(sample.image_id), []).append(sample)
    gt_kp, pred_kp, masks = [], [], []
    num_gt = missing = matched_predictions = nonfinite = 0
    for image_id, people in people_by_image.items():
        candidates = predictions.get(image_id, [])
        matches = match_predictions(np.stack([p.bbox for p in people]),
                                    np.array([c["bbox"] for c in candidates], np.float64).reshape(-1, 4), min_iou)
        num_gt += len(people)
        for person, match in zip(people, matches):
            if match < 0:
                missing += 1
                continue
            keypoints = np.asarray(candidates[match]["keypoints_3d"], dtype=np.float64)
            if keypoints.shape != (num_joints, 3):
                raise ValueError(f"{pred}: keypoints_3d of image {image_id} is {keypoints.shape}, expected "
                                 f"({num_joints}, 3) ({conv.name})")
            counted = person.keypoints3d[:, 3] > 0
            if _nonfinite_samples(keypoints[None], counted[None])[0]:  # a failed prediction: a missing person
                missing += 1
                nonfinite += 1
                continue
            gt_kp.append(person.keypoints3d[:, :3])
            masks.append(counted)
            pred_kp.append(keypoints)
        matched_predictions += int((matches >= 0).sum())
    if not gt_kp and nonfinite:
        raise ValueError(f"{pred}: every prediction that matched one of the {num_gt} people of {gt} has non-finite "
                         f"keypoints_3d (NaN or inf; {nonfinite} of them): nothing to score")
    if not gt_kp:
        raise ValueError(f"none of the {num_gt} people of {gt} matched a prediction of {pred} (same image ids, "
                         f"box IoU >= {min_iou}); predict with --boxes {annotations}")
    metrics = _kp3d_metrics(torch.as_tensor(np.stack(gt_kp), dtype=torch.float64),
                            torch.as_tensor(np.stack(pred_kp), dtype=torch.float64),
                            torch.as_tensor(np.stack(masks)), root_joints, root_name, pck_threshold, str(gt))
    total_predictions = sum(len(v) for v in predictions.values())
    metrics.update(num_gt=num_gt, num_missing=missing, num_nonfinite_predictions=nonfinite,
                   num_unmatched_predictions=total_predictions - matched_predictions,
                   min_iou=min_iou)
    return metrics


def main(args: argparse.Namespace) -> int:
    if args.task == "kp2d":
        metrics = evaluate_kp2d(args.gt, args.pred, _parse_sigmas(args.sigmas), getattr(args, "source", "2d"))
    elif args.task == "kp3d":
        metrics = evaluate_kp3d(args.gt, args.pred, root=args.root, root_index=args.root_index,
                                convention=args.convention, pck_threshold=args.pck_threshold,
                                min_iou=getattr(args, "min_iou", 0.5))
    else:
        raise ValueError(f"unknown evaluation task {args.task!r}")
    print(json.dumps(_json_safe(metrics)))
    return 0
