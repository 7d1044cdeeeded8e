"""Adapter: updates a copy (never the model) by minimising an unlabelled loss; which parameters move, BatchNorm
statistics, clear errors; end to end on a 2D estimator saved as an adapted model of the registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lowres_hps.engine import AdaptConfig, Adapter, OptimConfig, norm_parameters


def _toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))


def _batches(count: int = 4, seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 4, generator=generator) * 2 + 1 for _ in range(count)]


def reconstruction(model, batch):
    """An unlabelled loss: give back the input."""
    error = (model(batch) - batch).square().mean()
    return error, {"error": error.detach()}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_adapts_a_copy_and_lowers_the_loss():
    model, batches = _toy(), _batches()
    before = _state(model)
    adapter = Adapter(reconstruction, AdaptConfig(steps=60, optim=OptimConfig(name="adam", lr=1e-2)))
    adapted = adapter.adapt(model, batches)
    assert adapted is not model and not adapted.training
    for key, value in model.state_dict().items():  # the model is untouched
        assert torch.equal(value, before[key]), key
    assert [row["step"] for row in adapter.history] == list(range(60))  # 4 batches gone through 15 times
    model.eval()
    with torch.no_grad():
        start = float(sum(reconstruction(model, b)[0] for b in batches))
        end = float(sum(reconstruction(adapted, b)[0] for b in batches))
    assert end < 0.5 * start
    assert adapter.history[-1]["error"] == pytest.approx(adapter.history[-1]["loss"])
    assert all(p.requires_grad for p in adapted.parameters())
    # Deterministic: the same adaptation gives the same weights.
    again = Adapter(reconstruction, adapter.config).adapt(model, batches)
    for (key, value), other in zip(adapted.state_dict().items(), again.state_dict().values()):
        assert torch.equal(value, other), key


def test_norm_parameters_only_and_batchnorm_statistics():
    model, batches = _toy(), _batches()
    config = AdaptConfig(steps=10, parameters="norm", optim=OptimConfig(name="sgd", lr=0.1))
    adapted = Adapter(reconstruction, config).adapt(model, batches)
    moved = {k for k, v in adapted.state_dict().items() if not torch.equal(v, model.state_dict()[k])}
    assert moved == {"1.weight", "1.bias"}  # the BatchNorm affine parameters, nothing else
    assert norm_parameters(model) == [model[1].weight, model[1].bias]
    # train_mode: BatchNorm statistics follow the new inputs; otherwise they stay the trained ones.
    followed = Adapter(reconstruction, AdaptConfig(steps=4, parameters="norm", train_mode=True)).adapt(model, batches)
    assert not torch.equal(followed[1].running_mean, model[1].running_mean)
    assert torch.equal(adapted[1].running_mean, model[1].running_mean)


def test_a_one_pass_iterator_ends_the_adaptation():
    adapter = Adapter(reconstruction, AdaptConfig(steps=100))
    adapter.adapt(_toy(), iter(_batches(3)))
    assert len(adapter.history) == 3


def test_errors_are_clear():
    with pytest.raises(ValueError, match="scalar tensor"):
        Adapter(lambda model, batch: (model(batch), {})).adapt(_toy(), _batches())
    with pytest.raises(FloatingPointError, match="step 0"):
        Adapter(lambda model, batch: (model(batch).sum() * float("nan"), {})).adapt(_toy(), _batches())
    with pytest.raises(ValueError, match="no batch"):
        Adapter(reconstruction).adapt(_toy(), [])
    with pytest.raises(ValueError, match="no parameters to adapt"):
        Adapter(reconstruction, AdaptConfig(parameters="norm")).adapt(nn.Linear(4, 4), _batches())
    with pytest.raises(ValueError, match="steps must be at least 1"):
        AdaptConfig(steps=0)


def flip_consistency(model, crops):
    """Unlabelled loss of a top-down heatmap network: the heatmaps of a crop and of its mirror image agree."""
    from lowres_hps.body.keypoints import get_convention
    from lowres_hps.models.codecs.flip import flip_back_heatmaps

    heatmaps = model(crops)["heatmaps"]
    mirrored = flip_back_heatmaps(model(crops.flip(-1))["heatmaps"], get_convention("coco17").flip_permutation)
    loss = (heatmaps - mirrored).square().mean()
    return loss, {}


def test_an_adapted_2d_estimator_is_saved_and_loaded_as_a_model_of_its_kind(tmp_path):
    from lowres_hps.apis.registry import ModelCard, load_model, save_checkpoint
    from lowres_hps.models.pose2d import Pose2DConfig, TopDownEstimator, build_pose_model

    cfg = Pose2DConfig(backbone="resnet18", backbone_params={"neck_channels": 16}, input_size=(64, 48), codec="msra",
                       flip_test=False)
    torch.manual_seed(0)
    network = build_pose_model(cfg, pretrained=False)
    with torch.no_grad():
        network.head.conv.weight.mul_(1000.0)  # heatmaps well away from zero: a flip disagreement to remove
    estimator = TopDownEstimator(network, card=ModelCard.from_config("tiny", cfg))
    crops = [torch.randint(0, 256, (4, 3, 64, 48), generator=torch.Generator().manual_seed(s)).float()
             for s in range(2)]
    before = _state(estimator.model)
    adapter = Adapter(flip_consistency, AdaptConfig(steps=8, optim=OptimConfig(name="adam", lr=1e-3)))
    adapted = adapter.adapt_estimator(estimator, crops)
    assert adapted.model is not estimator.model and adapted.codec is estimator.codec
    assert all(torch.equal(v, before[k]) for k, v in estimator.model.state_dict().items())
    with torch.no_grad():
        start = float(sum(flip_consistency(estimator.model, c)[0] for c in crops))
        end = float(sum(flip_consistency(adapted.model, c)[0] for c in crops))
    assert end < start
    keypoints, scores = adapted(crops[0].to(torch.uint8))
    assert keypoints.shape == (4, 17, 2) and scores.shape == (4, 17)

    card = estimator.card.adapted("tiny_site3", {"loss": "flip consistency", "steps": 8})
    assert card.task == estimator.card.task and card.architecture == estimator.card.architecture
    path = save_checkpoint(adapted, card, tmp_path / "tiny_site3.safetensors")
    loaded = load_model(path)
    assert isinstance(loaded, TopDownEstimator) and loaded.card.extra["adapted_from"] == "tiny"
    assert loaded.card.extra["adaptation"] == {"loss": "flip consistency", "steps": 8}
    for key, value in adapted.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
