"""Multi-resolution person crops for 3D body regression (RSC-Net §3.2): one person, P resolutions.

Each item is one person cropped once (with one augmentation draw), then degraded by the
low-resolution protocol (upsample setting) to one person height per resolution range, each
upsampled back to the square canvas. Range 0 is the source resolution; ranges 1..P-1 draw a height
uniformly in their range (or take fixed ``person_heights`` for evaluation). All images share the
crop geometry, so one set of labels serves every resolution.

Labels, each with a flag saying whether the source has it (the basic loss drops missing terms):
2D keypoints in canvas pixels, 3D keypoints in camera coordinates (metres), and the body model's
regression pose vector (root in camera axes). A rotation augmentation rotates the 3D labels about
the optical axis with the image, so they stay consistent with the crop camera; a horizontal flip mirrors
them (camera x negated, left and right swapped, the pose vector through
:func:`lowres_hps.body.flip.flip_pose_vector`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lowres_hps.body.flip import flip_pose_vector
from lowres_hps.body.keypoints import get_convention, get_mapping, map_keypoints
from lowres_hps.body.pose import ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC, RegressionPoseSpec, _smpl_pose_spec
from lowres_hps.data.keypoint_dataset import draw_box_augmentation
from lowres_hps.data.reader import PersonReader
from lowres_hps.geometry import apply_affine
from lowres_hps.geometry.rotations import rotation_about_axis
from lowres_hps.imaging.protocol import RESOLUTION_RANGES, LowResProtocol, input_range_index, sample_resolution

__all__ = ["MultiResAugmentConfig", "MultiResolutionDataset", "crop_rotation_3d"]


@dataclass
class MultiResAugmentConfig:
    """Training augmentation (RSC-Net §4.1: noise, colour jitter, rotation, plus horizontal flips).

    A flip mirrors every resolution's image and all labels: 2D keypoints ``x -> S - 1 - x``, 3D keypoints
    ``x -> -x`` in camera axes, both with left and right swapped (the convention's ``flip_permutation``),
    and the pose vector by :func:`~lowres_hps.body.flip.flip_pose_vector` (Anny, SMPL, SMPL-X). With
    ``flip_probability`` 0 nothing is drawn, so older configs keep their random streams.
    """

    scale: tuple[float, float] = (1.0, 1.0)
    rotation_deg: float = 0.0
    rotation_probability: float = 0.6
    flip_probability: float = 0.0
    color_jitter: float = 0.0  # max relative brightness/contrast change
    noise_std: float = 0.0  # Gaussian pixel noise (0..255 scale) added to every resolution


def crop_rotation_3d(rotation_deg: float, dtype=torch.float32) -> torch.Tensor:
    """(3, 3) camera-frame rotation matching a crop rotated by ``rotation_deg`` (counter-clockwise on screen,
    :func:`lowres_hps.geometry.transforms.box_to_crop_affine`'s convention): ``R_z(-angle)`` in OpenCV axes."""
    return rotation_about_axis("z", torch.tensor(-float(rotation_deg), dtype=torch.float64), degrees=True).to(dtype)


_POSE_SPECS = {spec.model: spec for spec in (ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC)}


def _pose_spec(body_model: str, pose_size: int) -> RegressionPoseSpec:
    """The regression spec of ``body_model`` with a vector of ``pose_size`` (SMPL-family betas vary)."""
    spec = _POSE_SPECS.get(body_model)
    if spec is None:
        raise ValueError(f"cannot flip pose vectors of body model {body_model!r}; known: {sorted(_POSE_SPECS)}")
    if spec.vector_size != pose_size and spec.model != "anny":
        spec = _smpl_pose_spec(spec.model, spec.num_joints, pose_size - spec.rotation_size)
    if spec.vector_size != pose_size:
        raise ValueError(f"{body_model} pose vectors have size {spec.vector_size}, not {pose_size}")
    return spec


class MultiResolutionDataset(Dataset):
    """Person crops at every resolution range, with 2D, 3D and body-parameter labels.

    Args:
        readers: dataset readers (any :class:`~lowres_hps.data.reader.PersonReader`).
        canvas: side of the square network input.
        convention: keypoint convention of the 2D and 3D labels (e.g. ``"coco17"``).
        body_model: name of the body model whose parameters are used as labels (others are ignored).
        pose_size: size of that model's regression pose vector.
        num_ranges: resolution ranges P (range i draws from ``RESOLUTION_RANGES[i]``).
        person_heights: fixed heights instead of one per range (evaluation); range 0 is the source.
        augment: training augmentation, or None.
        scale_factor: crop margin of the protocol.
        image_transform: ``transform(image, mask, rng) -> image`` applied to each source image before cropping
            (e.g. :func:`lowres_hps.imaging.domain_shift.apply_domain_shift` for a shifted target domain), with
            the person's mask (None if the reader has none) and a generator seeded by ``(transform_seed, index)``,
            so an item looks the same every time it is read.
        transform_seed: the seed of those generators.
        with_masks: add the person's mask cropped like the images (the reader must load masks).

    Items: ``images`` (P, 3, S, S) uint8; ``person_heights`` (P,) float32, each crop's effective person
    height; ``range_index`` (P,) int64, its range (:func:`~lowres_hps.imaging.protocol.input_range_index`:
    what inference would pick for that height, so a source person 100 px tall is range 2 at every
    position where it is not degraded further);
    ``keypoints2d`` (K, 2) canvas px, ``visible2d`` (K,); ``keypoints3d`` (K, 3) metres, ``visible3d`` (K,),
    ``has_3d`` () ground-truth 3D, ``has_weak3d`` () a teacher's 3D instead (``extra["keypoints3d_weak"]`` of the
    sample, e.g. BlazePose's world landmarks: own joint definitions, for weak losses only); ``pose_vector`` (D,),
    ``has_params`` (); ``index``; with ``with_masks`` also ``silhouette`` (S, S) float32 0/1, the person's mask
    in the crop (flipped with it), and ``has_silhouette`` ().
    """

    def __init__(self, readers: Sequence[PersonReader], canvas: int = 128, convention: str = "coco17",
                 body_model: str = "anny", pose_size: int = 126, num_ranges: int = len(RESOLUTION_RANGES),
                 person_heights: Sequence[float] | None = None, augment: MultiResAugmentConfig | None = None,
                 scale_factor: float = 1.25,
                 image_transform: Callable[[np.ndarray, np.ndarray | None, np.random.Generator], np.ndarray] | None = None,
                 transform_seed: int = 0, with_masks: bool = False) -> None:
        if not 1 <= num_ranges <= len(RESOLUTION_RANGES):
            raise ValueError(f"num_ranges must be in 1..{len(RESOLUTION_RANGES)}, got {num_ranges}")
        self.readers = list(readers)
        self.protocol = LowResProtocol((canvas, canvas), scale_factor, "upsample")
        self.canvas = int(canvas)
        self.convention = get_convention(convention)
        self.body_model = body_model
        self.pose_size = int(pose_size)
        self.num_ranges = int(num_ranges)
        self.person_heights = None if person_heights is None else [float(h) for h in person_heights]
        self.augment = augment
        self.image_transform = image_transform
        self.transform_seed = int(transform_seed)
        self.with_masks = bool(with_masks)
        self._index = [(r, i) for r, reader in enumerate(self.readers) for i in range(len(reader))]
        self._mappings = [get_mapping(reader.convention, self.convention) for reader in self.readers]
        self._mappings3d: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self._index)

    def sample(self, index: int):
        reader, item = self._index[index]
        return self.readers[reader][item]

    def heights(self) -> list[float | None]:
        """The person heights of one item: fixed ones, or one drawn per range (None = source resolution)."""
        if self.person_heights is not None:
            return [None if h <= 0 else h for h in self.person_heights]
        return [None] + [float(sample_resolution(i)) for i in range(1, self.num_ranges)]

    def _labels_3d(self, sample, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """3D keypoints taken into the crop camera by ``frame`` (3, 3): the crop rotation, mirrored if flipped."""
        size = len(self.convention)
        if sample.keypoints3d is None:
            return torch.zeros(size, 3), torch.zeros(size), 0.0
        name = sample.convention3d or sample.convention
        if name not in self._mappings3d:
            self._mappings3d[name] = get_mapping(name, self.convention)
        points, valid = map_keypoints(sample.keypoints3d[:, :3].astype(np.float64), self._mappings3d[name],
                                      (sample.keypoints3d[:, 3] > 0).astype(np.float64))
        points = torch.from_numpy(points).float() @ frame.T
        visible = torch.as_tensor(valid, dtype=torch.float32)
        return points, visible, float(visible.sum() > 0)

    def _pose_label(self, sample, rotation: torch.Tensor, flip: bool = False) -> tuple[torch.Tensor, float]:
        params = sample.body_params or {}
        if sample.body_model != self.body_model or "pose_vector" not in params:
            return torch.zeros(self.pose_size), 0.0
        vector = torch.as_tensor(params["pose_vector"], dtype=torch.float32)
        if vector.shape != (self.pose_size,):
            raise ValueError(f"{sample.image_path}: pose vector of size {tuple(vector.shape)}, expected {self.pose_size}")
        from lowres_hps.geometry.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix

        root = rotation @ rotation_6d_to_matrix(vector[:6])  # the root turns with the crop
        vector = torch.cat([matrix_to_rotation_6d(root).reshape(6), vector[6:]])
        if flip:  # the crop is mirrored after its rotation, so the mirror applies to the turned root
            vector = flip_pose_vector(vector, _pose_spec(self.body_model, self.pose_size))
        return vector, 1.0

    def __getitem__(self, index: int) -> dict:
        reader_index, item = self._index[index]
        sample = self.readers[reader_index][item]
        keypoints, labelled = map_keypoints(sample.keypoints2d[:, :2].astype(np.float64), self._mappings[reader_index],
                                            (sample.keypoints2d[:, 2] > 0).astype(np.float64))
        image = sample.load_image()
        if self.image_transform is not None:
            rng = np.random.default_rng((self.transform_seed, index))
            image = self.image_transform(image, sample.mask, rng)
        bbox = np.asarray(sample.bbox, dtype=np.float64)
        rotation_deg, aug = 0.0, self.augment
        if aug is not None:
            bbox, rotation_deg = draw_box_augmentation(bbox, aug.scale, aug.rotation_deg, aug.rotation_probability)
        # No draw when flips are off: configs without them keep their random streams.
        flip = aug is not None and aug.flip_probability > 0 and bool(np.random.rand() < aug.flip_probability)
        heights = self.heights()
        crops = [self.protocol(image, bbox, person_height=h, rotation_deg=rotation_deg) for h in heights]
        images = torch.stack([c.image for c in crops])
        if flip:
            # Mirroring the finished crops equals degrading a mirrored source crop: the resizes are
            # symmetric, and every resolution shares the crop geometry.
            images = images.flip(-1)
        if aug is not None and (aug.color_jitter > 0 or aug.noise_std > 0):
            gain = 1 + np.random.uniform(-aug.color_jitter, aug.color_jitter)
            bias = np.random.uniform(-aug.color_jitter, aug.color_jitter) * 128
            work = images.float() * gain + bias
            if aug.noise_std > 0:
                work = work + torch.randn(work.shape) * aug.noise_std
            images = work.clamp(0, 255).round().to(torch.uint8)
        points = apply_affine(torch.from_numpy(keypoints), crops[0].affine).float()
        s = self.canvas
        labelled = torch.as_tensor(labelled, dtype=torch.float32)
        rotation = crop_rotation_3d(rotation_deg)
        frame = rotation
        if flip:
            permutation = self.convention.flip_permutation
            points[:, 0] = (s - 1) - points[:, 0]
            points, labelled = points[permutation], labelled[permutation]
            frame = torch.diag(torch.tensor([-1.0, 1.0, 1.0])) @ rotation
        inside = (points >= -0.5).all(-1) & (points <= s - 0.5).all(-1)
        visible2d = labelled * inside.float()
        keypoints3d, visible3d, has_3d = self._labels_3d(sample, frame)
        if flip:
            keypoints3d, visible3d = keypoints3d[permutation], visible3d[permutation]
        has_weak3d = has_3d if sample.extra.get("keypoints3d_weak") else 0.0
        has_3d -= has_weak3d
        pose_vector, has_params = self._pose_label(sample, rotation, flip)
        extra = {}
        if self.with_masks:
            extra = self._silhouette(sample, crops[0].affine, flip)
        return {
            "images": images.contiguous(),
            "person_heights": torch.tensor([c.person_height for c in crops], dtype=torch.float32),
            "range_index": torch.as_tensor(input_range_index(np.array([c.person_height for c in crops]),
                                                             self.protocol.scale_factor), dtype=torch.int64),
            "keypoints2d": points,
            "visible2d": visible2d,
            "keypoints3d": keypoints3d,
            "visible3d": visible3d,
            "has_3d": torch.tensor(has_3d),
            "has_weak3d": torch.tensor(has_weak3d),
            "pose_vector": pose_vector,
            "has_params": torch.tensor(has_params),
            "index": index,
            **extra,
        }

    def _silhouette(self, sample, affine: torch.Tensor, flip: bool) -> dict[str, torch.Tensor]:
        """The person's mask warped into the crop like the images (zeros, has_silhouette 0, without a mask)."""
        from lowres_hps.imaging.foreground import warp_mask

        s = self.canvas
        if sample.mask is None:
            return {"silhouette": torch.zeros(s, s), "has_silhouette": torch.tensor(0.0)}
        mask = torch.from_numpy(warp_mask(np.asarray(sample.mask, np.uint8), affine.numpy(), (s, s)).astype(np.float32))
        if flip:
            mask = mask.flip(-1)
        return {"silhouette": mask, "has_silhouette": torch.tensor(float(mask.sum() > 0))}
