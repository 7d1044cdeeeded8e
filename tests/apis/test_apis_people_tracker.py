"""PeopleTracker: ids across frames for the predictor's people, and their outputs smoothed over time."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.apis.people_tracker import PeopleTracker, TrackingConfig
from lowres_hps.apis.predictor import PersonPrediction
from lowres_hps.body.pose import ANNY_POSE_SPEC
from lowres_hps.tracking import GroundConfig, GroundPlane, acceleration_jitter


def _person(x, y, rng, noise=2.0, body=None, score=0.9):
    keypoints = np.column_stack([x + 10 + rng.normal(0, noise, 17), y + np.linspace(5, 75, 17) + rng.normal(0, noise, 17),
                                 np.full(17, 0.8)])
    return PersonPrediction(bbox=np.array([x, y, 20.0, 80.0]), keypoints=keypoints, score=0.8, box_score=score,
                            body=body)


def _walk(frames=30, seed=0, body=False):
    """Two people walking towards each other in opposite directions (boxes given in a shuffled order)."""
    rng = np.random.default_rng(seed)
    video = []
    for t in range(frames):
        people = [_person(20 + 3 * t, 40, rng, body=_body(rng, t) if body else None),
                  _person(200 - 3 * t, 60, rng, body=_body(rng, t) if body else None)]
        video.append(people[::-1] if t % 2 else people)
    return video


def _body(rng, t):
    rest = ANNY_POSE_SPEC.rest_vector(1, dtype=torch.float64)[0]
    rotations, shape = ANNY_POSE_SPEC.split(rest)
    angle = torch.tensor(0.3 * np.sin(t / 5) + rng.normal(0, 0.05))
    turn = torch.tensor([[torch.cos(angle), 0, torch.sin(angle)], [0, 1, 0], [-torch.sin(angle), 0, torch.cos(angle)]],
                        dtype=torch.float64)
    rotations = rotations.clone()
    rotations[0] = turn
    vector = ANNY_POSE_SPEC.join(rotations, shape + 0.1)
    return {"body_model": "anny", "pose_vector": vector.tolist(), "translation": [0.1 * t, 0.0, 8.0 + rng.normal(0, 0.05)],
            "camera": [1.0, 0.0, 0.0]}


def test_ids_follow_people_through_a_shuffled_order():
    tracker = PeopleTracker(TrackingConfig(smooth=False), fps=25)
    seen: dict[int, list[float]] = {}
    for t, people in enumerate(_walk()):
        for person in tracker.update(t, people):
            seen.setdefault(person.track_id, []).append(person.bbox[1])
    assert sorted(seen) == [1, 2]
    assert {round(float(np.mean(ys))) for ys in seen.values()} == {40, 60}  # each id stays on one person
    assert all(len(ys) == 30 for ys in seen.values())


def test_smoothing_reduces_keypoint_jitter_and_keeps_scores():
    raw, smoothed = {}, {}
    plain, smooth = PeopleTracker(TrackingConfig(smooth=False)), PeopleTracker()
    for t, people in enumerate(_walk(frames=60)):
        for store, tracker in ((raw, plain), (smoothed, smooth)):
            for person in tracker.update(t, people):
                store.setdefault(person.track_id, []).append(person.keypoints)
                assert np.all(person.keypoints[:, 2] == 0.8)
    for track_id in raw:
        before = acceleration_jitter(np.stack(raw[track_id])[:, :, :2], 25)
        after = acceleration_jitter(np.stack(smoothed[track_id])[:, :, :2], 25)
        assert after < 0.6 * before


def test_bodies_are_smoothed_on_the_rotation_manifold():
    _, rest_shape = ANNY_POSE_SPEC.split(ANNY_POSE_SPEC.rest_vector(1, dtype=torch.float64)[0])
    tracker = PeopleTracker(fps=25)
    for t, people in enumerate(_walk(frames=10, body=True)):
        for person in tracker.update(t, people):
            vector = torch.tensor(person.body["pose_vector"], dtype=torch.float64)
            rotations, shape = ANNY_POSE_SPEC.split(vector)
            eye = torch.eye(3, dtype=torch.float64).expand_as(rotations)
            assert torch.allclose(rotations @ rotations.transpose(-1, -2), eye, atol=1e-6)
            assert torch.allclose(shape, rest_shape + 0.1, atol=1e-9)  # a constant shape stays put
            assert len(person.body["translation"]) == 3 and person.body["camera"] == [1.0, 0.0, 0.0]


def test_bad_frame_rate_is_a_clear_error():
    with pytest.raises(ValueError, match="fps"):
        PeopleTracker(fps=0)


def _turned(points, angle):
    """(17, 3) points turned by ``angle`` radians about the vertical axis through their hips."""
    c, s = np.cos(angle), np.sin(angle)
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    root = points[[11, 12]].mean(axis=0)
    return (points - root) @ turn.T + root


def _standing_body(root, facing_x):
    """COCO-17 points of a body at ``root`` whose torso faces +x (``facing_x`` 1) or -x (-1)."""
    points = np.zeros((17, 3))
    points[[5, 6]] = [[0.2, -0.5, 0.0], [-0.2, -0.5, 0.0]]  # facing the camera (-z): left on the image right
    points[[11, 12]] = [[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]
    points[[0]] = [0.0, -0.7, -0.05]
    return _turned(points, -np.pi / 2 * facing_x) + root  # a quarter turn from facing -z: facing +x or -x


def _sideways_walk(facing_x, frames=30, fps=25.0):
    """One person walking towards +x at 1.2 m/s, 8 m away, its body facing +x (1) or -x (-1)."""
    video = []
    for t in range(frames):
        root = np.array([1.2 * t / fps, 0.0, 8.0])
        video.append([PersonPrediction(
            bbox=np.array([100 + 5 * t, 40.0, 20.0, 80.0]), keypoints=np.column_stack([np.zeros((17, 2)), np.ones(17)]),
            score=0.9, keypoints_3d=_standing_body(root, facing_x), body={"translation": root.tolist()})])
    return video


class _Refit:
    """Turns each body round (or not) and counts the calls."""

    def __init__(self, turn=True, angle=np.pi):
        self.turn, self.angle, self.calls = turn, angle, 0

    def __call__(self, image, people):
        self.calls += 1
        angle = self.angle if self.turn else 0.1
        return [PersonPrediction(bbox=p.bbox, keypoints=p.keypoints, score=p.score,
                                 keypoints_3d=_turned(p.keypoints_3d, angle), track_id=p.track_id,
                                 body={**p.body, "left_right_swapped": True}) for p in people]


def _judging(**settings):
    """Motion-judging settings with the bodies' roots as the tracks' positions (these walkers have no ground)."""
    return TrackingConfig(smooth=False, facing_from_motion=True, heading_positions="root", **settings)


def _facing_x(person):
    from lowres_hps.body.keypoints import torso_facing

    return float(torso_facing(torch.as_tensor(person.keypoints_3d))[0])


def test_motion_turns_round_the_bodies_that_face_against_it():
    refit = _Refit()
    tracker = PeopleTracker(_judging(), fps=25, refit=refit)
    image = np.zeros((8, 8, 3), np.uint8)
    facing = [_facing_x(p) for t, people in enumerate(_sideways_walk(-1)) for p in tracker.update(t, people, image)]
    assert facing[0] < -0.99  # no past frames yet: as predicted
    assert all(f > 0.99 for f in facing[-15:])  # walking towards +x: turned to face +x
    assert refit.calls > 0 and tracker.swapped >= 15


def test_bodies_that_face_their_way_or_refits_that_do_not_help_are_kept():
    image = np.zeros((8, 8, 3), np.uint8)
    refit = _Refit()
    tracker = PeopleTracker(_judging(), fps=25, refit=refit)
    facing = [_facing_x(p) for t, people in enumerate(_sideways_walk(1)) for p in tracker.update(t, people, image)]
    assert refit.calls == 0 and all(f > 0.99 for f in facing)
    useless = _Refit(turn=False)
    tracker = PeopleTracker(_judging(), fps=25, refit=useless)
    facing = [_facing_x(p) for t, people in enumerate(_sideways_walk(-1)) for p in tracker.update(t, people, image)]
    assert useless.calls > 0 and tracker.swapped == 0 and all(f < -0.99 for f in facing)


def test_only_walkers_along_the_line_of_sight_are_judged_when_asked():
    image = np.zeros((8, 8, 3), np.uint8)
    refit = _Refit()
    config = _judging(judge_within_deg=60.0)
    tracker = PeopleTracker(config, fps=25, refit=refit)
    for t, people in enumerate(_sideways_walk(-1)):  # crossing the view, 8 m away: 81-90 degrees from the sight line
        tracker.update(t, people, image)
    assert refit.calls == 0
    config = _judging(judge_within_deg=85.0)
    tracker = PeopleTracker(config, fps=25, refit=refit)
    for t, people in enumerate(_sideways_walk(-1)):  # near the end the walk is within 85 degrees of it
        tracker.update(t, people, image)
    assert refit.calls > 0


def test_a_margin_keeps_only_clear_turns():
    image = np.zeros((8, 8, 3), np.uint8)

    def turned_count(margin, angle):
        tracker = PeopleTracker(_judging(judge_margin_deg=margin),
                                fps=25, refit=_Refit(angle=angle))
        for t, people in enumerate(_sideways_walk(-1)):
            tracker.update(t, people, image)
        return tracker.swapped

    assert turned_count(0, 0.75 * np.pi) > 0 and turned_count(30, 0.75 * np.pi) > 0  # ends 45 degrees off the walk
    assert turned_count(50, 0.75 * np.pi) == 0  # not within 40 degrees of it: kept as it was


def test_motion_judging_needs_a_refit_and_a_torso():
    with pytest.raises(ValueError, match="refit"):
        PeopleTracker(_judging())
    with pytest.raises(ValueError, match="shoulders and hips"):
        PeopleTracker(_judging(), refit=_Refit(), convention="anny104")


# A static camera 5 m up, looking 20 degrees down: people stand on its ground plane.
_GROUND = GroundPlane(0.0, -np.tan(np.radians(20.0)), 5.0 / np.cos(np.radians(20.0)))
_FOCAL, _CENTRE = 800.0, np.array([320.0, 240.0])


def _on_ground(position, facing, depth_error, tag):
    """A person standing at ground coordinates ``position`` (across, away), facing the unit ground direction
    ``facing``; their 3D keypoints are wrong along the camera rays by ``depth_error`` (1: right), as a depth from
    the person's size is, while their box is right."""
    up = _GROUND.up
    across, away = _GROUND.basis()
    foot = -_GROUND.height * up + position[0] * across + position[1] * away
    front = facing[0] * across + facing[1] * away
    left = np.cross(up, front)
    points = np.tile(foot, (17, 1))
    points[[5, 6]] = [foot + 1.4 * up + 0.2 * left, foot + 1.4 * up - 0.2 * left]
    points[[11, 12]] = [foot + 0.9 * up + 0.1 * left, foot + 0.9 * up - 0.1 * left]
    points[[15, 16]] = [foot + 0.1 * left, foot - 0.1 * left]
    points[0] = foot + 1.6 * up + 0.1 * front
    pixels = _FOCAL * np.stack([foot, foot + 1.75 * up])[:, :2] / np.stack([foot, foot + 1.75 * up])[:, 2:] + _CENTRE
    tall = pixels[0, 1] - pixels[1, 1]
    body = {"translation": (points[[11, 12]].mean(axis=0) * depth_error).tolist(), "focal": _FOCAL,
            "principal_point": _CENTRE.tolist(), "tag": tag, "position": list(position), "facing": list(facing),
            "depth_error": depth_error}
    return PersonPrediction(bbox=np.array([pixels[0, 0] - 0.2 * tall, pixels[1, 1], 0.4 * tall, tall]),
                            keypoints=np.column_stack([np.zeros((17, 2)), np.ones(17)]), score=0.9,
                            keypoints_3d=points * depth_error, body=body)


