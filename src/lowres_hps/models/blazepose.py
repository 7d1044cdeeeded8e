"""BlazePose GHUM (mediapipe Pose) as a peer 2D estimator and as a teacher of world 3D landmarks and masks.

mediapipe pins protobuf<5 and numpy<2, which clash with this package's environment (onnx, numpy 2), so it
lives in its own virtual environment (``make mediapipe-env`` -> ``.venv-mediapipe``) and runs in a
subprocess: ``scripts/blazepose_worker.py`` reads an .npz of person crops and writes an .npz of results.
Nothing here imports mediapipe. One subprocess serves one batch of crops (about a second of start-up), so
callers should batch many crops per call.

BlazePose finds the person in the crop with its own detector first; a crop where it finds nobody has
``detected = False`` and, as a 2D estimator, all-zero scores at the crop centre.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lowres_hps.body.keypoints import BLAZEPOSE33, COCO17, get_mapping

__all__ = [
    "BLAZEPOSE_TO_COCO17",
    "BLAZEPOSE_VARIANTS",
    "MEDIAPIPE_PYTHON_ENV",
    "MediapipeNotFoundError",
    "BlazePoseOutput",
    "blazepose_to_coco17",
    "find_mediapipe_python",
    "find_blazepose_worker",
    "run_blazepose",
    "BlazePoseEstimator",
]

BLAZEPOSE_TO_COCO17: tuple[int, ...] = tuple(int(i) for i in get_mapping(BLAZEPOSE33, COCO17).source_index)
"""BlazePose landmark index of each COCO-17 keypoint (by name: nose, eyes, ears, shoulders ... ankles)."""

BLAZEPOSE_VARIANTS: dict[str, int] = {"lite": 0, "full": 1, "heavy": 2}
"""mediapipe ``model_complexity`` of each published landmark model."""

MEDIAPIPE_PYTHON_ENV = "LOWRES_HPS_MEDIAPIPE_PYTHON"
"""Environment variable naming the Python interpreter that has mediapipe (default: ``.venv-mediapipe``)."""

# src/lowres_hps/models/blazepose.py -> the repository root (an editable install or a checkout).
_REPO_ROOT = Path(__file__).resolve().parents[3]
_VENV_PYTHON = Path(".venv-mediapipe") / "bin" / "python"
_WORKER = Path("scripts") / "blazepose_worker.py"


class MediapipeNotFoundError(FileNotFoundError):
    """mediapipe's environment (or the worker script) is missing; the message says how to create it."""


@dataclass(frozen=True)
class BlazePoseOutput:
    """BlazePose results of N crops of size (H, W).

    Attributes:
        landmarks: (N, 33, 3) float32 ``x, y`` in crop pixels (pixel centres at integer coordinates) and
            visibility in [0, 1].
        world_landmarks: (N, 33, 3) float32 metric 3D landmarks (metres, origin between the hips, y down).
        masks: (N, H, W) uint8 person-segmentation probability x 255.
        detected: (N,) bool, False where BlazePose's detector found no person (all of the above are zero).
        ms_per_crop: mediapipe's processing time per crop in the worker, without its start-up.
    """

    landmarks: np.ndarray
    world_landmarks: np.ndarray
    masks: np.ndarray
    detected: np.ndarray
    ms_per_crop: float


def blazepose_to_coco17(landmarks):
    """COCO-17 keypoints of BlazePose landmarks: ``(..., 33, C) -> (..., 17, C)`` (numpy array or tensor).

    Every COCO-17 keypoint is a BlazePose landmark, so this is a plain selection (no missing joints)."""
    if landmarks.ndim < 2 or landmarks.shape[-2] != len(BLAZEPOSE33):
        raise ValueError(f"expected {len(BLAZEPOSE33)} BlazePose landmarks on axis -2, got shape "
                         f"{tuple(landmarks.shape)}")
    return landmarks[..., list(BLAZEPOSE_TO_COCO17), :]


def _missing(what: str, looked: list[str]) -> MediapipeNotFoundError:
    return MediapipeNotFoundError(
        f"BlazePose runs in mediapipe's own environment; {what} not found (looked for {', '.join(looked)}). "
        f"Create it with `make mediapipe-env` in the lowres-hps checkout, or set {MEDIAPIPE_PYTHON_ENV} to a "
        f"Python that has mediapipe==0.10.21.")


