"""Video: people tracked across frames, and their keypoints and bodies smoothed over time.

* :mod:`~lowres_hps.tracking.kalman`: a constant-velocity Kalman filter on boxes (the SORT / ByteTrack state).
* :mod:`~lowres_hps.tracking.bytetrack`: :class:`ByteTracker`, tracking by detection with ByteTrack's two-stage
  association (high-score, then low-score detections) and re-identification across short gaps.
* :mod:`~lowres_hps.tracking.smoothing`: One-Euro filters for arrays and, on the manifold, for rotations, and
  :class:`TrackSmoother` to keep one set per track; defaults tuned on synthetic motion.
* :mod:`~lowres_hps.tracking.ground`: :class:`GroundEstimator`, a static camera's ground plane from the feet of the
  people it sees, and people's positions on it from their boxes.
* :mod:`~lowres_hps.tracking.heading`: :class:`TrackHeadings`, each track's direction of travel on the ground from its
  past positions (causal).
* :mod:`~lowres_hps.tracking.mot`: MOTChallenge files and MOTA / IDF1 scores through ``motmetrics``.

Boxes are ``x, y, w, h`` (top-left corner, width, height) in pixels throughout.
"""
from lowres_hps.tracking.bytetrack import ByteTrackConfig, ByteTracker, Track, iou_matrix
from lowres_hps.tracking.ground import GroundConfig, GroundEstimator, GroundPlane, fit_ground_plane
from lowres_hps.tracking.heading import HeadingConfig, TrackHeadings, line_velocity
from lowres_hps.tracking.kalman import BoxKalmanFilter, xyah_to_xywh, xywh_to_xyah
from lowres_hps.tracking.mot import mot_lines, mot_metrics, mot_rows, read_mot, write_mot
from lowres_hps.tracking.smoothing import (
    DEFAULT_POSITION_CONFIG,
    DEFAULT_ROTATION_CONFIG,
    OneEuroConfig,
    OneEuroFilter,
    RotationOneEuroFilter,
    TrackSmoother,
    TuneResult,
    acceleration_jitter,
    synthetic_rotations,
    synthetic_walk,
    tune_one_euro,
)

__all__ = [
    "BoxKalmanFilter",
    "xywh_to_xyah",
    "xyah_to_xywh",
    "ByteTrackConfig",
    "ByteTracker",
    "Track",
    "iou_matrix",
    "GroundConfig",
    "GroundEstimator",
    "GroundPlane",
    "fit_ground_plane",
    "HeadingConfig",
    "TrackHeadings",
    "line_velocity",
    "OneEuroConfig",
    "DEFAULT_POSITION_CONFIG",
    "DEFAULT_ROTATION_CONFIG",
    "OneEuroFilter",
    "RotationOneEuroFilter",
    "TrackSmoother",
    "acceleration_jitter",
    "synthetic_walk",
    "synthetic_rotations",
    "TuneResult",
    "tune_one_euro",
    "write_mot",
    "read_mot",
    "mot_rows",
    "mot_lines",
    "mot_metrics",
]
