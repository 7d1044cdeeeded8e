"""ByteTracker: ids through crossings and gaps, the low-score stage, confirmation, and iou_matrix."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.tracking.bytetrack import ByteTrackConfig, ByteTracker, _gated_assignment, iou_matrix


def walker(frame: int, x0: float, vx: float, y: float = 100.0) -> np.ndarray:
    """A 40 x 100 px person walking sideways."""
    return np.array([x0 + vx * frame, y, 40.0, 100.0])


def ids_by_person(outputs: list[list], people_per_frame: list[list[int]]) -> dict[int, set[int]]:
    """{person: the track ids it got}, from each frame's tracks and which person each detection was."""
    got: dict[int, set[int]] = {}
    for tracks, people in zip(outputs, people_per_frame):
        for track in tracks:
            got.setdefault(people[track.detection_index], set()).add(track.track_id)
    return got


def test_iou_matrix_values():
    a = np.array([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 5.0, 5.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0], [50.0, 50.0, 1.0, 1.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
    assert iou_matrix(np.array([[0.0, 0, 0, 0]]), np.array([[0.0, 0, 0, 0]]))[0, 0] == 0.0
    with pytest.raises(ValueError, match="a must be"):
        iou_matrix(np.zeros((2, 3)), b)


def test_gated_assignment_prefers_one_good_match_to_two_poor_ones():
    iou = np.array([[0.9, 0.25], [0.25, 0.0]])
    assert _gated_assignment(iou, 0.2) == [(0, 0)]  # like lapjv's cost_limit, not as many matches as possible
    assert sorted(_gated_assignment(np.array([[0.1, 0.6], [0.7, 0.1]]), 0.2)) == [(0, 1), (1, 0)]
    assert _gated_assignment(np.array([[0.19]]), 0.2) == []
    assert _gated_assignment(np.zeros((0, 3)), 0.2) == []


def test_crossing_people_keep_their_ids():
    rng = np.random.default_rng(0)
    tracker = ByteTracker()
    outputs, people = [], []
    for frame in range(50):
        boxes = np.stack([walker(frame, 0.0, 6.0), walker(frame, 300.0, -6.0, y=105.0)])
        boxes += rng.normal(0, 0.5, boxes.shape) * [1, 1, 0, 0]
        order = rng.permutation(2)  # the detector's order says nothing about who is who
        outputs.append(tracker.update(boxes[order], np.array([0.9, 0.85])[order]))
        people.append(list(order))
        assert len(outputs[-1]) == 2
    got = ids_by_person(outputs, people)
    assert got[0] == {1} and got[1] == {2}


def test_reported_box_is_the_detection():
    tracker = ByteTracker()
    for frame in range(5):
        boxes = np.stack([walker(frame, 0.0, 5.0), walker(frame, 500.0, 0.0)])
        tracks = tracker.update(boxes, np.array([0.9, 0.8]))
    assert [t.track_id for t in tracks] == [1, 2]
    for track in tracks:
        np.testing.assert_array_equal(track.box, boxes[track.detection_index])
        assert track.score == [0.9, 0.8][track.detection_index]
        assert track.age == 5 and track.hits == 5
        assert track.filtered_box.shape == (4,)


@pytest.mark.parametrize("gap, max_lost, same_id", [(5, 30, True), (5, 3, False), (5, 5, True), (6, 5, False)])
def test_a_person_missed_for_a_while(gap, max_lost, same_id):
    tracker = ByteTracker(ByteTrackConfig(max_lost_frames=max_lost))
    seen_ids = []
    for frame in range(10 + gap + 5):
        if 10 <= frame < 10 + gap:
            tracks = tracker.update(np.zeros((0, 4)), np.zeros(0))  # not detected at all
            assert tracks == []
            continue
        tracks = tracker.update(walker(frame, 0.0, 4.0)[None], np.array([0.9]))
        seen_ids.append([t.track_id for t in tracks])
    assert seen_ids[9] == [1]
    after = seen_ids[11]  # one frame after the return: a new track needs min_hits=2 frames
    assert after == ([1] if same_id else [2])
    if not same_id:
        assert seen_ids[10] == []  # the returning person is a tentative new track for one frame


def test_frame_index_gaps_count_as_missed_frames():
    tracker = ByteTracker(ByteTrackConfig(max_lost_frames=3))
    for frame in range(5):
        tracker.update(walker(frame, 0.0, 4.0)[None], np.array([0.9]), frame_index=frame)
    assert [t.track_id for t in tracker.update(walker(7, 0.0, 4.0)[None], np.array([0.9]), frame_index=7)] == [1]
    tracker.update(np.zeros((0, 4)), np.zeros(0), frame_index=8)
    assert tracker.update(walker(20, 0.0, 4.0)[None], np.array([0.9]), frame_index=20) == []  # lost for too long
    assert [t.track_id for t in tracker.update(walker(21, 0.0, 4.0)[None], np.array([0.9]))] == [2]
    with pytest.raises(ValueError, match="frame_index must increase"):
        tracker.update(np.zeros((0, 4)), np.zeros(0), frame_index=21)


def test_low_score_detections_continue_but_never_start_tracks():
    tracker = ByteTracker()
    for frame in range(5):
        tracker.update(walker(frame, 0.0, 5.0)[None], np.array([0.9]))
    # Person 0 is now half occluded (low scores); person 1 appears, only ever detected at low scores.
    for frame in range(5, 25):
        boxes = np.stack([walker(frame, 0.0, 5.0), walker(frame, 400.0, 0.0)])
        tracks = tracker.update(boxes, np.array([0.3, 0.4]))
        assert [(t.track_id, t.detection_index) for t in tracks] == [(1, 0)]
        assert tracks[0].score == pytest.approx(0.3)
    # Detections under low_score are dropped altogether: the track goes lost.
    assert tracker.update(walker(25, 0.0, 5.0)[None], np.array([0.05])) == []


def test_a_lost_track_is_not_rescued_by_a_low_score_detection():
    tracker = ByteTracker()
    for frame in range(5):
        tracker.update(walker(frame, 0.0, 5.0)[None], np.array([0.9]))
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert tracker.update(walker(6, 0.0, 5.0)[None], np.array([0.3])) == []  # stage 2 is for tracked tracks only
    assert [t.track_id for t in tracker.update(walker(7, 0.0, 5.0)[None], np.array([0.9]))] == [1]


def test_new_tracks_need_min_hits_and_a_confident_start():
    tracker = ByteTracker(ByteTrackConfig(min_hits=3))
    # First frame: confirmed at once.
    assert [t.track_id for t in tracker.update(walker(0, 0.0, 5.0)[None], np.array([0.9]))] == [1]
    reported = []
    for frame in range(1, 6):
        boxes = np.stack([walker(frame, 0.0, 5.0), walker(frame, 400.0, -3.0), walker(frame, 800.0, 0.0)])
        # Person 2 scores between high_score and new_track_score: high enough to match, not to start a track.
        tracks = tracker.update(boxes, np.array([0.9, 0.8, 0.55]))
        reported.append(sorted((t.track_id, t.detection_index) for t in tracks))
    assert reported[0] == [(1, 0)] and reported[1] == [(1, 0)]  # person 1: tentative for two frames
    assert reported[2] == [(1, 0), (2, 1)] and reported[4] == [(1, 0), (2, 1)]


def test_ids_are_never_reused_and_reset_restarts():
    tracker = ByteTracker(ByteTrackConfig(max_lost_frames=1))
    tracker.update(walker(0, 0.0, 5.0)[None], np.array([0.9]))
    for _ in range(3):
        tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert tracker.num_tracks == 0
    for frame in range(2):
        tracks = tracker.update(walker(frame, 0.0, 5.0)[None], np.array([0.9]))
    assert [t.track_id for t in tracks] == [2]
    tracker.reset()
    assert tracker.frame_index is None
    assert [t.track_id for t in tracker.update(walker(0, 0.0, 5.0)[None], np.array([0.9]))] == [1]


def test_degenerate_boxes_are_ignored():
    tracker = ByteTracker()
    tracks = tracker.update(np.array([[0.0, 0.0, 0.0, 10.0], [10.0, 10.0, 20.0, 40.0]]), np.array([0.9, 0.9]))
    assert [t.detection_index for t in tracks] == [1]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="low_score"):
        ByteTrackConfig(low_score=0.6)
    with pytest.raises(ValueError, match="match_iou_high"):
        ByteTrackConfig(match_iou_high=0.0)
    with pytest.raises(ValueError, match="max_lost_frames"):
        ByteTrackConfig(max_lost_frames=-1)
    with pytest.raises(ValueError, match="min_hits"):
        ByteTrackConfig(min_hits=0)
    tracker = ByteTracker()
    with pytest.raises(ValueError, match="boxes must be"):
        tracker.update(np.zeros((2, 5)), np.zeros(2))
    with pytest.raises(ValueError, match="scores must be"):
        tracker.update(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="boxes must be finite"):
        tracker.update(np.array([[0.0, np.nan, 1.0, 1.0]]), np.ones(1))
