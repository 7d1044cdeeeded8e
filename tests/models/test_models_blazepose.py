"""BlazePose through mediapipe's own environment (lowres_hps.models.blazepose, scripts/blazepose_worker.py).

The default tests need no mediapipe: the subprocess is replaced by a fake interpreter (an executable script
that writes a known result) or the real worker runs under this Python with a fake ``mediapipe`` package.
Only the slow test runs the real mediapipe, when ``make mediapipe-env`` has been run.
"""
from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import BLAZEPOSE33, COCO17
from lowres_hps.models import blazepose
from lowres_hps.models.blazepose import (
    BLAZEPOSE_TO_COCO17,
    MEDIAPIPE_PYTHON_ENV,
    BlazePoseEstimator,
    MediapipeNotFoundError,
    blazepose_to_coco17,
    find_mediapipe_python,
    run_blazepose,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = REPO_ROOT / "scripts" / "blazepose_worker.py"


# --- 33 -> COCO-17 ---

def test_coco17_indices_are_the_published_blazepose_landmarks():
    # mediapipe's landmark numbering (PoseLandmark enum): nose 0, left/right eye 2/5, ears 7/8, shoulders 11/12,
    # elbows 13/14, wrists 15/16, hips 23/24, knees 25/26, ankles 27/28.
    assert BLAZEPOSE_TO_COCO17 == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
    assert [BLAZEPOSE33.names[i] for i in BLAZEPOSE_TO_COCO17] == list(COCO17.names)


def test_blazepose33_convention_matches_mediapipe_order():
    assert len(BLAZEPOSE33) == 33
    assert BLAZEPOSE33.names[9:11] == ("left_mouth", "right_mouth")
    assert BLAZEPOSE33.names[29:] == ("left_heel", "right_heel", "left_foot_index", "right_foot_index")
    assert BLAZEPOSE33.flip_permutation[11] == 12 and BLAZEPOSE33.flip_permutation[31] == 32


def test_blazepose_to_coco17_numpy_and_torch():
    landmarks = np.arange(2 * 33 * 3, dtype=np.float32).reshape(2, 33, 3)
    mapped = blazepose_to_coco17(landmarks)
    assert mapped.shape == (2, 17, 3)
    np.testing.assert_array_equal(mapped[:, 5], landmarks[:, 11])  # left_shoulder
    np.testing.assert_array_equal(mapped[:, 16], landmarks[:, 28])  # right_ankle
    torch.testing.assert_close(blazepose_to_coco17(torch.from_numpy(landmarks)), torch.from_numpy(mapped))
    with pytest.raises(ValueError, match="33 BlazePose landmarks"):
        blazepose_to_coco17(np.zeros((2, 17, 3)))


# --- the interpreter lookup and its error ---

def test_missing_environment_names_make_target(monkeypatch, tmp_path):
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(MediapipeNotFoundError, match="make mediapipe-env") as info:
        BlazePoseEstimator("full")
    assert str(tmp_path / "nowhere" / "python") in str(info.value)


def test_missing_default_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(MEDIAPIPE_PYTHON_ENV, raising=False)
    monkeypatch.setattr(blazepose, "_REPO_ROOT", tmp_path / "checkout")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MediapipeNotFoundError, match="make mediapipe-env") as info:
        find_mediapipe_python()
    assert str(tmp_path / "checkout" / ".venv-mediapipe" / "bin" / "python") in str(info.value)


def test_default_environment_found_from_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(MEDIAPIPE_PYTHON_ENV, raising=False)
    monkeypatch.setattr(blazepose, "_REPO_ROOT", tmp_path / "checkout")
    python = tmp_path / ".venv-mediapipe" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    monkeypatch.chdir(tmp_path)
    assert find_mediapipe_python() == Path.cwd() / ".venv-mediapipe" / "bin" / "python"


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        BlazePoseEstimator("medium")


# --- the npz protocol, with a fake interpreter ---

def _fake_python(tmp_path: Path, body: str) -> Path:
    """An executable standing in for .venv-mediapipe/bin/python: argv = [worker, crops.npz, out.npz, flags...]."""
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


