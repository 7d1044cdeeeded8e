"""Pose prior (adversarial auto-encoder): config, shapes for any batch shape, valid rotations, composing pose vectors,
files and their errors."""
from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from lowres_hps.body.pose import ANNY_POSE_SPEC, sample_random_pose
from lowres_hps.models import pose_prior as pose_prior_module
from lowres_hps.models.pose_prior import (
    PRIOR_FILENAME,
    PRIOR_WEIGHTS,
    PosePrior,
    PosePriorConfig,
    default_pose_prior,
    load_pose_prior,
    save_pose_prior,
)
from lowres_hps.models.weights import PACKAGE_WEIGHTS_DIR

D = ANNY_POSE_SPEC.vector_size  # 126
J = ANNY_POSE_SPEC.num_joints - 1  # 19 body joints
TINY = PosePriorConfig(hidden=32, latent_size=8, layers=1)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture
def prior() -> PosePrior:
    return PosePrior(TINY).eval()


def poses(*batch: int, seed: int = 0) -> torch.Tensor:
    """Random Anny pose vectors of batch shape ``batch``, with a random root orientation and shape."""
    count = 1
    for size in batch:
        count *= size
    vectors = sample_random_pose(count, torch.Generator().manual_seed(seed), root_yaw_deg=180.0, root_tilt_deg=30.0)
    return vectors.reshape(batch + (D,))


def is_rotation(matrices: torch.Tensor, atol: float = 1e-5) -> bool:
    eye = torch.eye(3, dtype=matrices.dtype).expand_as(matrices)
    orthonormal = torch.allclose(matrices.transpose(-1, -2) @ matrices, eye, atol=atol)
    return orthonormal and torch.allclose(torch.linalg.det(matrices), torch.ones(()), atol=atol)


