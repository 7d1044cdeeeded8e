"""A constant-velocity Kalman filter on person boxes, in the state SORT and ByteTrack use.

The state is ``(cx, cy, a, h, vcx, vcy, va, vh)``: the box centre, its aspect ratio ``w / h``, its height, and their
velocities per frame. The noise of position and velocity is proportional to the box height (ByteTrack's
``KalmanFilter``), so one filter serves a 20 px tall person and a 500 px tall one alike; the aspect ratio gets small
fixed noise because people change shape slowly.

Boxes in and out are ``(x, y, w, h)``: top-left corner, width and height in pixels, float64.

Written here rather than taken from a package: the maintained pip filters (filterpy and the like) bring extra
dependencies for 60 lines of linear algebra.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BoxKalmanFilter", "xywh_to_xyah", "xyah_to_xywh"]

STATE_DIM = 8
MEASUREMENT_DIM = 4


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    """(..., 4) float64 boxes with finite values and positive width and height, or a ValueError naming ``name``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must be (..., 4) boxes x, y, w, h, got shape {boxes.shape}")
    shown = boxes.tolist() if boxes.size <= 16 else f"an array of shape {boxes.shape}"
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"{name} must be finite, got {shown}")
    if np.any(boxes[..., 2:] <= 0):
        raise ValueError(f"{name} must have positive width and height, got {shown}")
    return boxes


def xywh_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``(x, y, w, h)`` (top-left corner) to ``(cx, cy, w / h, h)``: (..., 4) -> (..., 4) float64."""
    boxes = np.asarray(boxes, dtype=np.float64)
    out = boxes.copy()
    out[..., 0] = boxes[..., 0] + boxes[..., 2] / 2
    out[..., 1] = boxes[..., 1] + boxes[..., 3] / 2
    out[..., 2] = boxes[..., 2] / boxes[..., 3]
    return out


def xyah_to_xywh(xyah: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xywh_to_xyah`: (..., >=4) -> (..., 4); extra trailing entries (velocities) are ignored, so a
    (..., 8) state mean gives its box."""
    xyah = np.asarray(xyah, dtype=np.float64)[..., :4]
    out = xyah.copy()
    out[..., 2] = xyah[..., 2] * xyah[..., 3]
    out[..., 0] = xyah[..., 0] - out[..., 2] / 2
    out[..., 1] = xyah[..., 1] - xyah[..., 3] / 2
    return out


