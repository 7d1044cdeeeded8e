import pytest
import torch

from lowres_hps.models.codecs import CODEC_NAMES, CALCodec, MSRAHeatmap, UDPBinary, codec_from_config

SIZES = [(64, 48), (128, 96), (256, 192)]


def random_keypoints(input_size, batch, joints, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = input_size
    points = torch.rand(batch, joints, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
    return points.to(dtype=dtype, device=device)


@pytest.mark.parametrize("input_size", SIZES)
@pytest.mark.parametrize("stride", [1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_exact(input_size, stride, dtype, device):
    codec = CALCodec(input_size, stride=stride)
    keypoints = random_keypoints(input_size, 2, 8, dtype, device, seed=stride)
    targets = codec.encode(keypoints)
    decoded, scores = codec.decode(targets.heatmaps, targets.offsets)
    assert decoded.dtype == dtype and decoded.device.type == device.type
    assert (decoded - keypoints).abs().max() < 1e-4
    # Score: G at the nearest pixel (at most sqrt(2)/2 heatmap px away).
    assert ((scores >= torch.exp(torch.tensor(-0.5 / (2 * 2.0**2)))) & (scores <= 1)).all()


def test_gaussian_weighted_binary_heatmap():
    codec = CALCodec((128, 96), radius=3.0, sigma=1.5)
    keypoints_hm = torch.tensor([[[10.3, 20.6]]], dtype=torch.float64)
    targets = codec.encode(codec.heatmap_to_input(keypoints_hm))
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="ij")
    distance2 = ((10.3 - xs) ** 2 + (20.6 - ys) ** 2).double()
    expected = torch.exp(-distance2 / (2 * 1.5**2)) * (distance2 <= 9.0)  # Eq. 10: G = B * C
    assert torch.allclose(targets.heatmaps[0, 0], expected)
    assert torch.equal(targets.offset_weights, targets.heatmaps)  # stage-1 offset weights (Eq. 14)
    # Peak at the pixel nearest the joint, zero outside the disc.
    assert targets.heatmaps[0, 0].argmax() == 21 * 24 + 10
    assert (targets.heatmaps[0, 0][distance2 > 9.0] == 0).all()
    # Same disc and offsets as UDP's binary codec.
    udp = UDPBinary((128, 96), radius=3.0).encode(codec.heatmap_to_input(keypoints_hm))
    assert torch.equal((targets.heatmaps > 0), udp.heatmaps.bool())
    assert torch.equal(targets.offsets, udp.offsets)


def test_decode_takes_offsets_at_the_heatmap_peak():
    codec = CALCodec((64, 48), radius=2.0)
    heatmaps = torch.zeros(1, 1, 16, 12)
    heatmaps[0, 0, 3, 9] = 0.8
    heatmaps[0, 0, 3, 8] = 0.7
    offsets = torch.full((1, 1, 2, 16, 12), 0.5)
    offsets[0, 0, :, 3, 9] = torch.tensor([-0.1, 0.2])
    keypoints, scores = codec.decode(heatmaps, offsets)
    assert torch.allclose(keypoints, codec.heatmap_to_input(torch.tensor([[[8.8, 3.4]]])))
    assert torch.allclose(scores, torch.tensor([[0.8]]))  # raw value: CAL heatmaps are trained with L2


def test_invisible_keypoints_get_zero_targets():
    codec = CALCodec((64, 48))
    keypoints = torch.tensor([[[20.0, 30.0], [float("inf"), 30.0], [21.0, 31.0]]])
    targets = codec.encode(keypoints, torch.tensor([[1.0, 1.0, 0.0]]))
    assert targets.keypoint_weights.tolist() == [[1.0, 0.0, 0.0]]
    for field in (targets.heatmaps, targets.offset_weights, targets.offsets):
        assert field[0, 1:].abs().sum() == 0 and field[0, 0].abs().sum() > 0


def test_batched_equals_looped():
    codec = CALCodec((64, 48), stride=2)
    keypoints = random_keypoints((64, 48), 4, 5, torch.float64, "cpu", seed=7)
    batched = codec.encode(keypoints)
    decoded, scores = codec.decode(batched.heatmaps, batched.offsets)
    for b in range(4):
        single = codec.encode(keypoints[b:b + 1])
        assert torch.equal(single.heatmaps, batched.heatmaps[b:b + 1])
        assert torch.equal(single.offsets, batched.offsets[b:b + 1])
        one, one_scores = codec.decode(single.heatmaps, single.offsets)
        assert torch.equal(one, decoded[b:b + 1]) and torch.equal(one_scores, scores[b:b + 1])


def test_stage_two_masks_from_the_codec():
    codec = CALCodec((128, 96), radius=2.0)
    keypoints = random_keypoints((128, 96), 8, 17, torch.float32, "cpu", seed=4)
    targets = codec.encode(keypoints)
    masks = codec.mixed_gaussian_masks(targets.heatmaps, targets, num_components=1)
    assert masks.shape == targets.heatmaps.shape
    assert masks.min() >= 0 and masks.max() <= 1
    assert not torch.equal(masks, targets.offset_weights)  # a real GMM fit, not the fallback


def test_codec_factory():
    assert set(CODEC_NAMES) == {"msra", "msra_dark", "udp", "cal"}
    assert type(codec_from_config("msra", input_size=(64, 48))) is MSRAHeatmap
    assert codec_from_config("msra_dark", input_size=(64, 48)).decode_dark
    cal = codec_from_config("cal", input_size=(64, 48), stride=2, radius=1.5, sigma=1.0)
    assert isinstance(cal, CALCodec) and cal.heatmap_size == (32, 24) and cal.radius == 1.5
    with pytest.raises(ValueError, match="unknown codec"):
        codec_from_config("dark", input_size=(64, 48))
    with pytest.raises(ValueError):
        codec_from_config("msra_dark", input_size=(64, 48), decode_dark=False)
