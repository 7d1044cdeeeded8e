"""Adapt a 3D body model to a static camera from people's silhouettes (``lowres-hps adapt``).

Two stages, each resumable from the work folder:

1. :func:`collect_silhouette_crops`: read the video, learn its background (OpenCV MOG2 or KNN with
   morphological clean-up, :mod:`lowres_hps.imaging.foreground`), find people with a detector, and keep the
   people who stand alone (no other box touches theirs) and fill their box; each is cropped by the 3D model's
   protocol with its silhouette. Written to ``crops.npz``.
2. :func:`adapt_body3d`: train a copy of the 3D network on those crops with the silhouette-topology losses
   (:mod:`lowres_hps.methods.sta`) through the shared :class:`~lowres_hps.engine.trainer.Trainer` (checkpoints,
   progress bar, ``metrics.csv``), then write it as a checkpoint whose card says what it was adapted on.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lowres_hps.apis.predictor import bounded_crop
from lowres_hps.data.silhouette_crops import SilhouetteCrops
from lowres_hps.imaging.foreground import (
    CameraMotionError,
    ForegroundConfig,
    ForegroundExtractor,
    person_silhouettes,
    warp_mask,
)
from lowres_hps.imaging.protocol import LowResProtocol
from lowres_hps.methods.sta import SilhouetteAdaptConfig, SilhouetteAdaptLoss

__all__ = ["CollectionReport", "collect_silhouette_crops", "adapt_body3d", "AdaptationError", "touching_boxes",
           "FrameCounts", "static_camera_detections"]


class AdaptationError(ValueError):
    """The adaptation cannot go on: too few people, or a camera that moves (the message says which)."""


@dataclass
class CollectionReport:
    """What :func:`collect_silhouette_crops` saw: frames read and used, boxes found, people kept, and why the
    others were left out (``rejected``: reason -> count)."""

    source: str
    frames: tuple[int, int] | None = None
    frames_read: int = 0
    frames_with_masks: int = 0
    frames_detected: int = 0
    boxes: int = 0
    people: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items())) or "none"
        span = f" (frames {self.frames[0]}-{self.frames[1]})" if self.frames else ""
        return (f"{self.source}{span}: {self.frames_read} frames read, {self.frames_with_masks} with a usable "
                f"foreground mask, {self.frames_detected} searched for people; {self.boxes} people found, "
                f"{self.people} kept; left out: {why}")


def touching_boxes(boxes: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """(N,) bool: boxes (N, 4) ``x, y, w, h`` that overlap another box once each is enlarged by ``margin`` of
    its size (their silhouettes may merge, so they cannot supervise one body each)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    grow = boxes[:, 2:] * margin
    x0, y0 = boxes[:, 0] - grow[:, 0], boxes[:, 1] - grow[:, 1]
    x1, y1 = boxes[:, 0] + boxes[:, 2] + grow[:, 0], boxes[:, 1] + boxes[:, 3] + grow[:, 1]
    overlap = (np.minimum(x1[:, None], x1[None]) > np.maximum(x0[:, None], x0[None])) & \
              (np.minimum(y1[:, None], y1[None]) > np.maximum(y0[:, None], y0[None]))
    np.fill_diagonal(overlap, False)
    return overlap.any(1)


@dataclass
class FrameCounts:
    """What :func:`static_camera_detections` went through: frames used, frames with a foreground mask (past the
    background model's warm-up), frames the detector ran on, and whether the frame range or ``max_frames`` stopped
    it before the end of the video."""

    used: int = 0
    with_masks: int = 0
    detected: int = 0
    stopped: bool = False


def static_camera_detections(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    counts: FrameCounts,
    *,
    source: str = "video",
    frame_range: tuple[int, int] | None = None,
    max_frames: int | None = None,
    foreground: ForegroundConfig | None = None,
    detect_every: int = 2,
    min_score: float = 0.4,
    progress: Callable[[int], None] | None = None,
):
    """The frames of a static camera where people were looked for: yields ``(index, frame, foreground mask (H, W),
    boxes (N, 4) x, y, w, h, scores (N,))`` with the detections of at least ``min_score``. The background model
    sees every used frame; the detector runs on every ``detect_every``-th frame that has a mask. ``counts`` is
    updated as it goes.

    Raises:
        AdaptationError: the camera moves (background subtraction fails), naming ``source``.
    """
    extractor = ForegroundExtractor(foreground)
    first, last = frame_range if frame_range else (1, None)
    for index, frame in frames:
        number = index + 1
        if number < first:
            continue
        if (last is not None and number > last) or (max_frames is not None and counts.used >= max_frames):
            counts.stopped = True
            break
        counts.used += 1
        if progress is not None:
            progress(index)
        try:
            mask = extractor.apply(frame)
        except CameraMotionError as exc:
            raise AdaptationError(f"{source}: {exc}") from None
        if mask is None:
            continue
        counts.with_masks += 1
        if (counts.with_masks - 1) % detect_every:
            continue
        counts.detected += 1
        boxes, scores = detector(frame)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"the detector gave {len(boxes)} boxes but {len(scores)} scores")
        keep = scores >= min_score
        yield index, frame, mask, boxes[keep], scores[keep]


