"""Person detector speed on one 768 x 576 surveillance frame (vtest.avi frame 200), 2 threads.

    python benchmarks/bench_detector_speed.py [--repeats 5] [--threads 2] [--onnx] [--mili [MODEL]] [--no-multipose]

Rows: OpenCV HOG (2x upscale, predict's old default); MoveNet MultiPose in PyTorch float32 at x1 (768 x 576),
auto (1024 x 768) and at half resolution (384 x 288), network and decoder together; with ``--onnx`` the
MultiPose network (heads only, no decoder) in ONNX Runtime float32 and int8 (static QDQ, calibrated on 8 frames
of vtest frames 1-400) at 768 x 576. With ``--mili``: MILI's detector (:class:`~lowres_hps.apis.detector.MILIDetector`,
whole call: resize, network, decode, NMS) at x1 (its default on such a frame: long side 768) and x4/3
(1024 x 768) in PyTorch, ONNX Runtime float32 and int8
(``lowres-hps export --int8``: calibrated on 8 frames of vtest frames 1-300, reduced 1-4x; min/max ranges, FPN and heads float); MODEL is a MILI
model name, checkpoint or run folder (default: the untrained network, same architecture and speed).
Median of ``--repeats`` runs after one warm-up. Results (merged by row): ``benchmarks/results/detector_speed.json``.
Issue 12's bar is 15 frames/s for the detector on such a frame.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VTEST = ROOT.parent / "shared/data/opencv_samples/vtest.avi"
RESULTS = ROOT / "benchmarks/results/detector_speed.json"


def frames(indices) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(VTEST))
    out = []
    for index in indices:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        if not ok:
            sys.exit(f"cannot read frame {index} of {VTEST}")
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return out


def timed(fn, repeats: int) -> float:
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--mili", nargs="?", const="untrained", default=None)
    parser.add_argument("--no-multipose", action="store_true", help="skip the HOG and MultiPose rows")
    args = parser.parse_args()
    if not VTEST.is_file():
        sys.exit(f"{VTEST} not found (this benchmark reads ../shared/data in place)")
    import torch

    from lowres_hps.apis.detector import HOGPeopleDetector, MultiPoseDetector
    from lowres_hps.models.movenet import load_movenet_multipose

    torch.set_num_threads(args.threads)
    image = frames([199])[0]
    rows = {}
    if args.mili:
        rows.update(mili_rows(args.mili, image, args.threads, args.repeats))
    if not args.no_multipose:
        rows["hog x2"] = timed(lambda: HOGPeopleDetector()(image), args.repeats)
        model = load_movenet_multipose()
        for name, upscale in (("multipose x1 (768x576)", 1.0), ("multipose auto (1024x768)", None),
                              ("multipose x0.5 (384x288)", 0.5)):
            detector = MultiPoseDetector(upscale=upscale, model=model)
            rows[name] = timed(lambda: detector(image), args.repeats)
    if args.onnx and not args.no_multipose:
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class Heads(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                out = self.net.head_outputs(x)
                return tuple(out[k] for k in sorted(out))

        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = Path(tmp) / "multipose.onnx", Path(tmp) / "multipose_int8.onnx"
            torch.onnx.export(Heads(model), (x,), str(fp32), input_names=["images"], opset_version=17, dynamo=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            feed = {"images": x.numpy()}
            session = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
            rows["multipose x1 network, ORT float32"] = timed(lambda: session.run(None, feed), args.repeats)

            class Frames(CalibrationDataReader):
                def __init__(self):
                    self.items = iter([{"images": torch.from_numpy(f).permute(2, 0, 1)[None].float().numpy()}
                                       for f in frames(range(0, 400, 50))])

                def get_next(self):
                    return next(self.items, None)

            quantize_static(str(fp32), str(int8), Frames(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            session8 = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
            rows["multipose x1 network, ORT int8"] = timed(lambda: session8.run(None, feed), args.repeats)
            ref, got = session.run(None, feed), session8.run(None, feed)
            centre = sorted(["center", "box_scale", "box_offset", "kpt_heatmap", "kpt_regress", "kpt_offset"]).index("center")
            rows["int8 max |center logit difference|"] = float(np.abs(ref[centre] - got[centre]).max())
    for name, value in rows.items():
        if name.startswith("int8 max"):
            print(f"{name}: {value:.3f}")
        else:
            print(f"{name}: {1000 * value:.0f} ms ({1 / value:.1f} frames/s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()).get("seconds", {}) if RESULTS.is_file() else {}
    RESULTS.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "frame": "vtest.avi #200, 768x576",
                                   "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                                   "seconds": {**previous, **rows}}, indent=1))


def mili_rows(model_name: str, image: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """MILI's detector in PyTorch, ONNX Runtime float32 and int8, at x1 and auto (seconds per frame)."""
    from lowres_hps.apis.detector import MILIDetector
    from lowres_hps.apis.export import calibration_frames, export_onnx, quantize_onnx
    from lowres_hps.apis.registry import ModelCard, load_model, load_run
    from lowres_hps.models.mili import MILIConfig, build_mili_model

    if model_name == "untrained":
        network = build_mili_model(MILIConfig()).eval()
        card = ModelCard.from_config("mili_untrained", network.config)
    else:
        estimator = load_run(model_name) if Path(model_name).is_dir() else load_model(model_name)
        network, card = estimator.model, estimator.card or ModelCard.from_config("mili", estimator.model.config)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(network, Path(tmp) / "mili.onnx", card=card)
        calibration = calibration_frames(VTEST, num_frames=8, frames=(1, 300))
        int8 = quantize_onnx(fp32, Path(tmp) / "mili_int8.onnx", calibration)
        for runtime, source in (("PyTorch", network), ("ORT float32", str(fp32)), ("ORT int8", str(int8))):
            for scale, upscale in (("x1 (768x576)", 1.0), ("x4/3 (1024x768)", 1024 / 768)):
                options = {} if runtime == "PyTorch" else {"num_threads": threads}
                detector = MILIDetector(source, upscale=upscale, **options)
                rows[f"mili {scale}, {runtime}"] = timed(lambda: detector(image), repeats)
    return rows


if __name__ == "__main__":
    main()
