"""People tracked across the frames of a video: ids for the predictor's people, and their outputs smoothed.

:class:`PeopleTracker` takes each frame's :class:`~lowres_hps.apis.predictor.PersonPrediction` list (people from a
detector) and returns the people of confirmed tracks with a ``track_id`` (:class:`~lowres_hps.tracking.ByteTracker`:
high-score boxes first, then low-score ones, a constant-velocity Kalman filter, re-identification across short
gaps) and, with smoothing, One-Euro-filtered outputs per track (:class:`~lowres_hps.tracking.TrackSmoother`):

* 2D keypoints and the projected 3D keypoints (px; the package's position defaults, tuned on synthetic walking);
* 3D keypoints and the body's root translation (metres: ``beta`` scaled by :data:`PIXELS_PER_METRE`);
* the body's joint rotations on the rotation manifold (the pose vector's 6D rotations as matrices), and its shape.

With ``facing_from_motion``, a walking track's direction of travel judges which way its bodies face
(:class:`~lowres_hps.tracking.TrackHeadings`, from earlier frames only): a body whose torso faces more than 90
degrees away from where its track is going is fitted again to its 2D keypoints with left and right exchanged (a
``refit`` such as :meth:`~lowres_hps.apis.predictor.Predictor.refit_left_right`), and the new fit is kept when it
faces within 90 degrees of the direction of travel. Tracks move on the camera's ground plane, fitted to the feet of
the people seen so far (:class:`~lowres_hps.tracking.GroundEstimator`; no judging until it has seen enough), each
person where the bottom of their box meets it: steadier than the bodies' depth, which comes from their size. The 2D
default labels many people seen from behind as if seen from the front, and the keypoint fit then turns their bodies
around; people mostly walk forwards
(benchmarks/README.md, "Walkers in a video").

Meshes (``vertices``) are those of the unsmoothed body. People not on a confirmed track in a frame (a new person's
first frames, boxes the tracker rejects) are left out of that frame's result, as trackers report.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lowres_hps.body.keypoints import get_convention, ground_facing, torso_facing
from lowres_hps.body.pose import get_pose_spec
from lowres_hps.tracking import (
    DEFAULT_POSITION_CONFIG,
    DEFAULT_ROTATION_CONFIG,
    ByteTrackConfig,
    ByteTracker,
    GroundConfig,
    GroundEstimator,
    GroundPlane,
    HeadingConfig,
    OneEuroConfig,
    TrackHeadings,
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
        facing_from_motion: let each walking track's direction of travel decide which way its bodies face (needs
            a ``refit`` in :class:`PeopleTracker`).
        heading: how a track's direction of travel is found (:class:`~lowres_hps.tracking.HeadingConfig`).
        judge_within_deg: judge only tracks whose direction of travel lies within this many degrees of the line of
            sight (walking towards or away from the camera, where front and back are confused); 90 judges every
            walking track.
        judge_margin_deg: a body is refitted only when it faces more than ``90 + margin`` degrees from its track's
            direction of travel, and the refit is kept only when it faces within ``90 - margin``: bodies seen side-on,
            whose facing wavers about 90 degrees, are left alone.
        heading_positions: where a track is, for its direction of travel: ``"ground"`` (where the bottom of its box
            meets the ground plane fitted to the feet seen so far; for static cameras) or ``"root"`` (the body's root
            in the camera's x-z plane, its depth from its size: noisy for small people).
        ground: how the ground plane is fitted (:class:`~lowres_hps.tracking.GroundConfig`).
    """

    tracker: ByteTrackConfig = field(default_factory=ByteTrackConfig)
    smooth: bool = True
    position: OneEuroConfig = DEFAULT_POSITION_CONFIG
    rotation: OneEuroConfig = DEFAULT_ROTATION_CONFIG
    facing_from_motion: bool = False
    heading: HeadingConfig = field(default_factory=HeadingConfig)
    judge_within_deg: float = 90.0
    judge_margin_deg: float = 0.0
    heading_positions: str = "ground"
    ground: GroundConfig = field(default_factory=GroundConfig)

    def __post_init__(self) -> None:
        if self.heading_positions not in HEADING_POSITIONS:
            raise ValueError(f"heading_positions must be one of {HEADING_POSITIONS}, got {self.heading_positions!r}")


