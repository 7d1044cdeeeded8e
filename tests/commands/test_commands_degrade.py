import json

import numpy as np

from lowres_hps.cli import main
from lowres_hps.imaging.io import read_image_rgb, write_image_rgb


def _write_scene(tmp_path):
    image = np.zeros((300, 200, 3), np.uint8)
    image[50:250, 80:120] = (255, 200, 100)
    path = tmp_path / "scene.png"
    write_image_rgb(path, image)
    return path


def test_degrade_writes_one_png_per_box_and_height(tmp_path, capsys):
    image_path, out = _write_scene(tmp_path), tmp_path / "out"
    code = main(["degrade", str(image_path), "--box", "79.5", "49.5", "40", "200",
                 "--box", "0", "0", "50", "60", "--heights", "96", "32", "--out", str(out)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["setting"] == "upsample" and summary["input_size"] == [224, 224]
    assert summary["strip_columns"] == ["original", 96, 32]
    assert [c["requested_height"] for c in summary["crops"]] == [96, 32, 96, 32]
    # The second box is 60 px tall in the image: it cannot be shown at 96 px.
    assert [c["effective_height"] for c in summary["crops"]] == [96, 32, 60, 32]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["box0_h96.png", "box0_h32.png", "box1_h96.png", "box1_h32.png", "strip.png"])
    assert set(summary["files"]) == {str(p) for p in out.iterdir()}
    assert read_image_rgb(out / "box0_h32.png").shape == (224, 224, 3)
    assert read_image_rgb(out / "strip.png").shape == (2 * 224 + 4, 3 * 224 + 2 * 4, 3)
    # The person (200 px box, 160 px at the input) is bright in the middle of its crop.
    assert read_image_rgb(out / "box0_h96.png")[112, 112, 0] > 200


def test_degrade_native_setting_and_default_box(tmp_path, capsys):
    image_path, out = _write_scene(tmp_path), tmp_path / "native"
    assert main(["degrade", str(image_path), "--input-size", "64", "48", "--setting", "native", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["crops"][0]["box"] == [-0.5, -0.5, 200.0, 300.0]  # the whole image
    assert summary["crops"][0]["effective_height"] == round(64 / 1.25, 2)
    assert read_image_rgb(out / "box0_native.png").shape == (64, 48, 3)


def test_degrade_user_errors(tmp_path, capsys):
    image_path = _write_scene(tmp_path)
    code = main(["degrade", str(image_path), "--setting", "native", "--heights", "32", "--out", str(tmp_path / "x")])
    assert code == 2 and "--heights" in capsys.readouterr().err
    assert main(["degrade", str(tmp_path / "missing.png"), "--out", str(tmp_path / "y")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["degrade", str(image_path), "--heights", "0", "--out", str(tmp_path / "z")]) == 2
