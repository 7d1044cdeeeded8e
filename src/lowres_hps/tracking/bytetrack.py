"""Tracking by detection: ByteTrack's two-stage association (Zhang et al., "ByteTrack: Multi-Object Tracking by
Associating Every Detection Box", ECCV 2022).

Each frame the tracker predicts every track with a :class:`~lowres_hps.tracking.kalman.BoxKalmanFilter`, then

1. matches the high-score detections to the confirmed tracks, lost ones included, by IoU (Hungarian assignment,
   gated at ``match_iou_high``);
2. matches the low-score detections to the confirmed tracks still unmatched and not lost (``match_iou_low``):
   a person who is half occluded or blurred keeps a track through a weak detection, yet a weak detection never
   starts one;
3. matches the new, still tentative tracks to the high-score detections left over (``match_iou_tentative``);
   a tentative track that misses a frame is dropped;
4. starts a tentative track from each remaining detection scoring at least ``new_track_score``.

A confirmed track that is not matched goes lost: it keeps predicting and can be matched again (stage 1) for up to
``max_lost_frames`` frames, so a person missed for a few frames gets the same id back.

    tracker = ByteTracker()
    for frame, (boxes, scores) in enumerate(detections):   # boxes (N, 4) x, y, w, h; scores (N,)
        for track in tracker.update(boxes, scores):
            track.track_id, track.box, track.detection_index
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from lowres_hps.tracking.kalman import BoxKalmanFilter, xyah_to_xywh

__all__ = ["ByteTrackConfig", "Track", "ByteTracker", "iou_matrix"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        a: (N, 4) boxes ``x, y, w, h`` (top-left corner, width, height).
        b: (M, 4) boxes, same layout.

    Returns:
        (N, M) float64 IoU in [0, 1]; pairs whose union is empty (degenerate boxes) get 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    for name, boxes in (("a", a), ("b", b)):
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{name} must be (N, 4) boxes x, y, w, h, got shape {boxes.shape}")
    a0, a1 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b0, b1 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    overlap = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0, None)
    intersection = overlap[..., 0] * overlap[..., 1]
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


def _gated_assignment(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Minimum-cost matching on ``1 - iou`` where a pair needs ``iou >= min_iou``; rows and columns may stay unmatched.

    Like ``lap.lapjv(..., cost_limit=...)`` (ByteTrack): leaving a row and a column unmatched costs the limit, so one
    good match is preferred to two poor ones, rather than matching as many pairs as possible.
    """
    n, m = iou.shape
    if n == 0 or m == 0:
        return []
    limit = 1.0 - min_iou
    cost = 1.0 - iou
    forbidden = 1e6
    # Square augmented problem: every row and column may instead go to its own dummy at half the limit.
    augmented = np.full((n + m, m + n), forbidden)
    augmented[:n, :m] = np.where(cost <= limit, cost, forbidden)
    augmented[np.arange(n), m + np.arange(n)] = limit / 2
    augmented[n + np.arange(m), np.arange(m)] = limit / 2
    augmented[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(augmented)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if r < n and c < m and cost[r, c] <= limit]