def find_mediapipe_python() -> Path:
    """The interpreter with mediapipe: ``$LOWRES_HPS_MEDIAPIPE_PYTHON``, else ``.venv-mediapipe/bin/python`` of
    the checkout this package lives in, else of the working directory. Raises :class:`MediapipeNotFoundError`."""
    configured = os.environ.get(MEDIAPIPE_PYTHON_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise _missing(f"{MEDIAPIPE_PYTHON_ENV}={configured}", [configured])
    candidates = [_REPO_ROOT / _VENV_PYTHON, Path.cwd() / _VENV_PYTHON]
    for path in candidates:
        if path.is_file():
            return path
    raise _missing("its Python", [str(p) for p in dict.fromkeys(candidates)])


def find_blazepose_worker() -> Path:
    """``scripts/blazepose_worker.py`` of the checkout this package lives in, else of the working directory."""
    candidates = [_REPO_ROOT / _WORKER, Path.cwd() / _WORKER]
    for path in candidates:
        if path.is_file():
            return path
    raise _missing("the worker script", [str(p) for p in dict.fromkeys(candidates)])


def run_blazepose(crops: np.ndarray, model_complexity: int = 1, threads: int | None = None,
                  min_detection_confidence: float = 0.5, python: str | os.PathLike | None = None,
                  timeout: float | None = None) -> BlazePoseOutput:
    """BlazePose on (N, H, W, 3) uint8 RGB person crops, in one worker subprocess.

    Args:
        crops: (N, H, W, 3) uint8 RGB, one roughly centred person each.
        model_complexity: 0 lite, 1 full, 2 heavy.
        threads: cores the worker may use (None: all).
        min_detection_confidence: BlazePose's person-detector threshold.
        python: the interpreter with mediapipe (default :func:`find_mediapipe_python`).
        timeout: seconds before the worker is stopped (None: no limit).
    """
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be (N, H, W, 3) uint8 RGB, got {crops.shape} {crops.dtype}")
    if model_complexity not in BLAZEPOSE_VARIANTS.values():
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
    python = Path(python) if python is not None else find_mediapipe_python()
    worker = find_blazepose_worker()
    count, height, width = crops.shape[:3]
    with tempfile.TemporaryDirectory(prefix="lowres_hps_blazepose_") as tmp:
        inputs, outputs = Path(tmp) / "crops.npz", Path(tmp) / "out.npz"
        np.savez(inputs, crops=crops)
        command = [str(python), str(worker), str(inputs), str(outputs), "--model-complexity", str(model_complexity),
                   "--threads", str(threads or 0), "--min-detection-confidence", str(min_detection_confidence)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not outputs.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"the BlazePose worker failed (exit {done.returncode}): {' '.join(command)}\n{tail}")
        with np.load(outputs) as data:
            result = BlazePoseOutput(
                landmarks=data["landmarks"].astype(np.float32), world_landmarks=data["world_landmarks"].astype(np.float32),
                masks=data["masks"].astype(np.uint8), detected=data["detected"].astype(bool),
                ms_per_crop=float(data["ms_per_crop"]))
    expected = {"landmarks": (count, 33, 3), "world_landmarks": (count, 33, 3), "masks": (count, height, width),
                "detected": (count,)}
    for name, shape in expected.items():
        if getattr(result, name).shape != shape:
            raise RuntimeError(f"the BlazePose worker wrote {name} of shape {getattr(result, name).shape}, "
                               f"expected {shape}")
    return result


class BlazePoseEstimator:
    """BlazePose as a top-down :class:`~lowres_hps.models.estimator.PoseEstimator` on square person crops.

    ``estimator(crops (B, 3, 256, 256) uint8) -> (keypoints (B, 17, 2) crop px, scores (B, 17))`` in COCO-17
    order; scores are BlazePose's landmark visibility, 0 where its detector found no person (keypoints
    then sit at the crop centre). Each call runs one worker subprocess; ``stats`` counts crops, people
    found and the worker's processing time.

    Args:
        variant: ``"lite"``, ``"full"`` or ``"heavy"``.
        input_size: square crop side; BlazePose's landmark model itself takes 256 x 256 regions.
        scale_factor: the low-resolution protocol's context margin.
        threads: cores for the worker (None: all).
        min_detection_confidence: BlazePose's person-detector threshold.
    """

    convention = "coco17"

    def __init__(self, variant: str = "full", input_size: int = 256, scale_factor: float = 1.25,
                 threads: int | None = None, min_detection_confidence: float = 0.5) -> None:
        if variant not in BLAZEPOSE_VARIANTS:
            raise ValueError(f"variant must be one of {sorted(BLAZEPOSE_VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.input_size: tuple[int, int] = (int(input_size), int(input_size))
        self.scale_factor = float(scale_factor)
        self.threads = threads
        self.min_detection_confidence = float(min_detection_confidence)
        self.name = f"blazepose_{variant}"
        self.python = find_mediapipe_python()  # fail at construction, before any work, when the env is missing
        self.stats = {"crops": 0, "detected": 0, "worker_ms": 0.0}

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if crops.ndim != 4 or crops.shape[1] != 3 or tuple(crops.shape[2:]) != self.input_size:
            raise ValueError(f"crops must be (B, 3, {self.input_size[0]}, {self.input_size[1]}), got {tuple(crops.shape)}")
        if crops.dtype != torch.uint8:
            raise ValueError(f"crops must be uint8, got {crops.dtype}")
        images = crops.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        out = run_blazepose(images, BLAZEPOSE_VARIANTS[self.variant], self.threads, self.min_detection_confidence,
                            python=self.python)
        coco = blazepose_to_coco17(out.landmarks)
        keypoints, scores = coco[..., :2].copy(), coco[..., 2].copy()
        h, w = self.input_size
        keypoints[~out.detected] = ((w - 1) / 2, (h - 1) / 2)
        scores[~out.detected] = 0.0
        self.stats["crops"] += len(images)
        self.stats["detected"] += int(out.detected.sum())
        self.stats["worker_ms"] += out.ms_per_crop * len(images)
        return (torch.from_numpy(keypoints).to(crops.device), torch.from_numpy(scores).to(crops.device))

    def __repr__(self) -> str:
        return f"BlazePoseEstimator({self.name}, input_size={self.input_size})"
