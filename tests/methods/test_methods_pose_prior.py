"""Training the pose prior: a short adversarial auto-encoder run, its metrics and split, mirrored poses, and the
pose sources (SynthLR files, key poses)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.body.flip import flip_pose_vector
from lowres_hps.body.pose import ANNY_POSE_SPEC, sample_random_pose
from lowres_hps.data.errors import DatasetFileError
from lowres_hps.data.synth.poses import KEY_POSES, key_pose_vector
from lowres_hps.methods.pose_prior import (
    augment_with_mirrors,
    fit_pose_prior,
    key_pose_vectors,
    pose_vectors_from_synthlr,
)
from lowres_hps.models.pose_prior import PosePrior, PosePriorConfig

D = ANNY_POSE_SPEC.vector_size
TINY = PosePriorConfig(hidden=32, latent_size=16, layers=2)
METRICS = {"train_error_deg", "heldout_error_deg", "untrained_heldout_error_deg", "identity_heldout_error_deg",
           "mean_pose_heldout_error_deg", "discriminator_accuracy", "uniform_sample_nn_deg", "heldout_nn_deg",
           "train_poses", "heldout_poses", "steps"}


def poses(count: int, seed: int = 0) -> torch.Tensor:
    """Random plausible Anny pose vectors (joint ranges halved: a narrower, learnable distribution)."""
    return sample_random_pose(count, torch.Generator().manual_seed(seed), scale=0.5, root_yaw_deg=180.0)


@pytest.fixture(scope="module")
def fitted():
    return fit_pose_prior(poses(400), TINY, steps=150, batch_size=64, lr=3e-3, seed=0)


def test_short_fit_learns_and_reports_its_metrics(fitted):
    prior, metrics = fitted
    assert isinstance(prior, PosePrior) and not prior.training and prior.config == TINY
    assert set(metrics) == METRICS and all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert metrics["heldout_error_deg"] < 0.8 * metrics["untrained_heldout_error_deg"]
    assert metrics["identity_heldout_error_deg"] == 0.0 and metrics["mean_pose_heldout_error_deg"] > 0
    assert 0.0 <= metrics["discriminator_accuracy"] <= 1.0
    assert (metrics["train_poses"], metrics["heldout_poses"], metrics["steps"]) == (360.0, 40.0, 150.0)


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(fitted):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    prior, metrics = fit_pose_prior(poses(400), TINY, steps=150, batch_size=64, lr=3e-3, seed=0)
    assert torch.equal(torch.rand(3), before)
    assert metrics == fitted[1]
    vectors = poses(5, seed=1)
    assert torch.equal(prior.project(vectors), fitted[0].project(vectors))


def test_mirrored_fit_adds_mirrors_to_both_sides_of_the_split():
    _, metrics = fit_pose_prior(poses(100), TINY, steps=5, batch_size=16, holdout=0.2, mirror=True)
    assert (metrics["train_poses"], metrics["heldout_poses"]) == (160.0, 40.0)


def test_fit_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"pose_vectors must be \(N, 126\)"):
        fit_pose_prior(torch.zeros(10, 120), TINY, steps=1)
    with pytest.raises(ValueError, match="holdout must be in"):
        fit_pose_prior(poses(10), TINY, steps=1, holdout=0.0)
    with pytest.raises(ValueError, match="at least 2 poses"):
        fit_pose_prior(poses(1), TINY, steps=1)
    with pytest.raises(ValueError, match="must be positive"):
        fit_pose_prior(poses(10), TINY, steps=0)


def test_mirrors_double_the_poses_and_mirroring_twice_is_the_identity():
    vectors = poses(7)
    augmented = augment_with_mirrors(vectors)
    assert augmented.shape == (14, D)
    assert torch.equal(augmented[:7], vectors)
    torch.testing.assert_close(flip_pose_vector(augmented[7:], ANNY_POSE_SPEC), vectors, atol=0, rtol=0)
    assert not torch.allclose(augmented[7:], vectors)  # a mirrored pose is another pose
    twice = augment_with_mirrors(augmented)
    torch.testing.assert_close(twice[14:21], augmented[7:])
    with pytest.raises(ValueError, match=r"pose_vectors must be \(N, 126\)"):
        augment_with_mirrors(vectors[0])


def test_pose_vectors_from_synthlr_files(tmp_path):
    first, second, empty = tmp_path / "a", tmp_path / "b", tmp_path / "empty"
    for folder in (first, second, empty):
        folder.mkdir()
    a, b = poses(3).numpy(), poses(2, seed=1).numpy()
    np.savez(first / "annotations_3d.npz", pose_vector=a, ann_id=np.arange(3))
    np.savez(second / "annotations_3d.npz", pose_vector=b)
    vectors = pose_vectors_from_synthlr([first, str(second)])
    assert vectors.dtype == torch.float32 and vectors.shape == (5, D)
    assert torch.equal(vectors, torch.from_numpy(np.concatenate([a, b])))
    assert pose_vectors_from_synthlr(first).shape == (3, D)
    with pytest.raises(FileNotFoundError, match="empty"):
        pose_vectors_from_synthlr([empty])
    np.savez(empty / "annotations_3d.npz", pose_vector=np.zeros((3, 120), np.float32))
    with pytest.raises(DatasetFileError, match=r"empty/annotations_3d.npz: expected a \(N, 126\) pose_vector"):
        pose_vectors_from_synthlr([empty])
    with pytest.raises(ValueError, match="no SynthLR folders"):
        pose_vectors_from_synthlr([])


def test_key_pose_vectors():
    vectors = key_pose_vectors()
    assert vectors.shape == (len(KEY_POSES), D) and vectors.dtype == torch.float32
    names = sorted(KEY_POSES)
    torch.testing.assert_close(vectors[names.index("walk"), :-6], key_pose_vector("walk", ANNY_POSE_SPEC).float())
    identity = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    assert torch.equal(vectors[:, :6], identity.expand(len(names), 6))  # upright, facing +Z
    assert torch.equal(vectors[:, -6:], torch.full((len(names), 6), 0.5))  # Anny's rest shape
    assert len({tuple(v.tolist()) for v in vectors}) == len(names)
