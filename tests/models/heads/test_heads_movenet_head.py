import pytest
import torch

from lowres_hps.models.heads import MoveNetKeypointHead
from lowres_hps.models.movenet import MoveNet


def _movenet() -> MoveNet:
    torch.manual_seed(0)
    model = MoveNet(1.0).eval()
    for p in model.parameters():  # non-trivial biases
        p.data.normal_(0.0, 0.1)
    return model


def test_copied_heads_give_movenets_heatmaps_and_offsets_in_codec_units():
    source = _movenet()
    head = MoveNetKeypointHead(24, 17, with_offsets=True, offset_scale=2.0).eval()
    head.load_movenet_heads(source, offset_scale=2.0)
    features = torch.randn(2, 24, 16, 12)
    with torch.no_grad():
        heatmaps, offsets = head(features)
        raw_heatmap = source.heads["kpt_heatmap"](features)
        raw_offset = source.heads["kpt_offset"](features).view(2, 17, 2, 16, 12)  # (y, x) in cells
    torch.testing.assert_close(heatmaps, torch.sigmoid(raw_heatmap))
    torch.testing.assert_close(offsets[:, :, 0], raw_offset[:, :, 1] / 2.0)  # x
    torch.testing.assert_close(offsets[:, :, 1], raw_offset[:, :, 0] / 2.0)  # y


def test_without_offsets_and_bad_arguments():
    head = MoveNetKeypointHead(24, 17, with_offsets=False)
    heatmaps, offsets = head(torch.randn(1, 24, 8, 6))
    assert heatmaps.shape == (1, 17, 8, 6) and offsets is None and (heatmaps >= 0).all() and (heatmaps <= 1).all()
    with pytest.raises(ValueError, match="24-channel"):
        MoveNetKeypointHead(96, 17)
    with pytest.raises(ValueError, match="17 COCO keypoints"):
        MoveNetKeypointHead(24, 14, pretrained="movenet")
    with pytest.raises(ValueError, match="features must be"):
        head(torch.randn(1, 96, 8, 6))


def test_pose_model_with_the_movenet_head_builds_and_runs():
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    cfg = Pose2DConfig(backbone="movenet_lightning", backbone_params={"pretrained": "none"}, head="movenet",
                       input_size=(64, 64), codec="cal", codec_params={"radius": 2.0, "sigma": 1.0},
                       mean=(0.5,) * 3, std=(0.5,) * 3)
    model = build_pose_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert out["heatmaps"].shape == (1, 17, 16, 16) and out["offsets"].shape == (1, 17, 2, 16, 16)
    with pytest.raises(ValueError, match="unknown head"):
        Pose2DConfig(head="transformer")


def test_logits_for_cross_entropy():
    source = _movenet()
    head = MoveNetKeypointHead(24, 17, heatmap_activation="none").eval()
    head.load_movenet_heads(source)
    features = torch.randn(1, 24, 8, 6)
    with torch.no_grad():
        logits, _ = head(features)
        torch.testing.assert_close(logits, source.heads["kpt_heatmap"](features))
    with pytest.raises(ValueError, match="heatmap_activation"):
        MoveNetKeypointHead(24, 17, heatmap_activation="softmax")
