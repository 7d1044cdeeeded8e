"""Silhouette-topology self-adaptation: the terms of each switch, the fit of Algorithm 1, the prior, and gradients
that reach the network."""
from __future__ import annotations

import math

import pytest
import torch

from lowres_hps.methods.sta import LOSS_SETS, SilhouetteAdaptConfig, SilhouetteAdaptLoss, target_silhouettes
from lowres_hps.models.body3d import Body3DConfig, build_body3d_model
from lowres_hps.models.pose_prior import PosePrior, PosePriorConfig

TINY = {"canvas": 64, "hidden": 32, "iterations": 2}
CAMERA = torch.tensor([[1.0, 0.0, 0.05], [0.9, 0.05, 0.0]])


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def make_loss(anny_body, prior=None, **overrides) -> SilhouetteAdaptLoss:
    net = Body3DConfig(**TINY)
    config = SilhouetteAdaptConfig(**{"render_size": 32, "fit_every": 0, **overrides})
    mean_shape = torch.full((anny_body.pose_spec.shape_size,), 0.5)
    return SilhouetteAdaptLoss(config, net, anny_body, mean_shape, prior=prior)


def walking_pose(anny_body, batch: int = 2, seed: int = 3) -> torch.Tensor:
    """Random plausible poses, upright and facing the camera (the root turned from body to camera axes)."""
    from lowres_hps.body.pose import sample_random_pose
    from lowres_hps.geometry.rotations import body_to_opencv_rotation

    spec = anny_body.pose_spec
    vector = sample_random_pose(batch, torch.Generator().manual_seed(seed), spec)
    rotations, shape = spec.split(vector)
    rotations = torch.cat([body_to_opencv_rotation() @ rotations[:, :1], rotations[:, 1:]], dim=1)
    return spec.join(rotations, shape)


class Fixed(torch.nn.Module):
    """A 'network' whose output is given, plus one parameter so that gradients have somewhere to go."""

    def __init__(self, pose, camera):
        super().__init__()
        self.pose, self.camera = pose, camera
        self.shift = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images, range_index):
        n = images.shape[0]
        return {"pose_vector": self.pose[:n] + self.shift, "camera": self.camera[:n] + self.shift,
                "features": torch.zeros(n, 4)}


def batch_for(silhouettes: torch.Tensor, canvas: int = 64) -> dict:
    n = silhouettes.shape[0]
    full = torch.nn.functional.interpolate(silhouettes[:, None], size=(canvas, canvas), mode="nearest")[:, 0]
    return {"images": torch.zeros(n, 3, canvas, canvas, dtype=torch.uint8), "range_index": torch.zeros(n, dtype=torch.long),
            "silhouette": full, "has_silhouette": torch.ones(n)}


def test_config_checks_its_switches():
    with pytest.raises(ValueError, match="losses"):
        SilhouetteAdaptConfig(losses="b4")
    with pytest.raises(ValueError, match="fit_every"):
        SilhouetteAdaptConfig(fit_every=-1)
    assert SilhouetteAdaptConfig(render_size=64).steps == 32


def test_target_silhouettes_are_binary_at_the_render_size():
    masks = torch.zeros(2, 64, 64)
    masks[:, 10:50, 20:40] = 1
    small = target_silhouettes(masks, 32)
    assert small.shape == (2, 32, 32) and set(small.unique().tolist()) <= {0.0, 1.0}
    assert small.sum() == pytest.approx(2 * 20 * 10)


def test_render_puts_the_body_in_the_middle_of_the_crop(anny_body):
    loss = make_loss(anny_body)
    silhouettes = loss.render(walking_pose(anny_body), CAMERA)
    assert silhouettes.shape == (2, 32, 32)
    assert set(silhouettes.unique().tolist()) <= {0.0, 1.0}
    rows = silhouettes.sum(-1).nonzero()[:, 1]
    assert 8 < silhouettes.sum((-1, -2)).min() < 32 * 32 * 0.6
    assert rows.min() < 10 and rows.max() > 22  # a person spans most of the crop's height


@pytest.mark.parametrize("losses", sorted(LOSS_SETS))
def test_each_switch_is_zero_on_its_own_silhouette_and_reaches_the_network(anny_body, losses):
    loss = make_loss(anny_body, losses=losses)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    same, logs = loss(Fixed(pose, CAMERA), batch_for(target))
    assert {f"loss_{name}" for name in LOSS_SETS[losses]} <= set(logs)
    for name in LOSS_SETS[losses]:
        assert logs[f"loss_{name}"].item() == pytest.approx(0.0, abs=1e-6)
    other = Fixed(walking_pose(anny_body, seed=4), CAMERA)
    value, logs = loss(other, batch_for(target))
    assert all(logs[f"loss_{name}"].item() > 0 for name in LOSS_SETS[losses])
    value.backward()
    assert other.shift.grad is not None and torch.isfinite(other.shift.grad) and other.shift.grad != 0


