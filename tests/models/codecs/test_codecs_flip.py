import pytest
import torch

from lowres_hps.body.keypoints import get_convention
from lowres_hps.models.codecs import (
    codec_from_config,
    flip_back_heatmaps,
    flip_back_offsets,
    flip_keypoints,
    merge_flip,
)

PERM = get_convention("coco17").flip_permutation


def random_keypoints(input_size, batch, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    h, w = input_size
    points = torch.rand(batch, 17, 2, generator=g, dtype=torch.float64) * torch.tensor([w - 1.0, h - 1.0])
    return points.to(dtype)


def test_flip_keypoints_mirrors_and_swaps():
    keypoints = random_keypoints((64, 48), 2)
    flipped = flip_keypoints(keypoints, 48, PERM)
    left_shoulder, right_shoulder = 5, 6
    assert torch.allclose(flipped[:, right_shoulder, 0], 47 - keypoints[:, left_shoulder, 0])
    assert torch.equal(flipped[:, right_shoulder, 1], keypoints[:, left_shoulder, 1])
    assert torch.allclose(flip_keypoints(flipped, 48, PERM), keypoints)  # an involution


@pytest.mark.parametrize("name", ["msra", "udp", "cal"])
@pytest.mark.parametrize("input_size, stride", [((64, 48), 4), ((128, 96), 2), ((256, 192), 4)])
def test_flipped_encode_equals_encode_of_flipped_keypoints(name, input_size, stride, device):
    codec = codec_from_config(name, input_size=input_size, stride=stride)
    keypoints = random_keypoints(input_size, 1, seed=stride).to(device)
    visible = (torch.rand(1, 17, generator=torch.Generator().manual_seed(1)) > 0.2).to(device)
    direct = codec.encode(keypoints, visible)
    perm = torch.tensor(PERM, device=device)
    flipped = codec.encode(flip_keypoints(keypoints, input_size[1], PERM), visible[:, perm])
    # The flipped targets, flipped back, are the original targets: no half-pixel shift with UDP's mapping.
    assert torch.allclose(flip_back_heatmaps(flipped.heatmaps, PERM), direct.heatmaps, atol=1e-9)
    if codec.has_offsets:
        assert torch.allclose(flip_back_offsets(flipped.offsets, PERM), direct.offsets, atol=1e-9)
        assert torch.allclose(flip_back_heatmaps(flipped.offset_weights, PERM), direct.offset_weights, atol=1e-9)


@pytest.mark.parametrize("name", ["msra", "udp", "cal"])
def test_flip_test_of_ideal_outputs_decodes_exactly(name):
    input_size = (128, 96)
    codec = codec_from_config(name, input_size=input_size)
    keypoints = random_keypoints(input_size, 1, seed=4)
    outputs = codec.encode(keypoints)
    flipped = codec.encode(flip_keypoints(keypoints, input_size[1], PERM))
    heatmaps, offsets = merge_flip(outputs.heatmaps, flipped.heatmaps, PERM, outputs.offsets, flipped.offsets)
    assert torch.allclose(heatmaps, outputs.heatmaps, atol=1e-12)
    merged, _ = codec.decode(heatmaps, offsets)
    single, _ = codec.decode(outputs.heatmaps, outputs.offsets)
    assert torch.allclose(merged, single, atol=1e-9)


def test_merge_flip_averages():
    heatmaps = torch.rand(2, 17, 8, 6)
    flipped = torch.rand(2, 17, 8, 6)
    offsets = torch.rand(2, 17, 2, 8, 6)
    flipped_offsets = torch.rand(2, 17, 2, 8, 6)
    merged, merged_offsets = merge_flip(heatmaps, flipped, PERM, offsets, flipped_offsets)
    assert torch.allclose(merged, (heatmaps + flip_back_heatmaps(flipped, PERM)) / 2)
    expected_x = (offsets[:, :, 0] - flipped_offsets[:, PERM, 0].flip(-1)) / 2
    assert torch.allclose(merged_offsets[:, :, 0], expected_x)
    assert merge_flip(heatmaps, flipped, PERM)[1] is None
    with pytest.raises(ValueError):
        merge_flip(heatmaps, flipped, PERM, offsets, None)


def test_permutation_is_checked():
    with pytest.raises(ValueError):
        flip_back_heatmaps(torch.zeros(1, 3, 4, 4), [0, 0, 1])
    with pytest.raises(ValueError):
        flip_back_offsets(torch.zeros(1, 3, 2, 4, 4), [0, 1])
    with pytest.raises(ValueError):
        flip_back_offsets(torch.zeros(1, 3, 3, 4, 4), [0, 1, 2])