def collect_silhouette_crops(
    frames: Iterable[tuple[int, np.ndarray]],
    detector: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    canvas: int,
    scale_factor: float = 1.25,
    *,
    source: str = "video",
    frame_range: tuple[int, int] | None = None,
    max_frames: int | None = None,
    foreground: ForegroundConfig | None = None,
    detect_every: int = 2,
    min_score: float = 0.4,
    min_fill: float = 0.2,
    min_height: float = 20.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[SilhouetteCrops, CollectionReport]:
    """People cropped with their silhouettes from a static camera's frames.

    Args:
        frames: ``(index, (H, W, 3) uint8 RGB)`` pairs, 0-based indices (e.g. a
            :class:`~lowres_hps.apis.inputs.VideoReader`).
        detector: ``detector(frame) -> (boxes (N, 4) x, y, w, h, scores (N,))``.
        canvas, scale_factor: the 3D model's crop (its ``config.canvas`` and ``config.scale_factor``).
        source: the name reports use.
        frame_range: 1-based first and last frame to use (inclusive); frames before the first still teach the
            background model nothing (the model learns from the first used frame on).
        max_frames: stop after this many used frames.
        foreground: background subtraction settings.
        detect_every: run the detector on every n-th frame (the background model sees every frame).
        min_score: detections below this score are ignored.
        min_fill: people whose box is less than this fraction foreground are left out (missed by the background
            model, e.g. standing still for long).
        min_height: people shorter than this (px) are left out.
        progress: called with each frame index read.

    Raises:
        AdaptationError: the camera moves (background subtraction fails), with the frame it was noticed at.
    """
    protocol = LowResProtocol((canvas, canvas), scale_factor, "upsample")
    report = CollectionReport(source=source, frames=frame_range)
    rejected: Counter[str] = Counter()
    images, ranges, silhouettes, frame_ids = [], [], [], []
    counts = FrameCounts()
    for index, frame, mask, boxes, _ in static_camera_detections(
            frames, detector, counts, source=source, frame_range=frame_range, max_frames=max_frames,
            foreground=foreground, detect_every=detect_every, min_score=min_score, progress=progress):
        report.boxes += len(boxes)
        if not len(boxes):
            continue
        touching = touching_boxes(boxes)
        masks, fill = person_silhouettes(mask, boxes, min_fill=min_fill)
        for box, alone, person_mask, person_fill in zip(boxes, ~touching, masks, fill):
            if not alone:
                rejected["touching another person"] += 1
            elif box[3] < min_height:
                rejected[f"shorter than {min_height:g} px"] += 1
            elif person_fill < min_fill:
                rejected[f"box under {min_fill:.0%} foreground"] += 1
            else:
                try:
                    crop = bounded_crop(protocol, frame, box, None)
                except ValueError:
                    rejected["box outside the image"] += 1
                    continue
                images.append(crop.image.numpy())
                ranges.append(int(crop.range_index))
                silhouettes.append(warp_mask(person_mask, crop.affine.numpy(), (canvas, canvas)))
                frame_ids.append(index)
    report.frames_read, report.frames_with_masks = counts.used, counts.with_masks
    report.frames_detected = counts.detected
    report.people = len(images)
    report.rejected = dict(rejected)
    if not images:
        return SilhouetteCrops(np.zeros((0, 3, canvas, canvas), np.uint8), np.zeros(0, np.int64),
                               np.zeros((0, canvas, canvas), np.uint8), np.zeros(0, np.int64)), report
    return SilhouetteCrops(np.stack(images), np.array(ranges), np.stack(silhouettes), np.array(frame_ids)), report


TRAINABLE = ("all", "backbone")
"""What :func:`adapt_body3d` may move: every weight, or the image trunk only."""


def adapt_body3d(
    estimator,
    dataset,
    out: str | Path,
    *,
    work_dir: str | Path,
    config: SilhouetteAdaptConfig | None = None,
    prior=None,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 1e-5,
    seed: int = 0,
    resume: bool = True,
    device: str = "cpu",
    name: str | None = None,
    adapted_on: dict[str, Any] | None = None,
    val_dataset=None,
    evaluate=None,
    progress_bar: bool = True,
    trainable: str = "all",
    keep_best: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Adapt a copy of a 3D model (a :class:`~lowres_hps.models.body3d.Body3DEstimator`, e.g. from
    ``load_model``) to people with silhouettes and write it to ``out`` (``.safetensors`` with its card).

    ``dataset`` yields items with ``images``, ``range_index`` and ``silhouette`` (a :class:`SilhouetteCrops`, or a
    :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` made ``with_masks``). The run lives in
    ``work_dir`` (``metrics.csv``, ``last.pt``): with ``resume`` an interrupted run goes on from its last checkpoint. ``steps`` below one pass over the data trains on a fixed random part of it
    (exactly ``steps``); above, it is rounded up to whole passes. ``val_dataset`` and
    ``evaluate`` (optional) are the trainer's validation, e.g. MPJPE on labelled crops of the target.
    ``trainable``: which weights move, ``"all"`` (the paper) or ``"backbone"`` (the image trunk only; the body
    regressor, which turns features into a pose, stays as trained: a change of camera or look is a change of the
    image, and silhouettes are a weak teacher of articulation).

    Held-out people (``val_dataset`` of silhouette crops, with ``evaluate`` None) are scored by how well the bodies
    match their silhouettes (:meth:`~lowres_hps.methods.sta.SilhouetteAdaptLoss.evaluate`) before adapting and
    after every pass, and the best of those is written (``keep_best``, default ``"silhouette_iou"``): the weights of
    the best pass, or the source's own when no pass beat it (silhouettes can pull a model away from what its labels
    taught it; the card and the returned metrics say which was kept).

    Returns:
        ``(out, metrics)``: the checkpoint written and the trainer's last metrics.
    """
    import copy

    from lowres_hps.apis.registry import save_checkpoint
    from lowres_hps.engine import OptimConfig, Task, Trainer, TrainerConfig

    if len(dataset) < batch_size:
        raise AdaptationError(f"only {len(dataset)} people to adapt on, fewer than one batch of {batch_size}")
    config = config or SilhouetteAdaptConfig()
    if trainable not in TRAINABLE:
        raise AdaptationError(f"trainable must be one of {', '.join(TRAINABLE)}, got {trainable!r}")
    network = copy.deepcopy(estimator.model).float()
    if trainable == "backbone":
        network.regressor.requires_grad_(False)  # the trainer's optimiser leaves frozen weights out
    mean_shape = network.regressor.mean_params[estimator.body.pose_spec.rotation_size:
                                               estimator.body.pose_spec.vector_size].detach().clone()
    loss = SilhouetteAdaptLoss(config, network.config, estimator.body, mean_shape, prior=prior)
    start: dict[str, float] = {}
    if val_dataset is not None and evaluate is None:
        import torch
        from torch.utils.data import DataLoader

        evaluate, keep_best = loss.evaluate, keep_best or "silhouette_iou"
        if len(val_dataset) == 0:
            raise AdaptationError("no held-out people to validate on")
        with torch.no_grad():
            start = evaluate(network.to(device).eval(), DataLoader(val_dataset, batch_size=batch_size))
    if steps * batch_size < len(dataset):  # fewer steps than one pass: a fixed random part, so the count is exact
        from torch.utils.data import Subset

        order = np.random.default_rng(seed).permutation(len(dataset))[: steps * batch_size]
        dataset = Subset(dataset, np.sort(order).tolist())
    steps_per_epoch = len(dataset) // batch_size
    epochs = max(1, math.ceil(steps / steps_per_epoch))
    work_dir = Path(work_dir)
    trainer_config = TrainerConfig(
        out_dir=str(work_dir), epochs=epochs, batch_size=batch_size, seed=seed, device=device,
        optim=OptimConfig(name="adam", lr=lr), log_every=max(1, min(10, steps_per_epoch)),
        ckpt_every_steps=max(1, min(50, steps_per_epoch)), val_every_epochs=1 if val_dataset is not None else 0,
        progress_bar=progress_bar, keep_best=keep_best)
    task = Task(model=network, train_dataset=dataset, loss=loss, val_dataset=val_dataset, evaluate=evaluate)
    trainer = Trainer(trainer_config, task)
    metrics = trainer.fit(resume=resume and trainer.checkpoint_path.is_file())
    adapted = trainer.model.eval()
    card = estimator.card
    how = {"method": "silhouette-topology self-adaptation (Rakesh, Kundu et al., NeurIPS 2021)",
           **asdict(config), "steps": trainer.global_step, "batch_size": batch_size, "lr": lr, "seed": seed,
           "people": len(dataset), "trainable": trainable,
           "prior": None if prior is None else prior.card.get("name", "a pose prior"),
           **(adapted_on or {})}
    if keep_best is not None:
        from lowres_hps.engine import load_weights
        from lowres_hps.engine.trainer import BEST_WEIGHTS_NAME

        best = trainer.best
        before = start.get(keep_best)
        if best is not None and (before is None or best["value"] > before):
            load_weights(adapted, work_dir / BEST_WEIGHTS_NAME)
            kept = f"pass {best['epoch']} of {epochs}"
        else:  # no pass matched the held-out people better than the source: keep the source's weights
            adapted.load_state_dict(estimator.model.state_dict())
            kept = "the source's weights (no pass beat them)"
        how["validation"] = {"people": len(val_dataset), "metric": keep_best, "before": before,
                             "best": None if best is None else best["value"], "kept": kept}
        metrics = {**metrics, f"before/{keep_best}": before, "kept": kept,
                   f"best/{keep_best}": None if best is None else best["value"]}
    new_name = name or f"{card.name}_adapted"
    notes = (f"{card.name} adapted from silhouettes alone (no 2D or 3D labels) on {len(dataset)} people"
             + (f" of {adapted_on['source']}" if adapted_on and "source" in adapted_on else "") + ".")
    save_checkpoint(adapted, card.adapted(new_name, how, notes=notes), out)
    return Path(out), metrics
