"""Top-down 2D pose model: config, normalisation inside, outputs per codec, the estimator and its flip test."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.body.keypoints import get_convention
from lowres_hps.models.codecs import flip_keypoints
from lowres_hps.models.pose2d import (
    IMAGENET_MEAN,
    Pose2DConfig,
    TopDownEstimator,
    TopDownPoseModel,
    build_pose_model,
)

TINY = {"width_mult": 0.25, "neck_channels": 8}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def tiny_config(**overrides) -> Pose2DConfig:
    return Pose2DConfig(**{"backbone": "mobilenet_v3_small", "backbone_params": dict(TINY), **overrides})


def random_crops(batch: int, size=(64, 48), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def sharpen(model: TopDownPoseModel) -> TopDownPoseModel:
    """Scale the head up so that heatmap maxima are well separated (no near-ties in the argmax)."""
    with torch.no_grad():
        model.head.conv.weight.mul_(1000.0)
    return model


def test_config_round_trip_and_validation():
    cfg = tiny_config(input_size=[128, 96], codec="msra", codec_params={"sigma": 2.0})
    assert cfg.input_size == (128, 96)
    assert Pose2DConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="convention 'coco17' has 17"):
        Pose2DConfig(num_keypoints=14)
    assert Pose2DConfig(convention="lsp14", num_keypoints=14).num_keypoints == 14
    with pytest.raises(ValueError, match="unknown backbone"):
        Pose2DConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="unknown key|known keys"):
        Pose2DConfig.from_dict({"backbone": "resnet18", "heatmap_size": [16, 12]})


@pytest.mark.parametrize(("codec", "with_offsets"),
                         [("cal", True), ("udp", True), ("msra", False), ("msra_dark", False)])
@pytest.mark.parametrize("input_size", [(64, 48), (128, 96)])
def test_outputs_follow_the_codec(codec, with_offsets, input_size):
    model = build_pose_model(tiny_config(codec=codec, input_size=input_size)).eval()
    with torch.no_grad():
        out = model(random_crops(2, input_size))
    h, w = input_size
    assert out["heatmaps"].shape == (2, 17, h // 4, w // 4)
    if with_offsets:
        assert out["offsets"].shape == (2, 17, 2, h // 4, w // 4)
    else:
        assert out["offsets"] is None


def test_stride_2_heatmaps_at_64x48():
    model = build_pose_model(tiny_config(stride=2)).eval()
    with torch.no_grad():
        assert model(random_crops(1))["heatmaps"].shape == (1, 17, 32, 24)


def test_codec_errors_surface_at_build_time():
    with pytest.raises(ValueError, match="unknown codec"):
        build_pose_model(tiny_config(codec="simcc"))


def test_normalisation_is_inside_the_model():
    model = build_pose_model(tiny_config()).eval()
    mean_image = (255 * torch.tensor(IMAGENET_MEAN)).view(1, 3, 1, 1).expand(1, 3, 64, 48)
    assert model.normalize(mean_image).abs().max() < 1e-5
    white = model.normalize(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    assert torch.allclose(white[0, :, 0, 0], (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(model.config.std))
    crops = random_crops(2)
    with torch.no_grad():
        from_uint8 = model(crops)
        from_float = model(crops.float())
    assert torch.equal(from_uint8["heatmaps"], from_float["heatmaps"])
    # mean/std are config, not weights
    assert not any("pixel" in k for k in model.state_dict())
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        model(torch.zeros(1, 1, 64, 48))


def test_float64_model_takes_uint8():
    model = build_pose_model(tiny_config(input_size=(32, 24))).double().eval()
    with torch.no_grad():
        out = model(random_crops(1, (32, 24)))
    assert out["heatmaps"].dtype == torch.float64 and out["offsets"].dtype == torch.float64
    assert out["heatmaps"].shape == (1, 17, 8, 6)


def test_pretrained_path_is_used_only_when_asked(tmp_path):
    import torchvision

    net = torchvision.models.mobilenet_v3_small(weights=None, width_mult=0.25)
    torch.save(net.state_dict(), tmp_path / "mnv3.pth")
    cfg = tiny_config(backbone_params={**TINY, "pretrained": str(tmp_path / "mnv3.pth")})
    model = build_pose_model(cfg)
    assert torch.equal(model.backbone.trunk[0][0].weight, net.features[0][0].weight)
    (tmp_path / "mnv3.pth").unlink()
    with pytest.raises(FileNotFoundError):
        build_pose_model(cfg)
    build_pose_model(cfg, pretrained=False)  # e.g. before loading trained weights


@pytest.mark.parametrize("backbone", ["movenet_lightning", "efficientnet_lite0"])
def test_pretrained_false_needs_no_pretrained_files(backbone, tmp_path, monkeypatch):
    """Loading trained weights must not need the start's files, even where the backbone starts from them by default."""
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))  # empty
    cfg = tiny_config(backbone=backbone, backbone_params={"pretrained": "imagenet"} if backbone != "movenet_lightning"
                      else {})
    build_pose_model(cfg, pretrained=False)


def test_estimator_is_a_pose_estimator(device):
    model = sharpen(build_pose_model(tiny_config(flip_test=False))).to(device)
    estimator = TopDownEstimator(model)
    assert isinstance(estimator, PoseEstimator)
    assert (estimator.input_size, estimator.scale_factor, estimator.convention) == ((64, 48), 1.25, "coco17")
    crops = random_crops(3)
    keypoints, scores = estimator(crops)
    assert keypoints.shape == (3, 17, 2) and scores.shape == (3, 17)
    assert keypoints.device == crops.device
    assert ((scores >= 0) & (scores <= 1)).all()
    # decoding matches the codec on the raw outputs
    with torch.no_grad():
        out = model(crops.to(device))
    expected, _ = estimator.codec.decode(out["heatmaps"], out["offsets"])
    assert torch.allclose(keypoints, expected.cpu())


def test_estimator_rejects_wrong_crops():
    estimator = TopDownEstimator(build_pose_model(tiny_config()))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 48\)"):
        estimator(random_crops(1, (128, 96)))
    with pytest.raises(TypeError, match="uint8"):
        estimator(torch.zeros(1, 3, 64, 48, dtype=torch.int32))
    model = build_pose_model(tiny_config())
    model.config = None
    with pytest.raises(ValueError, match="no config"):
        TopDownEstimator(model)


@pytest.mark.parametrize("codec", ["cal", "msra"])
def test_flip_test_is_mirror_equivariant(codec):
    """With the flip test, the keypoints of a mirrored crop are the mirrored keypoints (exactly)."""
    model = sharpen(build_pose_model(tiny_config(codec=codec)))
    estimator = TopDownEstimator(model, flip_test=True)
    crops = random_crops(2, seed=1)
    keypoints, scores = estimator(crops)
    mirrored, mirrored_scores = estimator(crops.flip(-1))
    permutation = get_convention("coco17").flip_permutation
    # the merged heatmaps are mirror images bit for bit; only the decoding arithmetic rounds
    assert torch.allclose(mirrored, flip_keypoints(keypoints, 48, permutation), atol=1e-4)
    assert torch.equal(mirrored_scores, scores[:, permutation])
    # and it is not a no-op
    without, _ = TopDownEstimator(model, flip_test=False)(crops)
    assert not torch.allclose(without, keypoints)
