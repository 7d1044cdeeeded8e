"""One-Euro filters: less error and jitter on synthetic motion, NaN handling, rotations on the manifold, per-track
state, and the jitter measure."""
from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from lowres_hps.tracking.smoothing import (
    DEFAULT_POSITION_CONFIG,
    DEFAULT_ROTATION_CONFIG,
    OneEuroConfig,
    OneEuroFilter,
    RotationOneEuroFilter,
    TrackSmoother,
    acceleration_jitter,
    synthetic_rotations,
    synthetic_walk,
    tune_one_euro,
)

FPS = 25.0


def run(filt, frames, fps=FPS):
    return np.stack([filt(frame, i / fps) for i, frame in enumerate(frames)])


def angles_deg(a, b):
    qa, qb = roma.rotvec_to_unitquat(torch.as_tensor(a)), roma.rotvec_to_unitquat(torch.as_tensor(b))
    return np.degrees(roma.unitquat_geodesic_distance(qa, qb).numpy())


def test_first_call_returns_input_and_constants_stay():
    filt = OneEuroFilter(1.0, 0.1)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(filt(x, 0.0), x)
    for i in range(1, 10):
        np.testing.assert_allclose(filt(x, i / FPS), x)


def test_one_step_is_the_exponential_filter():
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    filt(np.array([0.0]), 0.0)
    dt = 0.04
    alpha = 1.0 / (1.0 + 1.0 / (2 * math.pi * 1.0) / dt)
    assert filt(np.array([1.0]), dt)[0] == pytest.approx(alpha)


def test_reduces_error_and_jitter_on_a_noisy_walk():
    clean, noisy = synthetic_walk(num_frames=150, seed=11)  # a sequence the defaults were not tuned on
    cfg = DEFAULT_POSITION_CONFIG
    smoothed = run(OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff), noisy)
    error_raw = np.linalg.norm(noisy - clean, axis=-1).mean()
    error_smoothed = np.linalg.norm(smoothed - clean, axis=-1).mean()
    assert error_smoothed < 0.85 * error_raw
    assert acceleration_jitter(smoothed, FPS) < 0.7 * acceleration_jitter(noisy, FPS)
    # beta matters: without it the lag on a walking person is worse than the noise.
    lagging = run(OneEuroFilter(cfg.min_cutoff, 0.0, cfg.d_cutoff), noisy)
    assert np.linalg.norm(lagging - clean, axis=-1).mean() > error_raw


def test_speed_is_per_entry():
    rng = np.random.default_rng(0)
    still = 5.0 + rng.normal(0, 1.0, (60, 1))
    fast = np.linspace(0, 600, 60)[:, None]
    together = run(OneEuroFilter(1.0, 0.1), np.concatenate([still, fast], axis=1))
    alone = run(OneEuroFilter(1.0, 0.1), still)
    np.testing.assert_allclose(together[:, :1], alone)


