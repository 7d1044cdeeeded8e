"""3D body regressors scored on labelled crops: MPJPE and PA-MPJPE per person height, shared by every method that
trains or adapts one (RSC-Net's validation, the silhouette adaptation's benchmark)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from lowres_hps.body.keypoints import hips_root
from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe

__all__ = ["evaluate_body3d"]


def evaluate_body3d(model, body, batches: Iterable[dict], heights: Sequence[float]) -> dict[str, float]:
    """MPJPE and PA-MPJPE (mm, hips-rooted, in the network's keypoint convention) per evaluation height.

    Args:
        model: a 3D body network (``model(images (N, 3, S, S), range_index (N,)) -> {"pose_vector": ...}``, with a
            ``config.convention``), in eval mode.
        body: its body model (``forward_vector``).
        batches: batches of a :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` built with
            ``person_heights=heights`` (``images`` (B, P, 3, S, S), ``range_index`` (B, P), 3D labels).
        heights: those heights; 0 or less names the source resolution.

    Returns:
        ``{"mpjpe_mm@H": ..., "pa_mpjpe_mm@H": ...}`` averaged over the people with 3D labels.
    """
    convention = model.config.convention
    errors: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        images, ranges = batch["images"], batch["range_index"]
        b, a = images.shape[:2]
        out = model(images.flatten(0, 1), ranges.flatten())
        vectors = out["pose_vector"].to(body.dtype)
        with torch.autocast(images.device.type, enabled=False):  # the body in its own precision, never bf16
            body_out = body.to(images.device).forward_vector(vectors, keypoints_only=True)
        keypoints, _ = body_out.keypoints(convention)
        pred = keypoints.view(b, a, -1, 3).double()
        gt = batch["keypoints3d"].double()
        mask = batch["visible3d"] > 0
        keep = batch["has_3d"] > 0
        for i, height in enumerate(heights):
            if not bool(keep.any()):
                continue
            p, g, m = pred[keep, i], gt[keep], mask[keep]
            name = f"{int(height)}" if height > 0 else "source"
            errors.setdefault(f"mpjpe_mm@{name}", []).append(1000 * mpjpe(p - hips_root(p), g - hips_root(g), m))
            errors.setdefault(f"pa_mpjpe_mm@{name}", []).append(1000 * pa_mpjpe(p, g, m))
    return {k: float(torch.cat(v).nanmean()) for k, v in errors.items()}
