"""Per-vertex appearance for SynthLR people: skin, hair, clothes with patterns, shoes.

Colours are assigned on the body's rest template (the same vertex ids for every shape), so
patterns stick to the body when it moves: stripes and checks are functions of the template
coordinates, like a fixed UV map.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch

from lowres_hps.body.base import BodyModel
from lowres_hps.body.parts import BODY_PARTS, vertex_part_labels

__all__ = ["SKIN_TONES", "AppearanceSampler"]

# sRGB skin tones from very light to very dark (roughly the Monk / Fitzpatrick scales).
SKIN_TONES = np.array([
    (246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
    (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32),
], dtype=np.float64)
HAIR_COLOURS = np.array([(20, 15, 12), (60, 40, 25), (110, 75, 40), (190, 160, 110), (140, 140, 140), (120, 40, 20)], np.float64)


@dataclass
class _Template:
    coords: np.ndarray  # (V, 3) rest-pose canonical coordinates (metres)
    parts: np.ndarray   # (V,) part index into BODY_PARTS


class AppearanceSampler:
    """Draws a random look for one body model; ``sample(rng) -> (V, 3) float32 colours in [0, 1]``."""

    def __init__(self, body: BodyModel):
        with torch.no_grad():
            rest = body.forward_vector(body.pose_spec.rest_vector(dtype=body.dtype, device=body.device))
        coords = rest.vertices[0].double().cpu().numpy()
        self.template = _Template(coords, vertex_part_labels(body).cpu().numpy())
        parts = self.template.parts
        part = {name: parts == i for i, name in enumerate(BODY_PARTS)}
        head = coords[part["head"]]
        head_centre = head.mean(0)
        torso = coords[part["torso"]]
        # Waist: a little above the lowest torso vertices (the crotch) in the rest pose.
        self.waist_y = np.percentile(torso[:, 1], 30)
        self.part = part
        rel = coords - head_centre
        # Scalp: upper and back parts of the head; the face (front, below the brow) stays skin.
        self.hair = part["head"] & ((rel[:, 1] > 0.03) | ((rel[:, 2] < -0.02) & (rel[:, 1] > -0.05)))
        self.sleeve_top = part["left_upper_arm"] | part["right_upper_arm"]
        self.forearms = part["left_forearm"] | part["right_forearm"]
        self.thighs = part["left_thigh"] | part["right_thigh"]
        self.calves = part["left_calf"] | part["right_calf"]
        self.feet = part["left_foot"] | part["right_foot"]

    def _garment(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        """Colours (n, 3) of one garment over the masked vertices: solid, stripes or checks."""
        # HSV draws keep clothes mostly muted, as in real street scenes.
        base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.75), rng.uniform(0.1, 0.95)))
        second = np.clip(base + rng.uniform(-0.5, 0.5, size=3), 0.0, 1.0)
        coords = self.template.coords[mask]
        kind = rng.choice(["solid", "solid", "stripes", "checks"])
        if kind == "solid":
            return np.broadcast_to(base, coords.shape).copy()
        period = rng.uniform(0.04, 0.15)
        phase = rng.uniform(0, 2 * np.pi)
        stripe = np.sin(2 * np.pi * coords[:, 1] / period + phase) > 0
        if kind == "checks":
            stripe ^= np.sin(2 * np.pi * coords[:, 0] / period + phase) > 0
        return np.where(stripe[:, None], base, second)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """(V, 3) float32 per-vertex albedo in [0, 1]."""
        colours = np.empty_like(self.template.coords)
        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
        colours[:] = np.clip(skin / 255.0, 0, 1)
        if rng.random() < 0.85:
            colours[self.hair] = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] / 255.0
        below_waist = self.template.coords[:, 1] < self.waist_y
        top = (self.part["torso"] & ~below_waist) | self.sleeve_top
        if rng.random() < 0.5:
            top |= self.forearms  # long sleeves
        bottom = (self.part["torso"] & below_waist) | self.thighs
        if rng.random() < 0.7:
            bottom |= self.calves  # long trousers
        colours[top] = self._garment(rng, top)
        colours[bottom] = self._garment(rng, bottom)
        colours[self.feet] = rng.uniform(0.02, 0.6) * np.ones(3) + rng.uniform(0, 0.15, size=3)
        return np.clip(colours, 0, 1).astype(np.float32)
