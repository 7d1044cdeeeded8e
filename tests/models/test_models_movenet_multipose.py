"""MoveNet MultiPose: weights from a (fake) TFJS graph, and the graph's multi-person decoder."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tfjs_fakes import movenet_tf_weights, write_movenet_tfjs, float32_group, write_tfjs  # noqa: E402

from lowres_hps.models.movenet import (  # noqa: E402
    MULTIPOSE_HEADS,
    MoveNetMultiPose,
    decode_multipose,
    load_movenet_multipose,
)
from lowres_hps.models.pretrained import MissingPretrainedError  # noqa: E402

H, W = 16, 24  # heatmap cells: a 64 x 96 input


def empty_heads(batch: int = 1) -> dict[str, torch.Tensor]:
    heads = {name: torch.zeros(batch, c, H, W) for name, c in MULTIPOSE_HEADS.items()}
    heads["center"].fill_(-20.0)
    heads["kpt_heatmap"].fill_(-20.0)
    return heads


def add_person(heads, b: int, cy: int, cx: int, logit: float, box_hw=(8.0, 4.0), keypoints=None) -> None:
    """A centre peak at (cy, cx) with a box around it and, optionally, keypoint peaks {k: (y, x)}."""
    heads["center"][b, 0, cy, cx] = logit
    heads["box_scale"][b, :, cy, cx] = torch.tensor(box_hw)
    for k, (y, x) in (keypoints or {}).items():
        heads["kpt_regress"][b, 2 * k:2 * k + 2, cy, cx] = torch.tensor([y - cy, x - cx], dtype=torch.float32)
        heads["kpt_heatmap"][b, k, y, x] = 3.0


def test_decoder_finds_each_person_with_its_box_keypoints_and_score():
    heads = empty_heads()
    add_person(heads, 0, 5, 6, 2.0, keypoints={0: (3, 6), 16: (8, 7)})
    add_person(heads, 0, 10, 18, 1.0, box_hw=(6.0, 2.0), keypoints={0: (8, 18)})
    heads["kpt_offset"][0, 0, 3, 6] = 0.25  # keypoint 0 of the first person, y refined by a quarter cell
    out = decode_multipose(heads, max_people=3)
    assert out.shape == (1, 3, 56)
    first, second = out[0, 0], out[0, 1]
    # Boxes: centre +- scale / 2 in cells, x 4 / input size.
    assert torch.allclose(first[51:55], torch.tensor([(5 - 4) / H, (6 - 2) / W, (5 + 4) / H, (6 + 2) / W]))
    assert torch.allclose(second[51:55], torch.tensor([(10 - 3) / H, (18 - 1) / W, (10 + 3) / H, (18 + 1) / W]))
    kp = first[:51].view(17, 3)
    assert kp[0, :2].tolist() == pytest.approx([(3 + 0.25) / H, 6 / W])
    assert kp[16, :2].tolist() == pytest.approx([8 / H, 7 / W])
    assert kp[0, 2].item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item(), rel=1e-4)
    # Person score: peak x mean of the keypoint scores above 0.127 (the two placed keypoints here).
    assert first[55].item() == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item() * kp[[0, 16], 2].mean().item(),
                                             rel=1e-4)
    assert second[55] < first[55]
    # The third "person" is the best remaining cell: a weak one.
    assert out[0, 2, 55] < 1e-6


def test_decoder_keeps_keypoints_inside_their_box():
    heads = empty_heads()
    add_person(heads, 0, 8, 8, 2.0, box_hw=(4.0, 4.0), keypoints={5: (8, 9)})
    heads["kpt_heatmap"][0, 5, 8, 20] = 10.0  # much stronger, but outside the box
    kp = decode_multipose(heads, 1)[0, 0, :51].view(17, 3)
    assert kp[5, :2].tolist() == pytest.approx([8 / H, 9 / W])


def test_peaks_within_two_cells_are_one_person():
    heads = empty_heads()
    add_person(heads, 0, 8, 8, 2.0)
    heads["center"][0, 0, 8, 10] = 1.5  # suppressed by the 5 x 5 maximum
    heads["center"][0, 0, 8, 13] = 1.0  # beyond the 5 x 5 window of both: a person
    out = decode_multipose(heads, 3)
    boxes = out[0, :, 51:55]
    centres_x = ((boxes[:, 1] + boxes[:, 3]) / 2 * W).tolist()
    assert centres_x[:2] == pytest.approx([8.0, 13.0])


def test_decoder_batches_per_image():
    heads = empty_heads(2)
    add_person(heads, 0, 4, 4, 2.0)
    add_person(heads, 1, 12, 20, 2.0)
    out = decode_multipose(heads, 1)
    single = decode_multipose({k: v[1:] for k, v in heads.items()}, 1)
    assert torch.allclose(out[1:], single)
    assert out[0, 0, 51].item() == pytest.approx((4 - 4) / H)


def test_input_sides_must_be_multiples_of_32():
    model = MoveNetMultiPose(0.35)
    assert model(torch.zeros(1, 3, 64, 96, dtype=torch.uint8)).shape == (1, 6, 56)
    with pytest.raises(ValueError, match="multiples of 32"):
        model.head_outputs(torch.zeros(1, 3, 64, 100))


@pytest.fixture(scope="module")
def multipose_tfjs(tmp_path_factory):
    return write_movenet_tfjs(tmp_path_factory.mktemp("multipose"), width_mult=1.5, name="movenet-multipose.json",
                              multipose=True)


def test_load_restores_the_state_dict(multipose_tfjs):
    path, source = multipose_tfjs
    loaded = load_movenet_multipose(path, max_people=4)
    assert not loaded.training and loaded.max_people == 4
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_singlepose_weights_are_a_clear_error(tmp_path):
    from lowres_hps.models.movenet import MoveNet

    path = write_tfjs(tmp_path, [float32_group(movenet_tf_weights(MoveNet(1.5)))])
    with pytest.raises(ValueError, match="not a MoveNet MultiPose model"):
        load_movenet_multipose(path)


def test_missing_files_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_HPS_PRETRAINED_DIR", str(tmp_path))
    with pytest.raises(MissingPretrainedError, match="movenet-multipose.json"):
        load_movenet_multipose()
