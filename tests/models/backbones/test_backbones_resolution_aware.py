"""RSC-Net's resolution-aware ResNet: plain ResNet at alpha = 1, per-sample rows of alpha, checkpoints, errors."""
from __future__ import annotations

import pytest
import torch
import torchvision

from lowres_hps.models.backbones.resolution_aware import ResolutionAwareResNet, residual_branch


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def plain_features(net: ResolutionAwareResNet, images: torch.Tensor) -> torch.Tensor:
    """The pooled features of torchvision's own ResNet forward with the same weights."""
    reference = torchvision.models.resnet18(weights=None)
    reference.fc = torch.nn.Identity()
    reference.load_state_dict({k.removeprefix("trunk."): v for k, v in net.state_dict().items()
                               if k.startswith("trunk.")})
    return reference.eval()(images)


def test_alpha_ones_is_the_plain_resnet():
    net = ResolutionAwareResNet(18, num_ranges=5).eval()
    assert net.resolution_aware and net.alpha.shape == (5, 8)
    assert torch.equal(net.alpha, torch.ones(5, 8))
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = plain_features(net, images)
        got = net(images, torch.tensor([0, 2, 4]))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert expected.shape == (3, 512) and net.feature_dim == 512


def test_each_sample_uses_its_own_row_of_alpha():
    net = ResolutionAwareResNet(18, num_ranges=5).eval()
    images = torch.randn(4, 3, 32, 32)
    ranges = torch.tensor([0, 3, 1, 3])
    with torch.no_grad():
        before = net(images, ranges)
        net.alpha[3].uniform_(0.2, 0.8)
        after = net(images, ranges)
        # The same sample run alone with its range gives the same features (no mixing across the batch).
        single = net(images[1:2], torch.tensor([3]))
    changed = (after - before).abs().amax(dim=1)
    assert changed[1] > 1e-3 and changed[3] > 1e-3
    assert changed[0] == 0 and changed[2] == 0
    torch.testing.assert_close(single[0], after[1], atol=1e-5, rtol=1e-5)


def test_alpha_zero_keeps_only_the_shortcuts():
    net = ResolutionAwareResNet(18, num_ranges=2).double().eval()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    block = net.blocks[2]  # first block of layer2: a downsampling one
    x = torch.randn(2, 64, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        # residual_branch is what a torchvision block adds to its shortcut.
        torch.testing.assert_close(block(x), torch.relu(block.downsample(x) + residual_branch(block, x)))
        net.alpha[1].zero_()
        t = net.trunk
        expected = t.maxpool(t.relu(t.bn1(t.conv1(images))))
        for b in net.blocks:
            expected = torch.relu(expected if b.downsample is None else b.downsample(expected))
        expected = torch.flatten(t.avgpool(expected), 1)
        torch.testing.assert_close(net(images, torch.tensor([1, 1])), expected)
        assert not torch.allclose(net(images, torch.tensor([0, 0])), expected)


def test_gradients_reach_alpha_rows_in_use_only():
    net = ResolutionAwareResNet(18, num_ranges=5).double()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    net(images, torch.tensor([1, 4])).sum().backward()
    used = net.alpha.grad.abs().sum(dim=1)
    assert used[1] > 0 and used[4] > 0
    assert used[0] == 0 and used[2] == 0 and used[3] == 0


def test_gradcheck_wrt_alpha():
    net = ResolutionAwareResNet(18, num_ranges=2).double().eval()
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    ranges = torch.tensor([0, 1])
    alpha = torch.rand(2, 8, dtype=torch.float64, requires_grad=True)

    def features(a):
        return torch.func.functional_call(net, {"alpha": a}, (images, ranges))[:, :4]

    assert torch.autograd.gradcheck(features, (alpha,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_baseline_has_no_alpha_and_ignores_range_index():
    net = ResolutionAwareResNet(18, resolution_aware=False).eval()
    assert not net.resolution_aware and net.alpha is None
    assert not any("alpha" in name for name, _ in net.named_parameters())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(images), plain_features(net, images), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net(images, torch.tensor([0, 4])), net(images))


def test_loads_a_torchvision_checkpoint(tmp_path):
    classifier = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    net = ResolutionAwareResNet(18, pretrained=path)
    for name, value in classifier.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(net.state_dict()["trunk." + name], value), name
    with pytest.raises(FileNotFoundError, match="not found"):
        ResolutionAwareResNet(18, pretrained=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="does not fit"):
        ResolutionAwareResNet(50, pretrained=path)  # a ResNet-18 file for a ResNet-50


def test_resnet50_feature_size():
    net = ResolutionAwareResNet(50, num_ranges=3).eval()
    assert net.feature_dim == 2048 and net.alpha.shape == (3, 16)
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32), torch.tensor([2])).shape == (1, 2048)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="depth"):
        ResolutionAwareResNet(101)
    with pytest.raises(ValueError, match="num_ranges"):
        ResolutionAwareResNet(18, num_ranges=0)
    net = ResolutionAwareResNet(18, num_ranges=5)
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(images[0], torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="needs range_index"):
        net(images)
    with pytest.raises(ValueError, match=r"range_index must be \(2,\)"):
        net(images, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        net(images, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        net(images, torch.tensor([-1, 0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_follows_the_input_dtype_and_device(dtype, device):
    net = ResolutionAwareResNet(18, num_ranges=5).to(device, dtype).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32, dtype=dtype, device=device), torch.tensor([0, 2], device=device))
    assert out.dtype == dtype and out.device.type == device.type
