"""TrackHeadings: the direction of travel from past positions only, none for standing or short tracks; line_velocity."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.tracking.heading import HeadingConfig, TrackHeadings, line_velocity


def test_line_velocity_of_a_straight_walk():
    times = np.arange(10) / 25
    positions = np.column_stack([1.0 + 1.2 * times, 5.0 - 0.5 * times])
    np.testing.assert_allclose(line_velocity(times, positions), [1.2, -0.5], atol=1e-12)
    with pytest.raises(ValueError, match="times"):
        line_velocity(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        line_velocity(np.zeros(3), np.zeros((4, 2)))


def test_a_walking_track_gets_its_direction_from_past_frames_only():
    rng = np.random.default_rng(0)
    headings = TrackHeadings(HeadingConfig(window_s=1.0, min_frames=8, min_speed=0.5))
    fps = 25.0
    for frame in range(40):
        t = frame / fps
        if frame >= 30:  # a full window of walking towards +x and away from the camera
            direction = headings.heading(1, t)
            assert direction is not None
            np.testing.assert_allclose(np.linalg.norm(direction), 1.0)
            assert direction @ np.array([0.8, 0.6]) > 0.99
        headings.add(1, t, np.array([1.2 * t, 6.0 + 0.9 * t]) + rng.normal(0, 0.05, 2))
    # The first frame has no past; a track never seen has none either.
    fresh = TrackHeadings()
    assert fresh.heading(1, 0.0) is None
    fresh.add(1, 0.0, np.zeros(2))
    assert fresh.heading(1, 0.04) is None and fresh.heading(2, 0.04) is None


def test_standing_people_with_jittery_depth_get_no_heading():
    rng = np.random.default_rng(1)
    headings = TrackHeadings()  # the defaults: 1.5 s, 0.5 m/s
    for frame in range(60):
        headings.add(7, frame / 25, np.array([0.0, 8.0]) + rng.normal(0, [0.02, 0.2]))
    assert headings.heading(7, 60 / 25) is None


def test_old_positions_and_lost_tracks_are_forgotten():
    headings = TrackHeadings(HeadingConfig(window_s=1.0, min_frames=3, min_speed=0.1))
    for frame in range(10):
        headings.add(1, frame / 10, np.array([frame / 10, 0.0]))
    assert headings.heading(1, 1.0) is not None
    headings.add(2, 5.0, np.zeros(2))  # four seconds later: track 1 left the window
    assert headings.heading(1, 5.0) is None and 1 not in headings._history
    with pytest.raises(ValueError, match="ground position"):
        headings.add(3, 5.1, np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="min_frames"):
        HeadingConfig(min_frames=1)


def test_recorded_values_are_placed_on_the_ground_when_asked():
    """A track can record what only later becomes a ground position (e.g. foot rays before the ground is known)."""
    headings = TrackHeadings(HeadingConfig(min_frames=8))
    for k in range(20):
        headings.add(1, k / 10, np.array([k / 10, 0.0]))  # time-stamped values, not yet positions
    walking_away = lambda values: np.column_stack([np.zeros(len(values)), 1.3 * values[:, 0]])  # noqa: E731
    np.testing.assert_allclose(headings.heading(1, 2.0, walking_away), [0.0, 1.0])
    half_lost = lambda values: np.where(values[:, :1] < 1.4, np.nan, walking_away(values))  # noqa: E731
    assert headings.heading(1, 2.0, half_lost) is None  # 6 of the 15 in the window are placed: too few
    np.testing.assert_allclose(headings.heading(1, 2.0), [1.0, 0.0])  # as recorded
