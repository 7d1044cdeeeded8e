"""``lowres-hps body info | warmup | mesh``."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lowres_hps.body import load_body_model, sample_random_pose
from lowres_hps.body.keypoints import CONVENTIONS

__all__ = ["main", "info", "warmup", "mesh", "MESH_FORMATS"]

MESH_FORMATS = (".obj", ".ply", ".glb")


def _load(args: argparse.Namespace):
    return load_body_model(args.model, model_path=getattr(args, "model_path", None))


def info(args: argparse.Namespace) -> int:
    """Print the model's sizes, pose vector layout and keypoint conventions as JSON."""
    body = _load(args)
    spec = body.pose_spec
    coverage = {name: int(body.keypoint_coverage(name).sum()) for name in sorted(CONVENTIONS)}
    report = {
        "model": body.name,
        "num_vertices": body.num_vertices,
        "num_faces": body.num_faces,
        "num_joints": body.num_joints,
        "native_convention": body.native_convention.name,
        "pose_vector_size": spec.vector_size,
        "rotation_joints": list(spec.joint_names),
        "rotation_format": "6d",
        "shape_size": spec.shape_size,
        "shape_names": list(spec.shape_names),
        "keypoint_sets": list(body.keypoint_set_names),
        # convention -> number of its joints this model provides (the others are marked missing)
        "keypoint_coverage": {n: f"{k}/{len(CONVENTIONS[n])}" for n, k in coverage.items()},
    }
    print(json.dumps(report, indent=2))
    return 0


def warmup(args: argparse.Namespace) -> int:
    """Build (or load) Anny's cache in ``$ANNY_CACHE_DIR`` and say where and how long it took."""
    from anny.paths import get_anny_cache_path

    cache = Path(get_anny_cache_path())
    before = {p for p in cache.rglob("*") if p.is_file()} if cache.is_dir() else set()
    start = time.perf_counter()
    load_body_model("anny")
    seconds = time.perf_counter() - start
    files = [p for p in cache.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    action = "built" if set(files) - before else "loaded (already built)"
    print(f"anny cache {action} in {seconds:.1f} s: {cache} ({size_mb:.0f} MB)")
    return 0


def mesh(args: argparse.Namespace) -> int:
    """Write the rest mesh, or a random plausible one (``--random``, ``--seed``), to OBJ/PLY/GLB."""
    import trimesh

    out = Path(args.out)
    if out.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"--out must end with one of {', '.join(MESH_FORMATS)}, got {out.name!r}")
    body = _load(args)
    spec = body.pose_spec
    if args.random:
        vector = sample_random_pose(1, torch.Generator().manual_seed(args.seed), spec, dtype=body.dtype, device=body.device)
    else:
        vector = spec.rest_vector(1, body.dtype, body.device)
    with torch.no_grad():
        output = body.forward_vector(vector)
    out.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(output.vertices[0].cpu().numpy(), output.faces.cpu().numpy(), process=False).export(out)
    kind = f"random (seed {args.seed})" if args.random else "rest"
    print(f"wrote {body.name} {kind} mesh, {body.num_vertices} vertices, {body.num_faces} faces: {out}")
    return 0


_ACTIONS = {"info": info, "warmup": warmup, "mesh": mesh}


def main(args: argparse.Namespace) -> int:
    return _ACTIONS[args.action](args)
