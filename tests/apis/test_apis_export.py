"""ONNX export: checker, onnxruntime outputs equal to PyTorch, documented metadata, OnnxEstimator, CLI."""
from __future__ import annotations

import dataclasses
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


def test_load_model_runs_a_2d_onnx_export(exported, tmp_path):
    from lowres_hps.apis.registry import load_model

    estimator, path = exported
    loaded = load_model(str(path), flip_test=False)  # what `predict --model model.onnx` gets
    assert isinstance(loaded, OnnxEstimator) and isinstance(loaded, PoseEstimator)
    assert not loaded.flip_test and loaded.input_size == estimator.input_size
    images = crops(2)
    estimator.flip_test = False
    try:
        expected, _ = estimator(images)
    finally:
        estimator.flip_test = True
    got, _ = loaded(images)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)
    not_onnx = tmp_path / "broken.onnx"
    not_onnx.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="broken.onnx: not a lowres-hps ONNX export"):
        load_model(not_onnx)


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


def test_load_model_refuses_a_detector_onnx_export_clearly(tmp_path):
    from lowres_hps.apis.registry import load_model
    from lowres_hps.models.mili import MILIConfig, build_mili_model

    cfg = MILIConfig(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16, hidden=32)
    path = export_onnx(build_mili_model(cfg).eval(), tmp_path / "mili.onnx", card=ModelCard.from_config("m", cfg))
    with pytest.raises(ValueError, match="2D keypoint and 3D body models.*'mili'.*safetensors"):
        load_model(path)


def test_movenet_body3d_exports_and_matches_pytorch(tmp_path):
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    cfg = Body3DConfig(backbone="movenet_lightning", canvas=64, hidden=32, iterations=2)
    torch.manual_seed(0)
    model = build_body3d_model(cfg, pretrained=False).eval()
    with torch.no_grad():
        model.regressor.mlp[-1].weight.mul_(50.0)
        model.backbone.alpha.uniform_(0.3, 1.5)
    card = ModelCard.from_config("tiny_rsc_move", cfg, training_data=["synthlr_train"], metrics={})
    path = export_onnx(model, tmp_path / "tiny_rsc_move.onnx", card=card)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images, ranges = crops3d(3), torch.tensor([0, 2, 4])
    got = session.run(None, {"images": images.numpy(), "range_index": ranges.numpy()})
    with torch.no_grad():
        expected = model(images, ranges)
    for value, name in zip(got, ("pose_vector", "camera", "features")):
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-3, rtol=1e-3)
    assert "Pad" not in {node.op_type for node in onnx.load(str(path)).graph.node}


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


def test_a_3d_export_loads_as_a_body_estimator_that_matches_pytorch(exported3d):
    from lowres_hps.apis.registry import load_model
    from lowres_hps.body import load_body_model
    from lowres_hps.models.body3d import Body3DEstimator

    model, card, path = exported3d
    onnx_estimator = load_model(path)
    assert isinstance(onnx_estimator, Body3DEstimator) and onnx_estimator.card == card
    torch_estimator = Body3DEstimator(model, load_body_model(model.config.body_model), card=card)
    images, ranges = crops3d(2), torch.tensor([1, 3])
    got = onnx_estimator.predict_bodies(images, ranges, with_vertices=False)
    expected = torch_estimator.predict_bodies(images, ranges, with_vertices=False)
    torch.testing.assert_close(got.keypoints3d, expected.keypoints3d, atol=1e-3, rtol=0)
    torch.testing.assert_close(got.keypoints2d, expected.keypoints2d, atol=1e-2, rtol=0)
    # The flip test runs the mirrored crops through ONNX Runtime in the same batch.
    onnx_flipped = load_model(path, flip_test=True)
    torch_estimator.flip_test = True
    got = onnx_flipped.predict_bodies(images, ranges, with_vertices=False)
    expected = torch_estimator.predict_bodies(images, ranges, with_vertices=False)
    torch.testing.assert_close(got.keypoints3d, expected.keypoints3d, atol=1e-3, rtol=0)
    assert not torch.allclose(got.keypoints3d, onnx_estimator.predict_bodies(images, ranges, with_vertices=False).keypoints3d)


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


