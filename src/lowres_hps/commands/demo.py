"""`lowres-hps demo`: random Anny people in a street-like scene, seen through the low-resolution protocol.

Until a trained model ships, this is the most complete real job the foundation runs end to end:
body model -> camera -> image -> person boxes and COCO keypoints -> the protocol at the evaluation
resolutions. Everything it prints is measured from what it drew.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["render_scene", "main"]

SCENE_SIZE = (360, 640)  # (h, w), a small surveillance frame
SCENE_FOCAL = 700.0
CLOTHES = [(70, 90, 160), (160, 60, 50), (60, 120, 70), (200, 180, 80), (90, 90, 90), (150, 100, 170)]


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural street: sky gradient above a noisy ground plane below the horizon."""
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = np.array([150, 180, 210]) * (1 - y) + np.array([210, 215, 220]) * y
    ground = np.array([110, 105, 95]) + 12 * rng.standard_normal((height, width, 1))
    horizon = int(0.38 * height)
    image = np.where(np.arange(height)[:, None, None] < horizon, sky, ground)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_scene(count: int = 4, seed: int = 0, background: np.ndarray | None = None) -> dict:
    """Render ``count`` random people standing on a ground plane, farther ones smaller.

    Returns a dict with ``image`` (H, W, 3) uint8, and per person ``boxes`` (N, 4) xywh,
    ``keypoints2d`` (N, 17, 3) COCO-17 with visibility 2 (inside the image) or 0, and
    ``keypoints3d`` (N, 17, 3) camera coordinates in metres.
    """
    from lowres_hps.body import load_body_model, sample_random_pose
    from lowres_hps.geometry import body_to_opencv, perspective_project
    from lowres_hps.viz.mesh_preview import draw_meshes

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    body = load_body_model("anny", dtype=torch.float32)
    vectors = sample_random_pose(count, generator, scale=0.6, root_yaw_deg=60.0)
    with torch.no_grad():
        output = body.forward_vector(vectors)
        coco, _ = output.keypoints("coco17")
    height, width = SCENE_SIZE
    image = _background(height, width, rng) if background is None else background.copy()

    # Place the feet on a ground plane 1.6 m below the camera, at depths that span ~25-200 px people.
    depths = np.sort(rng.uniform(5.0, 30.0, size=count))[::-1]
    meshes, keypoints3d = [], []
    for i in range(count):
        vertices = body_to_opencv(output.vertices[i]).double()
        lowest = vertices[:, 1].max()  # y points down: the feet have the largest y
        x = rng.uniform(-0.35, 0.35) * depths[i] * width / SCENE_FOCAL
        offset = torch.tensor([x, 1.6 - float(lowest), float(depths[i])], dtype=torch.float64)
        meshes.append(((vertices + offset).numpy(), output.faces.numpy()))
        keypoints3d.append((body_to_opencv(coco[i]).double() + offset).numpy())

    principal = (width / 2.0, height * 0.38)
    colours = [CLOTHES[int(c)] for c in rng.integers(0, len(CLOTHES), size=count)]
    image, instance_map = draw_meshes(image, meshes, SCENE_FOCAL, principal, colours)

    keypoints3d = np.stack(keypoints3d)
    projected = perspective_project(
        torch.from_numpy(keypoints3d), torch.tensor(SCENE_FOCAL, dtype=torch.float64),
        torch.tensor(principal, dtype=torch.float64),
    ).numpy()
    inside = (projected[..., 0] >= 0) & (projected[..., 0] < width) & (projected[..., 1] >= 0) & (projected[..., 1] < height)
    keypoints2d = np.concatenate([projected, np.where(inside, 2.0, 0.0)[..., None]], axis=-1)
    boxes = []
    for vertices, _ in meshes:
        xy = perspective_project(
            torch.from_numpy(vertices), torch.tensor(SCENE_FOCAL, dtype=torch.float64),
            torch.tensor(principal, dtype=torch.float64),
        ).numpy()
        low, high = np.clip(xy.min(0), 0, [width, height]), np.clip(xy.max(0), 0, [width, height])
        boxes.append([low[0], low[1], high[0] - low[0], high[1] - low[1]])
    return {
        "image": image,
        "instance_map": instance_map,
        "boxes": np.asarray(boxes),
        "keypoints2d": keypoints2d,
        "keypoints3d": keypoints3d,
    }


def _protocol_sheet(scene: dict, heights: list[int | None]) -> tuple[np.ndarray, list[dict]]:
    """One row per person: the crop at its source resolution, then degraded to each height R."""
    from lowres_hps.geometry import apply_affine
    from lowres_hps.imaging.protocol import LowResProtocol, resolution_to_range_index
    from lowres_hps.viz.keypoints import contact_sheet, draw_keypoints

    protocol = LowResProtocol(input_size=(224, 224))
    tiles, rows = [], []
    for index, (box, keypoints) in enumerate(zip(scene["boxes"], scene["keypoints2d"])):
        for target in heights:
            crop = protocol(scene["image"], box, person_height=target)
            points = apply_affine(torch.from_numpy(keypoints[:, :2]), crop.affine).numpy()
            tile = crop.image.permute(1, 2, 0).numpy().copy()
            tile = draw_keypoints(tile, np.concatenate([points, keypoints[:, 2:]], axis=1), "coco17")
            tiles.append(tile)
            rows.append({
                "person": index,
                "requested_height_px": target,
                "effective_height_px": round(crop.person_height, 1),
                "range_index": int(resolution_to_range_index(crop.person_height)),
            })
    return contact_sheet(tiles, columns=len(heights)), rows


def main(args) -> int:
    from lowres_hps.imaging.io import write_image_rgb

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    scene = render_scene(count=args.count, seed=args.seed)
    write_image_rgb(out / "scene.png", scene["image"])
    sheet, rows = _protocol_sheet(scene, [None, 176, 96, 52, 32])
    write_image_rgb(out / "protocol.png", sheet)
    people = [
        {"bbox_xywh": [round(float(v), 1) for v in box], "height_px": round(float(box[3]), 1),
         "keypoints_in_image": int((kp[:, 2] > 0).sum())}
        for box, kp in zip(scene["boxes"], scene["keypoints2d"])
    ]
    summary = {
        "scene": str(out / "scene.png"),
        "protocol_sheet": str(out / "protocol.png"),
        "sheet_columns": ["source", "R=176", "R=96", "R=52", "R=32"],
        "people": people,
        "crops": rows,
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("scene", "protocol_sheet", "sheet_columns", "people", "seconds")}, indent=2))
    return 0
