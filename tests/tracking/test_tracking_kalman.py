"""BoxKalmanFilter: the state round trip, convergence on constant-velocity boxes, batched prediction, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.tracking.kalman import BoxKalmanFilter, xyah_to_xywh, xywh_to_xyah


def test_box_state_round_trip():
    boxes = np.array([[10.0, 20.0, 30.0, 60.0], [-5.0, 0.5, 1.0, 4.0]])
    xyah = xywh_to_xyah(boxes)
    np.testing.assert_allclose(xyah[0], [25.0, 50.0, 0.5, 60.0])
    np.testing.assert_allclose(xyah_to_xywh(xyah), boxes)
    # A full (8,) state gives its box.
    np.testing.assert_allclose(xyah_to_xywh(np.concatenate([xyah[0], np.ones(4)])), boxes[0])


def test_initiate_is_the_box_at_rest():
    kf = BoxKalmanFilter()
    mean, cov = kf.initiate(np.array([10.0, 20.0, 30.0, 60.0]))
    np.testing.assert_allclose(mean, [25.0, 50.0, 0.5, 60.0, 0, 0, 0, 0])
    np.testing.assert_allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # Height-scaled noise: a box twice as tall is twice as uncertain in position.
    _, cov2 = kf.initiate(np.array([10.0, 20.0, 60.0, 120.0]))
    assert cov2[0, 0] == pytest.approx(4 * cov[0, 0])


def test_converges_on_a_constant_velocity_box():
    kf = BoxKalmanFilter()
    velocity = np.array([3.0, -1.5, 0.0, 0.4])  # x, y, w, h per frame, the box growing as it comes closer
    start = np.array([50.0, 200.0, 40.0, 80.0])
    truth = [start + i * velocity * np.array([1, 1, 0, 1]) for i in range(60)]
    truth = [b + np.array([0, 0, b[3] * 0.5 - b[2], 0]) for b in truth]  # keep the aspect ratio 0.5
    mean, cov = kf.initiate(truth[0])
    for box in truth[1:]:
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, box)
    predicted, _ = kf.predict(mean, cov)
    next_box = truth[-1] + (truth[-1] - truth[-2])
    np.testing.assert_allclose(xyah_to_xywh(predicted), next_box, atol=0.05)
    centre_velocity = xywh_to_xyah(truth[-1])[:2] - xywh_to_xyah(truth[-2])[:2]
    np.testing.assert_allclose(mean[4:6], centre_velocity, atol=0.01)
    np.testing.assert_allclose(mean[7], 0.4, atol=0.01)
    np.testing.assert_allclose(cov, cov.T)


def test_converges_under_noise():
    rng = np.random.default_rng(0)
    kf = BoxKalmanFilter()
    boxes = np.array([[100.0 + 4 * i, 50.0 + 1 * i, 30.0, 60.0] for i in range(80)])
    noisy = boxes + rng.normal(0, 1.0, boxes.shape) * [1, 1, 0, 0]
    mean, cov = kf.initiate(noisy[0])
    errors = []
    for box, clean in zip(noisy[1:], boxes[1:]):
        mean, cov = kf.update(*kf.predict(mean, cov), box)
        errors.append(np.abs(xyah_to_xywh(mean) - clean)[:2].mean())
    np.testing.assert_allclose(mean[4:6], [4.0, 1.0], atol=0.3)
    raw_error = np.abs(noisy - boxes)[40:, :2].mean()
    assert np.mean(errors[40:]) < raw_error


def test_multi_predict_matches_predict():
    kf = BoxKalmanFilter()
    states = [kf.initiate(np.array([10.0 * i, 5.0, 20.0 + i, 40.0 + 2 * i])) for i in range(4)]
    states = [(m + np.r_[0, 0, 0, 0, 1.0, 2.0, 0, 0.5], c) for m, c in states]
    means, covs = kf.multi_predict(np.stack([m for m, _ in states]), np.stack([c for _, c in states]))
    for (m, c), bm, bc in zip(states, means, covs):
        pm, pc = kf.predict(m, c)
        np.testing.assert_allclose(bm, pm)
        np.testing.assert_allclose(bc, pc)
    assert means[0][0] == pytest.approx(states[0][0][0] + 1.0)


@pytest.mark.parametrize("box", [[0, 0, 0, 10], [0, 0, 10, -1], [0, np.nan, 10, 10], [0, 0, 10]])
def test_bad_boxes_raise(box):
    kf = BoxKalmanFilter()
    with pytest.raises(ValueError, match="box_xywh"):
        kf.initiate(np.array(box, dtype=float))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="std_weight_position"):
        BoxKalmanFilter(std_weight_position=0.0)
    kf = BoxKalmanFilter()
    mean, cov = kf.initiate(np.array([0.0, 0.0, 10.0, 20.0]))
    with pytest.raises(ValueError, match="covariance"):
        kf.predict(mean, cov[:4, :4])
    with pytest.raises(ValueError, match="means"):
        kf.multi_predict(mean, cov)