@dataclass
class ByteTrackConfig:
    """Thresholds of :class:`ByteTracker` (ByteTrack's MOT17 values, the IoU gates written as IoU, not 1 - IoU).

    Attributes:
        high_score: detections scoring at least this are "high" (stage 1; ByteTrack's ``track_thresh``).
        low_score: detections scoring below this are discarded; those in ``[low_score, high_score)`` are "low"
            (stage 2 only: they continue tracks, never start them).
        new_track_score: a high detection left unmatched starts a track only if it scores at least this
            (ByteTrack's ``track_thresh + 0.1``).
        match_iou_high: the IoU a high detection needs with a track's predicted box (ByteTrack's
            ``match_thresh=0.8`` as a cost ``1 - IoU``).
        match_iou_low: the IoU a low detection needs (ByteTrack's cost 0.5).
        match_iou_tentative: the IoU a high detection needs to continue a tentative track (ByteTrack's cost 0.7).
        max_lost_frames: a confirmed track missing for more than this many consecutive frames is removed; up to
            then it can be matched again and keeps its id (ByteTrack's ``track_buffer``).
        min_hits: the frames with a detection a new track needs to be confirmed and reported; tracks started in
            the tracker's first frame are confirmed at once.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    match_iou_high: float = 0.2
    match_iou_low: float = 0.5
    match_iou_tentative: float = 0.3
    max_lost_frames: int = 30
    min_hits: int = 2

    def __post_init__(self) -> None:
        for name in ("high_score", "low_score", "new_track_score"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.low_score < self.high_score <= self.new_track_score:
            raise ValueError("need low_score < high_score <= new_track_score, got "
                             f"low_score={self.low_score}, high_score={self.high_score}, "
                             f"new_track_score={self.new_track_score}")
        for name in ("match_iou_high", "match_iou_low", "match_iou_tentative"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be an IoU in (0, 1], got {value!r}")
        for name, minimum in (("max_lost_frames", 0), ("min_hits", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# eq=False: the fields hold arrays, whose == is elementwise.
@dataclass(frozen=True, eq=False)
class Track:
    """One confirmed track in one frame, as :meth:`ByteTracker.update` reports it.

    Attributes:
        track_id: the person's id, from 1, never reused while the tracker lives (until :meth:`ByteTracker.reset`).
        box: (4,) float64 ``x, y, w, h``: the detection matched in this frame (not the Kalman estimate).
        score: that detection's score.
        detection_index: that detection's index in this frame's ``boxes`` and ``scores``.
        age: frames since the track started, this one included.
        hits: frames in which the track was matched to a detection, this one included.
        filtered_box: (4,) float64 ``x, y, w, h``: the Kalman estimate after this frame's detection.
    """

    track_id: int
    box: np.ndarray
    score: float
    detection_index: int
    age: int
    hits: int
    filtered_box: np.ndarray = field(repr=False)


class _State(enum.Enum):
    TENTATIVE = "tentative"
    TRACKED = "tracked"
    LOST = "lost"


class _TrackState:
    """A track's mutable state inside the tracker."""

    def __init__(self, mean: np.ndarray, covariance: np.ndarray, frame_index: int) -> None:
        self.mean = mean
        self.covariance = covariance
        self.state = _State.TENTATIVE
        self.track_id = 0  # given on confirmation, so the reported ids have no gaps
        self.start_frame = frame_index
        self.last_frame = frame_index
        self.hits = 1
        self.detection: int | None = None  # the detection matched in the current frame

    @property
    def box(self) -> np.ndarray:
        return xyah_to_xywh(self.mean)