def test_nan_entries_pass_through_and_keep_their_state():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(0, 1.0, (40, 3)), axis=0)
    gapped = x.copy()
    gapped[10:15, 1] = np.nan
    gapped[:3, 2] = np.nan  # not seen at first
    out = run(OneEuroFilter(1.0, 0.05), gapped)
    assert np.isnan(out[10:15, 1]).all() and np.isnan(out[:3, 2]).all()
    assert np.isfinite(out[15:]).all() and np.isfinite(out[3:, 2]).all()
    # The other entries are untouched by the gaps.
    np.testing.assert_allclose(out[:, 0], run(OneEuroFilter(1.0, 0.05), x[:, :1])[:, 0])
    # After the gap the entry is filtered from its old state, not restarted at the new value.
    assert out[15, 1] != x[15, 1]
    assert out[3, 2] == x[3, 2]  # the first value seen is the start


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroConfig(beta=-1.0)
    filt = OneEuroFilter()
    filt(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="t must increase"):
        filt(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        filt(np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="rotations must be"):
        RotationOneEuroFilter()(np.zeros((3, 4)), 0.0)


def test_rotation_filter_matches_the_scalar_filter_about_one_axis():
    # About a fixed axis, geodesic speed and slerp reduce to |d angle| / dt and the exponential step. (Only while
    # the angle moves one way: the scalar filter low-passes a signed speed, the rotation filter an angle rate.)
    rng = np.random.default_rng(2)
    angle = np.cumsum(rng.uniform(0.001, 0.06, 80)) - 1.5
    rotvecs = np.zeros((80, 1, 3))
    rotvecs[:, 0, 2] = angle
    out = run(RotationOneEuroFilter(1.0, 0.5), rotvecs)
    expected = run(OneEuroFilter(1.0, 0.5), angle[:, None])
    np.testing.assert_allclose(out[:, 0, 2], expected[:, 0], atol=1e-9)
    np.testing.assert_allclose(out[:, 0, :2], 0.0, atol=1e-12)


def test_rotation_filter_returns_valid_rotations_of_the_input_form():
    _, noisy = synthetic_rotations(num_frames=30, num_joints=5, noise_deg=10.0, seed=3)
    matrices = roma.rotvec_to_rotmat(torch.as_tensor(noisy)).numpy()
    out = run(RotationOneEuroFilter(1.0, 0.3), matrices)
    assert out.shape == matrices.shape
    eye = np.broadcast_to(np.eye(3), out.shape)
    np.testing.assert_allclose(out @ np.swapaxes(out, -1, -2), eye, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(out), 1.0, atol=1e-9)
    rotvec_out = run(RotationOneEuroFilter(1.0, 0.3), noisy)
    assert rotvec_out.shape == noisy.shape
    np.testing.assert_allclose(angles_deg(rotvec_out, roma.rotmat_to_rotvec(torch.as_tensor(out)).numpy()), 0.0,
                               atol=1e-5)
    # Torch in, torch out, same dtype.
    filt = RotationOneEuroFilter()
    result = filt(torch.zeros(2, 3, dtype=torch.float32), 0.0)
    result = filt(torch.full((2, 3), 0.1, dtype=torch.float32), 0.1)
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32


def test_rotation_filter_follows_a_constant_rotation_speed_with_beta():
    speed = 2.0  # rad/s about a tilted axis
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    times = np.arange(50) / FPS
    truth = roma.rotvec_to_rotmat(torch.as_tensor((speed * times)[:, None, None] * axis)).numpy()
    lag = {}
    for beta in (0.0, 5.0):
        out = run(RotationOneEuroFilter(1.0, beta), truth)
        q_out = roma.rotmat_to_unitquat(torch.as_tensor(out[25:]))
        q_true = roma.rotmat_to_unitquat(torch.as_tensor(truth[25:]))
        lag[beta] = np.degrees(roma.unitquat_geodesic_distance(q_out, q_true).numpy()).max()
    assert lag[5.0] < 3.0
    assert lag[5.0] < lag[0.0] / 4


def test_rotation_filter_ignores_the_quaternion_sign_and_the_pi_wrap():
    # Rotating about z through pi: rotation vectors jump from +pi to -pi (the quaternion flips sign).
    angle = np.linspace(2.6, 3.7, 40)
    wrapped = (angle + np.pi) % (2 * np.pi) - np.pi
    rotvecs = np.zeros((40, 2, 3))
    rotvecs[:, 0, 2] = wrapped
    # Joint 1: the same rotation given alternately as r and as r - 2 pi r / |r|, whose quaternion is -q.
    rotvecs[:, 1, 2] = np.where(np.arange(40) % 2 == 0, angle, angle - 2 * np.pi)
    out = run(RotationOneEuroFilter(1.0, 1.0), rotvecs)
    reference = run(OneEuroFilter(1.0, 1.0), angle[:, None])[:, 0]
    reference_rotvecs = np.zeros((40, 3))
    reference_rotvecs[:, 2] = reference
    for joint in range(2):
        np.testing.assert_allclose(angles_deg(out[:, joint], reference_rotvecs), 0.0, atol=1e-6)
        assert angles_deg(out[1:, joint], out[:-1, joint]).max() < 3.0  # no jump across pi


def test_rotation_filter_nan_joints():
    _, noisy = synthetic_rotations(num_frames=20, num_joints=3, seed=4)
    gapped = noisy.copy()
    gapped[5:8, 1] = np.nan
    out = run(RotationOneEuroFilter(1.0, 0.3), gapped)
    assert np.isnan(out[5:8, 1]).all() and np.isfinite(out[8:]).all()
    np.testing.assert_allclose(out[:, [0, 2]], run(RotationOneEuroFilter(1.0, 0.3), noisy[:, [0, 2]]), atol=1e-12)


def test_rotation_smoothing_reduces_error():
    clean, noisy = synthetic_rotations(num_frames=100, num_joints=8, seed=12)
    cfg = DEFAULT_ROTATION_CONFIG
    smoothed = run(RotationOneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff), noisy)
    assert angles_deg(smoothed, clean).mean() < 0.85 * angles_deg(noisy, clean).mean()


