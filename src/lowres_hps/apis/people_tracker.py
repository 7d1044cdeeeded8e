"""People tracked across the frames of a video: ids for the predictor's people, and their outputs smoothed.

:class:`PeopleTracker` takes each frame's :class:`~lowres_hps.apis.predictor.PersonPrediction` list (people from a
detector) and returns the people of confirmed tracks with a ``track_id`` (:class:`~lowres_hps.tracking.ByteTracker`:
high-score boxes first, then low-score ones, a constant-velocity Kalman filter, re-identification across short
gaps) and, with smoothing, One-Euro-filtered outputs per track (:class:`~lowres_hps.tracking.TrackSmoother`):

* 2D keypoints and the projected 3D keypoints (px; the package's position defaults, tuned on synthetic walking);
* 3D keypoints and the body's root translation (metres: ``beta`` scaled by :data:`PIXELS_PER_METRE`);
* the body's joint rotations on the rotation manifold (the pose vector's 6D rotations as matrices), and its shape.

Meshes (``vertices``) are those of the unsmoothed body. People not on a confirmed track in a frame (a new person's
first frames, boxes the tracker rejects) are left out of that frame's result, as trackers report.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lowres_hps.body.pose import get_pose_spec
from lowres_hps.tracking import (
    DEFAULT_POSITION_CONFIG,
    DEFAULT_ROTATION_CONFIG,
    ByteTrackConfig,
    ByteTracker,
    OneEuroConfig,
    TrackSmoother,
)

__all__ = ["TrackingConfig", "PeopleTracker", "PIXELS_PER_METRE"]

PIXELS_PER_METRE = 60.0
"""Scale of the metric fields' ``beta`` against the pixel one: a person 100 px tall is about 60 px per metre
(``lowres_hps.tracking.smoothing``'s note)."""


@dataclass
class TrackingConfig:
    """Tracking and smoothing settings of :class:`PeopleTracker`.

    Attributes:
        tracker: :class:`~lowres_hps.tracking.ByteTrackConfig` (score thresholds, IoU gates, gap length).
        smooth: One-Euro smoothing of the tracked people's outputs.
        position: One-Euro parameters of pixel fields (``beta`` per px/s).
        rotation: One-Euro parameters of joint rotations (``beta`` per rad/s).
    """

    tracker: ByteTrackConfig = field(default_factory=ByteTrackConfig)
    smooth: bool = True
    position: OneEuroConfig = DEFAULT_POSITION_CONFIG
    rotation: OneEuroConfig = DEFAULT_ROTATION_CONFIG


class PeopleTracker:
    """Ids and smoothed outputs for the people of successive frames of one video.

    Args:
        config: :class:`TrackingConfig`.
        fps: the video's frame rate (the smoothing filters' clock).
    """

    def __init__(self, config: TrackingConfig | None = None, fps: float = 25.0) -> None:
        if not fps > 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be positive and finite, got {fps}")
        self.config = config or TrackingConfig()
        self.fps = float(fps)
        self.tracker = ByteTracker(self.config.tracker)
        metric = dataclasses.replace(self.config.position, beta=self.config.position.beta * PIXELS_PER_METRE)
        self.smoother = TrackSmoother(self.config.position, self.config.rotation, rotation_fields=("rotations",),
                                      field_configs={"keypoints_3d": metric, "translation": metric})

    def update(self, frame_index: int, people: list) -> list:
        """The people of frame ``frame_index`` (0-based, increasing) that are on confirmed tracks, in track-id
        order, each with ``track_id`` set and, with smoothing, its outputs smoothed."""
        boxes = np.array([p.bbox for p in people], np.float64).reshape(-1, 4)
        scores = np.array([p.box_score for p in people], np.float64)
        tracks = self.tracker.update(boxes, scores, frame_index)
        tracked = []
        for track in tracks:
            person = dataclasses.replace(people[track.detection_index], track_id=int(track.track_id))
            if self.config.smooth:
                person = self._smoothed(person, frame_index / self.fps)
            tracked.append(person)
        return tracked

    def _smoothed(self, person, t: float):
        fields: dict[str, Any] = {"keypoints": person.keypoints[:, :2],
                                  "keypoints_3d": person.keypoints_3d,
                                  "keypoints_3d_projected": person.keypoints_3d_projected}
        body, spec = person.body, None
        if body is not None:
            spec = get_pose_spec(body["body_model"])
            rotations, shape = spec.split(torch.as_tensor(body["pose_vector"], dtype=torch.float64))
            fields.update(rotations=rotations.numpy(), shape=shape.numpy(),
                          translation=np.asarray(body["translation"], np.float64))
        out = self.smoother.smooth(person.track_id, t, **fields)
        keypoints = np.column_stack([out["keypoints"], person.keypoints[:, 2]])
        changes: dict[str, Any] = {"keypoints": keypoints, "keypoints_3d": out["keypoints_3d"],
                                   "keypoints_3d_projected": out["keypoints_3d_projected"]}
        if body is not None:
            vector = spec.join(torch.from_numpy(out["rotations"]), torch.from_numpy(out["shape"]))
            changes["body"] = {**body, "pose_vector": vector.tolist(), "translation": out["translation"].tolist()}
        return dataclasses.replace(person, **changes)
