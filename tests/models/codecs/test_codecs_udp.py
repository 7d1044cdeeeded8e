import math

import pytest
import torch

from lowres_hps.models.codecs import UDPBinary, codec_from_config, udp_radius

SIZES = [(64, 48), (128, 96), (256, 192)]


def random_keypoints(input_size, batch, joints, dtype, device, seed=0):
    """Sub-pixel keypoints anywhere in the input crop ``[0, w - 1] x [0, h - 1]``."""
    g = torch.Generator().manual_seed(seed)
    h, w = input_size
    points = torch.rand(batch, joints, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
    return points.to(dtype=dtype, device=device)


def test_default_radius_is_udps():
    assert udp_radius((16, 12)) == pytest.approx(0.875)
    assert UDPBinary((256, 192)).radius == pytest.approx(3.5)
    assert UDPBinary((64, 48), radius=2.0).offset_scale == 2.0
    with pytest.raises(ValueError):
        UDPBinary((64, 48), radius=0.0)


@pytest.mark.parametrize("input_size", SIZES)
@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_exact(input_size, stride, dtype, device):
    codec = UDPBinary(input_size, stride=stride)
    keypoints = random_keypoints(input_size, 2, 8, dtype, device)
    targets = codec.encode(keypoints)
    assert (targets.keypoint_weights == 1).all()  # R >= sqrt(2)/2 here: every keypoint has a disc pixel
    decoded, scores = codec.decode(targets.heatmaps, targets.offsets)
    assert decoded.dtype == dtype and decoded.device.type == device.type
    assert (decoded - keypoints).abs().max() < 1e-4
    # Ideal binary targets read as logits of 1.
    assert torch.allclose(scores, torch.full_like(scores, 1 / (1 + math.exp(-1))))


def test_binary_disc_and_offsets():
    codec = UDPBinary((128, 96), radius=2.0)
    keypoints_hm = torch.tensor([[[10.3, 20.6]]], dtype=torch.float64)
    targets = codec.encode(codec.heatmap_to_input(keypoints_hm))
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="ij")
    dx, dy = 10.3 - xs.double(), 20.6 - ys.double()
    disc = (dx**2 + dy**2 <= 4.0).double()
    assert torch.equal(targets.heatmaps[0, 0], disc)
    assert torch.equal(targets.offset_weights[0, 0], disc)
    assert set(targets.heatmaps.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(targets.offsets[0, 0, 0] * codec.offset_scale, dx)
    assert torch.allclose(targets.offsets[0, 0, 1] * codec.offset_scale, dy)
    assert torch.allclose(targets.keypoints_hm, keypoints_hm)


def test_decode_uses_the_offset_at_the_argmax():
    codec = UDPBinary((64, 48), radius=2.0)
    logits = torch.full((1, 1, 16, 12), -5.0)
    logits[0, 0, 7, 4] = 3.0
    offsets = torch.zeros(1, 1, 2, 16, 12)
    offsets[0, 0, :, 7, 4] = torch.tensor([0.25, -0.5])  # (0.5, -1.0) heatmap px with R = 2
    keypoints, scores = codec.decode(logits, offsets)
    expected = codec.heatmap_to_input(torch.tensor([[[4.5, 6.0]]]))
    assert torch.allclose(keypoints, expected)
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([[3.0]])))


def test_invisible_and_out_of_reach_keypoints_get_zero_weight():
    codec = UDPBinary((64, 48))  # R = 0.875 heatmap px
    keypoints = torch.tensor([[[20.0, 30.0], [20.0, 30.0], [-2.0, 30.0], [-20.0, 30.0]]])
    visible = torch.tensor([[True, False, True, True]])
    targets = codec.encode(keypoints, visible)
    # -2 input px is -0.47 heatmap px: pixel 0 is within R; -20 input px is out of reach.
    assert targets.keypoint_weights.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    for field in (targets.heatmaps, targets.offset_weights, targets.offsets):
        assert field[0, 1].abs().sum() == 0 and field[0, 3].abs().sum() == 0
    decoded, _ = codec.decode(targets.heatmaps, targets.offsets)
    assert torch.allclose(decoded[0, 2], keypoints[0, 2], atol=1e-4)  # outside the crop, still decoded


def test_batched_equals_looped():
    codec = codec_from_config("udp", input_size=(128, 96), stride=2)
    keypoints = random_keypoints((128, 96), 3, 6, torch.float32, "cpu", seed=3)
    visible = torch.rand(3, 6, generator=torch.Generator().manual_seed(0)) > 0.3
    batched = codec.encode(keypoints, visible)
    g = torch.Generator().manual_seed(1)
    logits = batched.heatmaps + torch.randn(batched.heatmaps.shape, generator=g)
    offsets = batched.offsets + 0.1 * torch.randn(batched.offsets.shape, generator=g)
    decoded, scores = codec.decode(logits, offsets)
    for b in range(3):
        single = codec.encode(keypoints[b:b + 1], visible[b:b + 1])
        for name in ("heatmaps", "offsets", "offset_weights", "keypoint_weights"):
            assert torch.equal(getattr(single, name), getattr(batched, name)[b:b + 1])
        one, one_scores = codec.decode(logits[b:b + 1], offsets[b:b + 1])
        assert torch.equal(one, decoded[b:b + 1]) and torch.equal(one_scores, scores[b:b + 1])


def test_decode_requires_matching_offsets():
    codec = UDPBinary((64, 48))
    heatmaps = torch.zeros(2, 17, 16, 12)
    with pytest.raises(ValueError):
        codec.decode(heatmaps)
    with pytest.raises(ValueError):
        codec.decode(heatmaps, torch.zeros(2, 17, 16, 12))
    with pytest.raises(ValueError):
        codec.decode(heatmaps, torch.zeros(2, 16, 2, 16, 12))