def _ground_refit(image, people):
    """Each body turned round, as the left-right exchanged fit of a body facing the wrong way would be."""
    turned = []
    for p in people:
        b = p.body
        again = _on_ground(b["position"], -np.asarray(b["facing"]), b["depth_error"], b["tag"])
        body = {**again.body, "left_right_swapped": True}
        turned.append(PersonPrediction(bbox=p.bbox, keypoints=p.keypoints, score=p.score, track_id=p.track_id,
                                       keypoints_3d=again.keypoints_3d, body=body))
    return turned


def _plaza(frames=60, fps=25.0, seed=0):
    """Five people standing still and one walking diagonally away at 1.3 m/s with their body facing backwards,
    every depth wrong by ~15% from frame to frame."""
    rng = np.random.default_rng(seed)
    standing = [((-6.0, 10.0), (0.0, -1.0)), ((5.0, 14.0), (1.0, 0.0)), ((-2.0, 20.0), (0.0, 1.0)),
                ((7.0, 25.0), (-1.0, 0.0)), ((-9.0, 30.0), (0.6, -0.8))]
    way = np.array([1.0, 1.0]) / np.sqrt(2.0)
    video = []
    for t in range(frames):
        errors = 1 + 0.15 * rng.standard_normal(len(standing) + 1)
        people = [_on_ground(np.array(at), np.array(facing), errors[n], f"standing{n}")
                  for n, (at, facing) in enumerate(standing)]
        people.append(_on_ground(np.array([-3.0, 10.0]) + 1.3 * t / fps * way, -way, errors[-1], "walker"))
        video.append(people)
    return video, way