def test_track_smoother_keeps_tracks_apart():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, (10, 4, 2)), rng.normal(0, 1, (10, 4, 2))
    poses = rng.normal(0, 0.3, (10, 3, 3))
    smoother = TrackSmoother(rotation_fields=("pose_rotvec",))
    out_a, out_b = [], []
    for i in range(10):
        out_a.append(smoother.smooth(1, i / FPS, keypoints2d=a[i], pose_rotvec=poses[i], betas=None))
        out_b.append(smoother.smooth(7, i / FPS, keypoints2d=b[i]))
    assert smoother.track_ids == [1, 7]
    cfg = DEFAULT_POSITION_CONFIG
    np.testing.assert_allclose(np.stack([o["keypoints2d"] for o in out_a]),
                               run(OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff), a))
    np.testing.assert_allclose(np.stack([o["keypoints2d"] for o in out_b]),
                               run(OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff), b))
    rcfg = DEFAULT_ROTATION_CONFIG
    np.testing.assert_allclose(np.stack([o["pose_rotvec"] for o in out_a]),
                               run(RotationOneEuroFilter(rcfg.min_cutoff, rcfg.beta, rcfg.d_cutoff), poses))
    assert out_a[0]["betas"] is None
    smoother.drop(1)
    np.testing.assert_array_equal(smoother.smooth(1, 1.0, keypoints2d=a[0])["keypoints2d"], a[0])  # a fresh start
    smoother.keep_only([1])
    assert smoother.track_ids == [1]
    with pytest.raises(ValueError, match="keypoints2d of track 1"):
        smoother.smooth(1, 2.0, keypoints2d=np.zeros((5, 2)))


def test_track_smoother_field_configs():
    smoother = TrackSmoother(field_configs={"keypoints3d": OneEuroConfig(min_cutoff=100.0, beta=0.0)})
    smoother.smooth(1, 0.0, keypoints3d=np.zeros(3), keypoints2d=np.zeros(2))
    out = smoother.smooth(1, 1 / FPS, keypoints3d=np.ones(3), keypoints2d=np.ones(2))
    assert out["keypoints3d"][0] > 0.9 > out["keypoints2d"][0]
    with pytest.raises(ValueError, match="rotation_fields"):
        TrackSmoother(rotation_fields="pose_rotvec")


def test_acceleration_jitter():
    assert acceleration_jitter(np.arange(10.0), 25.0) == 0.0
    assert acceleration_jitter(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 1.0) == pytest.approx(4 / 3)
    assert acceleration_jitter(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), 2.0) == pytest.approx(16 / 3)
    points = np.zeros((3, 2, 2))
    points[1, 0] = [3.0, 4.0]
    assert acceleration_jitter(points, 1.0) == pytest.approx(5.0)  # norm over (x, y), mean over points
    with_nan = np.array([0.0, 0.0, 1.0, 0.0, 0.0, np.nan])
    assert acceleration_jitter(with_nan, 1.0) == pytest.approx(4 / 3)
    assert math.isnan(acceleration_jitter(np.zeros(2), 1.0))
    with pytest.raises(ValueError, match="fps"):
        acceleration_jitter(np.zeros(5), 0.0)


def test_tuning_reproduces_the_position_defaults():
    result = tune_one_euro("position")
    assert result.config == DEFAULT_POSITION_CONFIG
    assert result.error_smoothed < 0.8 * result.error_raw
    assert result.jitter_smoothed < 0.6 * result.jitter_raw
    assert result.grid.shape == (6, 6)


def test_tuning_a_small_rotation_grid():
    result = tune_one_euro("rotation", min_cutoffs=[0.1, 2.0], betas=[0.0, 1.0], seeds=(0,), num_frames=60)
    assert result.grid.shape == (2, 2)
    assert result.config.min_cutoff == 2.0 and result.config.beta == 1.0
    assert result.error_smoothed < result.error_raw
    with pytest.raises(ValueError, match="kind"):
        tune_one_euro("scale")


@pytest.mark.slow
def test_tuning_reproduces_the_rotation_defaults():
    assert tune_one_euro("rotation").config == DEFAULT_ROTATION_CONFIG