def test_config_validation_and_round_trip():
    cfg = PosePriorConfig(hidden=64, layers=3, dropout=0.1)
    assert PosePriorConfig.from_dict(cfg.to_dict()) == cfg
    assert PosePriorConfig().latent_size == 32 and PosePriorConfig().num_body_joints == J == 19
    assert PosePriorConfig(body_model="smpl").num_body_joints == 23
    with pytest.raises(ValueError, match="no pose vector layout for body model"):
        PosePriorConfig(body_model="mano")
    with pytest.raises(ValueError, match="latent_size must be a positive integer"):
        PosePriorConfig(latent_size=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        PosePriorConfig(dropout=1.0)
    with pytest.raises(ValueError, match="unknown"):
        PosePriorConfig.from_dict({"hiden": 3})


def test_encoder_reads_the_body_joints_only():
    model = PosePrior(PosePriorConfig())
    assert model.encoder[0].in_features == 6 * J == 114
    assert model.decoder[-1].out_features == 114 and model.discriminator[-1].out_features == 1


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_shapes_for_any_batch_shape(prior, batch):
    vectors = poses(*batch) if batch else poses(1)[0]
    latent = prior.encode(vectors)
    assert latent.shape == batch + (8,)
    assert prior.decode(latent).shape == batch + (J, 6)
    assert prior.decode_rotations(latent).shape == batch + (J, 3, 3)
    assert prior.compose(latent, vectors).shape == batch + (D,)
    assert prior.project(vectors).shape == batch + (D,)
    assert prior.reconstruction_error(vectors).shape == batch
    assert prior.discriminate(latent).shape == batch


def test_batched_and_single_poses_agree(prior):
    vectors = poses(2, 3)
    torch.testing.assert_close(prior.project(vectors)[1, 2], prior.project(vectors[1, 2]))


def test_latent_stays_in_the_box_even_for_wild_inputs(prior):
    wild = torch.randn(64, D) * 10.0  # non-orthonormal 6D, far from any pose
    for vectors in (poses(64), wild):
        latent = prior.encode(vectors)
        assert latent.abs().max() <= 1.0 and torch.isfinite(latent).all()


def test_decode_gives_valid_rotations(prior):
    latents = torch.rand(50, 8) * 2.0 - 1.0
    assert is_rotation(prior.decode_rotations(latents))
    # The 6D output is the first two columns of those rotations.
    torch.testing.assert_close(prior.decode(latents), prior.decode_rotations(latents)[..., :, :2].flatten(-2))


def test_compose_keeps_root_and_shape_exactly(prior):
    vectors = poses(5)
    latent = torch.rand(5, 8) * 2.0 - 1.0
    out = prior.compose(latent, vectors)
    assert torch.equal(out[:, :6], vectors[:, :6])
    assert torch.equal(out[:, ANNY_POSE_SPEC.rotation_size:], vectors[:, ANNY_POSE_SPEC.rotation_size:])
    torch.testing.assert_close(out[:, 6:ANNY_POSE_SPEC.rotation_size], prior.decode(latent).flatten(-2))
    # A float64 vector keeps its dtype and its root and shape bit for bit; one latent broadcasts over a batch.
    doubles = vectors.double()
    composed = prior.compose(latent[0], doubles)
    assert composed.dtype == torch.float64 and composed.shape == (5, D)
    assert torch.equal(composed[:, :6], doubles[:, :6]) and torch.equal(composed[:, -6:], doubles[:, -6:])
    # project is compose(encode(v), v).
    torch.testing.assert_close(prior.project(vectors), prior.compose(prior.encode(vectors), vectors))


def test_reconstruction_error_is_the_mean_geodesic_angle_to_the_projection(prior):
    import roma

    vectors = poses(6)
    expected = roma.rotmat_geodesic_distance(prior.body_rotations(prior.project(vectors)),
                                             prior.body_rotations(vectors)).mean(-1)
    error = prior.reconstruction_error(vectors)
    torch.testing.assert_close(error, expected, atol=1e-5, rtol=1e-5)
    assert (error >= 0).all() and (error < torch.pi).all()


def test_wrong_sizes_are_clear_errors(prior):
    with pytest.raises(ValueError, match=r"anny pose_vector must be \(\.\.\., 126\), got \(2, 120\)"):
        prior.encode(torch.zeros(2, 120))
    with pytest.raises(ValueError, match=r"latent must be \(\.\.\., 8\)"):
        prior.decode(torch.zeros(2, 32))
    with pytest.raises(ValueError, match="do not broadcast"):
        prior.compose(torch.zeros(3, 8), poses(2))
    with pytest.raises(ValueError, match="rotations must be"):
        prior.encode_rotations(torch.eye(3).expand(2, 20, 3, 3))


def test_save_and_load_round_trip(prior, tmp_path):
    notes = {"training_data": ["synthetic (600 poses)"], "steps": 12, "metrics": {"heldout_error_deg": 7.5},
             "covers": "random poses", "does_not_cover": "anything real"}
    path = save_pose_prior(prior, tmp_path / "prior.safetensors", notes)
    loaded = load_pose_prior(path)
    assert not loaded.training and loaded.config == TINY
    vectors = poses(4)
    assert torch.equal(loaded.project(vectors), prior.project(vectors))
    assert torch.equal(loaded.decode(torch.zeros(8)), prior.decode(torch.zeros(8)))
    card = loaded.card
    assert card["task"] == "pose_prior" and card["name"] == "prior" and card["architecture"] == TINY.to_dict()
    assert card["steps"] == 12 and card["metrics"] == {"heldout_error_deg": 7.5}
    assert card["training_data"] == ["synthetic (600 poses)"] and card["does_not_cover"] == "anything real"
    assert card["created"] and card["weights_dtype"] == "float32"


def test_half_precision_file_loads_as_float32(prior, tmp_path):
    path = save_pose_prior(prior, tmp_path / "half.safetensors", {"name": "half_prior"}, half=True)
    loaded = load_pose_prior(path)
    assert loaded.card["weights_dtype"] == "float16" and loaded.card["name"] == "half_prior"
    assert loaded.decoder[-1].weight.dtype == torch.float32
    vectors = poses(8)
    torch.testing.assert_close(loaded.project(vectors), prior.project(vectors), atol=5e-3, rtol=0)


def test_the_card_is_a_registry_model_card(prior, tmp_path):
    """A prior in a weights folder must not break `lowres-hps models`, which reads every file's card."""
    from lowres_hps.apis.registry import read_card

    path = save_pose_prior(prior, tmp_path / "prior.safetensors", {"metrics": {"heldout_error_deg": 7}})
    card = read_card(path)
    assert card.task == "pose_prior" and card.metrics == {"heldout_error_deg": 7.0}
    assert card.extra["weights_dtype"] == "float32"


def test_bad_notes_are_refused(prior, tmp_path):
    with pytest.raises(ValueError, match="must not set"):
        save_pose_prior(prior, tmp_path / "x.safetensors", {"task": "kp2d"})
    with pytest.raises(ValueError, match="map names to numbers"):
        save_pose_prior(prior, tmp_path / "x.safetensors", {"metrics": {"error": "low"}})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_pose_prior(prior, tmp_path / "x.safetensors", {"data": torch.zeros(1)})
    assert not (tmp_path / "x.safetensors").exists()


def test_bad_files_are_clear_errors(prior, tmp_path):
    with pytest.raises(FileNotFoundError, match="pose prior not found: .*nothing.safetensors"):
        load_pose_prior(tmp_path / "nothing.safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="text.safetensors is not a pose prior: not a safetensors file"):
        load_pose_prior(text)
    bare = tmp_path / "bare.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(ValueError, match="bare.safetensors is not a pose prior: it has no model card"):
        load_pose_prior(bare)
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(other),
                                metadata={"lowres_hps.model_card": json.dumps({"task": "kp2d"})})
    with pytest.raises(ValueError, match="other.safetensors is not a pose prior: its model card is a 'kp2d' model"):
        load_pose_prior(other)
    # Weights of another architecture than the card says.
    path = save_pose_prior(prior, tmp_path / "prior.safetensors")
    state = safetensors.torch.load_file(str(path))
    with safetensors.safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    state.pop("decoder.0.bias")
    broken = tmp_path / "broken.safetensors"
    safetensors.torch.save_file(state, str(broken), metadata=metadata)
    with pytest.raises(ValueError, match="broken.safetensors: the weights do not fit"):
        load_pose_prior(broken)


def test_default_prior_is_the_packaged_file_or_says_how_to_train_it(prior, tmp_path, monkeypatch):
    assert PRIOR_WEIGHTS == PACKAGE_WEIGHTS_DIR / PRIOR_FILENAME == PACKAGE_WEIGHTS_DIR / "anny_pose_prior.safetensors"
    monkeypatch.setattr(pose_prior_module, "weights_dirs", lambda: [tmp_path])
    with pytest.raises(FileNotFoundError, match=r"not installed .*python scripts/train_pose_prior.py"):
        default_pose_prior()
    save_pose_prior(prior, tmp_path / PRIOR_FILENAME)
    loaded = default_pose_prior()
    assert loaded.config == TINY and not loaded.training


@pytest.mark.skipif(not PRIOR_WEIGHTS.is_file(), reason="the packaged pose prior is not trained here")
def test_packaged_prior_loads_and_projects():
    packaged = default_pose_prior()
    assert packaged.config.body_model == "anny" and packaged.latent_size == 32
    assert packaged.card["task"] == "pose_prior" and "heldout_error_deg" in packaged.card["metrics"]
    vectors = poses(16)
    with torch.no_grad():
        assert is_rotation(packaged.body_rotations(packaged.project(vectors)))
