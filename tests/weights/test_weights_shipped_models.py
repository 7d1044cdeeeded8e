"""The shipped models give the predictions they gave when they were registered.

``shipped_models_reference.npz`` was computed by this file (``python tests/weights/test_weights_shipped_models.py``)
at commit f3f005d, before the restructuring of issue 9; a refactoring must not change what a user gets.
The input is a synthetic image drawn with arithmetic only (no transcendental functions, whose last bits
vary between CPUs), seen through the public path: ``load_model`` -> ``Predictor`` with two person boxes,
at the source resolution and degraded to 32 px.

Tolerances follow the magnitudes (float32 networks, any x86-64 CPU): raw outputs to 1e-4 of their range,
keypoints to 1e-3 px, 3D values to 1e-4 of their size. A keypoint is compared only where its heatmap has a
clear maximum (recorded at reference time), since a near-tie may flip between CPUs by one heatmap pixel.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).with_name("shipped_models_reference.npz")
MODELS_2D = ("cal_r18_64x48", "cal_r18_128x96", "cal_mnv3s_64x48")
# The MoveNet students were registered after the restructuring; their reference is pinned at registration.
STUDENTS_REFERENCE = Path(__file__).with_name("students_reference.npz")
STUDENTS_2D = ("lrmove_l_128", "lrmove_l_128x96")
STUDENTS_3D = ("rsc_move_c128", "rsc_move_c128_ft", "rsc_move_c128_ft2", "rsc_move_c128_ft3",
               "rsc_move_c128_ft4", "rsc_move_c128_ft5", "rsc_move_c128_eft")  # 3D models on the 2D students' trunk, pinned at registration too
MODEL_3D = "rsc_r18_c64"
# MILI detectors, pinned at registration in their own file (python tests/weights/test_weights_shipped_models.py --mili).
MILI_REFERENCE = Path(__file__).with_name("mili_reference.npz")
MILI_MODELS = ("mili_multipose",)
HEIGHTS = {"source": None, "r32": 32.0}
BOXES = np.array([[120.0, 30.0, 70.0, 190.0], [30.0, 150.0, 26.0, 70.0]])
MIN_MARGIN = 1e-3  # relative gap between the two highest heatmap values of a "clear" maximum


def _capsule(xx, yy, a, b, radius):
    """Soft (1 inside, 0 outside, linear over 1.5 px) coverage of the segment a-b thickened by ``radius``."""
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    distance = np.sqrt((xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2)
    return np.clip((radius - distance) / 1.5 + 0.5, 0.0, 1.0)


def _person(xx, yy, x, y, h):
    """Coverage and colour index of a stick person whose box is ``x, y`` (top left), height ``h``."""
    def p(u, v):  # box-relative (u across, v down, both in units of h) -> pixels
        return x + u * h, y + v * h

    parts = [  # (start, end, radius / h, colour index)
        (p(0.18, 0.07), p(0.18, 0.08), 0.06, 0),  # head
        (p(0.18, 0.16), p(0.18, 0.50), 0.08, 1),  # torso
        (p(0.10, 0.18), p(0.02, 0.48), 0.03, 2), (p(0.26, 0.18), p(0.34, 0.46), 0.03, 2),  # arms
        (p(0.14, 0.50), p(0.10, 0.97), 0.04, 3), (p(0.22, 0.50), p(0.27, 0.97), 0.04, 3),  # legs
    ]
    return [(_capsule(xx, yy, a, b, r * h), c) for a, b, r, c in parts]


def test_image() -> np.ndarray:
    """(240, 320, 3) uint8: a gradient background with two stick people (190 px and 70 px tall)."""
    height, width = 240, 320
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([60 + 100 * yy / height, 90 + 60 * xx / width, 120 - 40 * yy / height], axis=-1)
    colours = np.array([[225, 190, 160], [40, 70, 160], [210, 170, 140], [50, 50, 60]], dtype=np.float64)
    for x, y, w, h in BOXES:
        for coverage, colour in _person(xx, yy, x, y, h):
            image = image * (1 - coverage[..., None]) + colours[colour] * coverage[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


test_image.__test__ = False  # a helper, not a test


def _clear_maxima(heatmaps: torch.Tensor) -> np.ndarray:
    """(B, K) bool: the highest heatmap value beats the second by at least MIN_MARGIN of the range."""
    flat = heatmaps.flatten(2).double()
    top = flat.topk(2, dim=-1).values
    spread = (flat.amax(-1) - flat.amin(-1)).clamp(min=1e-12)
    return ((top[..., 0] - top[..., 1]) / spread > MIN_MARGIN).numpy()


def compute_2d(name: str) -> dict[str, np.ndarray]:
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model

    estimator = load_model(name)
    image = test_image()
    out = {}
    for tag, height in HEIGHTS.items():
        predictor = Predictor(estimator, person_height=height)
        people = predictor.predict_image(image, BOXES)
        crops = torch.stack([predictor.crop(image, box).image for box in BOXES])
        heatmaps, offsets = estimator.outputs(crops)
        out[f"{tag}/keypoints"] = np.stack([p.keypoints for p in people])
        out[f"{tag}/clear"] = _clear_maxima(heatmaps)
        out[f"{tag}/heatmap_max"] = heatmaps.flatten(2).amax(-1).numpy()
        out[f"{tag}/heatmap_mean"] = heatmaps.flatten(2).mean(-1).numpy()
        if offsets is not None:
            out[f"{tag}/offsets_mean"] = offsets.flatten(3).mean(-1).numpy()
    return out


def compute_3d(name: str) -> dict[str, np.ndarray]:
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model

    estimator = load_model(name)
    image = test_image()
    out = {}
    for tag, height in HEIGHTS.items():
        people = Predictor(estimator, person_height=height).predict_image(image, BOXES)
        out[f"{tag}/keypoints"] = np.stack([p.keypoints for p in people])
        out[f"{tag}/keypoints_3d"] = np.stack([p.keypoints_3d for p in people])
        for key in ("pose_vector", "camera", "translation"):
            out[f"{tag}/{key}"] = np.array([p.body[key] for p in people])
        out[f"{tag}/range_index"] = np.array([p.body["range_index"] for p in people])
    return out


def compute_mili(name: str) -> dict[str, np.ndarray]:
    """A MILI model's dense detector heads (summaries of the raw outputs) and its strongest centre peaks, on the
    test image at its size and halved, through MILIDetector's resize and padding."""
    import cv2

    from lowres_hps.apis.detector import MILIDetector
    from lowres_hps.apis.registry import load_model
    from lowres_hps.imaging.frame import resize_and_pad

    detector = MILIDetector(load_model(name))
    out = {}
    for tag, image in (("source", test_image()), ("half", cv2.resize(test_image(), (160, 120), interpolation=cv2.INTER_AREA))):
        work, _ = resize_and_pad(image, detector.factor(*image.shape[:2]))
        center, box_scale, box_offset = (v.double().numpy() for v in detector.heads(work))
        out[f"{tag}/center_max"] = center.max(axis=(2, 3))
        out[f"{tag}/center_mean"] = center.mean(axis=(2, 3))
        out[f"{tag}/box_scale_mean"] = box_scale.mean(axis=(2, 3))
        out[f"{tag}/box_offset_mean"] = box_offset.mean(axis=(2, 3))
        out[f"{tag}/top_scores"] = np.sort(1 / (1 + np.exp(-center.reshape(-1))))[-5:]
    return out


