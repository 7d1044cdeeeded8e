import pytest
import torch

from lowres_hps.models.codecs import MSRAHeatmap, codec_from_config, dark_refine, quarter_offset_refine
from lowres_hps.models.codecs.msra import dark_blur_kernel_size

SIZES = [(64, 48), (128, 96), (256, 192)]


def random_keypoints_hm(codec, batch, joints, margin, dtype, device, seed=0):
    """Sub-pixel keypoints in heatmap pixels at least ``margin`` from the heatmap border."""
    g = torch.Generator().manual_seed(seed)
    h, w = codec.heatmap_size
    span = torch.tensor([w - 1 - 2 * margin, h - 1 - 2 * margin], dtype=torch.float64)
    points = torch.rand(batch, joints, 2, generator=g, dtype=torch.float64) * span + margin
    return points.to(dtype=dtype, device=device)


def test_heatmap_size_and_udp_scale():
    codec = MSRAHeatmap((64, 48))
    assert codec.heatmap_size == (16, 12)
    assert codec.scale == pytest.approx((47 / 11, 63 / 15))
    assert MSRAHeatmap((64, 48), stride=2).heatmap_size == (32, 24)
    identity = MSRAHeatmap((64, 48), stride=1)
    assert identity.heatmap_size == (64, 48) and identity.scale == (1.0, 1.0)
    # First and last pixel centres coincide at both resolutions.
    corners = torch.tensor([[0.0, 0.0], [47.0, 63.0]])
    assert torch.allclose(codec.input_to_heatmap(corners), torch.tensor([[0.0, 0.0], [11.0, 15.0]]))


@pytest.mark.parametrize("kwargs", [dict(stride=5), dict(stride=0), dict(stride=32), dict(sigma=0.0)])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        MSRAHeatmap((64, 48), **kwargs)


