"""MoveNet in PyTorch: TF "SAME" padding, the single-person decoder, TFJS weight loading, the estimator."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))  # the TFJS writers

from tfjs_fakes import float32_group, movenet_tf_names, movenet_tf_weights, write_movenet_tfjs, write_tfjs  # noqa: E402

from lowres_hps.models.estimator import PoseEstimator  # noqa: E402
from lowres_hps.models.movenet import (  # noqa: E402
    MOVENET_VARIANTS,
    MoveNet,
    MoveNetEstimator,
    SamePadConv2d,
    decode_movenet,
    load_movenet,
)
from lowres_hps.models.pretrained import MissingPretrainedError, PRETRAINED_FILES  # noqa: E402
from lowres_hps.models.pretrained.tfjs import read_tfjs_model  # noqa: E402

# --- TensorFlow "SAME" padding -------------------------------------------------------------------------


def _tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's rule: output ceil(size / stride), total padding split with the extra one after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("height", "width"), [(7, 8), (8, 7), (9, 9), (10, 12)])
def test_same_padding_matches_tensorflow(kernel, stride, height, width):
    torch.manual_seed(0)
    x = torch.randn(2, 4, height, width, dtype=torch.float64)
    top, bottom = _tf_same_pads(height, kernel, stride)
    left, right = _tf_same_pads(width, kernel, stride)
    for groups in (1, 4):  # plain and depthwise
        conv = SamePadConv2d(4, 8, kernel, stride, groups=groups).double()
        expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride, groups=groups)
        out = conv(x)
        assert out.shape[-2:] == (math.ceil(height / stride), math.ceil(width / stride))
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("size", "stride", "tap", "expected_rows"), [
    (8, 2, 1, [1, 3, 5, 7]),         # even size, stride 2: no padding on top, one row at the bottom
    (8, 2, 2, [2, 4, 6, None]),      # ... so the last output's bottom tap reads the padding row
    (7, 2, 1, [0, 2, 4, 6]),         # odd size, stride 2: one row each side
    (8, 1, 1, list(range(8))),       # stride 1: one row each side
])
def test_same_padding_is_asymmetric_at_the_bottom(size, stride, tap, expected_rows):
    conv = SamePadConv2d(1, 1, 3, stride, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, tap, 1] = 1.0  # reads the input row at offset `tap` of the window, middle column
    rows = torch.arange(1, size + 1, dtype=torch.float32).view(1, 1, size, 1).expand(1, 1, size, 3).contiguous()
    out = conv(rows)[0, 0, :, 0]
    assert out.tolist() == [0.0 if r is None else float(r + 1) for r in expected_rows]


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 10)])
def test_same_padding_exports_without_pad_nodes(tmp_path, height, width):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = torch.nn.Sequential(SamePadConv2d(3, 8, 3, 2), SamePadConv2d(8, 8, 3, 1, groups=8),
                              SamePadConv2d(8, 8, 3, 2, groups=8, bias=False)).eval()
    x = torch.randn(2, 3, height, width)
    path = tmp_path / "same.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops == ["Conv", "Conv", "Conv"]  # the padding is in the Conv's own pads, no separate Pad node
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-5)


# --- decoder ---------------------------------------------------------------------------------------------

H = W = 8
K = 17


def _outputs(batch=1):
    return {"center": torch.full((batch, 1, H, W), -10.0), "kpt_regress": torch.zeros(batch, 2 * K, H, W),
            "kpt_heatmap": torch.full((batch, K, H, W), -10.0), "kpt_offset": torch.zeros(batch, 2 * K, H, W)}


def test_decoder_picks_the_centre_then_each_keypoint_near_its_regressed_position():
    out = _outputs()
    # Two equally confident people: the one nearer the image centre (4, 4) wins.
    out["center"][0, 0, 3, 5] = 10.0
    out["center"][0, 0, 0, 0] = 10.0
    # Keypoint 0 regressed to (3 + 2, 5 - 3) = (5, 2); two equal heatmap peaks, one there, one far away.
    out["kpt_regress"][0, 0, 3, 5], out["kpt_regress"][0, 1, 3, 5] = 2.0, -3.0
    out["kpt_heatmap"][0, 0, 5, 2] = 1.0
    out["kpt_heatmap"][0, 0, 0, 7] = 1.0
    out["kpt_offset"][0, 0, 5, 2], out["kpt_offset"][0, 1, 5, 2] = 0.25, -0.375
    # Keypoint 5: a strong peak two cells from its regressed position beats a weak one on it.
    out["kpt_regress"][0, 10, 3, 5], out["kpt_regress"][0, 11, 3, 5] = 1.0, 1.0  # (4, 6)
    out["kpt_heatmap"][0, 5, 4, 6] = -2.0
    out["kpt_heatmap"][0, 5, 6, 6] = 3.0
    decoded = decode_movenet(out)
    assert decoded.shape == (1, K, 3)
    sigmoid = torch.sigmoid(torch.tensor(1.0))
    torch.testing.assert_close(decoded[0, 0], torch.tensor([(5 + 0.25) / H, (2 - 0.375) / W, sigmoid]))
    torch.testing.assert_close(decoded[0, 5], torch.tensor([6 / H, 6 / W, torch.sigmoid(torch.tensor(3.0))]))
    # Keypoints with a flat heatmap sit on their regressed position (the centre cell here).
    torch.testing.assert_close(decoded[0, 1, :2], torch.tensor([3 / H, 5 / W]))


@pytest.mark.parametrize(("far", "expected"), [((4, 7), (4, 4)), ((4, 5), (4, 5))])
def test_centre_weighting_is_one_over_distance_plus_1_8(far, expected):
    # sigmoid(0) / 1.8 = 0.278 at the centre against ~1 / (d + 1.8): 0.208 at d = 3 (loses), 0.357 at d = 1 (wins).
    out = _outputs()
    out["center"][0, 0, 4, 4] = 0.0
    out["center"][0, 0, far[0], far[1]] = 12.0
    decoded = decode_movenet(out)
    torch.testing.assert_close(decoded[0, :, 0], torch.full((K,), expected[0] / H))
    torch.testing.assert_close(decoded[0, :, 1], torch.full((K,), expected[1] / W))


def test_decoder_batches_per_item():
    out = _outputs(batch=3)
    for b, (cy, cx) in enumerate([(2, 2), (6, 5), (4, 4)]):
        out["center"][b, 0, cy, cx] = 5.0
        out["kpt_heatmap"][b, 3, cy, cx] = float(b)
        out["kpt_offset"][b, 6, cy, cx] = 0.1 * b
    decoded = decode_movenet(out)
    for b, (cy, cx) in enumerate([(2, 2), (6, 5), (4, 4)]):
        single = decode_movenet({k: v[b:b + 1] for k, v in out.items()})
        torch.testing.assert_close(decoded[b:b + 1], single)
        torch.testing.assert_close(decoded[b, 3], torch.tensor([(cy + 0.1 * b) / H, cx / W,
                                                               torch.sigmoid(torch.tensor(float(b)))]))


# --- the network and its weights -------------------------------------------------------------------------


def test_head_outputs_at_stride_4_from_uint8_images():
    model = MoveNet(1.0).eval()
    images = torch.randint(0, 256, (2, 3, 64, 48), dtype=torch.uint8)
    with torch.no_grad():
        heads = model.head_outputs(images)
        features = model.features(images.float() / 127.5 - 1)  # MoveNet's input scaling, to [-1, 1]
    assert {k: tuple(v.shape) for k, v in heads.items()} == {
        "center": (2, 1, 16, 12), "kpt_regress": (2, 34, 16, 12), "kpt_heatmap": (2, 17, 16, 12),
        "kpt_offset": (2, 34, 16, 12)}
    torch.testing.assert_close(heads["kpt_heatmap"], model.heads["kpt_heatmap"](features).detach())
    keypoints = decode_movenet(heads)
    assert keypoints.shape == (2, 17, 3) and keypoints.dtype == torch.float32


@pytest.fixture(scope="module")
def lightning_tfjs(tmp_path_factory):
    return write_movenet_tfjs(tmp_path_factory.mktemp("movenet"), width_mult=1.0, name="movenet-lightning.json")


def test_load_movenet_restores_the_state_dict(lightning_tfjs):
    path, source = lightning_tfjs
    loaded = load_movenet("lightning", path=path)
    assert not loaded.training
    expected = source.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_tf_layouts_are_converted(lightning_tfjs):
    path, _ = lightning_tfjs
    tf = read_tfjs_model(path).weights
    loaded = load_movenet("lightning", path=path)
    names = movenet_tf_names(loaded)
    stem = tf[names["features.stem.weight"]]  # (kh, kw, in, out)
    ours = loaded.features.stem.weight.detach().numpy()  # (out, in, kh, kw)
    for o, i, y, x in [(0, 0, 0, 0), (5, 2, 0, 1), (31, 1, 2, 0), (17, 0, 1, 2)]:
        assert ours[o, i, y, x] == stem[y, x, i, o]
    depthwise = tf[names["features.blocks.3.depthwise.weight"]]  # (kh, kw, C, 1)
    ours = loaded.features.blocks[3].depthwise.weight.detach().numpy()  # (C, 1, kh, kw)
    for c, y, x in [(0, 0, 1), (100, 2, 0), (143, 1, 2)]:
        assert ours[c, 0, y, x] == depthwise[y, x, c, 0]


def test_wrong_variant_and_foreign_weights_are_clear_errors(lightning_tfjs, tmp_path):
    path, _ = lightning_tfjs
    with pytest.raises(ValueError, match="wrong MoveNet variant"):
        load_movenet("thunder", path=path)
    with pytest.raises(ValueError, match="unknown MoveNet variant 'fast'"):
        load_movenet("fast", path=path)
    weights = movenet_tf_weights(MoveNet(1.0))
    missing = next(name for name in weights if "kpt_offset_0/conv2d_7" in name)
    del weights[missing]
    other = write_tfjs(tmp_path, [float32_group(weights)])
    with pytest.raises(ValueError, match="not a MoveNet SinglePose model"):
        load_movenet("lightning", path=other)


def test_load_movenet_without_the_files_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(MissingPretrainedError, match="scripts/get_pretrained.sh"):
        load_movenet("thunder")
    with pytest.raises(MissingPretrainedError, match="movenet-lightning.json"):
        MoveNetEstimator.from_variant("lightning")


# --- the estimator ---------------------------------------------------------------------------------------


def test_estimator_output_is_in_crop_pixels_with_centre_convention():
    model = MoveNet(1.0)
    estimator = MoveNetEstimator(model, input_size=64)
    assert isinstance(estimator, PoseEstimator) and estimator.convention == "coco17"
    normalised = torch.zeros(2, 17, 3)
    normalised[:, 1] = torch.tensor([1.0, 1.0, 0.9])  # y, x at the far edges
    normalised[:, 2] = torch.tensor([0.5, 0.25, 0.1])
    model.forward = lambda images: normalised[: len(images)]
    keypoints, scores = estimator(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert keypoints.shape == (2, 17, 2) and scores.shape == (2, 17)
    torch.testing.assert_close(keypoints[0, 0], torch.tensor([-0.5, -0.5]))   # first pixel's outer edge
    torch.testing.assert_close(keypoints[0, 1], torch.tensor([63.5, 63.5]))   # last pixel's outer edge
    torch.testing.assert_close(keypoints[1, 2], torch.tensor([0.25 * 64 - 0.5, 0.5 * 64 - 0.5]))  # x first
    torch.testing.assert_close(scores[:, 1], torch.tensor([0.9, 0.9]))


def test_estimator_runs_the_decoder_on_the_heads():
    model = MoveNet(1.0)
    estimator = MoveNetEstimator(model, input_size=64, name="probe")
    outputs = {"center": torch.full((1, 1, 16, 16), -10.0), "kpt_regress": torch.zeros(1, 34, 16, 16),
               "kpt_heatmap": torch.full((1, 17, 16, 16), -10.0), "kpt_offset": torch.zeros(1, 34, 16, 16)}
    outputs["center"][0, 0, 8, 8] = 5.0
    outputs["kpt_regress"][0, 2:4, 8, 8] = torch.tensor([-3.0, 2.0])  # keypoint 1 regressed to (5, 10)
    outputs["kpt_heatmap"][0, 1, 5, 10] = 2.0
    outputs["kpt_offset"][0, 2:4, 5, 10] = torch.tensor([0.5, 0.25])
    seen = []
    model.head_outputs = lambda images: seen.append(images.shape) or outputs
    keypoints, scores = estimator(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert seen == [(1, 3, 64, 64)]
    # Cell (5.5, 10.25) of 16 -> 64 px: x = 10.25 / 16 * 64 - 0.5 = 40.5, y = 5.5 / 16 * 64 - 0.5 = 21.5.
    torch.testing.assert_close(keypoints[0, 1], torch.tensor([40.5, 21.5]))
    torch.testing.assert_close(scores[0, 1], torch.sigmoid(torch.tensor(2.0)))
    assert "probe" in repr(estimator)


@pytest.mark.parametrize("shape", [(1, 3, 64, 48), (3, 64, 64), (1, 1, 64, 64), (1, 3, 192, 192)])
def test_estimator_rejects_other_crop_sizes(shape):
    estimator = MoveNetEstimator(MoveNet(1.0), input_size=64)
    with pytest.raises(ValueError, match=r"crops must be \(B, 3, 64, 64\)"):
        estimator(torch.zeros(shape, dtype=torch.uint8))


def test_estimator_from_variant(lightning_tfjs):
    path, source = lightning_tfjs
    estimator = MoveNetEstimator.from_variant("lightning", path=path, scale_factor=1.5)
    assert estimator.input_size == (192, 192) and estimator.scale_factor == 1.5
    assert estimator.name == "movenet_lightning" and estimator.device == torch.device("cpu")
    assert not estimator.model.training
    assert torch.equal(estimator.model.heads["center"].out.bias, source.heads["center"].out.bias)


# --- the published files, when installed -----------------------------------------------------------------


def _installed(key: str) -> Path:
    from lowres_hps.models.pretrained import find_pretrained

    try:
        return find_pretrained(key)
    except MissingPretrainedError:
        pytest.skip(f"{key} not installed (bash scripts/get_pretrained.sh)")


def test_published_lightning_matches_the_test_name_table_and_decoder_constants():
    path = _installed("movenet_lightning")
    weights = read_tfjs_model(path).weights
    fake = movenet_tf_weights(MoveNet(MOVENET_VARIANTS["lightning"].width_mult))
    for name, array in fake.items():
        assert name in weights and weights[name].shape == array.shape, name
    # The decoder's centre weighting, 1 / (distance to (h / 2, w / 2) + 1.8), is a constant of the graph.
    graph = weights["ConstantFolding/StatefulPartitionedCall/truediv_2_recip"][..., 0]
    ys, xs = np.mgrid[0:48, 0:48]
    np.testing.assert_allclose(graph, 1 / (np.hypot(ys - 24, xs - 24) + 1.8), rtol=2e-3)
    load_movenet("lightning")  # strict: every parameter found, every shape right
    assert PRETRAINED_FILES["movenet_lightning"].relative_path.endswith(MOVENET_VARIANTS["lightning"].tfjs_file)