# Crop n gets landmark k at (k + n, 2k), visibility k / 33, world (k, -k, n) m, mask filled with n; the last
# crop has nobody. Also records the flags it was called with.
_KNOWN_RESULT = """
import json, sys
import numpy as np
worker, crops_path, out_path, *flags = sys.argv[1:]
crops = np.load(crops_path)["crops"]
n, h, w = crops.shape[:3]
k = np.arange(33, dtype=np.float32)
landmarks = np.stack([np.stack([k + i, 2 * k, k / 33], -1) for i in range(n)])
world = np.stack([np.stack([k, -k, np.full(33, i, np.float32)], -1) for i in range(n)])
masks = np.stack([np.full((h, w), i, np.uint8) for i in range(n)])
detected = np.arange(n) < n - 1
landmarks[~detected] = 0
np.savez(out_path, landmarks=landmarks, world_landmarks=world, masks=masks, detected=detected,
         ms_per_crop=np.float64(12.5), startup_s=np.float64(0.1), model_complexity=np.int64(0),
         mediapipe_version=np.str_("fake"))
open(out_path + ".call.json", "w").write(json.dumps({"worker": worker, "flags": flags,
                                                      "pixel": crops[0, 1, 2].tolist(), "shape": list(crops.shape)}))
"""


def test_estimator_npz_protocol(monkeypatch, tmp_path):
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(_fake_python(tmp_path, _KNOWN_RESULT)))
    calls = []
    real_run = blazepose.subprocess.run

    def spy(command, **kwargs):
        done = real_run(command, **kwargs)
        calls.append(Path(command[3] + ".call.json").read_text())  # before the temporary folder goes
        return done

    monkeypatch.setattr(blazepose.subprocess, "run", spy)
    estimator = BlazePoseEstimator("heavy", input_size=64, threads=1)
    crops = torch.zeros(3, 3, 64, 64, dtype=torch.uint8)
    crops[0, :, 1, 2] = torch.tensor([10, 20, 30])  # channel-first in, channel-last to the worker
    keypoints, scores = estimator(crops)

    import json
    call = json.loads(calls[0])
    assert call["worker"] == str(WORKER)
    assert call["shape"] == [3, 64, 64, 3] and call["pixel"] == [10, 20, 30]
    assert call["flags"][:4] == ["--model-complexity", "2", "--threads", "1"]
    assert keypoints.shape == (3, 17, 2) and scores.shape == (3, 17)
    assert keypoints.dtype == torch.float32 and scores.dtype == torch.float32
    index = torch.tensor(BLAZEPOSE_TO_COCO17, dtype=torch.float32)
    for n in range(2):
        torch.testing.assert_close(keypoints[n], torch.stack([index + n, 2 * index], -1))
        torch.testing.assert_close(scores[n], index / 33)
    # Nobody found: zero scores, keypoints at the crop centre.
    torch.testing.assert_close(keypoints[2], torch.full((17, 2), 31.5))
    assert torch.all(scores[2] == 0)
    assert estimator.stats == {"crops": 3, "detected": 2, "worker_ms": 37.5}


def test_run_blazepose_returns_teacher_outputs(monkeypatch, tmp_path):
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(_fake_python(tmp_path, _KNOWN_RESULT)))
    out = run_blazepose(np.zeros((2, 8, 6, 3), np.uint8), model_complexity=0)
    assert out.world_landmarks.shape == (2, 33, 3) and out.masks.shape == (2, 8, 6)
    np.testing.assert_array_equal(out.world_landmarks[0, 5], [5, -5, 0])
    assert out.masks[0].max() == 0 and out.detected.tolist() == [True, False] and out.ms_per_crop == 12.5


def test_worker_failure_is_reported_with_its_stderr(monkeypatch, tmp_path):
    fake = _fake_python(tmp_path, "import sys\nprint('mediapipe exploded', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(fake))
    with pytest.raises(RuntimeError, match=r"exit 3[\s\S]*mediapipe exploded"):
        run_blazepose(np.zeros((1, 8, 8, 3), np.uint8))


def test_worker_with_wrong_shapes_is_rejected(monkeypatch, tmp_path):
    fake = _fake_python(tmp_path, """
        import sys, numpy as np
        np.savez(sys.argv[3], landmarks=np.zeros((1, 17, 3)), world_landmarks=np.zeros((1, 33, 3)),
                 masks=np.zeros((1, 8, 8)), detected=np.ones(1, bool), ms_per_crop=1.0)
    """)
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(fake))
    with pytest.raises(RuntimeError, match="landmarks of shape"):
        run_blazepose(np.zeros((1, 8, 8, 3), np.uint8))


