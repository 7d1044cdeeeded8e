import json

import numpy as np

from lowres_hps.commands.demo import render_scene
from lowres_hps.cli import main


def test_scene_labels_are_consistent(anny_body):
    scene = render_scene(count=3, seed=1)
    image, instance_map = scene["image"], scene["instance_map"]
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    for index, (box, keypoints) in enumerate(zip(scene["boxes"], scene["keypoints2d"])):
        x, y, w, h = box
        visible = keypoints[:, 2] > 0
        assert visible.sum() >= 12
        points = keypoints[visible, :2]
        # Keypoints lie inside the person's box (they are inside the body, the box bounds the mesh).
        assert np.all(points[:, 0] >= x - 1) and np.all(points[:, 0] <= x + w + 1)
        assert np.all(points[:, 1] >= y - 1) and np.all(points[:, 1] <= y + h + 1)
        # The person is drawn: its instance id covers pixels inside its box.
        region = instance_map[int(y):int(y + h) + 1, int(x):int(x + w) + 1]
        assert (region == index).sum() > 0.2 * w * h * 0.3
    # Farther people are smaller: depths are sorted far to near.
    heights = scene["boxes"][:, 3]
    depths = scene["keypoints3d"][:, :, 2].mean(axis=1)
    assert np.all(np.diff(depths) < 0) and np.all(np.diff(heights) > 0)


def test_demo_command_writes_outputs(tmp_path, capsys, anny_body):
    assert main(["demo", "--out", str(tmp_path), "--count", "2", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (tmp_path / "scene.png").is_file() and (tmp_path / "protocol.png").is_file()
    assert len(summary["people"]) == 2
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert len(saved["crops"]) == 2 * 5
    # Degrading never claims a higher resolution than the source has.
    for row in saved["crops"]:
        if row["requested_height_px"] is not None:
            assert row["effective_height_px"] <= row["requested_height_px"] + 1e-6