class BoxKalmanFilter:
    """Constant-velocity Kalman filter on boxes, state ``(cx, cy, a, h)`` and their velocities per frame.

    Args:
        std_weight_position: the position noise's standard deviation as a fraction of the box height
            (ByteTrack's 1/20).
        std_weight_velocity: the velocity noise's standard deviation as a fraction of the box height, per frame
            (ByteTrack's 1/160).

    Means are (8,) and covariances (8, 8) float64; :meth:`multi_predict` takes (N, 8) and (N, 8, 8).
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        for name, value in (("std_weight_position", std_weight_position), ("std_weight_velocity", std_weight_velocity)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)
        # x_{k+1} = F x_k: positions move by one frame of velocity.
        self.motion = np.eye(STATE_DIM)
        self.motion[:MEASUREMENT_DIM, MEASUREMENT_DIM:] = np.eye(MEASUREMENT_DIM)
        # z = H x: the measurement is the position part of the state.
        self.observation = np.eye(MEASUREMENT_DIM, STATE_DIM)

    def _position_std(self, height: np.ndarray, aspect_std: float) -> np.ndarray:
        """(..., 4) standard deviations of (cx, cy, a, h) for heights (...)."""
        scaled = self.std_weight_position * height
        return np.stack([scaled, scaled, np.full_like(scaled, aspect_std), scaled], axis=-1)

    def _velocity_std(self, height: np.ndarray, aspect_std: float, factor: float = 1.0) -> np.ndarray:
        scaled = factor * self.std_weight_velocity * height
        return np.stack([scaled, scaled, np.full_like(scaled, aspect_std), scaled], axis=-1)

    def initiate(self, box_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A new track from one box.

        Args:
            box_xywh: (4,) box ``x, y, w, h`` with positive ``w`` and ``h``.

        Returns:
            ``(mean (8,), covariance (8, 8))``: the box with zero velocity, and an uncertainty that is wide on the
            unknown velocity.
        """
        box = _as_boxes(box_xywh, "box_xywh")
        if box.shape != (4,):
            raise ValueError(f"box_xywh must be one (4,) box, got shape {box.shape}")
        mean = np.concatenate([xywh_to_xyah(box), np.zeros(MEASUREMENT_DIM)])
        height = np.asarray(mean[3])
        # Twice the running position noise (the first box is all we know), ten times the velocity noise.
        std = np.concatenate([2 * self._position_std(height, 0.5e-2), self._velocity_std(height, 1e-5, factor=10.0)])
        return mean, np.diag(std**2)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: (8,), (8, 8) -> (8,), (8, 8)."""
        means, covariances = self.multi_predict(np.asarray(mean)[None], np.asarray(covariance)[None])
        return means[0], covariances[0]

    def multi_predict(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for many tracks at once: (N, 8), (N, 8, 8) -> (N, 8), (N, 8, 8)."""
        means, covariances = self._check_state(means, covariances, batched=True)
        height = means[:, 3]
        std = np.concatenate([self._position_std(height, 1e-2), self._velocity_std(height, 1e-5)], axis=-1)
        noise = std[:, :, None] * np.eye(STATE_DIM) * std[:, None, :]
        new_means = means @ self.motion.T
        new_covariances = self.motion @ covariances @ self.motion.T + noise
        return new_means, new_covariances

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The state in measurement space, with the measurement noise: (8,), (8, 8) -> (4,), (4, 4)."""
        mean, covariance = self._check_state(mean, covariance, batched=False)
        std = self._position_std(np.asarray(mean[3]), 1e-1)
        projected_mean = self.observation @ mean
        projected_cov = self.observation @ covariance @ self.observation.T + np.diag(std**2)
        return projected_mean, projected_cov

    def update(self, mean: np.ndarray, covariance: np.ndarray, box_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct the state with a measured box.

        Args:
            mean: (8,) predicted state.
            covariance: (8, 8) predicted covariance.
            box_xywh: (4,) measured box ``x, y, w, h``.

        Returns:
            ``(mean (8,), covariance (8, 8))`` after the measurement.
        """
        box = _as_boxes(box_xywh, "box_xywh")
        if box.shape != (4,):
            raise ValueError(f"box_xywh must be one (4,) box, got shape {box.shape}")
        mean, covariance = self._check_state(mean, covariance, batched=False)
        projected_mean, projected_cov = self.project(mean, covariance)
        # K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
        cross = covariance @ self.observation.T
        gain = np.linalg.solve(projected_cov, cross.T).T
        innovation = xywh_to_xyah(box) - projected_mean
        new_mean = mean + gain @ innovation
        new_covariance = covariance - gain @ projected_cov @ gain.T
        # Keep it exactly symmetric so rounding does not accumulate over long tracks.
        return new_mean, (new_covariance + new_covariance.T) / 2

    @staticmethod
    def _check_state(mean: np.ndarray, covariance: np.ndarray, batched: bool) -> tuple[np.ndarray, np.ndarray]:
        mean = np.asarray(mean, dtype=np.float64)
        covariance = np.asarray(covariance, dtype=np.float64)
        if batched:
            if mean.ndim != 2 or mean.shape[1] != STATE_DIM:
                raise ValueError(f"means must be (N, 8), got shape {mean.shape}")
            if covariance.shape != (mean.shape[0], STATE_DIM, STATE_DIM):
                raise ValueError(f"covariances must be (N, 8, 8) with N={mean.shape[0]}, got shape {covariance.shape}")
        else:
            if mean.shape != (STATE_DIM,):
                raise ValueError(f"mean must be (8,), got shape {mean.shape}")
            if covariance.shape != (STATE_DIM, STATE_DIM):
                raise ValueError(f"covariance must be (8, 8), got shape {covariance.shape}")
        return mean, covariance
