"""``lowres-hps selfsup`` end to end on a small static-camera video: people collected once and reused, a tuned
checkpoint whose card names its data, and one-line errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from lowres_hps.apis.registry import ModelCard, read_card, save_checkpoint
from lowres_hps.commands import predict as predict_cmd
from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apis"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_apis_unlabelled import walker_detector, walker_video  # noqa: E402
from test_commands_adapt import run  # noqa: E402


@pytest.fixture()
def video_and_model(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(predict_cmd, "build_detector", lambda args: walker_detector)
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    model = save_checkpoint(build_body3d_model(config, pretrained=False),
                            ModelCard.from_config("tiny_rsc", config), tmp_path / "tiny.safetensors")
    return walker_video(tmp_path / "walker.avi", frames=50), model


def test_selfsup_writes_a_tuned_model_and_reuses_its_people(tmp_path, video_and_model):
    video, model = video_and_model
    out = tmp_path / "tuned.safetensors"
    args = ["selfsup", str(video), "--out", str(out), "--model3d", str(model), "--frames", "1:50",
            "--detect-every", "1", "--max-steps", "1", "--pretrain-steps", "1", "--batch-size", "4",
            "--min-people", "4", "--pretext", "rotation", "--rendering", "mask"]
    code, stdout, err = run(*args)
    assert code == 0, err
    assert out.is_file() and (tmp_path / "tuned.work" / "people" / "people.json").is_file()
    card = read_card(out)
    assert card.name == "tuned" and card.extra["adapted_from"] == "tiny_rsc"
    assert card.extra["adaptation"]["sources"] == [str(video)] and card.extra["adaptation"]["pretext"] == ["rotation"]
    code, stdout, err = run(*args)
    assert code == 0, err
    assert "reusing" in stdout


def test_selfsup_with_a_2d_teacher(tmp_path, video_and_model):
    import json

    video, model = video_and_model
    out = tmp_path / "taught.safetensors"
    args = ["selfsup", str(video), "--out", str(out), "--model3d", str(model), "--frames", "1:50",
            "--detect-every", "1", "--max-steps", "1", "--pretrain-steps", "1", "--batch-size", "4",
            "--min-people", "4", "--pretext", "--rendering", "mask", "--teacher", "lrmove_l_128"]
    code, stdout, err = run(*args)
    assert code == 0, err
    taught = list((tmp_path / "taught.work" / "teacher").glob("*_lrmove_l_128.json"))
    assert len(taught) == 1
    data = json.loads(taught[0].read_text())
    assert data["info"]["keypoints"]["teachers"] == ["lrmove_l_128"]
    assert len(data["annotations"]) == len(json.loads((tmp_path / "taught.work" / "people" / "people.json")
                                                      .read_text())["annotations"])
    card = read_card(out)
    assert card.extra["adaptation"]["teacher"] == "lrmove_l_128" and card.extra["adaptation"]["lambda_teacher"] == 1.0
    assert "teacher lrmove_l_128" in card.notes
    code, stdout, err = run(*args)
    assert code == 0 and "reusing the teacher" in stdout, err
    code, _, err = run(*args[:-2], "--second-teacher", "movenet_lightning")
    assert code == 2 and "--second-teacher needs --teacher" in err


def test_selfsup_errors_are_one_line(tmp_path, video_and_model):
    video, model = video_and_model
    code, _, err = run("selfsup", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "a.safetensors"))
    assert code == 2 and "missing.avi" in err and "Traceback" not in err
    code, _, err = run("selfsup", str(video), "--out", str(tmp_path / "a.pt"))
    assert code == 2 and ".safetensors" in err
    code, _, err = run("selfsup", str(video), "--out", str(tmp_path / "b.safetensors"), "--model3d", str(model),
                       "--frames", "1:50", "--detect-every", "1", "--min-people", "500", "--collect-only")
    assert code == 2 and "--min-people" in err and "Traceback" not in err