def test_people_without_a_silhouette_are_left_out(anny_body):
    loss = make_loss(anny_body)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    batch = batch_for(target)
    batch["has_silhouette"] = torch.tensor([1.0, 0.0])
    _, logs = loss(Fixed(pose, CAMERA), batch)
    assert logs["people"].item() == 1
    batch["has_silhouette"] = torch.zeros(2)
    value, logs = loss(Fixed(pose, CAMERA), batch)
    assert logs["people"].item() == 0 and value.item() == 0


def test_fit_brings_the_body_closer_to_the_silhouettes(anny_body):
    loss = make_loss(anny_body, fit_lr=0.03, render_size=64, keep_better=False)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    start = walking_pose(anny_body, seed=4)
    camera = CAMERA * torch.tensor([[1.1, 1.0, 1.0]])
    before = loss._weighted(loss.silhouette_terms(loss.render(start, camera), target)).mean()
    fitted, fitted_camera = loss.fit(start, camera, target, steps=25)
    after = loss._weighted(loss.silhouette_terms(loss.render(fitted, fitted_camera), target)).mean()
    assert after < 0.8 * before
    assert not fitted.requires_grad and fitted.shape == start.shape


def test_a_fit_worse_than_the_network_is_not_taught(anny_body):
    loss = make_loss(anny_body, fit_lr=5.0, fit_steps=3)  # a step size that can only make things worse
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    kept, camera = loss.fit(pose, CAMERA, target)
    torch.testing.assert_close(kept, pose)
    torch.testing.assert_close(camera, CAMERA)


def test_every_kth_step_supervises_the_network_with_the_fit(anny_body):
    loss = make_loss(anny_body, fit_every=2, fit_steps=2, keep_better=False)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    network = Fixed(walking_pose(anny_body, seed=4), CAMERA)
    _, first = loss(network, batch_for(target))
    value, second = loss(network, batch_for(target))
    assert first["loss_params"].item() == 0 and second["loss_params"].item() > 0
    assert set(first) == set(second)  # the same log columns every step
    value.backward()
    assert network.shift.grad is not None and network.shift.grad != 0


def test_prior_holds_the_pose_and_the_fit_moves_through_its_latent(anny_body):
    prior = PosePrior(PosePriorConfig(hidden=16))
    loss = make_loss(anny_body, prior=prior, fit_steps=2)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    _, logs = loss(Fixed(pose, CAMERA), batch_for(target))
    assert logs["loss_prior"].item() > 0  # an untrained prior is far from any pose
    # A decoder that ignores its latent gives one pose: the fit can then move only the root, shape and camera, and
    # the body joints stay the network's exactly (the fit moves them as the decoded pose moves from its start).
    torch.nn.init.zeros_(prior.decoder[-1].weight)
    start = walking_pose(anny_body, seed=4)
    fitted, _ = loss.fit(start, CAMERA, target)
    rotations = anny_body.pose_spec.split(fitted)[0][:, 1:]
    torch.testing.assert_close(rotations, anny_body.pose_spec.split(start)[0][:, 1:], atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in prior.parameters())


def test_a_short_adaptation_of_a_network_changes_it_and_stays_finite(anny_body):
    network = build_body3d_model(Body3DConfig(**TINY), pretrained=False)
    loss = make_loss(anny_body, fit_every=2, fit_steps=1)
    pose = walking_pose(anny_body)
    target = loss.render(pose, CAMERA).detach()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    for _ in range(2):
        value, logs = loss(network, batch_for(target))
        assert math.isfinite(value.item())
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_inside_costs_only_the_body_outside_the_person(anny_body):
    loss = make_loss(anny_body, losses="inside")
    pose = walking_pose(anny_body)
    body = loss.render(pose, CAMERA).detach()
    coat = torch.nn.functional.max_pool2d(body[:, None], 5, 1, 2)[:, 0]  # the person is wider than the body
    terms = loss.silhouette_terms(body, coat)
    assert terms["silhouette_inside"].abs().max() == 0
    assert (loss.silhouette_terms(coat, body)["silhouette_inside"] > 0).all()
