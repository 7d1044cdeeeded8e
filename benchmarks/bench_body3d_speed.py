"""Crops per second of 3D body networks on CPU, in PyTorch and in ONNX Runtime, and the body model after them.

Times the network alone (uint8 crops + range index -> pose vector, camera, features; normalisation inside),
at each batch size; median (and best) over repeats after warm-up. The body model columns time what
:class:`~lowres_hps.models.body3d.Body3DEstimator` runs after the network, once per batch size on the
network's own outputs: the body model forward, its keypoints and their projection into the crop ("keypoints"),
and the same plus the posed vertices in the crop camera ("with vertices"). Anny regresses its COCO keypoints
from the vertices, so it poses the mesh in both; the second column adds only the vertex output.
Prints one markdown row per model, runtime and batch size.

A model is a checkpoint (``.safetensors``), a YAML file (a training config's ``task_args.model`` or a
``Body3DConfig``), or ``BACKBONE@CANVAS`` with optional ``,key=value`` config fields (untrained, e.g.
``resnet18@128`` or ``resnet18@128,resolution_aware=false``).

    python benchmarks/bench_body3d_speed.py [--models SPEC ...] [--threads 2] [--batch-sizes 1 32]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))

DEFAULT_MODELS = [
    "resnet18@64",  # the shipped default (configs/hps3d/rsc_r18_c64.yaml)
    "resnet18@128",  # configs/hps3d/rsc_r18_c128.yaml
    "resnet18@128,resolution_aware=false",  # the baseline: what the per-range residual weights cost
    "resnet18@224",
    "resnet50@224",  # the paper's network
]


def build_network(spec: str):
    """``(label, Body3DNet, card or None)`` of a checkpoint, a YAML config or a ``BACKBONE@CANVAS,k=v`` spec."""
    from lowres_hps.apis.registry import read_card
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    if spec.endswith(".safetensors"):
        import safetensors.torch

        card = read_card(spec)
        network = build_body3d_model(card.model_config("hps3d"), pretrained=False)
        network.load_state_dict(safetensors.torch.load_file(spec), strict=True)
        return Path(spec).stem, network.eval(), card
    if spec.endswith((".yaml", ".yml")):
        data = yaml.safe_load(Path(spec).read_text())
        cfg = Body3DConfig.from_dict(data.get("task_args", {}).get("model", data) if "task" in data else data)
        label = Path(spec).stem
    else:
        head, *pairs = spec.split(",")
        backbone, _, canvas = head.partition("@")
        fields = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in pairs)}
        cfg = Body3DConfig.from_dict({"backbone": backbone, "canvas": int(canvas or 128), **fields})
        label = spec
    torch.manual_seed(0)
    return label, build_body3d_model(cfg, pretrained=False).eval(), None


def random_inputs(cfg, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (batch_size, 3, cfg.canvas, cfg.canvas), dtype=torch.uint8, generator=generator)
    ranges = torch.randint(0, cfg.num_ranges, (batch_size,), generator=generator)
    return crops, ranges


def time_calls(run, repeats: int, warmup: int = 3) -> list[float]:
    """Seconds per call of ``run()``."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        run()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def body_after_network(body, cfg, pose_vector: torch.Tensor, camera: torch.Tensor, with_vertices: bool):
    """What :meth:`Body3DEstimator.predict_bodies` does after the network."""
    from lowres_hps.models.body3d import project_to_crop

    out = body.forward_vector(pose_vector.to(body.dtype))
    keypoints, _ = out.keypoints(cfg.convention)
    pixels, translation = project_to_crop(keypoints, camera.to(keypoints.dtype), cfg.canvas, cfg.crop_focal)
    vertices = out.vertices + translation[:, None] if with_vertices else None
    return pixels, vertices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="checkpoints, YAML configs or specs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls at batch 1 (fewer at larger batches)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before the timed ones")
    parser.add_argument("--runtimes", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"])
    args = parser.parse_args(argv)

    from lowres_hps.apis.export import OnnxBody3DNet, export_onnx
    from lowres_hps.body import load_body_model

    torch.set_num_threads(args.threads)
    bodies: dict[str, object] = {}
    print(f"torch {torch.__version__}, {args.threads} threads, float32; network only, body model columns separate")
    print("| model | canvas | params (M) | runtime | batch | median ms / batch | crops/s (median) | crops/s (best) "
          "| body: keypoints ms / batch | body: with vertices ms / batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for spec in args.models:
            label, network, card = build_network(spec)
            cfg = network.config
            params = sum(p.numel() for p in network.parameters()) / 1e6
            runners = {}
            if "torch" in args.runtimes:
                runners["torch"] = network
            if "onnxruntime" in args.runtimes:
                path = export_onnx(network, Path(tmp) / "model.onnx", card=card)
                runners["onnxruntime"] = OnnxBody3DNet(path, num_threads=args.threads)
            if cfg.body_model not in bodies:
                bodies[cfg.body_model] = load_body_model(cfg.body_model)
            body = bodies[cfg.body_model]
            body_ms: dict[int, tuple[float, float]] = {}
            for runtime, runner in runners.items():
                for batch_size in args.batch_sizes:
                    crops, ranges = random_inputs(cfg, batch_size)
                    repeats = max(min(3, args.repeats), args.repeats // max(1, batch_size // 4))
                    times = time_calls(lambda: runner(crops, ranges), repeats, args.warmup)  # noqa: B023
                    if batch_size not in body_ms:
                        out = network(crops, ranges)
                        pose, camera = out["pose_vector"], out["camera"]
                        body_ms[batch_size] = tuple(1000 * statistics.median(time_calls(
                            lambda v=v: body_after_network(body, cfg, pose, camera, v), repeats,  # noqa: B023
                            args.warmup)) for v in (False, True))
                    median = statistics.median(times)
                    keypoints_ms, vertices_ms = body_ms[batch_size]
                    print(f"| {label} | {cfg.canvas} | {params:.2f} | {runtime} | {batch_size} | {1000 * median:.1f} | "
                          f"{batch_size / median:.0f} | {batch_size / min(times):.0f} | {keypoints_ms:.1f} | "
                          f"{vertices_ms:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
