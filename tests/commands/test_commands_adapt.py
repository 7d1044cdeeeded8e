"""``lowres-hps adapt`` end to end on a small static-camera video: crops cut once and reused on a second run, an
adapted checkpoint that ``predict --model3d`` takes, and clear one-line errors."""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

from lowres_hps.apis.registry import ModelCard, read_card, save_checkpoint
from lowres_hps.cli import main
from lowres_hps.commands import predict as predict_cmd
from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apis"))
from test_apis_adaptation import walkers_detector, write_walkers_video  # noqa: E402


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def video_and_model(tmp_path, monkeypatch):
    path = write_walkers_video(tmp_path / "walkers.avi")
    detector = walkers_detector()
    monkeypatch.setattr(predict_cmd, "build_detector", lambda args: detector)
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    model = save_checkpoint(build_body3d_model(config, pretrained=False),
                            ModelCard.from_config("tiny_rsc", config), tmp_path / "tiny.safetensors")
    return path, model


def test_adapt_writes_a_model_that_predict_uses_and_resumes(tmp_path, video_and_model):
    video, model = video_and_model
    out = tmp_path / "adapted.safetensors"
    args = ["adapt", str(video), "--out", str(out), "--model3d", str(model), "--frames", "1:60", "--steps", "2",
            "--batch-size", "4", "--min-people", "8", "--no-prior"]
    code, stdout, err = run(*args)
    assert code == 0, err
    assert "kept" in stdout and out.is_file()
    card = read_card(out)
    assert card.name == "adapted" and card.extra["adapted_from"] == "tiny_rsc"
    assert card.extra["adaptation"]["frames"] == "1-60" and card.extra["adaptation"]["source"] == "walkers.avi"
    # the people of the last fifth of the frames were held out, and chose what was written
    validation = card.extra["adaptation"]["validation"]
    assert "held-out silhouette IoU" in stdout and validation["metric"] == "silhouette_iou"
    assert validation["people"] > 0 and "adapting on" in stdout
    assert (tmp_path / "adapted.work" / "crops.npz").is_file()
    code, stdout, err = run(*args)  # again: the crops and the finished run are reused
    assert code == 0, err
    assert "reusing" in stdout


def test_adapt_errors_are_one_line(tmp_path, video_and_model):
    video, model = video_and_model
    code, _, err = run("adapt", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "a.safetensors"))
    assert code == 2 and "missing.avi" in err and "Traceback" not in err
    code, _, err = run("adapt", str(video), "--out", str(tmp_path / "a.safetensors"), "--model3d", str(model),
                       "--frames", "1:30", "--min-people", "1000", "--no-prior")
    assert code == 2 and "--min-people" in err and "Traceback" not in err
    code, _, err = run("adapt", str(video), "--out", str(tmp_path / "a.pt"))
    assert code == 2 and ".safetensors" in err
    code, _, err = run("adapt", str(video), "--out", str(tmp_path / "a.safetensors"), "--frames", "5:2")
    assert code == 2 and "--frames" in err
    code, _, err = run("adapt", str(video), "--out", str(tmp_path / "a.safetensors"), "--val-fraction", "1")
    assert code == 2 and "--val-fraction" in err and "Traceback" not in err
