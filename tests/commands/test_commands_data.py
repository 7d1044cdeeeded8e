"""`lowres-hps data`: JSON summary and preview sheet."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from lowres_hps.cli import main
from lowres_hps.data import SpinNpzReader
from lowres_hps.commands.data import preview_sheet, summarize


def _spin_npz(tmp_path, count=3):
    """A SPIN npz over one 120 x 160 image with a bright square where the people are."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[40:80, 60:100] = 255
    cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    part = np.zeros((count, 24, 3))
    part[:, :, :2] = [80.0, 60.0]
    part[:, :14, 2] = 1
    part[:, 13, :2] = [80.0, 45.0]
    scale = np.full(count, 0.3)
    scale[-1] = 0.0  # one bad row
    np.savez(tmp_path / "people.npz", imgname=np.array(["frame.jpg"] * count), center=np.tile([80.0, 60.0], (count, 1)),
             scale=scale, part=part, S=np.ones((count, 24, 4)))
    return tmp_path / "people.npz"


def test_summary_json(tmp_path, capsys):
    path = _spin_npz(tmp_path)
    assert main(["data", "spin", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "spin" and summary["reader"] == "SpinNpzReader"
    assert summary["num_samples"] == 2 and summary["num_skipped"] == 1
    assert summary["skipped"][0]["key"] == 2 and "zero size" in summary["skipped"][0]["reason"]
    assert summary["convention"] == "spin24" and summary["num_keypoints"] == 24
    assert summary["has_3d"] is True and summary["has_smpl"] is False and summary["has_mask"] is False
    assert "preview" not in summary


def test_preview_sheet_png(tmp_path, capsys):
    path = _spin_npz(tmp_path)
    out = tmp_path / "sheet.png"
    assert main(["data", "spin", str(path), "--preview", str(out), "--num-preview", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["preview"] == str(out)
    sheet = cv2.imread(str(out))
    tile_h, tile_w, pad = 192, 144, 2
    assert sheet.shape == (tile_h + 2 * pad, 2 * tile_w + 3 * pad, 3)
    # The 60 px box is centred in each tile: the bright square shows there, the border is padding (black).
    centre = sheet[pad + tile_h // 2 - 5: pad + tile_h // 2 + 5, pad + tile_w // 2 - 5: pad + tile_w // 2 + 5]
    assert centre.mean() > 150
    assert sheet[pad + 2, pad + 2].max() < 30


def test_preview_draws_keypoints(tmp_path):
    reader = SpinNpzReader(_spin_npz(tmp_path))
    sheet = preview_sheet(reader, count=1)
    tile = sheet[2:-2, 2:-2]
    # Head top is 15 px above the centre; the box (60 px square) fills 1 / 1.25 of the tile's 144 px width.
    scale = 144 / (60 * 1.25)
    y, x = int(round(96 - 15 * scale)), 72
    assert tile.shape == (192, 144, 3)
    np.testing.assert_array_equal(tile[y, x], [60, 220, 60])  # the head top, in the centre-line colour
    assert tile[y - 6, x].min() > 200  # above it, the bright square is untouched


def test_summarize_counts_filtered(tmp_path):
    summary = summarize(SpinNpzReader(_spin_npz(tmp_path)))
    assert summary["filtered"] == {} and summary["image_root"] == str(tmp_path)


def test_errors_are_one_line_naming_the_file(tmp_path, capsys):
    assert main(["data", "coco", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main(["data", "coco", str(tmp_path / "bad.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["data", "lsp", str(_spin_npz(tmp_path)), "--convention", "coco17"]) == 2
    assert "--convention" in capsys.readouterr().err


@pytest.mark.shared_data
def test_coco_mini_summary_and_preview(shared_data, tmp_path, capsys):
    path = shared_data / "coco_mini_train" / "annotations" / "person_keypoints_train2017.json"
    out = tmp_path / "coco.png"
    assert main(["data", "coco", str(path), "--preview", str(out), "--check-images"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_samples"] == 86 and summary["num_skipped"] == 0 and summary["has_mask"] is True
    assert summary["filtered"] == {"crowd": 5, "fewer than 1 keypoints": 81}
    assert cv2.imread(str(out)).shape == (2 * 194 + 2, 4 * 146 + 2, 3)
