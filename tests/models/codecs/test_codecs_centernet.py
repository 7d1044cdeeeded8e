"""CenterNet box codec: targets in MultiPose's layout, and decoding them back."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.codecs.centernet import CenterNetBoxCodec, gaussian_radius


def test_targets_put_a_peak_at_each_box_centre():
    codec = CenterNetBoxCodec(stride=4)
    boxes = torch.tensor([[[15.5, 31.5, 16.0, 40.0], [0, 0, 0, 0]]])  # edges x 16..32, y 32..72
    targets = codec.encode(boxes, torch.tensor([[True, False]]), (32, 32))
    # Centre at edges (24, 52) -> cells (y 13, x 6): the peak, exactly 1.
    assert targets.heatmap.shape == (1, 1, 32, 32)
    assert targets.heatmap[0, 0, 13, 6] == 1.0 and targets.heatmap.max() == 1.0
    assert targets.index.tolist() == [[13 * 32 + 6, 0]]
    assert targets.box_scale[0, 0].tolist() == [10.0, 4.0]
    assert targets.box_offset[0, 0].tolist() == pytest.approx([0.0, 0.0])
    assert targets.weight.tolist() == [[1.0, 0.0]]
    # A small box is one hot cell (radius 0); a large one's Gaussian falls off inside its radius.
    assert targets.heatmap.sum() == 1.0
    large = codec.encode(torch.tensor([[[15.5, 31.5, 48.0, 120.0]]]), torch.tensor([[True]]), (64, 64)).heatmap
    peak = divmod(int(large.flatten().argmax()), 64)
    assert large[0, 0, peak[0], peak[1] + 1] < 1 and large[0, 0, peak[0], peak[1] + 1] > 0
    assert large[0, 0, peak[0], peak[1] + 20] == 0


def test_off_grid_centres_keep_their_offset_and_off_map_people_are_dropped():
    codec = CenterNetBoxCodec(stride=4)
    boxes = torch.tensor([[[17.5, 31.5, 16.0, 40.0], [500.0, 10.0, 10.0, 10.0]]])
    targets = codec.encode(boxes, torch.tensor([[True, True]]), (32, 32))
    assert targets.box_offset[0, 0].tolist() == pytest.approx([0.0, 0.5])  # x centre 26 edges = 6.5 cells
    assert targets.weight.tolist() == [[1.0, 0.0]]


def test_decode_inverts_encode():
    codec = CenterNetBoxCodec(stride=4)
    boxes = torch.tensor([[[17.25, 30.0, 16.0, 40.0], [60.0, 8.0, 24.0, 70.0]]])
    valid = torch.tensor([[True, True]])
    t = codec.encode(boxes, valid, (32, 32))
    logits = torch.logit(t.heatmap.clamp(1e-4, 1 - 1e-4))
    scale = torch.zeros(1, 2, 32, 32)
    offset = torch.zeros(1, 2, 32, 32)
    for n in range(2):
        y, x = divmod(int(t.index[0, n]), 32)
        scale[0, :, y, x] = t.box_scale[0, n]
        offset[0, :, y, x] = t.box_offset[0, n]
    decoded, scores, _ = codec.decode(logits, scale, offset, max_people=2)
    order = decoded[0, :, 0].argsort()
    assert torch.allclose(decoded[0, order], boxes[0], atol=1e-4)
    assert scores.min() > 0.99


def test_radius_grows_with_the_box_and_shrinks_with_the_overlap():
    r = gaussian_radius(torch.tensor([10.0, 40.0]), torch.tensor([4.0, 16.0]))
    assert 0 < r[0] < r[1]
    assert gaussian_radius(torch.tensor(40.0), torch.tensor(16.0), 0.9) < r[1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="boxes"):
        CenterNetBoxCodec().encode(torch.zeros(2, 4), torch.zeros(2, dtype=torch.bool), (8, 8))
    with pytest.raises(ValueError):
        CenterNetBoxCodec(peak_window=4)
