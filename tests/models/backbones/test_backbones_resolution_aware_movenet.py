"""RSC-Net's per-range residual weights on MoveNet's MobileNetV2-FPN: alpha = 1 is MoveNet, rows differ per range."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowres_hps.models.backbones.resolution_aware_movenet import ResolutionAwareMoveNet, soft_argmax


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return ResolutionAwareMoveNet("lightning", num_ranges=3, pretrained=None, heatmap_grid=4,
                                  keypoint_coordinates=False).eval()


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


def test_soft_argmax_finds_a_sharp_peak_in_pixel_centre_coordinates():
    logits = torch.full((1, 2, 4, 8), -50.0)
    logits[0, 0, 1, 6] = 50.0  # x index 6 of 8, y index 1 of 4
    logits[0, 1] = 0.0  # flat: the centre
    xy = soft_argmax(logits)
    torch.testing.assert_close(xy[0, 0], torch.tensor([(2 * 6 + 1) / 8 - 1, (2 * 1 + 1) / 4 - 1]))
    torch.testing.assert_close(xy[0, 1], torch.zeros(2), atol=1e-6, rtol=0)
    assert torch.autograd.gradcheck(soft_argmax, (torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True),))


def test_keypoint_coordinates_extend_the_feature():
    torch.manual_seed(0)
    net = ResolutionAwareMoveNet("lightning", num_ranges=1, pretrained=None, heatmap_grid=2).eval()
    with torch.no_grad():
        phi = net(images(2), torch.zeros(2, dtype=torch.long))
        fpn = net.features(images(2))
        logits = net.heatmap(fpn)
    assert net.feature_dim == 1280 + 17 * 4 + 17 * 3 and phi.shape == (2, net.feature_dim)
    torch.testing.assert_close(phi[:, 1280 + 68:1280 + 68 + 34], soft_argmax(logits).flatten(1))
    torch.testing.assert_close(phi[:, -17:], torch.sigmoid(logits).flatten(2).amax(-1))
