"""Crops per second of top-down 2D pose models on CPU, in PyTorch and in ONNX Runtime.

Times the whole estimator call (uint8 crops -> keypoints and scores: normalisation, network, decoding),
without the flip test unless ``--flip-test``, at each batch size; median (and best) over repeats after warm-up.
Prints one markdown row per model, runtime and batch size.

A model is a checkpoint (``.safetensors``), a training run folder, a ``Pose2DConfig`` YAML file, or
``BACKBONE@HxW`` with optional ``,key=value`` backbone parameters (untrained, e.g.
``mobilenet_v3_small@64x48,neck_channels=64``). ``--onnx-int8 ANN.json`` adds rows of the int8 export
(``lowres-hps export --int8``), calibrated on the people of that COCO keypoints json (not a test split).

    python benchmarks/bench_pose2d_speed.py [--models SPEC ...] [--threads 2] [--batch-sizes 1 32]
    python benchmarks/bench_pose2d_speed.py --models runs/kp2d/lrmove_l_128x96 \
        --onnx-int8 data/labels/coco_train/labels.json
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

DEFAULT_MODELS = [
    f"{backbone}@{size}{params}"
    for size in ("64x48", "128x96")
    for backbone, params in (
        ("resnet18", ""),  # neck 2-3 x 128 (the CPU default)
        ("resnet50", ",neck_channels=256"),  # SimpleBaseline-R50: 3 x 256 at 128 x 96
        ("mobilenet_v2", ""),  # last 1x1 expansion dropped, neck 2-3 x 64
        ("mobilenet_v3_small", ""),
        ("mobilenet_v3_small", ",drop_last_conv=false,neck_channels=128"),  # the classifier's full trunk
    )
]


def build_estimator(spec: str, flip_test: bool):
    """``(label, TopDownEstimator)`` of a checkpoint, a YAML config or a ``BACKBONE@HxW,k=v`` spec."""
    from lowres_hps.apis.registry import load_model
    from lowres_hps.core.config import load_config
    from lowres_hps.models.pose2d import Pose2DConfig, TopDownEstimator, build_pose_model

    if spec.endswith(".safetensors"):
        return Path(spec).stem, load_model(spec, flip_test=flip_test)
    if (Path(spec) / "config.yaml").is_file():
        from lowres_hps.apis.registry import load_run

        return Path(spec).name, load_run(spec, flip_test=flip_test)
    if spec.endswith((".yaml", ".yml")):
        cfg = load_config(spec, Pose2DConfig)
        label = Path(spec).stem
    else:
        head, *pairs = spec.split(",")
        backbone, _, size = head.partition("@")
        params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}
        h, w = (int(v) for v in (size or "64x48").split("x"))
        cfg = Pose2DConfig(backbone=backbone, backbone_params=params, input_size=(h, w))
        label = spec
    torch.manual_seed(0)
    return label, TopDownEstimator(build_pose_model(cfg, pretrained=False), flip_test=flip_test)


def time_calls(estimator, batch_size: int, repeats: int, warmup: int = 3) -> list[float]:
    """Seconds per call on random uint8 crops."""
    crops = torch.randint(0, 256, (batch_size, 3, *estimator.input_size), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        estimator(crops)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="checkpoints, YAML configs or specs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls at batch 1 (fewer at larger batches)")
    parser.add_argument("--runtimes", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"])
    parser.add_argument("--flip-test", action="store_true", help="time with the flip test (two passes per crop)")
    parser.add_argument("--onnx-int8", default=None, metavar="ANN.json",
                        help="also time the int8 ONNX export, calibrated on the people of this COCO keypoints json")
    args = parser.parse_args(argv)

    from lowres_hps.apis.export import OnnxEstimator, export_onnx, export_onnx_int8

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32 (int8: onnxruntime-int8 rows), "
          f"flip test {args.flip_test}")
    print("| model | input | params (M) | runtime | batch | median ms / batch | crops/s (median) | crops/s (best) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            label, estimator = build_estimator(spec, args.flip_test)
            params = sum(p.numel() for p in estimator.model.parameters()) / 1e6
            runners = {}
            if "torch" in args.runtimes:
                runners["torch"] = estimator
            if "onnxruntime" in args.runtimes:
                path = export_onnx(estimator, Path(tmp) / "model.onnx")
                runners["onnxruntime"] = OnnxEstimator(path, num_threads=args.threads, flip_test=args.flip_test)
            if args.onnx_int8:
                path = export_onnx_int8(estimator, Path(tmp) / "model_int8.onnx", args.onnx_int8)
                runners["onnxruntime-int8"] = OnnxEstimator(path, num_threads=args.threads, flip_test=args.flip_test)
            h, w = estimator.input_size
            for runtime, runner in runners.items():
                for batch_size in args.batch_sizes:
                    repeats = max(3, args.repeats // max(1, batch_size // 4))
                    times = time_calls(runner, batch_size, repeats)
                    median = statistics.median(times)
                    print(f"| {label} | {h}x{w} | {params:.2f} | {runtime} | {batch_size} | {1000 * median:.1f} | "
                          f"{batch_size / median:.0f} | {batch_size / min(times):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