def test_bad_crops_are_rejected_before_any_subprocess(monkeypatch, tmp_path):
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, str(_fake_python(tmp_path, "raise SystemExit(1)\n")))
    estimator = BlazePoseEstimator("full", input_size=32)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        estimator(torch.zeros(1, 3, 32, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        estimator(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="uint8"):
        run_blazepose(np.zeros((1, 8, 8), np.uint8))


# --- the real worker script, under this Python with a fake mediapipe package ---

_FAKE_MEDIAPIPE = '''
"""Stands in for mediapipe's Pose solution: a person in every crop whose first pixel is not 0."""
import types
from dataclasses import dataclass

import numpy as np

__version__ = "fake"


@dataclass
class _Point:
    x: float
    y: float
    z: float = 0.0
    visibility: float = 0.0
    presence: float = 0.0


class Pose:
    def __init__(self, static_image_mode, model_complexity, enable_segmentation, min_detection_confidence):
        assert static_image_mode and enable_segmentation

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def process(self, image):
        if image[0, 0, 0] == 0:
            return types.SimpleNamespace(pose_landmarks=None, pose_world_landmarks=None, segmentation_mask=None)
        k = np.arange(33)
        # normalised x = 0.5 (the image centre line), y = k / 32 (top edge .. bottom edge)
        points = [_Point(0.5, i / 32, visibility=i / 33) for i in k]
        world = [_Point(0.01 * i, -0.01 * i, 0.5) for i in k]
        mask = np.full(image.shape[:2], 0.5, np.float32)
        return types.SimpleNamespace(pose_landmarks=types.SimpleNamespace(landmark=points),
                                     pose_world_landmarks=types.SimpleNamespace(landmark=world),
                                     segmentation_mask=mask)


solutions = types.SimpleNamespace(pose=types.SimpleNamespace(Pose=Pose))
'''


def test_worker_script_with_fake_mediapipe(monkeypatch, tmp_path):
    package = tmp_path / "fake_site" / "mediapipe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_FAKE_MEDIAPIPE)
    monkeypatch.setenv("PYTHONPATH", str(package.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv(MEDIAPIPE_PYTHON_ENV, sys.executable)
    crops = np.full((2, 40, 30, 3), 7, np.uint8)
    crops[1, 0, 0, 0] = 0  # nobody in the second crop
    out = run_blazepose(crops, model_complexity=2, threads=1)
    assert out.detected.tolist() == [True, False]
    k = np.arange(33, dtype=np.float32)
    # Normalised coordinates run from the first pixel's edge to the last one's: centres at integers.
    np.testing.assert_allclose(out.landmarks[0, :, 0], np.full(33, 14.5))
    np.testing.assert_allclose(out.landmarks[0, :, 1], k / 32 * 40 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(out.landmarks[0, :, 2], k / 33, rtol=1e-6)
    np.testing.assert_allclose(out.world_landmarks[0, :, 0], 0.01 * k, rtol=1e-6)
    assert np.all(out.masks[0] == 128) and np.all(out.masks[1] == 0)
    assert np.all(out.landmarks[1] == 0) and np.all(out.world_landmarks[1] == 0)


# --- the real mediapipe, when its environment exists ---

@pytest.mark.slow
def test_real_blazepose_on_a_coco_person(shared_data):
    try:
        find_mediapipe_python()
    except MediapipeNotFoundError:
        pytest.skip("no mediapipe environment (make mediapipe-env)")
    from lowres_hps.apis.inputs import load_image
    from lowres_hps.imaging.protocol import LowResProtocol

    image_path = shared_data / "coco_mini_train" / "train2017" / "000000535506.jpg"
    if not image_path.exists():
        pytest.skip(f"{image_path} missing")
    image = load_image(image_path)[0]
    # A standing person, 499 px tall, 15 labelled keypoints (its COCO box): BlazePose must find them and put
    # the nose above the ankles.
    crop = LowResProtocol((256, 256), 1.25)(image, np.array([120.46, 133.32, 212.31, 498.58]))
    estimator = BlazePoseEstimator("lite", threads=1)
    keypoints, scores = estimator(crop.image[None])
    assert estimator.stats["detected"] == 1
    assert scores[0, 0] > 0.5 and keypoints[0, 0, 1] < keypoints[0, 15:, 1].min()
