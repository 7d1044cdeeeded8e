"""Time the differentiable rasterizer on Anny meshes, float32, on CPU.

Prints one markdown table row per setting, median over repeats after warm-up:

- soft (SoftRas) silhouettes of 16 posed people at 64 x 64, forward + backward to the vertices;
- one hard (z-buffer) Lambert-shaded RGB render of a person at 224 x 224, forward only.

Both cull back faces (Anny is closed and outward-oriented, so silhouettes and visible faces do not change).

    python benchmarks/bench_render.py [--threads 2] [--repeats 10]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))


def posed_people(body, batch_size: int, image_size: int, height_fraction: float = 0.85):
    """Camera-frame vertices of random plausible people about ``height_fraction`` of the image tall,
    and the camera ``(focal, principal_point)``."""
    from lowres_hps.body import sample_random_pose
    from lowres_hps.geometry import body_to_opencv

    vector = sample_random_pose(batch_size, torch.Generator().manual_seed(0), body.pose_spec)
    with torch.no_grad():
        output = body.forward_vector(vector)
    depth = 3.0
    focal = height_fraction * image_size * depth / 1.75  # a 1.75 m person spans height_fraction of the image
    vertices = body_to_opencv(output.vertices) + torch.tensor([0.0, 0.0, depth])
    principal_point = torch.full((2,), (image_size - 1) / 2)
    return vertices, output.faces, focal, principal_point


def time_call(function, repeats: int, warmup: int = 3) -> list[float]:
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        function()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    from lowres_hps.body import load_body_model
    from lowres_hps.render import render_rgb, render_silhouette

    torch.set_num_threads(args.threads)
    body = load_body_model("anny", dtype=torch.float32)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes share the cores)")
    print("| benchmark | threads | batch | image | median ms | min ms | target ms |")
    print("|---|---|---|---|---|---|---|")

    vertices, faces, focal, principal_point = posed_people(body, 16, 64)
    vertices.requires_grad_(True)
    # 0.1 px^2 is the default (pytorch3d's sigma at 64 px); 0.01 px^2 is SoftRas's default at 64 px.
    for sigma in (0.1, 0.01):

        def soft_silhouettes():
            silhouette = render_silhouette(
                vertices, faces, focal, principal_point, (64, 64), sigma=sigma, cull_backfaces=True
            )
            silhouette.mean().backward()

        times = time_call(soft_silhouettes, args.repeats)
        print(
            f"| soft silhouette (sigma {sigma} px^2) fwd + bwd | {args.threads} | 16 | 64 x 64 | "
            f"{statistics.median(times):.1f} | {min(times):.1f} | 100 |"
        )

    vertices, faces, focal, principal_point = posed_people(body, 1, 224)

    def hard_rgb():
        with torch.no_grad():
            render_rgb(vertices, faces, focal, principal_point, (224, 224), cull_backfaces=True)

    times = time_call(hard_rgb, args.repeats)
    print(
        f"| hard Lambert RGB, fwd | {args.threads} | 1 | 224 x 224 | "
        f"{statistics.median(times):.1f} | {min(times):.1f} | 50 |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