def _run_plaza(positions):
    config = TrackingConfig(smooth=False, facing_from_motion=True, heading_positions=positions,
                            ground=GroundConfig(min_points=20))
    tracker = PeopleTracker(config, fps=25, refit=_ground_refit)
    video, way = _plaza()
    image = np.zeros((8, 8, 3), np.uint8)
    found = [p for t, people in enumerate(video) for p in tracker.update(t, people, image)]
    return tracker, found, way


def test_ground_positions_judge_walkers_and_leave_standing_people_alone():
    tracker, found, way = _run_plaza("ground")
    plane = tracker.ground.plane
    assert plane is not None and plane.tilt_deg == pytest.approx(20.0, abs=3.0)
    walker = [p for p in found if p.body["tag"] == "walker"]
    assert all(np.asarray(p.body["facing"]) @ way > 0.99 for p in walker[-20:])  # turned to face where it goes
    assert not any(p.body.get("left_right_swapped") for p in found if p.body["tag"] != "walker")


def test_depth_from_size_makes_standing_people_walk():
    """The reason for ground positions: with the bodies' own roots, depth jitter gives standing people a direction
    of travel, and the judge turns them round."""
    tracker, found, _ = _run_plaza("root")
    assert any(p.body.get("left_right_swapped") for p in found if p.body["tag"] != "walker")


def test_heading_positions_are_checked():
    with pytest.raises(ValueError, match="heading_positions"):
        TrackingConfig(heading_positions="feet")
