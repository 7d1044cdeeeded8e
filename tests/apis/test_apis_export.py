"""ONNX export: checker, onnxruntime outputs equal to PyTorch, documented metadata, OnnxEstimator, CLI."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lowres_hps.models.estimator import PoseEstimator
from lowres_hps.apis.export import OnnxEstimator, export_onnx, read_onnx_card
from lowres_hps.apis.registry import CARD_METADATA_KEY, ModelCard, save_checkpoint
from lowres_hps.cli import main as cli_main
from lowres_hps.models.pose2d import Pose2DConfig, TopDownEstimator, build_pose_model


def tiny_estimator(codec: str = "cal", flip_test: bool = True) -> TopDownEstimator:
    cfg = Pose2DConfig(backbone="mobilenet_v3_small", backbone_params={"width_mult": 0.25, "neck_channels": 8},
                       input_size=(64, 48), codec=codec, flip_test=flip_test)
    torch.manual_seed(0)
    model = build_pose_model(cfg).eval()
    with torch.no_grad():
        model.head.conv.weight.mul_(1000.0)  # well separated heatmap maxima
    card = ModelCard.from_config("tiny_" + codec, cfg, training_data=["synthlr_train"], metrics={"ap": 0.5})
    return TopDownEstimator(model, card=card)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    estimator = tiny_estimator()
    path = export_onnx(estimator, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return estimator, path


def crops(batch=3, seed=0):
    return torch.randint(0, 256, (batch, 3, 64, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_onnxruntime_matches_pytorch(exported):
    estimator, path = exported
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["heatmaps", "offsets"]
    for batch in (1, 3):  # dynamic batch
        images = crops(batch)
        heatmaps, offsets = session.run(None, {"images": images.float().numpy()})
        with torch.no_grad():
            expected = estimator.model(images)
        np.testing.assert_allclose(heatmaps, expected["heatmaps"].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(offsets, expected["offsets"].numpy(), atol=1e-4, rtol=0)
        assert offsets.shape == (batch, 17, 2, 16, 12)


def test_metadata_documents_the_preprocessing(exported):
    estimator, path = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["input_size"].startswith("64x48")
    assert props["color_order"] == "RGB"
    assert "0..255" in props["value_range"]
    assert "123.675" in props["normalization"] and "inside" in props["normalization"]
    assert props["scale_factor"] == "1.25" and props["aspect_ratio"] == "0.75"
    assert props["codec"] == "cal" and "argmax" in props["decode"]
    assert json.loads(props["keypoint_names"])[:3] == ["nose", "left_eye", "right_eye"]
    assert ModelCard.from_json(props[CARD_METADATA_KEY]) == estimator.card
    assert read_onnx_card(path) == estimator.card


def test_onnx_estimator_matches_the_torch_estimator(exported):
    estimator, path = exported
    onnx_estimator = OnnxEstimator(path, num_threads=1)
    assert isinstance(onnx_estimator, PoseEstimator)
    assert onnx_estimator.flip_test and estimator.flip_test
    assert (onnx_estimator.input_size, onnx_estimator.scale_factor, onnx_estimator.convention) == \
        (estimator.input_size, estimator.scale_factor, estimator.convention)
    x = crops(4)
    keypoints, scores = onnx_estimator(x)
    expected_keypoints, expected_scores = estimator(x)
    torch.testing.assert_close(keypoints, expected_keypoints, atol=1e-3, rtol=0)
    torch.testing.assert_close(scores, expected_scores, atol=1e-4, rtol=0)


def test_fixed_batch_and_heatmap_only(tmp_path):
    estimator = tiny_estimator(codec="msra", flip_test=False)
    path = export_onnx(estimator, tmp_path / "msra_b2.onnx", batch=2)
    onnx_estimator = OnnxEstimator(path)
    assert onnx_estimator.fixed_batch == 2
    assert [o.name for o in onnx_estimator.session.get_outputs()] == ["heatmaps"]
    x = crops(3)  # two chunks, the last one padded
    torch.testing.assert_close(onnx_estimator.outputs(x)[0], estimator.outputs(x)[0], atol=1e-4, rtol=0)
    assert onnx_estimator.outputs(x)[1] is None
    with pytest.raises(ValueError, match="batch must be"):
        export_onnx(estimator, tmp_path / "bad.onnx", batch=0)


def test_model_without_card_gets_one_from_its_config(tmp_path):
    model = tiny_estimator().model
    path = export_onnx(model, tmp_path / "plain.onnx")
    card = read_onnx_card(path)
    assert card.name == "plain" and card.architecture == model.config.to_dict()


def test_export_command(tmp_path, capsys):
    estimator = tiny_estimator(codec="udp")
    checkpoint = save_checkpoint(estimator, estimator.card, tmp_path / "udp.safetensors")
    out = tmp_path / "udp.onnx"
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out), "--opset", "17"]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "max abs difference" in printed
    assert read_onnx_card(out).codec == "udp"
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out), "--batch", "many"]) == 2
    assert "--batch must be" in capsys.readouterr().err
    assert cli_main(["export", "--model", "no_such_model", "--out", str(out)]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 3D body networks


def tiny_body3d(resolution_aware: bool = True):
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    cfg = Body3DConfig(canvas=64, hidden=32, iterations=2, resolution_aware=resolution_aware)
    torch.manual_seed(0)
    model = build_body3d_model(cfg).eval()
    with torch.no_grad():
        model.regressor.mlp[-1].weight.mul_(50.0)  # outputs well away from the mean
        if resolution_aware:
            model.backbone.alpha.uniform_(0.3, 1.5)  # every range really differs
    card = ModelCard.from_config("tiny_rsc", cfg, training_data=["synthlr_train"],
                                 metrics={"mpjpe_mm@96": 150.0})
    return model, card


@pytest.fixture(scope="module")
def exported3d(tmp_path_factory):
    model, card = tiny_body3d()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx3d") / "tiny_rsc.onnx", card=card)
    return model, card, path


def crops3d(batch, seed=0):
    return torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_body3d_onnxruntime_matches_pytorch(exported3d):
    model, _, path = exported3d
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("images", "tensor(uint8)"),
                                                                 ("range_index", "tensor(int64)")]
    assert [o.name for o in session.get_outputs()] == ["pose_vector", "camera", "features"]
    for batch, ranges in ((1, [3]), (4, [0, 1, 2, 4])):  # dynamic batch, per-sample ranges
        images, range_index = crops3d(batch, seed=batch), torch.tensor(ranges)
        got = session.run(None, {"images": images.numpy(), "range_index": range_index.numpy()})
        with torch.no_grad():
            expected = model(images, range_index)
        for name, value in zip(["pose_vector", "camera", "features"], got):
            np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4, rtol=0, err_msg=name)
        assert got[0].shape == (batch, 126) and got[1].shape == (batch, 3) and got[2].shape == (batch, 512)
    # The range index is used: the same crop at two ranges gives two outputs.
    image = crops3d(1).expand(2, -1, -1, -1).contiguous()
    pose, _, _ = session.run(None, {"images": image.numpy(), "range_index": np.array([0, 4])})
    assert np.abs(pose[0] - pose[1]).max() > 1e-3


def test_body3d_metadata_documents_the_preprocessing(exported3d):
    _, card, path = exported3d
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["task"].startswith("hps3d")
    assert props["input_size"].startswith("64x64") and props["color_order"] == "RGB"
    assert "uint8" in props["input"] and "range_index: int64 (B,)" in props["input"]
    assert props["scale_factor"] == "1.25" and "setting='upsample'" in props["crop_protocol"]
    assert "input_range_index" in props["range_index"] and "179.2" in props["range_index"]
    assert "person height" in props["range_index"]
    assert "NOT in this graph" in props["body_model"] and "forward_vector" in props["body_model"]
    assert "1428.57" in props["camera"] and "31.5" in props["camera"]  # 5000 * 64 / 224 px, centre (64 - 1) / 2
    assert "features (B, 512)" in props["outputs"] and "pose_vector (B, 126)" in props["outputs"]
    assert json.loads(props["keypoint_names"])[-1] == "right_ankle"
    assert ModelCard.from_json(props[CARD_METADATA_KEY]) == card
    assert read_onnx_card(path) == card


def test_onnx_body3d_net_runs_like_the_network(exported3d):
    from lowres_hps.apis.export import OnnxBody3DNet

    model, card, path = exported3d
    runner = OnnxBody3DNet(path, num_threads=1)
    assert runner.card == card and runner.takes_range_index and runner.fixed_batch is None
    images = crops3d(3)
    out = runner(images, torch.tensor([4, 0, 2]))
    with torch.no_grad():
        expected = model(images, torch.tensor([4, 0, 2]))
    for name in ("pose_vector", "camera", "features"):
        torch.testing.assert_close(out[name], expected[name], atol=1e-4, rtol=0)
    with torch.no_grad():  # no range index: the highest resolution
        torch.testing.assert_close(runner(images)["camera"], model(images, torch.zeros(3, dtype=torch.long))["camera"],
                                   atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"in \[0, 5\)"):
        runner(images, torch.tensor([0, 5, 0]))
    with pytest.raises(ValueError, match=r"range_index must be \(3,\)"):
        runner(images, torch.tensor([0]))
    with pytest.raises(TypeError, match="uint8"):
        runner(images.float())
    with pytest.raises(ValueError, match="not a 2D keypoint"):
        OnnxEstimator(path)


def test_body3d_baseline_with_a_fixed_batch(tmp_path):
    from lowres_hps.apis.export import OnnxBody3DNet

    model, card = tiny_body3d(resolution_aware=False)
    path = export_onnx(model, tmp_path / "ba.onnx", card=card, batch=2)
    runner = OnnxBody3DNet(path)
    assert runner.fixed_batch == 2 and not runner.takes_range_index  # the baseline has no use for it
    assert "not an input" in {p.key: p.value for p in onnx.load(str(path)).metadata_props}["range_index"]
    images = crops3d(3)  # two chunks, the last one padded
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(runner(images)["pose_vector"], expected["pose_vector"], atol=1e-4, rtol=0)


def test_body3d_without_card_gets_one_from_its_config(tmp_path):
    model, _ = tiny_body3d()
    card = read_onnx_card(export_onnx(model, tmp_path / "plain3d.onnx"))
    assert card.name == "plain3d" and card.task == "hps3d" and card.model_config("hps3d") == model.config


def test_export_command_for_a_3d_checkpoint(tmp_path, capsys, anny_body):
    model, card = tiny_body3d()
    checkpoint = save_checkpoint(model, card, tmp_path / "tiny_rsc.safetensors")
    out = tmp_path / "tiny_rsc.onnx"
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "range_index" in printed and "anny body model runs after" in printed
    assert "max abs difference" in printed
    assert read_onnx_card(out) == card
