"""Pose sampling for SynthLR: key poses mixed with anatomical noise, and a plausibility filter.

A sample is either a *key pose* (standing, walking, running, sitting, crouching, arms raised,
sports-like) perturbed by per-joint noise at 35% of the anatomical ranges of
:data:`lowres_hps.body.pose.JOINT_RANGES_DEG`, or a free random pose at 70% of those ranges.

Plausibility rule (:func:`is_plausible`): a pose is rejected when vertices of two body parts that
are not neighbours in the kinematic tree come closer than 1 cm (a proxy for interpenetration,
measured on every 6th vertex), or when a foot ends up above the top of the head.
"""
from __future__ import annotations

import math

import numpy as np
import roma
import torch

from lowres_hps.body.base import BodyModel, BodyOutput
from lowres_hps.body.parts import BODY_PARTS, vertex_part_labels
from lowres_hps.body.pose import JOINT_RANGES_DEG, RegressionPoseSpec, sample_random_pose

__all__ = ["KEY_POSES", "key_pose_vector", "sample_poses", "is_plausible", "PoseSampler"]

# Rotation vectors in degrees about the canonical axes (x: body's left, y: up, z: forward) for the
# LEFT side and the midline; ``right_*`` entries are given explicitly where a pose is asymmetric,
# otherwise they mirror the left (x kept, y and z negated). Signs as in JOINT_RANGES_DEG: -x swings
# a limb forward, +x flexes a knee, +z raises the left arm sideways. Anny rests in an A-pose.
KEY_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "stand": {"left_shoulder": (0, 0, -25)},
    "walk": {
        "left_hip": (-25, 0, 0), "right_hip": (15, 0, 0), "left_knee": (10, 0, 0), "right_knee": (35, 0, 0),
        "left_shoulder": (20, 0, -25), "right_shoulder": (-20, 0, 25), "left_elbow": (-15, 0, 0),
        "right_elbow": (-25, 0, 0),
    },
    "run": {
        "spine_lower": (12, 0, 0), "left_hip": (-55, 0, 0), "right_hip": (25, 0, 0),
        "left_knee": (60, 0, 0), "right_knee": (95, 0, 0),
        "left_shoulder": (45, 0, -20), "right_shoulder": (-50, 0, 20),
        "left_elbow": (-90, 0, 0), "right_elbow": (-90, 0, 0),
    },
    "sit": {
        "left_hip": (-85, 0, 5), "left_knee": (90, 0, 0), "spine_lower": (5, 0, 0),
        "left_shoulder": (-25, 0, -15), "left_elbow": (-55, 0, 0),
    },
    "crouch": {
        "spine_lower": (30, 0, 0), "left_hip": (-100, 0, 10), "left_knee": (120, 0, 0), "left_ankle": (25, 0, 0),
        "left_shoulder": (-40, 0, 0), "left_elbow": (-40, 0, 0),
    },
    "arms_raised": {"left_shoulder": (0, 0, 110), "left_elbow": (-10, 0, 0), "neck": (-10, 0, 0)},
    "wave": {
        "left_shoulder": (0, 0, -25), "right_shoulder": (0, 0, -100), "right_elbow": (-70, 0, 0),
    },
    "throw": {
        "spine_middle": (0, 25, 0), "right_shoulder": (-10, 0, -95), "right_elbow": (-90, 0, 0),
        "left_shoulder": (-70, 0, 10), "left_hip": (-30, 0, 0), "right_hip": (15, 0, 0), "right_knee": (25, 0, 0),
    },
    "kick": {
        "right_hip": (-75, 0, 0), "right_knee": (15, 0, 0), "left_knee": (15, 0, 0), "spine_lower": (-10, 0, 0),
        "left_shoulder": (0, 0, 35),
    },
    "reach": {
        "spine_lower": (25, 0, 0), "left_shoulder": (-90, 0, 0), "right_shoulder": (-60, 0, 0),
        "left_hip": (-20, 0, 0), "right_hip": (-20, 0, 0), "left_knee": (25, 0, 0),
    },
}


def _mirror(part: str, rotvec: tuple[float, float, float]) -> tuple[str, tuple[float, float, float]] | None:
    if not part.startswith("left_"):
        return None
    return "right_" + part[len("left_"):], (rotvec[0], -rotvec[1], -rotvec[2])


def key_pose_vector(name: str, spec: RegressionPoseSpec) -> torch.Tensor:
    """(6 * J,) rotation part of the pose vector of key pose ``name`` (rest shape not included)."""
    if name not in KEY_POSES:
        raise KeyError(f"unknown key pose {name!r}; known: {sorted(KEY_POSES)}")
    table = dict(KEY_POSES[name])
    for part, rotvec in list(table.items()):
        mirrored = _mirror(part, rotvec)
        if mirrored is not None and mirrored[0] not in table:
            table[mirrored[0]] = mirrored[1]
    rotvec = torch.zeros(len(spec.joint_parts), 3, dtype=torch.float64)
    for j, part in enumerate(spec.joint_parts):
        # Parts are named per joint (e.g. "left_shoulder"), shared with JOINT_RANGES_DEG.
        if part in table:
            rotvec[j] = torch.tensor(table[part], dtype=torch.float64) * (math.pi / 180.0)
    rotations = roma.rotvec_to_rotmat(rotvec)
    return spec.join(rotations[None], torch.zeros(1, spec.shape_size, dtype=torch.float64))[0, : 6 * len(spec.joint_parts)]