class ByteTracker:
    """ByteTrack-style multi-person tracker on detection boxes (see the module docstring for the steps).

    Args:
        config: thresholds; ``ByteTrackConfig()`` by default.
        kalman: the motion model; ``BoxKalmanFilter()`` by default.
    """

    def __init__(self, config: ByteTrackConfig | None = None, kalman: BoxKalmanFilter | None = None) -> None:
        self.config = config if config is not None else ByteTrackConfig()
        if not isinstance(self.config, ByteTrackConfig):
            raise ValueError(f"config must be a ByteTrackConfig, got {type(self.config).__name__}")
        self.kalman = kalman if kalman is not None else BoxKalmanFilter()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new video)."""
        self._tracks: list[_TrackState] = []
        self._next_id = 1
        self._frame_index: int | None = None
        self._first_frame = True

    @property
    def frame_index(self) -> int | None:
        """The index of the last frame given to :meth:`update`, None before the first."""
        return self._frame_index

    @property
    def num_tracks(self) -> int:
        """The live tracks: tentative, tracked and lost."""
        return len(self._tracks)

    def update(self, boxes: np.ndarray, scores: np.ndarray, frame_index: int | None = None) -> list[Track]:
        """Track one frame's detections.

        Args:
            boxes: (N, 4) detection boxes ``x, y, w, h`` in pixels (N may be 0). Boxes with a non-positive width or
                height are ignored.
            scores: (N,) detection scores.
            frame_index: this frame's index, increasing; by default the previous one plus one. Skipped indices are
                frames without detections: tracks predict through them and count them as missed.

        Returns:
            The confirmed tracks matched to a detection in this frame, by increasing ``track_id``.
        """
        boxes, scores = self._check_detections(boxes, scores)
        frame_index = self._advance(frame_index)
        cfg = self.config

        valid = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        high = np.flatnonzero(valid & (scores >= cfg.high_score))
        low = np.flatnonzero(valid & (scores >= cfg.low_score) & (scores < cfg.high_score))

        confirmed = [t for t in self._tracks if t.state is not _State.TENTATIVE]
        tentative = [t for t in self._tracks if t.state is _State.TENTATIVE]

        # Stage 1: high detections against every confirmed track, lost ones included.
        pairs = self._match(confirmed, boxes[high], cfg.match_iou_high)
        for ti, di in pairs:
            self._apply(confirmed[ti], boxes, int(high[di]), frame_index)
        used_high = {di for _, di in pairs}
        high_left = np.array([d for i, d in enumerate(high) if i not in used_high], dtype=np.int64)

        # Stage 2: low detections against the tracks still unmatched that were tracked in the last frame.
        remaining = [t for t in confirmed if t.detection is None and t.state is _State.TRACKED]
        for ti, di in self._match(remaining, boxes[low], cfg.match_iou_low):
            self._apply(remaining[ti], boxes, int(low[di]), frame_index)

        # Stage 3: tentative tracks against the high detections left over.
        pairs = self._match(tentative, boxes[high_left], cfg.match_iou_tentative)
        for ti, di in pairs:
            track = tentative[ti]
            self._apply(track, boxes, int(high_left[di]), frame_index)
            if track.hits >= cfg.min_hits:
                self._confirm(track)
        used_left = {di for _, di in pairs}

        # Unmatched tracks: tentative ones are dropped, confirmed ones go lost until they are too old.
        kept: list[_TrackState] = []
        for track in self._tracks:
            if track.detection is not None:
                kept.append(track)
            elif track.state is _State.TENTATIVE:
                continue
            elif frame_index - track.last_frame <= cfg.max_lost_frames:
                track.state = _State.LOST
                kept.append(track)
        self._tracks = kept

        # New tracks from confident detections nobody claimed.
        for i, det in enumerate(high_left):
            if i in used_left or scores[det] < cfg.new_track_score:
                continue
            mean, covariance = self.kalman.initiate(boxes[det])
            track = _TrackState(mean, covariance, frame_index)
            track.detection = int(det)
            if self._first_frame or cfg.min_hits <= 1:
                self._confirm(track)
            self._tracks.append(track)
        self._first_frame = False

        reported = [
            Track(track_id=t.track_id, box=boxes[t.detection].copy(), score=float(scores[t.detection]),
                  detection_index=t.detection, age=frame_index - t.start_frame + 1, hits=t.hits, filtered_box=t.box)
            for t in self._tracks if t.state is _State.TRACKED and t.detection is not None
        ]
        return sorted(reported, key=lambda t: t.track_id)

    def _confirm(self, track: _TrackState) -> None:
        track.state = _State.TRACKED
        track.track_id = self._next_id
        self._next_id += 1

    def _apply(self, track: _TrackState, boxes: np.ndarray, detection: int, frame_index: int) -> None:
        """Correct a matched track with its detection, ``boxes[detection]``."""
        track.mean, track.covariance = self.kalman.update(track.mean, track.covariance, boxes[detection])
        track.detection = detection
        track.last_frame = frame_index
        track.hits += 1
        if track.state is _State.LOST:
            track.state = _State.TRACKED

    def _match(self, tracks: list[_TrackState], boxes: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
        if not tracks or len(boxes) == 0:
            return []
        predicted = np.stack([t.box for t in tracks])
        return _gated_assignment(iou_matrix(predicted, boxes), min_iou)

    def _advance(self, frame_index: int | None) -> int:
        """Move to ``frame_index`` and predict every track through the frames since the last one."""
        if frame_index is None:
            frame_index = 0 if self._frame_index is None else self._frame_index + 1
        elif isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise ValueError(f"frame_index must be an integer or None, got {frame_index!r}")
        frame_index = int(frame_index)
        if self._frame_index is not None and frame_index <= self._frame_index:
            raise ValueError(f"frame_index must increase, got {frame_index} after {self._frame_index}")
        steps = 1 if self._frame_index is None else frame_index - self._frame_index
        self._frame_index = frame_index
        if steps > 1:
            # Skipped frames were frames without detections: the tracks missed them.
            kept = []
            for track in self._tracks:
                missed = frame_index - 1 - track.last_frame
                if track.state is _State.TENTATIVE or missed > self.config.max_lost_frames:
                    continue
                track.state = _State.LOST
                kept.append(track)
            self._tracks = kept
        for track in self._tracks:
            track.detection = None
        if self._tracks:
            means = np.stack([t.mean for t in self._tracks])
            covariances = np.stack([t.covariance for t in self._tracks])
            # A lost track's height stops changing (ByteTrack), so it does not shrink or balloon while unseen.
            lost = np.array([t.state is _State.LOST for t in self._tracks])
            means[lost, 7] = 0.0
            for _ in range(steps):
                means, covariances = self.kalman.multi_predict(means, covariances)
            for track, mean, covariance in zip(self._tracks, means, covariances):
                track.mean, track.covariance = mean, covariance
        return frame_index

    @staticmethod
    def _check_detections(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if boxes.size == 0 and scores.size == 0:
            return boxes.reshape(0, 4), scores.reshape(0)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4) x, y, w, h, got shape {boxes.shape}")
        if scores.shape != (boxes.shape[0],):
            raise ValueError(f"scores must be (N,) with N={boxes.shape[0]} (one per box), got shape {scores.shape}")
        if not np.all(np.isfinite(boxes)):
            raise ValueError("boxes must be finite, got NaN or infinite values in rows "
                             f"{np.flatnonzero(~np.isfinite(boxes).all(axis=1)).tolist()}")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"scores must be finite, got {scores[~np.isfinite(scores)].tolist()}")
        return boxes, scores