@pytest.mark.parametrize("input_size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_within_quarter_pixel(input_size, dtype, device):
    codec = MSRAHeatmap(input_size)
    keypoints_hm = random_keypoints_hm(codec, 4, 17, 1.0, dtype, device)
    targets = codec.encode(codec.heatmap_to_input(keypoints_hm))
    keypoints, scores = codec.decode(targets.heatmaps)
    assert keypoints.dtype == dtype and keypoints.device.type == device.type
    error_hm = (codec.input_to_heatmap(keypoints) - keypoints_hm).abs()
    # argmax is the nearest pixel (error <= 0.5) and the shift towards the higher neighbour halves it.
    assert error_hm.max() <= 0.25 + 1e-4
    assert ((scores > 0.77) & (scores <= 1)).all()  # exp(-0.5^2 * 2 / (2 * 2^2)) at worst


@pytest.mark.parametrize("input_size", SIZES)
@pytest.mark.parametrize("sigma, margin", [(1.0, 2.5), (2.0, 4.5)])
def test_dark_decoding_of_a_clean_gaussian(input_size, sigma, margin):
    codec = codec_from_config("msra_dark", input_size=input_size, sigma=sigma)
    assert codec.decode_dark and codec.blur_kernel_size == dark_blur_kernel_size(sigma)
    keypoints_hm = random_keypoints_hm(codec, 8, 17, margin, torch.float64, "cpu", seed=1)
    targets = codec.encode(codec.heatmap_to_input(keypoints_hm))
    keypoints, _ = codec.decode(targets.heatmaps)
    error_hm = (codec.input_to_heatmap(keypoints) - keypoints_hm).norm(dim=-1)
    assert error_hm.max() < 0.1
    # And DARK beats the quarter shift on the same heatmaps.
    plain, _ = MSRAHeatmap(input_size, sigma=sigma).decode(targets.heatmaps)
    plain_error = (codec.input_to_heatmap(plain) - keypoints_hm).norm(dim=-1)
    assert error_hm.mean() < plain_error.mean()


def test_dark_recovers_the_centre_of_an_oblique_gaussian():
    # Log of a (blurred) Gaussian is quadratic, so DARK's Newton step is exact, cross term included.
    centre = torch.tensor([23.3, 30.6], dtype=torch.float64)
    precision = torch.linalg.inv(torch.tensor([[3.0, 1.5], [1.5, 2.0]], dtype=torch.float64))
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    diff = torch.stack([xs, ys], dim=-1).double() - centre
    heatmaps = torch.exp(-0.5 * torch.einsum("hwi,ij,hwj->hw", diff, precision, diff))[None, None]
    xy = torch.tensor([[[23, 31]]])
    assert torch.allclose(dark_refine(heatmaps, xy, 11)[0, 0], centre, atol=1e-3)


def test_dark_kernel_rule_matches_mmpose_defaults():
    assert dark_blur_kernel_size(2.0) == 11
    assert dark_blur_kernel_size(3.0) == 17


def test_dark_leaves_border_and_flat_maxima_unrefined():
    heatmaps = torch.zeros(1, 2, 16, 12)
    heatmaps[0, 0, 0, 1] = 1.0  # within 2 px of the border
    xy = torch.tensor([[[1, 0], [5, 5]]])  # the second heatmap is flat: singular Hessian
    refined = dark_refine(heatmaps, xy, 11)
    assert torch.equal(refined, xy.float())
    with pytest.raises(ValueError):
        dark_refine(heatmaps, xy, 4)


def test_quarter_shift_direction():
    heatmaps = torch.zeros(1, 1, 5, 5)
    heatmaps[0, 0, 2, 2] = 1.0
    heatmaps[0, 0, 2, 3] = 0.5  # right neighbour higher
    heatmaps[0, 0, 1, 2] = 0.5  # upper neighbour higher
    refined = quarter_offset_refine(heatmaps, torch.tensor([[[2, 2]]]))
    assert torch.allclose(refined, torch.tensor([[[2.25, 1.75]]]))
    # No neighbour on one side: no shift along that axis.
    assert torch.equal(quarter_offset_refine(heatmaps, torch.tensor([[[0, 4]]])), torch.tensor([[[0.0, 4.0]]]))


def test_gaussian_target_values():
    codec = MSRAHeatmap((64, 48), sigma=2.0)
    keypoints_hm = torch.tensor([[[5.3, 7.6]]], dtype=torch.float64)
    heatmaps = codec.encode(codec.heatmap_to_input(keypoints_hm)).heatmaps[0, 0]
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    distance2 = (xs - 5.3) ** 2 + (ys - 7.6) ** 2
    expected = torch.exp(-distance2 / 8) * (distance2 <= 36)
    assert torch.allclose(heatmaps, expected.double(), atol=1e-12)
    assert heatmaps.argmax() == 8 * 12 + 5  # peak at the nearest pixel


def test_invisible_and_far_keypoints_get_zero_weight():
    codec = MSRAHeatmap((64, 48))
    keypoints = torch.tensor([[[20.0, 30.0], [float("nan"), 0.0], [20.0, 30.0], [-40.0, 30.0], [-3.0, 30.0]]])
    visible = torch.tensor([[1, 0, 0, 1, 1]])
    targets = codec.encode(keypoints, visible)
    assert targets.keypoint_weights.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0]]
    assert targets.heatmaps[0, 1:4].abs().sum() == 0
    assert targets.heatmaps[0, 4].max() > 0  # just outside: its Gaussian still reaches the heatmap
    assert torch.isfinite(targets.keypoints_hm).all()


def test_batched_equals_looped():
    codec = MSRAHeatmap((128, 96), decode_dark=True)
    keypoints = codec.heatmap_to_input(random_keypoints_hm(codec, 3, 5, 0.0, torch.float32, "cpu", seed=2))
    visible = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    batched = codec.encode(keypoints, visible)
    for b in range(3):
        single = codec.encode(keypoints[b:b + 1], visible[b:b + 1])
        assert torch.equal(single.heatmaps, batched.heatmaps[b:b + 1])
        assert torch.equal(single.keypoint_weights, batched.keypoint_weights[b:b + 1])
    noise = torch.rand(batched.heatmaps.shape, generator=torch.Generator().manual_seed(0))
    noisy = batched.heatmaps + 0.01 * noise
    decoded, scores = codec.decode(noisy)
    for b in range(3):
        one, one_scores = codec.decode(noisy[b:b + 1])
        assert torch.allclose(one, decoded[b:b + 1], atol=1e-5) and torch.equal(one_scores, scores[b:b + 1])


def test_shape_errors():
    codec = MSRAHeatmap((64, 48))
    with pytest.raises(ValueError):
        codec.encode(torch.zeros(2, 17, 3))
    with pytest.raises(ValueError):
        codec.encode(torch.zeros(2, 17, 2), torch.ones(2, 16))
    with pytest.raises(TypeError):
        codec.encode(torch.zeros(2, 17, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        codec.decode(torch.zeros(2, 17, 16, 13))
    with pytest.raises(ValueError):
        codec.decode(torch.zeros(2, 17, 16, 12), torch.zeros(2, 17, 2, 16, 12))
