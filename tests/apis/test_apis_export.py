"""ONNX export: checker, onnxruntime outputs equal to PyTorch, documented metadata, OnnxEstimator, CLI."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lowres_hps.apis.estimator import PoseEstimator
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
