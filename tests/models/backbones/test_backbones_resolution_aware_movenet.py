"""RSC-Net's per-range residual weights on MoveNet's MobileNetV2-FPN: alpha = 1 is MoveNet, rows differ per range."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowres_hps.models.backbones.resolution_aware_movenet import ResolutionAwareMoveNet


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return ResolutionAwareMoveNet("lightning", num_ranges=3, pretrained=None, heatmap_grid=4).eval()


def images(batch=3):
    return torch.rand(batch, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_alpha_one_is_movenet_and_the_feature_holds_pooled_top_and_heatmaps(network):
    x = images()
    with torch.no_grad():
        phi = network(x, torch.tensor([0, 1, 2]))
        fpn, top = network.features(x, with_top=True)
        heatmaps = torch.sigmoid(network.heatmap(fpn))
    assert phi.shape == (3, network.feature_dim) and network.feature_dim == 1280 + 17 * 16
    torch.testing.assert_close(phi[:, :1280], top.mean(dim=(-2, -1)))
    torch.testing.assert_close(phi[:, 1280:], F.adaptive_avg_pool2d(heatmaps, 4).flatten(1))
    torch.testing.assert_close(network.features(x), fpn)  # the plain path is unchanged


def test_each_range_has_its_own_residual_weights(network):
    assert network.alpha.shape == (3, 10)  # MobileNetV2's 10 blocks with a skip connection
    x = images(1).expand(2, -1, -1, -1)
    with torch.no_grad():
        network.alpha[2].fill_(0.5)
        try:
            phi = network(x, torch.tensor([0, 2]))
        finally:
            network.alpha.fill_(1.0)
    assert not torch.allclose(phi[0], phi[1])


def test_range_index_is_checked_and_the_baseline_needs_none():
    torch.manual_seed(0)
    net = ResolutionAwareMoveNet("lightning", num_ranges=2, pretrained=None).eval()
    with pytest.raises(ValueError, match="needs range_index"):
        net(images(1))
    with pytest.raises(ValueError, match=r"range_index must be in \[0, 2\)"):
        net(images(1), torch.tensor([2]))
    baseline = ResolutionAwareMoveNet("lightning", resolution_aware=False, pretrained=None).eval()
    assert baseline.alpha is None and baseline(images(1)).shape == (1, baseline.feature_dim)


def test_gradients_reach_alpha():
    torch.manual_seed(0)
    net = ResolutionAwareMoveNet("lightning", num_ranges=2, pretrained=None)
    net(images(2), torch.tensor([0, 1])).sum().backward()
    assert net.alpha.grad is not None and (net.alpha.grad.abs() > 0).all()
