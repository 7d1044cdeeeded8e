"""``lowres-hps export``: a registered model or checkpoint of any kind -> ONNX (checked, then compared with
PyTorch); 2D models also as int8 (static quantization calibrated on real people, compared with float32), and
MILI detectors (calibrated on whole frames of a video or image folder)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from lowres_hps.apis.export import (
    NEEDS_CALIBRATION,
    calibration_crops,
    calibration_frames,
    compare_onnx,
    export_onnx,
    quantize_onnx,
    verify_onnx,
)
from lowres_hps.apis.registry import load_model
from lowres_hps.commands import parse_frame_range
from lowres_hps.models.kinds import get_kind

__all__ = ["main"]

# int8 exports whose heatmaps correlate less with the float32 ones than this are reported as failed.
MIN_INT8_HEATMAP_CORRELATION = 0.95
# int8 detector exports that find fewer of the float32 detections (score >= 0.3) than this are reported as failed.
MIN_INT8_DETECTIONS_KEPT = 0.9


def main(args: argparse.Namespace) -> int:
    if args.format != "onnx":
        raise ValueError(f"unsupported format {args.format!r}; only 'onnx'")
    batch: Any = args.batch
    if batch != "dynamic":
        try:
            batch = int(batch)
        except ValueError:
            raise ValueError(f"--batch must be 'dynamic' or an integer, got {args.batch!r}") from None
    if args.int8 and args.calibration is None:
        raise ValueError(NEEDS_CALIBRATION)
    if args.calibration is not None and not args.int8:
        raise ValueError("--calibration is for --int8 exports")
    estimator = load_model(args.model)
    what = get_kind(estimator.card.task).export(estimator.model).summary
    if args.int8:
        return _export_int8(estimator, args, batch, what)
    out = export_onnx(estimator, args.out, batch=batch, opset=args.opset)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MiB, opset {args.opset}, batch {batch}, {what})")
    if args.verify:
        diff = verify_onnx(estimator, out, batch)
        print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e}")
        if not diff <= 1e-3:
            print("warning: outputs differ by more than 1e-3")
            return 1
    return 0


def _float32_then_int8(estimator, args: argparse.Namespace, batch: Any, what: str, calibration,
                       tmp: Path) -> tuple[Path, Path]:
    """The float32 export (into ``tmp``, to compare with) and the int8 file ``--out``; says what was written."""
    fp32 = export_onnx(estimator, tmp / "float32.onnx", batch=batch, opset=args.opset)
    out = quantize_onnx(fp32, args.out, calibration, method=args.calibration_method)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MiB, int8, opset {args.opset}, batch {batch}, {what})")
    return fp32, out


def _export_int8(estimator, args: argparse.Namespace, batch: Any, what: str) -> int:
    if estimator.card.task == "mili":
        return _export_detector_int8(estimator, args, batch, what)
    if estimator.card.task != "kp2d":
        raise ValueError(f"model {estimator.card.name!r}: --int8 is for 2D keypoint models (kp2d) and MILI "
                         f"detectors (mili), not {estimator.card.task}")
    calibration = calibration_crops(args.calibration, tuple(estimator.input_size), estimator.scale_factor,
                                    num_crops=args.calibration_crops or 256, image_root=args.calibration_images)
    src = calibration.source
    print(f"calibration: {src['crops']} crops of {src['people']} people of {args.calibration} "
          f"({src['degraded']} degraded to {src['person_heights_px'][0]:g}-{src['person_heights_px'][1]:g} px), "
          f"{args.calibration_method or 'percentile'}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, out = _float32_then_int8(estimator, args, batch, what, calibration, Path(tmp))
        if not args.verify:
            return 0
        diff = compare_onnx(fp32, out, calibration.crops)
    print(f"int8 vs float32 on the calibration crops: keypoints scored >= 0.3 moved median {diff['median_px']:.2f} "
          f"px, 90th percentile {diff['p90_px']:.2f} px, over 4 px {100 * diff['over_4px']:.1f}%; "
          f"heatmap correlation {diff['heatmap_correlation']:.4f}")
    if not diff["heatmap_correlation"] >= MIN_INT8_HEATMAP_CORRELATION:
        print(f"warning: int8 heatmaps correlate below {MIN_INT8_HEATMAP_CORRELATION} with the float32 ones")
        return 1
    return 0


def _export_detector_int8(estimator, args: argparse.Namespace, batch: Any, what: str) -> int:
    """A MILI detector's int8 export, calibrated on whole frames of a video or image folder (``--calibration``),
    then compared with float32 on them: the detections' boxes and scores."""
    import numpy as np

    from lowres_hps.apis.detector import MILIDetector

    frames = parse_frame_range(args.calibration_frames_range, "--calibration-frames-range")
    calibration = calibration_frames(args.calibration, num_frames=args.calibration_crops or 8, frames=frames)
    print(f"calibration: {len(calibration.crops)} frames of {args.calibration} at "
          f"{calibration.crops.shape[3]}x{calibration.crops.shape[2]}, {args.calibration_method or 'minmax'}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, out = _float32_then_int8(estimator, args, batch, what, calibration, Path(tmp))
        if not args.verify:
            return 0
        # People the float32 detector is sure of (>= 0.3), looked for among int8's boxes down to 0.1: a box whose score
        # only moves across a threshold is not a lost person.
        reference, candidate = MILIDetector(fp32, upscale=1.0, min_score=0.3), MILIDetector(out, upscale=1.0, min_score=0.1)
        found, kept, shifts = 0, 0, []
        for image in calibration.crops.transpose(0, 2, 3, 1):
            boxes, _ = reference(image)
            others, _ = candidate(image)
            found += len(boxes)
            for box in boxes:
                if len(others) == 0:
                    continue
                centre = box[:2] + box[2:] / 2
                distance = np.linalg.norm(others[:, :2] + others[:, 2:] / 2 - centre, axis=1) / max(box[3], 1.0)
                if distance.min() < 0.25:
                    kept += 1
                    shifts.append(distance.min())
    share = kept / max(found, 1)
    if not found:
        print("int8 vs float32: the float32 detector finds nobody on the calibration frames; nothing to compare")
        return 0
    print(f"int8 vs float32 on the calibration frames: {kept} of {found} people (float32 score >= 0.3) found again "
          f"(centre within a quarter of the height), median centre shift "
          f"{100 * float(np.median(shifts)) if shifts else 0.0:.1f}% of the height")
    if share < MIN_INT8_DETECTIONS_KEPT:
        print(f"warning: int8 finds fewer than {100 * MIN_INT8_DETECTIONS_KEPT:.0f}% of the float32 detections")
        return 1
    return 0