# ---------------------------------------------------------------------------------------------
# int8 (static quantization calibrated on people of a COCO json)


def smooth_image(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    """(h, w, 3) uint8: smooth colour waves and soft blobs (a photo-like range of values, no noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.zeros((h, w, 3))
    for c in range(3):
        a, b, phase = rng.uniform(-1, 1, 3)
        image[..., c] = 128 + 60 * np.sin(6 * (a * xx + b * yy) / max(h, w) + phase)
    for _ in range(4):
        cy, cx, sigma = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(4, 12)
        image += rng.uniform(-80, 80, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def people_json(tmp_path_factory):
    """A COCO keypoints json of 6 people in 3 images under images/ next to it."""
    import cv2

    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    images, annotations = [], []
    for i in range(3):
        cv2.imwrite(str(root / "images" / f"{i}.png"), smooth_image(i)[..., ::-1])
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 120, "width": 160})
        for j in range(2):
            x, y = 20 + 60 * j, 10 + 5 * i
            keypoints = [v for k in range(17) for v in (x + 10 + k % 3 * 5, y + 10 + k * 5, 2)]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                                "bbox": [x, y, 40, 95], "keypoints": keypoints, "num_keypoints": 17})
    path = root / "people.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)]}]}))
    return path


def tiny_movenet() -> TopDownEstimator:
    cfg = Pose2DConfig(backbone="movenet_lightning", backbone_params={"pretrained": "none"}, head="movenet",
                       head_params={"pretrained": "none"}, input_size=(64, 48), mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.manual_seed(0)
    return TopDownEstimator(build_pose_model(cfg, pretrained=False).eval(),
                            card=ModelCard.from_config("tiny_movenet", cfg, metrics={"ap": 0.5}))


@pytest.fixture(scope="module")
def int8_exports(tmp_path_factory, people_json):
    """(estimator, float32 path, int8 path, calibration set) of the small MobileNetV3 and MoveNet models."""
    from lowres_hps.apis.export import calibration_crops, export_onnx_int8

    folder = tmp_path_factory.mktemp("int8")
    exports = {}
    for name, estimator in (("mobilenet", tiny_estimator()), ("movenet", tiny_movenet())):
        calibration = calibration_crops(people_json, estimator.input_size, estimator.scale_factor, num_crops=24)
        fp32 = export_onnx(estimator, folder / f"{name}.onnx")
        method = "percentile" if name == "movenet" else "minmax"
        int8 = export_onnx_int8(estimator, folder / f"{name}_int8.onnx", calibration, method=method)
        exports[name] = (estimator, fp32, int8, calibration)
    return exports


def smooth_crops(n: int = 4) -> torch.Tensor:
    import cv2

    return torch.from_numpy(np.stack([cv2.resize(smooth_image(10 + k), (48, 64)).transpose(2, 0, 1)
                                      for k in range(n)]))


def test_calibration_crops_degrade_half_of_the_people(people_json, recwarn):
    from lowres_hps.apis.export import calibration_crops

    calibration = calibration_crops(people_json, (64, 48), 1.25, num_crops=16, seed=3)
    assert calibration.crops.shape == (16, 3, 64, 48) and calibration.crops.dtype == np.uint8
    source = calibration.source
    assert source["file"].endswith("people.json") and len(source["sha256"]) == 16
    assert (source["people"], source["crops"], source["degraded"], source["person_heights_px"]) == (6, 16, 8, [16, 96])
    assert calibration.crops.std(axis=(1, 2, 3)).min() > 5  # people, not padding
    again = calibration_crops(people_json, (64, 48), 1.25, num_crops=16, seed=3)
    np.testing.assert_array_equal(again.crops, calibration.crops)
    # Sharp crops of the same person repeat mirrored in the next round.
    sharp = calibration_crops(people_json, (64, 48), 1.25, num_crops=12, low_res_fraction=0.0).crops
    np.testing.assert_array_equal(sharp[6:], sharp[:6, :, :, ::-1])
    # Degraded crops are smoother than sharp ones of the same people.
    low = calibration_crops(people_json, (64, 48), 1.25, num_crops=6, low_res_fraction=1.0,
                            person_heights=(16, 16)).crops
    assert np.abs(np.diff(low.astype(float), axis=-1)).mean() < np.abs(np.diff(sharp[:6].astype(float), axis=-1)).mean()


def test_calibration_crops_bad_input(tmp_path, people_json):
    from lowres_hps.apis.export import calibration_crops

    with pytest.raises(FileNotFoundError, match="missing.json"):
        calibration_crops(tmp_path / "missing.json", (64, 48))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="empty.json: no person with labelled keypoints"):
        calibration_crops(empty, (64, 48))
    with pytest.raises(ValueError, match="none of its images could be read under"), pytest.warns(UserWarning):
        calibration_crops(people_json, (64, 48), image_root=tmp_path)
    with pytest.raises(ValueError, match="person_heights"):
        calibration_crops(people_json, (64, 48), person_heights=(96, 16))


def test_int8_export_is_quantized_and_keeps_the_interface(int8_exports):
    for name, (_, fp32, int8, _) in int8_exports.items():
        onnx.checker.check_model(str(int8))
        model = onnx.load(str(int8))
        ops = {node.op_type for node in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, name
        kernels = [t.data_type for t in model.graph.initializer if len(t.dims) == 4 and list(t.dims) != [1, 3, 1, 1]]
        assert kernels.count(onnx.TensorProto.INT8) > 10, name
        assert kernels.count(onnx.TensorProto.FLOAT) == 3, name  # the stem and the first block
        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8)]
        for inputs_or_outputs in ("get_inputs", "get_outputs"):
            assert [(v.name, v.type, v.shape) for v in getattr(sessions[0], inputs_or_outputs)()] == \
                [(v.name, v.type, v.shape) for v in getattr(sessions[1], inputs_or_outputs)()], name
        # The input normalisation stays float: the pixels reach it as they are.
        consumers = [node.op_type for node in model.graph.node if "images" in node.input]
        assert "QuantizeLinear" not in consumers and consumers, name


def test_int8_outputs_are_close_to_float32(int8_exports):
    from lowres_hps.apis.export import compare_onnx

    crops = smooth_crops()
    for name, (_, fp32, int8, calibration) in int8_exports.items():
        runner = OnnxEstimator(int8, num_threads=1)
        assert runner.precision == "int8" and OnnxEstimator(fp32).precision == "float32"
        keypoints, scores = runner(crops)
        assert keypoints.shape == (4, 17, 2) and bool(((scores >= 0) & (scores <= 1)).all())
        for images in (crops, calibration.crops):
            diff = compare_onnx(fp32, int8, images, min_score=0.0, num_threads=1)
            assert diff["heatmap_correlation"] > 0.95 and diff["score_diff"] < 0.05, (name, diff)
    # The MobileNet model's maxima are sharp (see tiny_estimator): most keypoints stay where they were.
    _, fp32, int8, _ = int8_exports["mobilenet"]
    diff = compare_onnx(fp32, int8, crops, min_score=0.0)
    assert diff["median_px"] <= 2.0 and diff["over_4px"] < 0.35, diff


def test_int8_metadata_says_how_it_was_calibrated(int8_exports):
    from lowres_hps.apis.export import read_onnx_metadata

    estimator, fp32, int8, calibration = int8_exports["movenet"]
    float_props, props = read_onnx_metadata(fp32), read_onnx_metadata(int8)
    assert list(props) == [*float_props, "precision", "quantization"]
    assert all(props[key] == value for key, value in float_props.items() if key != CARD_METADATA_KEY)
    assert props["precision"] == "int8" and "precision" not in float_props
    quantization = json.loads(props["quantization"])
    assert quantization["calibration"] == {"method": "percentile", "percentile": 99.999, **calibration.source}
    assert quantization["weights"].startswith("int8") and "per output channel" in quantization["weights"]
    # The stem and first block stay float; the CAL heads (with offsets) are int8.
    assert quantization["float32_nodes"][1:] == ["/model/backbone/features/stem/Conv",
                                                 "/model/backbone/features/blocks.0/depthwise/Conv",
                                                 "/model/backbone/features/blocks.0/project/Conv"]
    card = read_onnx_card(int8)
    assert card.extra["quantization"] == quantization
    assert card == dataclasses.replace(estimator.card, extra={"quantization": quantization})
    assert "int8" in onnx.load(str(int8)).doc_string


def test_int8_options_and_errors(tmp_path, people_json, int8_exports):
    from lowres_hps.apis.export import NEEDS_CALIBRATION, calibration_crops, export_onnx_int8, quantize_onnx

    estimator = tiny_estimator(codec="msra", flip_test=False)
    with pytest.raises(ValueError, match="needs calibration images"):
        export_onnx_int8(estimator, tmp_path / "x.onnx", None)
    assert "--calibration ANN.json" in NEEDS_CALIBRATION
    calibration = calibration_crops(people_json, (64, 48), num_crops=5)
    # A heatmap-only codec keeps its heads float; a fixed batch calibrates in whole batches. An activation of
    # this untrained model is constant to float32 precision: no histogram for the percentile method.
    with pytest.warns(UserWarning, match="calibrating by min/max"):
        path = export_onnx_int8(estimator, tmp_path / "msra_b2.onnx", calibration, batch=2, method="percentile")
    quantization = read_onnx_card(path).extra["quantization"]
    assert quantization["float32_nodes"][-1] == "/model/head/conv/Conv"
    assert quantization["calibration"]["method"] == "minmax"
    assert quantization["calibration"]["requested"].startswith("percentile (Too many bins")
    runner = OnnxEstimator(path)
    assert runner.fixed_batch == 2 and runner.outputs(smooth_crops(3))[0].shape == (3, 17, 16, 12)
    _, fp32, int8, _ = int8_exports["mobilenet"]
    with pytest.raises(ValueError, match="already quantized"):
        quantize_onnx(int8, tmp_path / "twice.onnx", calibration)
    with pytest.raises(ValueError, match="unknown calibration method"):
        quantize_onnx(fp32, tmp_path / "y.onnx", calibration, method="entropy")
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 48\) uint8"):
        quantize_onnx(fp32, tmp_path / "y.onnx", dataclasses.replace(calibration, crops=calibration.crops[..., :40]))
    model, card = tiny_body3d()
    with pytest.raises(ValueError, match="for 2D keypoint models"):
        export_onnx_int8(model, tmp_path / "z.onnx", calibration, card=card)


def test_export_command_int8(tmp_path, capsys, people_json):
    estimator = tiny_estimator()
    checkpoint = save_checkpoint(estimator, estimator.card, tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny_int8.onnx"
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out), "--int8"]) == 2
    assert "needs calibration images" in capsys.readouterr().err and not out.exists()
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out), "--calibration", str(people_json)]) == 2
    assert "--calibration is for --int8" in capsys.readouterr().err
    assert cli_main(["export", "--model", str(checkpoint), "--out", str(out), "--int8", "--calibration",
                     str(people_json), "--calibration-crops", "12", "--calibration-method", "minmax"]) == 0
    printed = capsys.readouterr().out
    assert "calibration: 12 crops of 6 people" in printed and "int8 vs float32" in printed
    assert OnnxEstimator(out).precision == "int8"
