"""Top-down training and evaluation crops for 2D keypoint models, from any dataset reader.

Each item is one person cropped by the low-resolution protocol (so training and evaluation see
exactly what ``lowres-hps predict`` sees), with keypoints mapped into the crop and converted to the
model's keypoint convention (joints the source lacks get weight 0).

Augmentation (training only) draws from the global RNGs, which the trainer seeds per sample:
random scale of the box, rotation, horizontal flip, and optionally a random person height
(degrade to R then back up), as a low-resolution augmentation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lowres_hps.body.keypoints import get_convention, get_mapping, map_keypoints
from lowres_hps.data.reader import PersonReader
from lowres_hps.geometry import apply_affine
from lowres_hps.imaging.crop import enlarge_box
from lowres_hps.imaging.protocol import LowResProtocol

__all__ = ["AugmentConfig", "TopDownKeypointDataset", "draw_box_augmentation"]


@dataclass
class AugmentConfig:
    """Training augmentation; all off gives evaluation crops."""

    scale: tuple[float, float] = (1.0, 1.0)
    rotation_deg: float = 0.0
    rotation_probability: float = 0.6
    flip_probability: float = 0.0
    person_heights: tuple[int, int] | None = None  # random R in [lo, hi] for the "upsample" setting
    person_height_probability: float = 0.0
    color_jitter: float = 0.0  # max relative brightness/contrast change


def draw_box_augmentation(bbox: np.ndarray, scale: tuple[float, float], rotation_deg: float,
                          rotation_probability: float) -> tuple[np.ndarray, float]:
    """The box scaled about its centre by a factor drawn in ``scale``, and a rotation in
    ``+-rotation_deg`` drawn with ``rotation_probability`` (else 0), from the global numpy RNG."""
    bbox = enlarge_box(bbox, float(np.random.uniform(*scale)))
    rotation = 0.0
    if np.random.rand() < rotation_probability:
        rotation = float(np.random.uniform(-rotation_deg, rotation_deg))
    return bbox, rotation


class TopDownKeypointDataset(Dataset):
    """Person crops with keypoints in crop pixels.

    Args:
        readers: dataset readers (any :class:`~lowres_hps.data.reader.PersonReader`).
        protocol: the low-resolution protocol (input size, scale factor, setting).
        convention: output keypoint convention, e.g. ``"coco17"``.
        augment: training augmentation (``None``: evaluation crops).
        person_height: fixed degradation R for evaluation at a chosen resolution (None: source).

    Items are dicts: ``image`` (3, h, w) uint8, ``keypoints`` (K, 2) float32 crop pixels,
    ``visible`` (K,) float32 (1 for labelled joints inside the crop), ``index`` (int).
    """

    def __init__(self, readers: Sequence[PersonReader], protocol: LowResProtocol, convention: str = "coco17",
                 augment: AugmentConfig | None = None, person_height: float | None = None):
        self.readers = list(readers)
        self.protocol = protocol
        self.convention = get_convention(convention)
        self.augment = augment
        self.person_height = person_height
        self._index = [(r, i) for r, reader in enumerate(self.readers) for i in range(len(reader))]
        self._mappings = [get_mapping(reader.convention, self.convention) for reader in self.readers]

    def __len__(self) -> int:
        return len(self._index)

    def sample(self, index: int):
        reader, item = self._index[index]
        return self.readers[reader][item]

    def __getitem__(self, index: int) -> dict:
        reader_index, item = self._index[index]
        sample = self.readers[reader_index][item]
        keypoints, labelled = map_keypoints(sample.keypoints2d[:, :2].astype(np.float64), self._mappings[reader_index],
                                            (sample.keypoints2d[:, 2] > 0).astype(np.float64))
        image = sample.load_image()
        bbox = np.asarray(sample.bbox, dtype=np.float64)
        rotation, flip, height = 0.0, False, self.person_height
        aug = self.augment
        if aug is not None:
            bbox, rotation = draw_box_augmentation(bbox, aug.scale, aug.rotation_deg, aug.rotation_probability)
            flip = np.random.rand() < aug.flip_probability
            if aug.person_heights is not None and np.random.rand() < aug.person_height_probability:
                height = float(np.random.randint(aug.person_heights[0], aug.person_heights[1] + 1))
        crop = self.protocol(image, bbox, person_height=height, rotation_deg=rotation)
        crop_image = crop.image
        points = apply_affine(torch.from_numpy(keypoints), crop.affine).float()
        h, w = crop_image.shape[-2:]
        if flip:
            crop_image = crop_image.flip(-1)
            points[:, 0] = (w - 1) - points[:, 0]
            permutation = self.convention.flip_permutation
            points, labelled = points[permutation], labelled[permutation]
        inside = (points[:, 0] >= -0.5) & (points[:, 0] <= w - 0.5) & (points[:, 1] >= -0.5) & (points[:, 1] <= h - 0.5)
        visible = torch.as_tensor(labelled, dtype=torch.float32) * inside.float()
        if aug is not None and aug.color_jitter > 0:
            gain = 1 + np.random.uniform(-aug.color_jitter, aug.color_jitter)
            bias = np.random.uniform(-aug.color_jitter, aug.color_jitter) * 128
            crop_image = (crop_image.float() * gain + bias).clamp(0, 255).to(torch.uint8)
        return {"image": crop_image.contiguous(), "keypoints": points, "visible": visible, "index": index}
