"""MILI's detector as a person detector: exact box mapping from the dense heads, ONNX export at any image size,
ONNX Runtime against PyTorch, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lowres_hps.apis.detector import Detector, MILIDetector, boxes_in_image
from lowres_hps.apis.export import export_onnx, read_onnx_metadata
from lowres_hps.apis.registry import ModelCard
from lowres_hps.models.mili import LOW, MILIConfig, build_mili_model

SMALL = dict(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16, hidden=32)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_mili_model(MILIConfig(**SMALL)).eval()


class _FixedHeads(MILIDetector):
    """Dense heads with one person: a centre peak at cell (cy, cx), box (h, w) and offset (dy, dx) in cells."""

    def __init__(self, cell, size, offset=(0.0, 0.0), logit=3.0, **options):
        super().__init__(build_mili_model(MILIConfig(**SMALL)), **options)
        self.cell, self.size, self.offset, self.logit = cell, size, offset, logit
        self.seen = None

    def _forward(self, work):
        self.seen = work.shape
        h, w = work.shape[0] // 4, work.shape[1] // 4
        center = torch.full((1, 1, h, w), -10.0)
        scale, offset = torch.zeros(1, 2, h, w), torch.zeros(1, 2, h, w)
        cy, cx = self.cell
        center[0, 0, cy, cx] = self.logit
        scale[0, :, cy, cx] = torch.tensor(self.size)
        offset[0, :, cy, cx] = torch.tensor(self.offset)
        return center, scale, offset, None


def test_is_a_detector(net):
    assert isinstance(MILIDetector(net), Detector)


def test_boxes_map_back_from_the_padded_upscaled_input():
    # A 100 x 150 image upscaled 2x is 200 x 300, padded to 224 x 320. A peak at cell (20, 30) with offset
    # (0.5, 0.25) is centred at (82, 121) in the input's edge coordinates (the codec's); a 10 x 4 cell box is
    # 40 x 16 px.
    detector = _FixedHeads(cell=(20, 30), size=(10.0, 4.0), offset=(0.5, 0.25), upscale=2.0)
    boxes, scores = detector(np.zeros((100, 150, 3), np.uint8))
    assert detector.seen == (224, 320, 3)
    # Input edges x 113..129, y 62..102 -> image edges / 2 -> centre convention (- 0.5).
    x0, y0 = (121 - 8) / 2 - 0.5, (82 - 20) / 2 - 0.5
    assert boxes.tolist() == [pytest.approx([x0, y0, 8.0, 20.0])]
    assert scores.tolist() == pytest.approx([1 / (1 + np.exp(-3.0))])


def test_weak_peaks_are_dropped():
    detector = _FixedHeads(cell=(5, 5), size=(4.0, 2.0), logit=-3.0, min_score=0.2)
    boxes, scores = detector(np.zeros((64, 64, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_boxes_in_image_clips_drops_empty_and_suppresses_duplicates():
    edges = np.array([[10, 10, 30, 50], [11, 10, 31, 50], [-20, 0, 10, 40], [50, 50, 50, 60]], float)
    boxes, scores = boxes_in_image(edges, np.array([0.9, 0.8, 0.7, 0.6]), (1.0, 1.0), (40, 40), nms_iou=0.5)
    assert scores.tolist() == [0.9, 0.7]  # the duplicate is suppressed, the empty box dropped
    assert boxes[1].tolist() == pytest.approx([-0.5, -0.5, 10.0, 40.0])  # clipped to the 40 x 40 image


def test_onnx_export_runs_at_any_image_size_and_matches_pytorch(net, tmp_path):
    path = export_onnx(net, tmp_path / "mili.onnx", card=ModelCard.from_config("tiny_mili", net.config))
    assert "center" in read_onnx_metadata(path)["outputs"]
    onnx_detector = MILIDetector(path, upscale=1.0, min_score=0.0, num_threads=1)
    torch_detector = MILIDetector(net, upscale=1.0, min_score=0.0)
    rng = np.random.default_rng(0)
    for shape in [(64, 96, 3), (100, 70, 3)]:  # the second is padded to 128 x 96
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        work = np.zeros((-(-shape[0] // 32) * 32, -(-shape[1] // 32) * 32, 3), np.uint8)
        work[:shape[0], :shape[1]] = image
        got = onnx_detector.heads(work)
        with torch.no_grad():
            expected = net(torch.from_numpy(work).permute(2, 0, 1)[None], LOW)
        for g, name in zip(got, ("center", "box_scale", "box_offset")):
            assert g.shape == expected[name].shape
            assert torch.allclose(g, expected[name], atol=1e-3)
        boxes_onnx, scores_onnx = onnx_detector(image)
        boxes_torch, scores_torch = torch_detector(image)
        assert np.allclose(scores_onnx, scores_torch, atol=1e-3)
        assert np.allclose(boxes_onnx, boxes_torch, atol=1e-2)


def test_an_onnx_file_of_another_kind_is_a_clear_error(tmp_path):
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    pose = build_pose_model(Pose2DConfig(backbone="mobilenet_v3_small", input_size=(64, 48),
                                         backbone_params={"width_mult": 0.25, "neck_channels": 8})).eval()
    path = export_onnx(pose, tmp_path / "pose.onnx", card=ModelCard.from_config("pose", pose.config))
    with pytest.raises(ValueError, match="not a MILI detector"):
        MILIDetector(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        MILIDetector(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="min_score"):
        MILIDetector(tmp_path / "missing.onnx", min_score=1.5)


def test_int8_export_from_the_command_line_calibrated_on_a_folder_of_frames(net, tmp_path, capsys):
    from PIL import Image

    from lowres_hps.apis.export import calibration_frames
    from lowres_hps.apis.registry import save_checkpoint
    from lowres_hps.cli import main

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for n, shape in enumerate([(60, 80, 3), (60, 80, 3), (80, 60, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(frames / f"{n}.png")
    calibration = calibration_frames(frames, num_frames=3, target_long_side=128, reduce=(1.0, 2.0))
    n, c, h, w = calibration.crops.shape  # long side 128; the short side rounded up to a multiple of 32
    assert (n, c, w) == (3, 3, 128) and h in (96, 128) and calibration.crops.dtype == np.uint8
    assert calibration.source["files"] == ["0.png", "1.png", "2.png"]
    checkpoint = save_checkpoint(net, ModelCard.from_config("tiny_mili", net.config), tmp_path / "m.safetensors")
    out = tmp_path / "m_int8.onnx"
    code = main(["export", "--model", str(checkpoint), "--out", str(out), "--int8", "--calibration", str(frames),
                 "--calibration-crops", "3"])
    assert code == 0 and read_onnx_metadata(out)["precision"] == "int8"
    quantization = json.loads(read_onnx_metadata(out)["quantization"])
    assert quantization["calibration"]["method"] == "minmax"  # a MILI detector's default
    kept = quantization["float32_nodes"]
    for part in ("/smooth.", "/laterals.", "/center/", "/box_scale/"):  # the FPN and heads stay float (accuracy)
        assert any(part in name for name in kept), part
    boxes, scores = MILIDetector(out, num_threads=1)(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert boxes.shape[1] == 4 and len(boxes) == len(scores)
    code = main(["export", "--model", str(checkpoint), "--out", str(out), "--int8", "--calibration", str(frames),
                 "--calibration-frames-range", "9:2"])
    assert code == 2 and "--calibration-frames-range must be A:B" in capsys.readouterr().err


def test_masks_are_pasted_into_their_boxes(net):
    import copy

    full = copy.deepcopy(net)  # a mask head that says "person" everywhere: each mask is exactly its box
    torch.nn.init.zeros_(full.roi_heads.mask.weight)
    torch.nn.init.constant_(full.roi_heads.mask.bias, 20.0)

    class TwoPeople(MILIDetector):  # the network's features, fixed detections (one partly outside the image)
        def _forward(self, work):
            center, scale, offset, features = super()._forward(work)
            center, scale, offset = torch.full_like(center, -10.0), torch.zeros_like(scale), torch.zeros_like(offset)
            for (cy, cx), size in (((8, 12), (10.0, 5.0)), ((14, 22), (9.0, 6.5))):
                center[0, 0, cy, cx] = 3.0
                scale[0, :, cy, cx] = torch.tensor(size)
            return center, scale, offset, features

    detector = TwoPeople(full, upscale=1.0, masks=True)
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    found = detector.detect(image)
    assert len(found.boxes) == 2 and found.masks.shape == (2, 64, 96)
    for mask, (x, y, w, h) in zip(found.masks, found.boxes):
        box = np.zeros((64, 96), bool)
        box[int(np.floor(y + 0.5)):int(np.ceil(y + h + 0.5)), int(np.floor(x + 0.5)):int(np.ceil(x + w + 0.5))] = True
        assert np.array_equal(mask, box)
    boxes, scores = detector(image)
    assert np.array_equal(boxes, found.boxes) and np.array_equal(scores, found.scores)
    assert TwoPeople(net).detect(image).masks is None


def test_masks_need_the_pytorch_model_with_a_mask_head(net, tmp_path):
    path = export_onnx(net, tmp_path / "mili.onnx", card=ModelCard.from_config("tiny_mili", net.config))
    with pytest.raises(ValueError, match="RoI heads"):
        MILIDetector(path, masks=True)
    headless = build_mili_model(MILIConfig(**{**SMALL, "mask_head": False}))
    with pytest.raises(ValueError, match="no mask head"):
        MILIDetector(headless, masks=True)
    with pytest.raises(ValueError, match="mask_threshold"):
        MILIDetector(net, masks=True, mask_threshold=1.0)
