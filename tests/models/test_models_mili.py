"""The MILI network: branches, switches, RoI heads and inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.models.mili import (
    HIGH,
    LOW,
    MILIConfig,
    Restoration,
    SpatialAttention,
    build_mili_model,
    crop_regions,
    roi_boxes,
)

SMALL = dict(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16, hidden=32)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_mili_model(MILIConfig(**SMALL)).eval()


def test_outputs_at_stride_4_and_32(net):
    out = net(torch.randint(0, 255, (2, 3, 64, 96)).float())
    assert out["center"].shape == (2, 1, 16, 24) and out["box_scale"].shape == (2, 2, 16, 24)
    assert out["features"].shape == (2, 24, 16, 24) and out["top_level"].shape == (2, 64, 2, 3)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 3, 60, 96))
    with pytest.raises(ValueError, match="images"):
        net(torch.zeros(3, 64, 96))


def test_attention_and_restoration_start_as_the_identity():
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(SpatialAttention()(x), x)
    top = torch.randn(2, 64, 3, 5)
    assert torch.equal(Restoration(64)(top), top)


def test_branches_differ_only_by_their_attention_and_restoration(net):
    x = torch.randint(0, 255, (1, 3, 64, 64)).float()
    high, low = net(x, HIGH), net(x, LOW)
    assert torch.equal(high["top_level"], low["top_level"])  # both modules start as the identity
    with torch.no_grad():
        net.attention[LOW].conv.bias.fill_(1.0)
        net.restoration.decoder[-1].bias.fill_(0.1)
    try:
        high, low = net(x, HIGH), net(x, LOW)
        assert not torch.equal(high["top_level"], low["top_level"])
        assert torch.equal(high["restored"], high["top_level"]) and not torch.equal(low["restored"], low["top_level"])
    finally:
        with torch.no_grad():
            net.attention[LOW].conv.bias.zero_()
            net.restoration.decoder[-1].bias.zero_()


def test_switches_remove_their_modules():
    net = build_mili_model(MILIConfig(**SMALL, attention=False, restoration=False, mask_head=False))
    assert net.attention is None and net.restoration is None and net.roi_heads.mask is None
    out = net(torch.zeros(1, 3, 32, 32))
    assert torch.equal(out["restored"], out["top_level"])


def test_roi_heads_per_valid_box(net):
    boxes = torch.tensor([[[4.0, 4.0, 10.0, 30.0], [0.0, 0.0, 0.0, 0.0]], [[20.0, 10.0, 12.0, 40.0], [1, 1, 5, 9]]])
    valid = torch.tensor([[True, False], [True, True]])
    rois = roi_boxes(boxes, valid)
    assert rois[:, 0].tolist() == [0, 1, 1] and rois[0, 1:].tolist() == [4.5, 4.5, 14.5, 34.5]
    out = net.roi(net(torch.zeros(2, 3, 64, 64))["features"], rois)
    assert out["keypoint_heatmaps"].shape == (3, 17, 16, 12) and out["mask_logits"].shape == (3, 1, 8, 6)
    assert out["pose_vector"].shape == (3, net.config.pose_spec.vector_size) and out["camera"].shape == (3, 3)
    crops = crop_regions(rois, 1.25)
    assert crops[0].tolist() == pytest.approx([9.5 - 18.75, 19.5 - 18.75, 37.5])


def test_keypoints_map_from_the_roi_grid_to_the_image(net):
    rois = torch.tensor([[0.0, 10.0, 20.0, 26.0, 52.0]])  # 16 x 32 px box, heatmaps 12 wide x 16 high
    heatmaps = torch.full((1, 17, 16, 12), -10.0)
    heatmaps[0, :, 4, 3] = 5.0  # a single hot cell: no quarter shift
    kp, scores = net.keypoints_in_image(heatmaps, rois)
    # Cell (3, 4) centre: x 10 + 3.5 * 16 / 12, y 20 + 4.5 * 32 / 16, in edges; minus 0.5 for pixel centres.
    assert kp[0, 0].tolist() == pytest.approx([10 + 3.5 * 16 / 12 - 0.5, 20 + 4.5 * 2 - 0.5])
    # Score: the softmax mass of the 3 x 3 cells around the peak (one hot cell holds nearly all of it).
    assert scores[0, 0].item() == pytest.approx(1.0, abs=0.01)
    flat = torch.zeros(1, 17, 16, 12)
    assert net.keypoints_in_image(flat, rois)[1][0, 0].item() == pytest.approx(4 / (16 * 12))  # corner: 4 cells


def test_detect_returns_people_with_every_output(net):
    with torch.no_grad():
        net.heads["center"].out.bias.fill_(-20.0)
    try:
        people = net.detect(torch.zeros(2, 3, 64, 64), min_score=0.5)
        assert len(people) == 2 and people[0]["boxes"].shape == (0, 4) and people[0]["masks"].shape == (0, 8, 6)
        with torch.no_grad():
            net.heads["center"].out.bias.fill_(0.0)
            net.heads["center"].out.weight.zero_()
            net.heads["box_scale"].out.bias.fill_(6.0)
            net.heads["box_scale"].out.weight.zero_()
        people = net.detect(torch.zeros(1, 3, 64, 64), min_score=0.4, max_people=3)
        found = people[0]
        assert 1 <= len(found["scores"]) <= 3
        assert found["keypoints"].shape == (len(found["scores"]), 17, 2)
        assert found["boxes"][:, 2:].min() > 0
    finally:
        torch.manual_seed(0)


def test_bad_configs():
    with pytest.raises(ValueError, match="width"):
        MILIConfig(width_mult=1.0, pretrained="multipose")
    with pytest.raises(ValueError, match="roi_size"):
        MILIConfig(**{**SMALL, "roi_size": (2, 2)})
    with pytest.raises(ValueError, match="body_model"):
        MILIConfig(**SMALL, body_model="smplh")


def test_estimator_finds_people_in_whole_images_in_image_pixels(net):
    from lowres_hps.models.estimator import ImagePeople, MultiPersonEstimator
    from lowres_hps.models.kinds import get_kind
    from lowres_hps.models.mili import MILIEstimator

    assert get_kind("mili").estimator is MILIEstimator
    estimator = MILIEstimator.from_network(net, min_score=0.0, target_long_side=64)
    assert isinstance(estimator, MultiPersonEstimator)
    assert estimator.factor(30, 40) == pytest.approx(1.6) and estimator.factor(300, 400) == 1.0
    calls = []

    def fake_detect(images, min_score=0.2, max_people=None):
        calls.append(tuple(images.shape))
        return [{"boxes": torch.tensor([[15.5, 7.5, 16.0, 32.0]]), "scores": torch.tensor([0.9]),
                 "keypoints": torch.full((1, 17, 2), 23.5), "keypoint_scores": torch.full((1, 17), 0.5)}]

    estimator.model.detect = fake_detect
    try:
        people = estimator.predict_people([np.zeros((30, 40, 3), np.uint8)])
    finally:
        del estimator.model.detect
    assert calls == [(1, 3, 64, 64)]  # 48 x 64 after x1.6, padded to multiples of 32
    found = people[0]
    assert isinstance(found, ImagePeople)
    # Edges / 1.6: box edges x 16 .. 32 -> 10 .. 20, y 8 .. 40 -> 5 .. 25 (centres at integers: -0.5).
    assert found.boxes[0].tolist() == pytest.approx([9.5, 4.5, 10.0, 20.0])
    assert found.keypoints[0, 0].tolist() == pytest.approx([24 / 1.6 - 0.5, 24 / 1.6 - 0.5, 0.5])