HEADING_POSITIONS = ("ground", "root")


class PeopleTracker:
    """Ids and smoothed outputs for the people of successive frames of one video.

    Args:
        config: :class:`TrackingConfig`.
        fps: the video's frame rate (the smoothing filters' and the headings' clock).
        refit: ``(image, people) -> people`` with bodies fitted to left-right exchanged keypoints
            (:meth:`~lowres_hps.apis.predictor.Predictor.refit_left_right`), for ``facing_from_motion``.
        convention: keypoint convention of the people's ``keypoints_3d`` (their torso says which way they face).
    """

    def __init__(self, config: TrackingConfig | None = None, fps: float = 25.0,
                 refit: Callable[[np.ndarray, list], list] | None = None, convention: str = "coco17") -> None:
        if not fps > 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be positive and finite, got {fps}")
        self.config = config or TrackingConfig()
        if self.config.facing_from_motion:
            if refit is None:
                raise ValueError("facing_from_motion needs a refit (e.g. Predictor.refit_left_right)")
            names = get_convention(convention).names
            needed = ["left_shoulder", "right_shoulder", "left_hip", "right_hip"]
            if self.config.heading_positions == "ground":
                needed += ["left_ankle", "right_ankle"]
            missing = [n for n in needed if n not in names]
            if missing:
                raise ValueError(f"facing_from_motion needs shoulders and hips (and ankles, for ground positions) in "
                                 f"the 3D keypoints; {convention} lacks {missing}")
        self.refit, self.convention = refit, convention
        self.headings = TrackHeadings(self.config.heading)
        self.ground = (GroundEstimator(self.config.ground)
                       if self.config.facing_from_motion and self.config.heading_positions == "ground" else None)
        self.swapped = 0  # bodies turned round by their track's motion so far
        self.fps = float(fps)
        self.tracker = ByteTracker(self.config.tracker)
        metric = dataclasses.replace(self.config.position, beta=self.config.position.beta * PIXELS_PER_METRE)
        self.smoother = TrackSmoother(self.config.position, self.config.rotation, rotation_fields=("rotations",),
                                      field_configs={"keypoints_3d": metric, "translation": metric})

    def update(self, frame_index: int, people: list, image: np.ndarray | None = None) -> list:
        """The people of frame ``frame_index`` (0-based, increasing) that are on confirmed tracks, in track-id
        order, each with ``track_id`` set, with ``facing_from_motion`` its body judged by its track's motion
        (``image``, the frame, is what is fitted again), and with smoothing its outputs smoothed."""
        boxes = np.array([p.bbox for p in people], np.float64).reshape(-1, 4)
        scores = np.array([p.box_score for p in people], np.float64)
        tracks = self.tracker.update(boxes, scores, frame_index)
        tracked = []
        for track in tracks:
            tracked.append(dataclasses.replace(people[track.detection_index], track_id=int(track.track_id)))
        if self.config.facing_from_motion:
            tracked = self._judged_by_motion(frame_index / self.fps, tracked, image)
        if self.config.smooth:
            tracked = [self._smoothed(person, frame_index / self.fps) for person in tracked]
        return tracked

    def _ground_facing(self, person, plane: GroundPlane | None) -> np.ndarray | None:
        """(2,) unit direction the person's torso faces on the ground (the camera's x-z plane for ``"root"``
        positions), or None without 3D keypoints or a ground plane."""
        if person.keypoints_3d is None:
            return None
        points = torch.as_tensor(np.asarray(person.keypoints_3d, np.float64))
        if self.ground is None:
            ground = ground_facing(points, self.convention).numpy()
        elif plane is None:
            return None
        else:
            ground = plane.direction(torso_facing(points, self.convention).numpy())
        return ground if ground.any() else None

    def _position(self, person, plane: GroundPlane | None) -> np.ndarray | None:
        """(2,) where the person is on the ground (metres), or None when that cannot be told."""
        if self.ground is None:
            body = person.body or {}
            if "translation" not in body:
                return None
            position = np.asarray(body["translation"], np.float64)[[0, 2]]
        else:
            ray = self._foot_ray(person)
            if plane is None or ray is None:
                return None
            position = self._rays_to_ground(plane)(ray[None])[0]
        return position if np.isfinite(position).all() else None

    @staticmethod
    def _foot_ray(person) -> np.ndarray | None:
        """(2,) the camera ray through the bottom-centre of the person's box, ``((u - cx) / f, (v - cy) / f)``: what
        a track records with ground positions, placed on the ground when its heading is asked for (so a plane fitted
        later, or refitted, places all of it)."""
        body = person.body or {}
        if "focal" not in body or "principal_point" not in body:
            return None
        x, y, w, h = np.asarray(person.bbox, np.float64)
        ray = (np.array([x + w / 2, y + h]) - np.asarray(body["principal_point"], np.float64)) / float(body["focal"])
        return ray if np.isfinite(ray).all() else None

    @staticmethod
    def _rays_to_ground(plane: GroundPlane):
        """(T, 2) foot rays -> (T, 2) ground positions on ``plane`` (NaN above its horizon)."""
        return lambda rays: plane.coordinates(plane.intersect(rays, 1.0, (0.0, 0.0)))

    def _update_ground(self, people: list) -> GroundPlane | None:
        """Add the people's feet (their 3D ankles' midpoint) to the ground's estimate."""
        if self.ground is None:
            return None
        conv = get_convention(self.convention)
        ankles = [conv.index("left_ankle"), conv.index("right_ankle")]
        bodies = [p for p in people if p.keypoints_3d is not None]
        if bodies:
            feet = np.stack([np.asarray(p.keypoints_3d, np.float64)[ankles].mean(axis=0) for p in bodies])
            self.ground.add(feet, np.array([float(p.bbox[3]) for p in bodies]))
        return self.ground.plane

    def _along_line_of_sight(self, position: np.ndarray | None, heading: np.ndarray) -> bool:
        """Whether ``heading`` lies within ``judge_within_deg`` of the line from the camera to ``position`` (both on
        the ground, where the camera stands at the origin)."""
        if self.config.judge_within_deg >= 90.0:
            return True
        norm = 0.0 if position is None else float(np.linalg.norm(position))
        return norm > 0 and abs(float(position @ heading)) / norm >= np.cos(np.radians(self.config.judge_within_deg))

    def _judged_by_motion(self, t: float, people: list, image: np.ndarray | None) -> list:
        """``people`` with each body that faces against its track's direction of travel replaced by its left-right
        exchanged fit when that faces with it (within 90 degrees); then each track's ground position recorded."""
        plane = self._update_ground(people)
        flagged = []
        margin = float(np.sin(np.radians(self.config.judge_margin_deg)))  # cos(90 + m) = -sin(m)
        to_ground = None if plane is None else self._rays_to_ground(plane)
        for n, person in enumerate(people):
            heading = None
            if self.ground is None or plane is not None:
                heading = self.headings.heading(person.track_id, t, to_ground)
            if heading is not None and not self._along_line_of_sight(self._position(person, plane), heading):
                heading = None
            facing = None if heading is None else self._ground_facing(person, plane)
            if facing is not None and float(facing @ heading) < -margin:
                flagged.append((n, heading, facing))
        if flagged and image is not None:
            people = list(people)
            again = self.refit(image, [people[n] for n, _, _ in flagged])
            for (n, heading, facing), other in zip(flagged, again):
                turned = self._ground_facing(other, plane)
                if turned is not None and float(turned @ heading) > margin:
                    people[n] = other
                    self.swapped += 1
        for person in people:  # ground positions: the foot rays, placed on the ground when a heading is asked for
            position = self._position(person, plane) if self.ground is None else self._foot_ray(person)
            if position is not None:
                self.headings.add(person.track_id, t, position)
        return people

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