def _reference(name: str) -> dict[str, np.ndarray]:
    if name in MILI_MODELS:
        source = MILI_REFERENCE
    else:
        source = STUDENTS_REFERENCE if name in STUDENTS_2D + STUDENTS_3D else REFERENCE
    with np.load(source) as data:
        return {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith(name + ":")}


def _installed(name: str) -> bool:
    from lowres_hps.apis.registry import resolve_model_path

    try:
        resolve_model_path(name)
    except (FileNotFoundError, KeyError):
        return False
    return True


def _close(got: np.ndarray, expected: np.ndarray, relative: float, what: str) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=relative * scale, err_msg=what)


def _pinned(name: str, compute) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(expected, got)`` arrays of an installed shipped model (skips when it is not installed)."""
    if not _installed(name):
        pytest.skip(f"{name} is not installed")
    expected, got = _reference(name), compute(name)
    assert set(got) == set(expected)
    return expected, got


@pytest.mark.parametrize("name", MODELS_2D + STUDENTS_2D)
def test_shipped_2d_model_predictions_are_pinned(name):
    expected, got = _pinned(name, compute_2d)
    for tag in HEIGHTS:
        clear = expected[f"{tag}/clear"]
        assert clear.mean() > 0.5, "the test image should give most keypoints a clear maximum"
        keypoints, reference = got[f"{tag}/keypoints"], expected[f"{tag}/keypoints"]
        np.testing.assert_allclose(keypoints[clear][:, :2], reference[clear][:, :2], rtol=0, atol=1e-3,
                                   err_msg=f"{name} {tag} keypoints (px)")
        np.testing.assert_allclose(keypoints[..., 2], reference[..., 2], rtol=0, atol=1e-4,
                                   err_msg=f"{name} {tag} scores")
        for key in ("heatmap_max", "heatmap_mean", "offsets_mean"):
            if f"{tag}/{key}" in expected:
                _close(got[f"{tag}/{key}"], expected[f"{tag}/{key}"], 1e-4, f"{name} {tag} {key}")


@pytest.mark.parametrize("name", (MODEL_3D,) + STUDENTS_3D)
def test_shipped_3d_model_predictions_are_pinned(name):
    expected, got = _pinned(name, compute_3d)
    for tag in HEIGHTS:
        np.testing.assert_array_equal(got[f"{tag}/range_index"], expected[f"{tag}/range_index"])
        # 2e-3 px: without a mesh to return, Anny's keypoint-only forward runs (equal to the full one up to float32
        # rounding, which the crop projection magnifies: measured 1.4-1.7e-3 px on one keypoint per model).
        np.testing.assert_allclose(got[f"{tag}/keypoints"], expected[f"{tag}/keypoints"], rtol=0, atol=2e-3,
                                   err_msg=f"{name} {tag} projected keypoints (px)")
        for key in ("keypoints_3d", "pose_vector", "camera", "translation"):
            _close(got[f"{tag}/{key}"], expected[f"{tag}/{key}"], 1e-4, f"{name} {tag} {key}")
    # The two heights must run the network at different resolution ranges, or the pin says little.
    assert not np.array_equal(expected["source/range_index"], expected["r32/range_index"])


@pytest.mark.parametrize("name", MILI_MODELS)
def test_shipped_mili_detector_outputs_are_pinned(name):
    expected, got = _pinned(name, compute_mili)
    for key, value in expected.items():
        _close(got[key], value, 1e-4, f"{name} {key}")


if __name__ == "__main__" and sys.argv[1:] == ["--mili"]:  # pin newly registered MILI models
    arrays = {f"{model}:{k}": v.astype(np.float32) for model in MILI_MODELS for k, v in compute_mili(model).items()}
    np.savez_compressed(MILI_REFERENCE, **arrays)
    print(f"wrote {MILI_REFERENCE} ({MILI_REFERENCE.stat().st_size} bytes)", file=sys.stderr)
elif __name__ == "__main__" and sys.argv[1:] == ["--students"]:  # pin newly registered students, keep the others'
    with np.load(STUDENTS_REFERENCE) as data:
        arrays = {k: data[k] for k in data.files}
    pinned = {k.split(":", 1)[0] for k in arrays}
    new = [(model, compute_2d) for model in STUDENTS_2D if model not in pinned]
    new += [(model, compute_3d) for model in STUDENTS_3D if model not in pinned]
    for model, compute in new:
        print(f"pinning {model}", file=sys.stderr)
        arrays.update({f"{model}:{k}": v for k, v in compute(model).items()})
    arrays = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
    np.savez_compressed(STUDENTS_REFERENCE, **arrays)
    print(f"wrote {STUDENTS_REFERENCE} ({STUDENTS_REFERENCE.stat().st_size} bytes)", file=sys.stderr)
elif __name__ == "__main__":  # regenerate the reference (only with the code the models were registered with)
    arrays = {}
    for model in MODELS_2D:
        arrays.update({f"{model}:{k}": v for k, v in compute_2d(model).items()})
    arrays.update({f"{MODEL_3D}:{k}": v for k, v in compute_3d(MODEL_3D).items()})
    arrays = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes, {len(arrays)} arrays)", file=sys.stderr)