def sample_poses(
    count: int,
    generator: torch.Generator,
    spec: RegressionPoseSpec,
    key_pose_probability: float = 0.6,
    key_noise: float = 0.35,
    free_scale: float = 0.7,
) -> tuple[torch.Tensor, list[str]]:
    """Draw ``count`` pose vectors (with random shapes) and the name of the pose family of each.

    Root orientation stays upright and facing +Z; the camera supplies the viewpoint.
    """
    names = sorted(KEY_POSES)
    vectors, families = [], []
    for _ in range(count):
        use_key = float(torch.rand((), generator=generator)) < key_pose_probability
        if use_key:
            name = names[int(torch.randint(len(names), (), generator=generator))]
            noise = sample_random_pose(1, generator, spec, scale=key_noise, dtype=torch.float64)
            noise_rot, shape = spec.split(noise)
            key_rot, _ = spec.split(torch.cat([key_pose_vector(name, spec), shape[0]])[None])
            # Compose noise after the key pose, joint by joint.
            vector = spec.join(key_rot @ noise_rot, shape)
            families.append(name)
        else:
            vector = sample_random_pose(1, generator, spec, scale=free_scale, dtype=torch.float64)
            families.append("random")
        vectors.append(vector)
    return torch.cat(vectors).float(), families


_NEIGHBOURS = {
    ("head", "torso"), ("torso", "left_upper_arm"), ("torso", "right_upper_arm"),
    ("left_upper_arm", "left_forearm"), ("right_upper_arm", "right_forearm"),
    ("left_forearm", "left_hand"), ("right_forearm", "right_hand"),
    ("torso", "left_thigh"), ("torso", "right_thigh"), ("left_thigh", "right_thigh"),
    ("left_thigh", "left_calf"), ("right_thigh", "right_calf"),
    ("left_calf", "left_foot"), ("right_calf", "right_foot"),
    # The head rests on the upper arms when shoulders shrug; the thighs touch the calves when knees bend.
    ("head", "left_upper_arm"), ("head", "right_upper_arm"),
    ("left_thigh", "left_foot"), ("right_thigh", "right_foot"),
}


class PoseSampler:
    """Draws plausible poses for one body model, rejecting implausible draws (see module docstring)."""

    def __init__(self, body: BodyModel, min_gap_m: float = 0.01, stride: int = 6, max_tries: int = 20):
        self.body = body
        self.min_gap_m = min_gap_m
        self.max_tries = max_tries
        labels = vertex_part_labels(body)
        index = torch.arange(0, body.num_vertices, stride, device=labels.device)
        self.part_points = {
            name: index[labels[index] == i] for i, name in enumerate(BODY_PARTS) if i > 0
        }
        names = list(self.part_points)
        self.checked_pairs = [
            (a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if (a, b) not in _NEIGHBOURS and (b, a) not in _NEIGHBOURS
        ]
        self.extremities = ("left_foot", "right_foot")

    def is_plausible(self, output: BodyOutput, index: int = 0) -> bool:
        vertices = output.vertices[index]
        points = {name: vertices[idx] for name, idx in self.part_points.items()}
        head_top = points["head"][:, 1].max()
        if any(points[name][:, 1].max() > head_top for name in self.extremities):
            return False
        low = {name: p.min(0).values - self.min_gap_m for name, p in points.items()}
        high = {name: p.max(0).values + self.min_gap_m for name, p in points.items()}
        for a, b in self.checked_pairs:
            # Bounding boxes first: most part pairs are far apart.
            if bool((low[a] > high[b]).any() or (low[b] > high[a]).any()):
                continue
            if float(torch.cdist(points[a], points[b]).min()) < self.min_gap_m:
                return False
        return True

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, str, int, BodyOutput]:
        """One plausible pose vector (1, D), its family, how many draws were rejected, and its body."""
        for attempt in range(self.max_tries):
            vector, families = sample_poses(1, generator, self.body.pose_spec)
            with torch.no_grad():
                output = self.body.forward_vector(vector.to(self.body.dtype))
            if self.is_plausible(output):
                return vector, families[0], attempt, output
        # Fall back to a standing pose with the last shape, which passes the rule.
        rotations = key_pose_vector("stand", self.body.pose_spec).float()[None]
        vector = torch.cat([rotations, vector[:, rotations.shape[1]:]], dim=1)
        with torch.no_grad():
            output = self.body.forward_vector(vector.to(self.body.dtype))
        return vector, "stand", self.max_tries, output


def is_plausible(body: BodyModel, vector: torch.Tensor) -> bool:
    """Whether one pose vector (1, D) passes the plausibility rule (convenience wrapper)."""
    sampler = PoseSampler(body)
    with torch.no_grad():
        return sampler.is_plausible(body.forward_vector(vector.to(body.dtype)))
