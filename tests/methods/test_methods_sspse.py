"""SSPSE: the image manipulations, which parts learn in each stage, and a loss whose terms reach the right parts."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.methods.sspse import (
    PairedDataset,
    SSPSEConfig,
    SSPSELoss,
    cut_hole,
    frozen,
    jigsaw_tiles,
    paste_patch,
    rotate_quarters,
    stage_parameters,
)
from lowres_hps.models.body3d import Body3DConfig, build_body3d_model
from lowres_hps.models.sspse import SelfSupervisedNet, SSPSEHeadsConfig, jigsaw_permutations

CANVAS = 64


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_config_checks_its_switches():
    with pytest.raises(ValueError, match="pretext"):
        SSPSEConfig(pretext=("colour",))
    with pytest.raises(ValueError, match="rendering"):
        SSPSEConfig(rendering=("depth",))
    with pytest.raises(ValueError, match="supervision"):
        SSPSEConfig(supervision="full")
    with pytest.raises(ValueError, match="stage"):
        SSPSEConfig(stage="t3")
    assert SSPSEConfig(pretext=["jigsaw"]).describe() == "self, jigsaw, rgb+mask+real"
    assert SSPSEConfig(rendering=(), lambda_teacher=1.0).describe() == \
        "self, jigsaw+rotation+inpainting, no render, 2D teacher"
    with pytest.raises(ValueError, match="lambda_teacher"):
        SSPSEConfig(lambda_teacher=-1.0)


def test_jigsaw_tiles_follow_the_permutation():
    images = torch.arange(2 * 3 * 4 * 4).view(2, 3, 4, 4)
    perms = jigsaw_permutations(2)
    order = perms[torch.tensor([0, 23])]
    tiles = jigsaw_tiles(images, order)
    assert tiles.shape == (2, 4, 3, 2, 2)
    assert torch.equal(tiles[0, 1], images[0, :, :2, 2:])  # identity: position 1 is the top-right tile
    assert torch.equal(tiles[1, 0], images[1, :, 2:, 2:])  # the last order (3, 2, 1, 0) starts with bottom-right


def test_rotations_and_holes():
    images = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    quarters = torch.tensor([0, 1, 2, 3])
    rotated = rotate_quarters(images, quarters)
    for b, k in enumerate(quarters.tolist()):
        assert torch.equal(rotated[b], torch.rot90(images[b], k, dims=(-2, -1)))
    holed, patch = cut_hole(images, 4, torch.tensor([1.0, 2.0, 3.0]))
    assert patch.shape == (4, 3, 4, 4) and torch.equal(patch, images[:, :, 2:6, 2:6])
    assert (holed[:, 0, 2:6, 2:6] == 1).all() and torch.equal(holed[:, :, :2], images[:, :, :2])
    restored = paste_patch(holed.float(), patch.float())
    assert torch.equal(restored, images.float())


def test_frozen_parameters_take_no_gradient():
    layer = torch.nn.Linear(3, 1)
    x = torch.randn(2, 3, requires_grad=True)
    with frozen(layer):
        layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None and layer.weight.requires_grad


def tiny_model() -> SelfSupervisedNet:
    network = build_body3d_model(Body3DConfig(canvas=CANVAS, hidden=32, iterations=2), pretrained=False)
    heads = SSPSEHeadsConfig(feature_dim=network.backbone.feature_dim, num_faces=27420, patch=16, disc_size=32,
                             hidden=16, decoder_channels=16, disc_channels=8, texture_rank=4)
    return SelfSupervisedNet(network, heads)


def unlabelled_batch(n: int = 2, ranges: int = 5) -> dict:
    images = torch.randint(0, 255, (n, ranges, 3, CANVAS, CANVAS), dtype=torch.uint8)
    mask = torch.zeros(n, CANVAS, CANVAS)
    mask[:, 8:56, 24:40] = 1
    return {"real": {"images": images, "range_index": torch.arange(ranges).repeat(n, 1), "silhouette": mask,
                     "has_silhouette": torch.ones(n)}}


def parts_with_gradient(model: SelfSupervisedNet) -> set[str]:
    return {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_stage_parameters():
    model = tiny_model()
    assert set(stage_parameters(model, SSPSEConfig(stage="pretrain"))) == \
        {"jigsaw", "rotation", "inpainting", "discriminator", "texture"}
    assert not any(p.requires_grad for p in model.network.parameters())
    assert stage_parameters(model, SSPSEConfig(stage="mesh")) == ["network", "discriminator"]
    assert not any(p.requires_grad for p in model.texture.parameters())
    assert stage_parameters(model, SSPSEConfig(stage="mesh", rendering=("rgb", "mask"))) == ["network"]
    assert stage_parameters(model, SSPSEConfig(stage="pretrain", pretext=("rotation",), rendering=())) == ["rotation"]


def test_pretraining_teaches_the_heads_not_the_network(anny_body):
    model = tiny_model()
    config = SSPSEConfig(stage="pretrain", render_size=32)
    stage_parameters(model, config)
    loss, logs = SSPSELoss(config, anny_body)(model, unlabelled_batch())
    loss.backward()
    assert torch.isfinite(loss)
    assert parts_with_gradient(model) == {"jigsaw", "rotation", "inpainting", "discriminator", "texture"}
    assert logs["loss_mask"] == 0 and logs["loss_real"] == 0  # rendering trains the texture only in T1


def test_mesh_training_reaches_the_network_and_keeps_the_heads(anny_body):
    model = tiny_model()
    config = SSPSEConfig(stage="mesh", render_size=32)
    stage_parameters(model, config)
    loss, logs = SSPSELoss(config, anny_body)(model, unlabelled_batch())
    loss.backward()
    assert parts_with_gradient(model) == {"network", "discriminator"}
    assert logs["loss_mask"] > 0 and logs["loss_real"] > 0 and logs["loss_disc"] > 0
    assert 0 <= logs["mask_iou"] <= 1
    # the network's batch-norm statistics stay frozen
    assert not any(m.training for m in model.network.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_every_switch_keeps_the_same_log_columns(anny_body):
    model = tiny_model()
    columns = set()
    for config in (SSPSEConfig(render_size=32), SSPSEConfig(render_size=32, pretext=("jigsaw",), rendering=("rgb",)),
                   SSPSEConfig(render_size=32, pretext=(), rendering=())):
        stage_parameters(model, config)
        loss, logs = SSPSELoss(config, anny_body)(model, unlabelled_batch())
        columns.add(tuple(sorted(logs)))
        if config.pretext or config.rendering:
            loss.backward()
        model.zero_grad()
    assert len(columns) == 1


def test_weak_supervision_needs_and_uses_the_joint_loss(anny_body):
    with pytest.raises(ValueError, match="joint loss"):
        SSPSELoss(SSPSEConfig(supervision="weak"), anny_body)
    calls = []

    def joint(model, batch):
        calls.append(batch["marker"])
        return torch.tensor(2.0, requires_grad=True), {}

    model = tiny_model()
    config = SSPSEConfig(supervision="weak", render_size=32, pretext=(), rendering=("mask",))
    stage_parameters(model, config)
    batch = unlabelled_batch() | {"labelled": {"marker": 7}}
    _, logs = SSPSELoss(config, anny_body, joint_loss=joint)(model, batch)
    assert calls == [7] and logs["loss_joints"] == 2.0


def test_paired_dataset_draws_a_labelled_person():
    paired = PairedDataset([{"a": 1}, {"a": 2}], [{"b": 5}])
    assert len(paired) == 2 and paired[1] == {"real": {"a": 2}, "labelled": {"b": 5}}
    assert PairedDataset([{"a": 1}])[0] == {"real": {"a": 1}}


def test_clothing_tolerant_mask_and_shape_prior(anny_body):
    with pytest.raises(ValueError, match="mask_loss"):
        SSPSEConfig(mask_loss="l1")
    with pytest.raises(ValueError, match="mean shape"):
        SSPSELoss(SSPSEConfig(lambda_shape=1.0), anny_body)
    model = tiny_model()
    batch = unlabelled_batch()
    batch["real"]["silhouette"][:] = 1  # the person covers the crop: the one-way term has nothing to punish
    mean_shape = torch.full((anny_body.pose_spec.shape_size,), 0.5)
    config = SSPSEConfig(render_size=32, pretext=(), rendering=("mask",), mask_loss="inside", lambda_shape=1.0)
    stage_parameters(model, config)
    loss, logs = SSPSELoss(config, anny_body, mean_shape=mean_shape)(model, batch)
    assert logs["loss_mask"] == 0 and logs["loss_shape"] > 0
    loss.backward()
    assert "network" in parts_with_gradient(model)


def test_teacher_term_is_the_2d_loss_of_the_unlabelled_people(anny_body):
    from lowres_hps.methods.rsc import RSCLoss

    with pytest.raises(ValueError, match="teacher loss"):
        SSPSELoss(SSPSEConfig(lambda_teacher=1.0), anny_body)
    model = tiny_model()
    config = SSPSEConfig(render_size=32, pretext=(), rendering=(), lambda_teacher=1.0)
    stage_parameters(model, config)
    teacher = RSCLoss(model.network.config, anny_body, lambda_params=0.0, lambda_3d=0.0, lambda_2d=5.0,
                      self_supervision=None, feature_loss=None, range_schedule=None, ranges_per_step=1)
    batch = unlabelled_batch()
    n, joints = 2, 17
    labels = {"keypoints2d": torch.rand(n, joints, 2) * CANVAS, "visible2d": torch.ones(n, joints),
              "keypoints3d": torch.zeros(n, joints, 3), "visible3d": torch.zeros(n, joints),
              "pose_vector": torch.zeros(n, anny_body.pose_spec.vector_size), "has_params": torch.zeros(n),
              "has_3d": torch.zeros(n), "has_weak3d": torch.zeros(n)}
    batch["real"].update(labels)
    loss, logs = SSPSELoss(config, anny_body, teacher_loss=teacher)(model, batch)
    assert logs["loss_teacher"] > 0 and torch.isclose(loss, logs["loss_teacher"])
    loss.backward()
    assert parts_with_gradient(model) == {"network"}
    # people without teacher joints cost nothing (only the camera floor could)
    model.zero_grad()
    batch["real"]["visible2d"].zero_()
    _, logs = SSPSELoss(config, anny_body, teacher_loss=teacher)(model, batch)
    assert logs["loss_teacher"] < 1e-6
    # and the term stays out of the pretraining stage
    pretrain = SSPSEConfig(stage="pretrain", render_size=32, lambda_teacher=1.0)
    _, logs = SSPSELoss(pretrain, anny_body, teacher_loss=teacher)(model, batch)
    assert logs["loss_teacher"] == 0
