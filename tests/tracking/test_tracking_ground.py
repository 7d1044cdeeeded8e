import numpy as np
import pytest

from lowres_hps.tracking import GroundConfig, GroundEstimator, GroundPlane, fit_ground_plane

HEIGHT, TILT = 5.0, np.radians(20.0)  # a camera 5 m up, looking 20 degrees down
TRUE = GroundPlane(0.0, -np.tan(TILT), HEIGHT / np.cos(TILT))
FOCAL, CENTRE = 800.0, np.array([320.0, 240.0])


def _ground_points(count, rng):
    """(count, 3) camera points on TRUE, 8-60 m away, within the view."""
    z = rng.uniform(8.0, 60.0, count)
    x = rng.uniform(-0.35, 0.35, count) * z
    return np.column_stack([x, TRUE.a * x + TRUE.b * z + TRUE.c, z])


def test_the_plane_of_feet_with_size_depth_noise_and_outliers_is_found():
    rng = np.random.default_rng(0)
    feet = _ground_points(400, rng)
    feet *= 1 + 0.15 * rng.standard_normal((400, 1))  # depth from size: wrong along the ray by ~15%
    feet[:20] *= rng.uniform(2.0, 3.0, (20, 1))  # fits gone wrong
    feet[20:30, 1] -= 1.5  # people on a step
    plane = fit_ground_plane(feet)
    assert plane.tilt_deg == pytest.approx(20.0, abs=1.5)
    assert plane.height == pytest.approx(HEIGHT, rel=0.05)
    assert TRUE.tilt_deg == pytest.approx(20.0) and TRUE.height == pytest.approx(HEIGHT)


def test_rays_meet_the_plane_where_the_points_are():
    rng = np.random.default_rng(1)
    points = _ground_points(50, rng)
    pixels = FOCAL * points[:, :2] / points[:, 2:] + CENTRE
    assert np.allclose(TRUE.intersect(pixels, FOCAL, CENTRE), points)
    above = np.array([[320.0, 240.0 - FOCAL * np.tan(TILT) - 5.0], [100.0, -100.0]])  # at and above the horizon
    assert np.isnan(TRUE.intersect(above, FOCAL, CENTRE)).all()
    assert TRUE.intersect(pixels.reshape(5, 10, 2), FOCAL, CENTRE).shape == (5, 10, 3)


def test_ground_coordinates_and_directions():
    across, away = TRUE.basis()
    assert np.allclose([across @ across, away @ away, across @ away, across @ TRUE.up, away @ TRUE.up], [1, 1, 0, 0, 0])
    assert away[2] > 0 and TRUE.up[1] < 0  # away from the camera; up is -y
    step = np.array([[0.0, 0.0, 0.0], 3 * away + 4 * across])
    assert np.allclose(TRUE.coordinates(step[1]) - TRUE.coordinates(step[0]), [4.0, 3.0])
    assert np.allclose(TRUE.direction(np.stack([3 * away + 4 * across, TRUE.up])), [[0.8, 0.6], [0.0, 0.0]])


def test_feet_below_the_camera_are_needed():
    with pytest.raises(ValueError, match="below the camera"):
        fit_ground_plane(np.array([[0.0, -2.0, 5.0], [1.0, -2.0, 6.0], [-1.0, -2.0, 9.0], [0.5, -2.0, 7.0]]))
    with pytest.raises(ValueError, match=r"\(N >= 3, 3\)"):
        fit_ground_plane(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="in front of the camera"):
        fit_ground_plane(np.array([[0.0, 2.0, -5.0], [1.0, 2.0, 6.0], [-1.0, 2.0, 9.0]]))


def test_the_estimator_waits_for_enough_feet_and_leaves_out_small_people():
    rng = np.random.default_rng(2)
    estimator = GroundEstimator(GroundConfig(min_points=30, min_box_height=20.0))
    feet = _ground_points(60, rng)
    assert estimator.add(feet[:25], np.full(25, 50.0)) is None
    assert estimator.add(feet[25:40], np.full(15, 10.0)) is None  # too small to count
    first = estimator.add(feet[40:45], np.full(5, 50.0))
    assert first is not None and first.height == pytest.approx(HEIGHT, rel=1e-6)
    assert estimator.add(feet[45:50], np.full(5, 50.0)) is first  # refitted only when the feet have doubled
    with pytest.raises(ValueError, match="box heights"):
        estimator.add(feet[:3], np.ones(2))
    with pytest.raises(ValueError, match="min_points"):
        GroundConfig(min_points=2)
