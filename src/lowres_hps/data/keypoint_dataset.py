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

__all__ = ["AugmentConfig", "TopDownKeypointDataset", "draw_box_augmentation", "camera_effects", "random_erase"]


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
    # Camera effects, applied at the person's capture resolution R (see LowResProtocol's capture_transform).
    blur_probability: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # Gaussian blur, px at R
    noise_probability: float = 0.0
    noise_std: tuple[float, float] = (2.0, 10.0)  # Gaussian sensor noise, grey levels
    jpeg_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 90)
    grayscale_probability: float = 0.0
    # Random erasing (Zhong et al. 2020) of one rectangle of the crop: a stand-in for occluders.
    erase_probability: float = 0.0
    erase_area: tuple[float, float] = (0.05, 0.25)  # fraction of the crop

    def camera_transform(self):
        """A (C, h, w) uint8 -> uint8 function applying the drawn camera effects, or None when none is drawn.

        Draws from the global numpy RNG (seeded per sample by the trainer).
        """
        if not (self.blur_probability or self.noise_probability or self.jpeg_probability or self.grayscale_probability):
            return None  # no draw at all: configs without camera effects keep their random streams
        blur = np.random.uniform(*self.blur_sigma) if np.random.rand() < self.blur_probability else 0.0
        noise = np.random.uniform(*self.noise_std) if np.random.rand() < self.noise_probability else 0.0
        quality = int(np.random.randint(self.jpeg_quality[0], self.jpeg_quality[1] + 1)) \
            if np.random.rand() < self.jpeg_probability else None
        gray = np.random.rand() < self.grayscale_probability
        if not (blur or noise or quality or gray):
            return None
        noise_seed = int(np.random.randint(2**31))
        return lambda image: camera_effects(image, blur, noise, quality, gray, noise_seed)


def camera_effects(image: torch.Tensor, blur_sigma: float = 0.0, noise_std: float = 0.0,
                   jpeg_quality: int | None = None, grayscale: bool = False, seed: int = 0) -> torch.Tensor:
    """Blur, grey conversion, sensor noise and JPEG compression of one (3, h, w) uint8 image, in that order."""
    import cv2

    array = image.permute(1, 2, 0).numpy()
    if blur_sigma > 0:
        array = cv2.GaussianBlur(array, (0, 0), blur_sigma)
    if grayscale:
        array = np.repeat(cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if noise_std > 0:
        noise = np.random.default_rng(seed).normal(0.0, noise_std, array.shape)
        array = np.clip(array.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    if jpeg_quality is not None:
        ok, encoded = cv2.imencode(".jpg", array[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if ok:
            array = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def random_erase(image: torch.Tensor, area: tuple[float, float]) -> torch.Tensor:
    """One rectangle of (3, h, w) uint8 ``image`` (area fraction in ``area``, aspect 0.3-3.3) set to random
    noise around a random colour, from the global numpy RNG."""
    _, h, w = image.shape
    for _ in range(10):
        target = np.random.uniform(*area) * h * w
        aspect = np.exp(np.random.uniform(np.log(0.3), np.log(3.3)))
        eh, ew = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < eh < h and 0 < ew < w:
            y, x = np.random.randint(0, h - eh + 1), np.random.randint(0, w - ew + 1)
            colour = np.random.randint(0, 256, size=(3, 1, 1))
            patch = np.clip(colour + np.random.normal(0, 20, size=(3, eh, ew)), 0, 255).astype(np.uint8)
            image = image.clone()
            image[:, y:y + eh, x:x + ew] = torch.from_numpy(patch)
            return image
    return image


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
            heights = getattr(self.readers[reader_index], "train_person_heights", None) or aug.person_heights
            if heights is not None and np.random.rand() < aug.person_height_probability:
                height = float(np.random.randint(heights[0], heights[1] + 1))
        camera = aug.camera_transform() if aug is not None else None
        crop = self.protocol(image, bbox, person_height=height, rotation_deg=rotation, capture_transform=camera)
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
        if aug is not None and np.random.rand() < aug.erase_probability:
            crop_image = random_erase(crop_image, aug.erase_area)
        return {"image": crop_image.contiguous(), "keypoints": points, "visible": visible, "index": index}
