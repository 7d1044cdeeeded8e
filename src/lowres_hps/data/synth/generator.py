"""SynthLR: rendered people with exact 2D, 3D, mask and body-model ground truth.

Two layouts:

* ``crops``: one person per 224 x 224 image, centred and scaled like a detector crop (the
  aspect-fixed person box enlarged by 1.25 fills the image), the high-resolution source that the
  low-resolution protocol degrades.
* ``scenes``: 832 x 512 street-like images with 2-12 people standing on a ground plane at varied
  depths, who occlude each other.

:meth:`SynthGenerator.sequence` renders a static-camera video of a scene: its people walk across the ground plane
at constant velocities (each keeps one pose and glides: the limbs do not swing), with known identities
(``SynthPerson.person_id``), for tracking and adaptation benchmarks.

Every sample is a pure function of ``(seed, index)``, so output is byte-identical for a seed
whatever the number of worker processes.

Keypoint visibility (COCO semantics: 2 visible, 1 labelled but occluded, 0 outside the image):
a keypoint is visible when the front-most surface at its pixel belongs to the same person, to a
body part adjacent to that keypoint (e.g. forearm or hand for a wrist), and lies within a small
depth tolerance of the keypoint (5 cm for face points on the surface, 15 cm for joints inside the
body); a pixel that shows background counts as visible. Anything else (another person, an
occluder, another part of the same body, or the back of the head for a face point) is occluded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from lowres_hps.body import load_body_model
from lowres_hps.body.keypoints import COCO17
from lowres_hps.body.parts import BODY_PARTS, face_part_labels
from lowres_hps.data.synth.appearance import AppearanceSampler
from lowres_hps.data.synth.poses import PoseSampler
from lowres_hps.geometry.rotations import body_to_opencv_rotation, rotation_about_axis
from lowres_hps.render.shading import face_normals, lambert_shading

__all__ = ["SynthConfig", "SynthPerson", "SynthSample", "SynthGenerator", "KEYPOINT_PARTS"]

# Body parts whose surface may show each COCO keypoint.
KEYPOINT_PARTS: dict[str, tuple[str, ...]] = {
    "nose": ("head",), "left_eye": ("head",), "right_eye": ("head",),
    "left_ear": ("head",), "right_ear": ("head",),
}
for _side in ("left", "right"):
    KEYPOINT_PARTS.update({
        f"{_side}_shoulder": ("torso", f"{_side}_upper_arm", "head"),
        f"{_side}_elbow": (f"{_side}_upper_arm", f"{_side}_forearm"),
        f"{_side}_wrist": (f"{_side}_forearm", f"{_side}_hand"),
        f"{_side}_hip": ("torso", f"{_side}_thigh"),
        f"{_side}_knee": (f"{_side}_thigh", f"{_side}_calf"),
        f"{_side}_ankle": (f"{_side}_calf", f"{_side}_foot"),
    })
_FACE_POINTS = {"nose", "left_eye", "right_eye", "left_ear", "right_ear"}
OCCLUDER_ID = -2  # instance id of occluder pixels in the instance map


@dataclass(frozen=True)
class SynthConfig:
    """Generation settings. Distances in metres, angles in degrees, sizes (h, w) in pixels."""

    layout: str = "crops"
    crop_size: int = 224
    box_scale: float = 1.25
    scene_size: tuple[int, int] = (512, 832)
    people_per_scene: tuple[int, int] = (2, 12)
    crop_distance: tuple[float, float] = (3.0, 15.0)
    crop_elevation: tuple[float, float] = (-10.0, 35.0)
    scene_focal: tuple[float, float] = (600.0, 1200.0)
    scene_camera_height: tuple[float, float] = (1.5, 6.0)
    scene_aim_distance: tuple[float, float] = (8.0, 16.0)
    scene_depth: tuple[float, float] = (4.0, 25.0)
    occluder_probability: float = 0.3
    backgrounds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in ("crops", "scenes"):
            raise ValueError(f"layout must be 'crops' or 'scenes', got {self.layout!r}")


@dataclass
class SynthPerson:
    """Ground truth of one rendered person (camera = OpenCV axes, metres, pixels)."""

    keypoints2d: np.ndarray       # (17, 3) COCO-17 x, y, visibility
    projected2d: np.ndarray       # (17, 2) projections of all keypoints, also outside the image
    keypoints3d: np.ndarray       # (17, 3) camera coordinates
    joints3d: np.ndarray          # (J, 3) native joints, camera coordinates
    pose_vector: np.ndarray       # (D,) regression vector with the root rotation in camera axes
    translation: np.ndarray       # (3,) root joint position in camera coordinates
    bbox: np.ndarray              # (4,) x, y, w, h of the visible mask
    mask: np.ndarray              # (H, W) bool visible instance mask
    family: str                   # pose family ("walk", "random", ...)
    person_id: int = -1           # index of the person in the scene (the identity across a sequence's frames)


@dataclass
class SynthSample:
    """One generated image with its people and the buffers used to label them."""

    image: np.ndarray             # (H, W, 3) uint8 RGB
    people: list[SynthPerson]
    focal: float
    principal_point: tuple[float, float]
    instance_map: np.ndarray      # (H, W) int16: person index, -1 background, OCCLUDER_ID occluders
    part_map: np.ndarray          # (H, W) uint8 index into BODY_PARTS (0 background)
    depth: np.ndarray             # (H, W) float32 front-most depth in metres, inf where empty
    extra: dict = field(default_factory=dict)


def _seeded(seed: int, index: int) -> tuple[np.random.Generator, torch.Generator]:
    sequence = np.random.SeedSequence([seed, index])
    torch_generator = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
    return np.random.default_rng(sequence), torch_generator


def _procedural_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour gradient plus blurred blobs and noise: a texture without people."""
    corners = rng.uniform(30, 230, size=(2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(3, 12))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, max(6, width // 3))), int(rng.integers(5, max(6, height // 3))))
        colour = tuple(float(c) for c in rng.uniform(20, 235, size=3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=max(1.0, width / 100))
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class SynthGenerator:
    """Renders SynthLR samples; one instance per process (it holds the body model)."""

    def __init__(self, config: SynthConfig, device=None):
        from lowres_hps.imaging.io import read_image_rgb

        self.config = config
        self.body = load_body_model("anny", device=device)
        self.poses = PoseSampler(self.body)
        self.appearance = AppearanceSampler(self.body)
        self.face_parts = face_part_labels(self.body).cpu().numpy().astype(np.uint8)
        self.faces = self.body.faces.cpu().numpy()
        self.backgrounds = [read_image_rgb(p) for p in config.backgrounds]
        self.keypoint_parts = [
            np.array([BODY_PARTS.index(p) for p in KEYPOINT_PARTS[name]]) for name in COCO17.names
        ]
        self.keypoint_tolerance = np.array([0.05 if n in _FACE_POINTS else 0.15 for n in COCO17.names])

    # --- random people -----------------------------------------------------------------------

    def _person(self, rng: np.random.Generator, generator: torch.Generator) -> dict:
        """A posed, dressed person in the canonical body frame (root at the origin, upright)."""
        vector, family, _, output = self.poses.sample(generator)
        coco, _ = output.keypoints("coco17")
        return {
            "vector": vector[0].double(),
            "family": family,
            "vertices": output.vertices[0].double(),
            "coco": coco[0].double(),
            "joints": output.joints[0].double(),
            "albedo": self.appearance.sample(rng),
        }

    def _background(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        if not self.backgrounds:
            return _procedural_background(height, width, rng)
        source = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        # A random crop of at least half the photo, resized to the output.
        sh, sw = source.shape[:2]
        scale = rng.uniform(0.5, 1.0)
        ch, cw = max(8, int(sh * scale)), max(8, int(min(sw, sh * scale * width / height)))
        y0, x0 = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
        crop = source[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)

    # --- rendering and labels ------------------------------------------------------------------

    def _render(self, placed: list[dict], focal: float, principal: tuple[float, float],
                background: np.ndarray, rng: np.random.Generator) -> dict:
        """Z-buffer all people at once, shade them, and return the image with its label buffers."""
        from lowres_hps.render.rasterizer import rasterize

        height, width = background.shape[:2]
        vertices = torch.cat([p["vertices_cam"] for p in placed]).float()
        offsets = np.cumsum([0] + [len(p["vertices_cam"]) for p in placed])
        faces = torch.cat([torch.from_numpy(self.faces) + int(o) for o in offsets[:-1]])
        fragments = rasterize(vertices[None], faces, focal=focal, principal_point=principal,
                              image_size=(height, width), mode="hard")
        face_index = fragments.face_index[0].numpy()
        depth = fragments.depth[0].numpy().astype(np.float32)
        covered = face_index >= 0
        owner = np.where(covered, face_index // len(self.faces), -1).astype(np.int16)
        part_map = np.where(covered, self.face_parts[face_index % len(self.faces)], 0).astype(np.uint8)

        # Flat Lambert shading per face: ambient plus one directional light from above the camera.
        albedo = torch.from_numpy(np.concatenate([p["albedo"][self.faces].mean(axis=1) for p in placed])).double()
        light = (rng.uniform(-0.6, 0.6), rng.uniform(0.3, 1.0), rng.uniform(0.5, 1.0))
        ambient = rng.uniform(0.35, 0.6)
        shaded = lambert_shading(face_normals(vertices.double(), faces), albedo, light, ambient, 1.0 - ambient)
        face_rgb = (shaded * 255.0).clamp(0, 255).numpy()
        image = background.copy()
        image[covered] = face_rgb[face_index[covered]].astype(np.uint8)
        return {"image": image, "owner": owner, "part_map": part_map, "depth": np.where(covered, depth, np.inf)}

    def _add_occluder(self, buffers: dict, box: np.ndarray, rng: np.random.Generator) -> None:
        """Paint a random box or ellipse over part of ``box`` (x, y, w, h), in front of everything."""
        image, height, width = buffers["image"], *buffers["image"].shape[:2]
        x, y, w, h = box
        ow, oh = rng.uniform(0.3, 0.9) * w, rng.uniform(0.15, 0.45) * h
        cx, cy = x + rng.uniform(0, 1) * w, y + rng.uniform(0.2, 1.0) * h
        mask = np.zeros((height, width), np.uint8)
        if rng.random() < 0.5:
            p0 = (int(cx - ow / 2), int(cy - oh / 2))
            cv2.rectangle(mask, p0, (int(cx + ow / 2), int(cy + oh / 2)), 1, -1)
        else:
            cv2.ellipse(mask, (int(cx), int(cy)), (max(1, int(ow / 2)), max(1, int(oh / 2))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        covered = mask.astype(bool)
        texture = _procedural_background(height, width, rng)
        image[covered] = texture[covered]
        buffers["owner"][covered] = OCCLUDER_ID
        buffers["part_map"][covered] = 0
        buffers["depth"][covered] = 0.0

    def _label(self, person: dict, index: int, buffers: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """COCO keypoints with visibility, the visible mask and its box for person ``index``."""
        owner, part_map, depth = buffers["owner"], buffers["part_map"], buffers["depth"]
        height, width = owner.shape
        xy = person["projected"]
        keypoints = np.zeros((len(COCO17), 3))
        for k, (x, y) in enumerate(xy):
            col, row = int(round(x)), int(round(y))
            if not (0 <= col < width and 0 <= row < height):
                continue
            z = person["coco_cam"][k, 2]
            who = owner[row, col]
            if who == -1:
                visible = True
            else:
                visible = (who == index and part_map[row, col] in self.keypoint_parts[k]
                           and depth[row, col] >= z - self.keypoint_tolerance[k])
            keypoints[k] = (x, y, 2 if visible else 1)
        mask = owner == index
        if mask.any():
            rows, cols = np.nonzero(mask)
            bbox = np.array([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1], float)
        else:
            bbox = np.zeros(4)
        return keypoints, mask, bbox

    def _finish(self, placed: list[dict], buffers: dict, focal: float, principal: tuple[float, float]) -> SynthSample:
        people = []
        for i, p in enumerate(placed):
            keypoints, mask, bbox = self._label(p, i, buffers)
            if not mask.any():
                continue  # fully hidden: no annotation, like COCO
            people.append(SynthPerson(
                keypoints2d=keypoints.astype(np.float32), projected2d=p["projected"].astype(np.float32),
                keypoints3d=p["coco_cam"].astype(np.float32), joints3d=p["joints_cam"].astype(np.float32),
                pose_vector=p["vector_cam"].astype(np.float32), translation=p["translation"].astype(np.float32),
                bbox=bbox.astype(np.float32), mask=mask, family=p["family"], person_id=i,
            ))
        return SynthSample(
            image=buffers["image"], people=people, focal=float(focal), principal_point=principal,
            instance_map=buffers["owner"], part_map=buffers["part_map"], depth=buffers["depth"],
        )

    def _place(self, person: dict, rotation: torch.Tensor, translation: torch.Tensor,
               focal: float, principal: tuple[float, float]) -> dict:
        """Camera-frame copies of a canonical person: ``x_cam = R x + t`` (t = root position)."""
        def to_cam(points: torch.Tensor) -> np.ndarray:
            return (points @ rotation.T + translation).numpy()

        coco_cam = to_cam(person["coco"])
        projected = focal * coco_cam[:, :2] / coco_cam[:, 2:] + np.asarray(principal)
        spec = self.body.pose_spec
        rotations, shape = spec.split(person["vector"][None])
        rotations = rotations.clone()
        rotations[:, 0] = rotation @ rotations[:, 0]
        return {
            **person,
            "vertices_cam": torch.from_numpy(to_cam(person["vertices"])),
            "coco_cam": coco_cam,
            "joints_cam": to_cam(person["joints"]),
            "projected": projected,
            "translation": translation.numpy(),
            "vector_cam": spec.join(rotations, shape)[0].numpy(),
        }

    # --- layouts -------------------------------------------------------------------------------

    def crop_sample(self, seed: int, index: int) -> SynthSample:
        """One person, centred and scaled so the aspect-fixed box x ``box_scale`` fills the crop."""
        cfg = self.config
        rng, generator = _seeded(seed, index)
        person = self._person(rng, generator)
        yaw = rotation_about_axis("y", torch.tensor(rng.uniform(0.0, 360.0), dtype=torch.float64), degrees=True)
        pitch = rotation_about_axis("x", torch.tensor(rng.uniform(*cfg.crop_elevation), dtype=torch.float64), degrees=True)
        rotation = pitch @ body_to_opencv_rotation(torch.float64) @ yaw
        distance = rng.uniform(*cfg.crop_distance)
        translation = torch.tensor([0.0, 0.0, distance], dtype=torch.float64)
        # Unit-focal projection gives the box; the focal and principal point then frame it.
        cam = person["vertices"] @ rotation.T + translation
        xy = (cam[:, :2] / cam[:, 2:]).numpy()
        low, high = xy.min(0), xy.max(0)
        side = max(high - low) * cfg.box_scale
        focal = cfg.crop_size / side * rng.uniform(0.95, 1.05)
        centre = (low + high) / 2 + rng.normal(0, 0.03, size=2) * (high - low)
        principal = tuple(float(v) for v in cfg.crop_size / 2 - focal * centre)
        placed = [self._place(person, rotation, translation, focal, principal)]
        background = self._background(cfg.crop_size, cfg.crop_size, rng)
        buffers = self._render(placed, focal, principal, background, rng)
        if rng.random() < cfg.occluder_probability:
            box = np.concatenate([focal * low + principal, focal * (high - low)])
            self._add_occluder(buffers, box, rng)
        return self._finish(placed, buffers, focal, principal)

    def _scene_camera(self, rng: np.random.Generator) -> tuple[float, tuple[float, float], torch.Tensor, torch.Tensor]:
        """A raised camera pitched down at the ground: ``(focal, principal, world_to_camera, camera_centre)``."""
        height, width = self.config.scene_size
        focal = rng.uniform(*self.config.scene_focal)
        principal = (width / 2.0, height / 2.0)
        camera_height = rng.uniform(*self.config.scene_camera_height)
        # Aim the camera at the ground a mid-scene distance away, give or take a few degrees.
        aim_distance = rng.uniform(*self.config.scene_aim_distance)
        pitch_deg = math.degrees(math.atan2(camera_height, aim_distance)) + rng.uniform(-3.0, 3.0)
        # World frame: Y up, ground at y = 0, right-handed with the camera looking along +Z, so its
        # +X is the camera's left: axes (-x, -y, z), then the camera pitches down about its x axis.
        pitch = rotation_about_axis("x", torch.tensor(pitch_deg, dtype=torch.float64), degrees=True)
        world_to_camera = pitch @ torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))
        camera_centre = torch.tensor([0.0, camera_height, 0.0], dtype=torch.float64)
        return focal, principal, world_to_camera, camera_centre

    def scene_sample(self, seed: int, index: int) -> SynthSample:
        """Several people on a ground plane seen by a raised, slightly pitched camera."""
        cfg = self.config
        rng, generator = _seeded(seed, index)
        height, width = cfg.scene_size
        focal, principal, world_to_camera, camera_centre = self._scene_camera(rng)
        count = int(rng.integers(cfg.people_per_scene[0], cfg.people_per_scene[1] + 1))
        placed = []
        for _ in range(count):
            person = self._person(rng, generator)
            yaw = rotation_about_axis("y", torch.tensor(rng.uniform(0.0, 360.0), dtype=torch.float64), degrees=True)
            depth = rng.uniform(*cfg.scene_depth)
            half_width = 0.45 * depth * width / focal
            lateral = rng.uniform(-half_width, half_width)
            foot = float(person["vertices"][:, 1].min())
            world_root = torch.tensor([lateral, -foot, depth], dtype=torch.float64)
            rotation = world_to_camera @ yaw
            translation = world_to_camera @ (world_root - camera_centre)
            placed.append(self._place(person, rotation, translation, focal, principal))
        background = self._background(height, width, rng)
        buffers = self._render(placed, focal, principal, background, rng)
        if rng.random() < cfg.occluder_probability:
            target = placed[int(rng.integers(len(placed)))]
            xy = target["projected"]
            box = np.concatenate([xy.min(0), xy.max(0) - xy.min(0)])
            self._add_occluder(buffers, box, rng)
        return self._finish(placed, buffers, focal, principal)

    def sequence(self, seed: int, index: int, num_frames: int = 100, fps: float = 25.0,
                 speed: tuple[float, float] = (0.7, 1.6), headings: str = "across") -> list[SynthSample]:
        """A static-camera video of one scene: ``num_frames`` frames at ``fps`` of the scene layout's camera,
        background and lighting, whose people walk at constant velocities (``speed`` m/s; ``headings`` ``"across"``:
        within 0.5 rad of across the view, ``"any"``: any direction on the ground, towards and away from the camera
        too; each facing where it goes; one pose per person, held). People are labelled per frame as in
        :meth:`scene_sample`, with ``person_id`` their identity; a person wholly hidden or out of view is absent
        from that frame. A pure function of ``(seed, index)`` (and ``headings``)."""
        if num_frames < 1 or not fps > 0:
            raise ValueError(f"num_frames must be >= 1 and fps > 0, got {num_frames}, {fps}")
        if headings not in ("across", "any"):
            raise ValueError(f"headings must be 'across' or 'any', got {headings!r}")
        cfg = self.config
        rng, generator = _seeded(seed, index)
        height, width = cfg.scene_size
        focal, principal, world_to_camera, camera_centre = self._scene_camera(rng)
        count = int(rng.integers(cfg.people_per_scene[0], cfg.people_per_scene[1] + 1))
        walkers = []
        for _ in range(count):
            person = self._person(rng, generator)
            depth = rng.uniform(*cfg.scene_depth)
            half_width = 0.45 * depth * width / focal
            if headings == "across":
                heading = rng.choice([0.0, math.pi]) + rng.uniform(-0.5, 0.5)  # mostly across the view
            else:
                heading = rng.uniform(-math.pi, math.pi)
            velocity = rng.uniform(*speed) * np.array([math.cos(heading), 0.0, math.sin(heading)])
            # Start so that the walk's middle is in view: the person crosses the frame during the sequence.
            middle = np.array([rng.uniform(-half_width, half_width), -float(person["vertices"][:, 1].min()), depth])
            start = middle - velocity * (num_frames / fps) / 2
            # Canonical bodies face +Z; yaw them to face their velocity (world +X is the camera's left).
            yaw_deg = math.degrees(math.atan2(velocity[0], velocity[2]))
            yaw = rotation_about_axis("y", torch.tensor(yaw_deg, dtype=torch.float64), degrees=True)
            walkers.append((person, torch.from_numpy(start), torch.from_numpy(velocity), world_to_camera @ yaw))
        background = self._background(height, width, rng)
        light_seed = int(rng.integers(2**31))
        frames = []
        for frame in range(num_frames):
            t = frame / fps
            placed = [self._place(person, rotation, world_to_camera @ (start + velocity * t - camera_centre),
                                  focal, principal) for person, start, velocity, rotation in walkers]
            # Keep the people in front of the camera; the same light and shading in every frame.
            placed = [p for p in placed if p["translation"][2] > 1.0]
            if not placed:
                frames.append(SynthSample(image=background.copy(), people=[], focal=float(focal),
                                          principal_point=principal,
                                          instance_map=np.full((height, width), -1, np.int16),
                                          part_map=np.zeros((height, width), np.uint8),
                                          depth=np.full((height, width), np.inf, np.float32)))
                continue
            buffers = self._render(placed, focal, principal, background, np.random.default_rng(light_seed))
            sample = self._finish(placed, buffers, focal, principal)
            ids = [i for i, (_, start, velocity, _) in enumerate(walkers)
                   if (world_to_camera @ (start + velocity * t - camera_centre))[2] > 1.0]
            for person in sample.people:  # back to the scene's indices when people were left out
                person.person_id = ids[person.person_id]
            frames.append(sample)
        return frames

    def sample(self, seed: int, index: int) -> SynthSample:
        if self.config.layout == "crops":
            return self.crop_sample(seed, index)
        return self.scene_sample(seed, index)
