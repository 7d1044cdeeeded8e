"""Which way each track walks: its direction of travel on the ground, from its own past positions only.

A video's people mostly walk forwards, so where a track goes says which way its person faces, whatever the person
looks like. :class:`TrackHeadings` keeps each track's recent ground positions (metres: where its box meets the
ground plane of :mod:`lowres_hps.tracking.ground`, or the body's root in the camera's x-z plane) and fits a straight
line through those of the last ``window_s`` seconds; the line's direction is the heading when the track moved fast
enough along it to be walking (slower tracks, people standing or with positions too noisy to tell, get none).
Causal: a frame's heading comes from earlier frames, so it can be used as the frame arrives.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["HeadingConfig", "TrackHeadings", "line_velocity"]


@dataclass(frozen=True)
class HeadingConfig:
    """Settings of :class:`TrackHeadings`.

    Attributes:
        window_s: seconds of past positions the line is fitted to.
        min_frames: positions needed in the window.
        min_speed: metres per second along the line below which a track has no heading (walking is 1-1.5 m/s;
            monocular depth jitters by tenths of a metre, which a standing person's line must not mistake for
            walking).
    """

    window_s: float = 1.5
    min_frames: int = 8
    min_speed: float = 0.5

    def __post_init__(self) -> None:
        if not self.window_s > 0 or self.min_frames < 2 or not self.min_speed >= 0:
            raise ValueError(f"window_s must be positive, min_frames at least 2 and min_speed not negative, got "
                             f"{self.window_s}, {self.min_frames}, {self.min_speed}")


def line_velocity(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Least-squares velocity of a straight line through positions over time.

    Args:
        times: (T,) seconds, not all equal.
        positions: (T, D).

    Returns:
        (D,) the line's velocity (units of ``positions`` per second).
    """
    times = np.asarray(times, np.float64)
    positions = np.asarray(positions, np.float64)
    if times.ndim != 1 or positions.ndim != 2 or positions.shape[0] != times.shape[0]:
        raise ValueError(f"expected (T,) times and (T, D) positions, got {times.shape} and {positions.shape}")
    centred = times - times.mean()
    spread = float((centred ** 2).sum())
    if spread <= 0:
        raise ValueError("the times must not all be equal")
    return (centred[:, None] * (positions - positions.mean(axis=0))).sum(axis=0) / spread


class TrackHeadings:
    """Per track, the recent ground positions and the direction of travel they give.

    Args:
        config: :class:`HeadingConfig`.
    """

    def __init__(self, config: HeadingConfig | None = None) -> None:
        self.config = config or HeadingConfig()
        self._history: dict[int, deque[tuple[float, np.ndarray]]] = {}

    def add(self, track_id: int, t: float, position: np.ndarray) -> None:
        """Record track ``track_id`` at (2,) ``position`` at time ``t`` (seconds, increasing per track): a ground
        position ``x, z`` (metres), or anything :meth:`heading`'s ``to_ground`` turns into one (e.g. the camera ray
        through the person's feet). Positions older than the window are dropped, and tracks not seen within it are
        forgotten."""
        position = np.asarray(position, np.float64).reshape(-1)
        if position.shape != (2,) or not np.isfinite(position).all():
            raise ValueError(f"expected a finite ground position (x, z), got {position.tolist()}")
        self._history.setdefault(int(track_id), deque()).append((float(t), position))
        self._prune(float(t))

    def heading(self, track_id: int, t: float, to_ground=None) -> np.ndarray | None:
        """(2,) unit direction of travel ``x, z`` of track ``track_id`` from its positions in ``[t - window_s, t)``,
        or None when it has too few of them or moves slower than ``min_speed``. ``to_ground``: (T, 2) recorded values
        -> (T, 2) ground positions (non-finite rows are left out), for values recorded before the ground was known."""
        history = self._history.get(int(track_id))
        if not history:
            return None
        recent = [(s, p) for s, p in history if t - self.config.window_s <= s < t]
        if len(recent) < self.config.min_frames:
            return None
        times = np.array([s for s, _ in recent])
        positions = np.stack([p for _, p in recent])
        if to_ground is not None:
            positions = np.asarray(to_ground(positions), np.float64)
            finite = np.isfinite(positions).all(axis=1)
            times, positions = times[finite], positions[finite]
            if len(times) < self.config.min_frames:
                return None
        if times.max() - times.min() <= 0:
            return None
        velocity = line_velocity(times, positions)
        speed = float(np.linalg.norm(velocity))
        if speed < self.config.min_speed or speed == 0:
            return None
        return velocity / speed

    def _prune(self, now: float) -> None:
        oldest = now - self.config.window_s
        for track_id in list(self._history):
            history = self._history[track_id]
            while history and history[0][0] < oldest:
                history.popleft()
            if not history:
                del self._history[track_id]
