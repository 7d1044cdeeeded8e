"""FG-BG and six-part segmentation of a 3D body regressor's rendered mesh against ground-truth masks.

The LSP segmentation protocol of SMPLify / SPIN (SSPSE's Table 8, "FG-BG Seg. Acc., F1; Part Seg. Acc., F1"):
each predicted body is rendered (hard z-buffer) in its crop camera, every pixel labelled background or one of six
parts by its visible triangle, and compared pixel by pixel with the person's ground-truth mask and part labels.
Pixel counts are pooled over the whole set into one confusion matrix (2 classes FG-BG, 7 classes background + six
parts); the accuracy is the pooled pixel accuracy and the F1 the mean over classes, background included
(:func:`lowres_hps.evaluation.masks.metrics_from_confusion`).

Crops follow the low-resolution protocol (a :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` with
fixed ``person_heights``): the network sees the degraded crop, the ground truth is the source's full-resolution
mask taken into the same crop region at ``size`` px. Crop pixels outside the source image are not counted.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lowres_hps.body.parts import BODY_PARTS, face_part_labels
from lowres_hps.evaluation.masks import confusion_matrix, metrics_from_confusion
from lowres_hps.geometry.transforms import box_to_crop_affine
from lowres_hps.imaging.crop import crop_box
from lowres_hps.imaging.foreground import warp_mask
from lowres_hps.render import rasterize

__all__ = [
    "SIX_PART_NAMES",
    "SIX_PARTS",
    "IGNORE",
    "six_part_lookup",
    "six_part_face_labels",
    "render_part_masks",
    "CropMasks",
    "body_mask_metrics",
]

SIX_PART_NAMES = ("background", "head", "torso", "left_arm", "right_arm", "left_leg", "right_leg")
"""Labels of the six-part protocol, background 0."""

# SMPLify's six parts (the LSP part-segmentation protocol of SMPLify / SPIN / SSPSE): hands go with the arms and
# feet with the legs. Keys are the 14 parts of lowres_hps.body.parts.BODY_PARTS, which are also SynthLR's
# ``info.part_names``.
SIX_PARTS: dict[str, int] = {
    "background": 0,
    "head": 1,
    "torso": 2,
    "left_upper_arm": 3, "left_forearm": 3, "left_hand": 3,
    "right_upper_arm": 4, "right_forearm": 4, "right_hand": 4,
    "left_thigh": 5, "left_calf": 5, "left_foot": 5,
    "right_thigh": 6, "right_calf": 6, "right_foot": 6,
}
"""Part name -> six-part label (index into :data:`SIX_PART_NAMES`)."""

IGNORE = 255
"""Ground-truth label of pixels that are not counted (crop pixels outside the source image)."""


def six_part_lookup(part_names: Sequence[str] = BODY_PARTS) -> torch.Tensor:
    """(len(part_names),) int64 table: fine part index -> six-part label, e.g. for :data:`BODY_PARTS` or a SynthLR
    folder's ``info.part_names``. Unknown names raise ``ValueError``."""
    unknown = [name for name in part_names if name not in SIX_PARTS]
    if unknown:
        raise ValueError(f"no six-part label for part(s) {unknown}; known: {sorted(SIX_PARTS)}")
    return torch.tensor([SIX_PARTS[name] for name in part_names], dtype=torch.int64)


def six_part_face_labels(body) -> torch.Tensor:
    """(F,) int64 six-part label (1..6) of every triangle of ``body`` (a :class:`~lowres_hps.body.base.BodyModel`),
    from :func:`~lowres_hps.body.parts.face_part_labels`."""
    return six_part_lookup().to(body.faces.device)[face_part_labels(body)]


def render_part_masks(prediction, size: int, face_parts: torch.Tensor) -> torch.Tensor:
    """Part label maps of predicted bodies rendered in their crop cameras (hard z-buffer, nearest face wins).

    Args:
        prediction: a :class:`~lowres_hps.models.estimator.BodyPrediction` (or anything with its fields):
            ``vertices`` (B, V, 3) metres in the crop camera (OpenCV axes, z forward), ``faces`` (F, 3) long,
            ``crop_focal`` float focal (px) of the ``crop_size`` px square crop camera, principal point at the
            crop centre ``((crop_size - 1) / 2, ...)``.
        size: side (px) of the rendered square masks; the camera is scaled to it (focal ``crop_focal * size /
            crop_size``, principal point ``((size - 1) / 2, (size - 1) / 2)``): the same view of the crop region.
        face_parts: (F,) int64 label of every face, e.g. :func:`six_part_face_labels` (1..6).

    Returns:
        (B, size, size) int64: 0 on the background, else the label of the visible face.
    """
    vertices = prediction.vertices
    if vertices is None:
        raise ValueError("the prediction has no vertices: predict bodies with with_vertices=True")
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be (B, V, 3), got {tuple(vertices.shape)}")
    faces = torch.as_tensor(prediction.faces, device=vertices.device).long()
    face_parts = torch.as_tensor(face_parts, device=vertices.device).long()
    if face_parts.shape != (faces.shape[0],):
        raise ValueError(f"face_parts must be ({faces.shape[0]},) labels, one per face, got {tuple(face_parts.shape)}")
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    scale = size / float(prediction.crop_size)
    centre = (size - 1) / 2
    principal = torch.tensor([centre, centre], dtype=vertices.dtype, device=vertices.device)
    fragments = rasterize(vertices, faces, float(prediction.crop_focal) * scale, principal, (size, size), mode="hard")
    index = fragments.face_index
    labels = face_parts[index.clamp(min=0)]
    return torch.where(index >= 0, labels, torch.zeros_like(labels))


def _crop_affine(bbox: np.ndarray, size: int, scale_factor: float) -> np.ndarray:
    """(2, 3) image px -> px of the protocol's crop region (no rotation) rendered at ``size`` x ``size``."""
    region = crop_box(np.asarray(bbox, np.float64), (size, size), scale_factor)
    centre = torch.tensor(region[:2] + 0.5 * region[2:], dtype=torch.float64)
    return box_to_crop_affine(centre, torch.tensor(region[2:], dtype=torch.float64), (size, size)).numpy()


def _warp_nearest(labels: np.ndarray, affine: np.ndarray, size: int, border: int) -> np.ndarray:
    return cv2.warpAffine(labels, affine, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)


def _part_maps(reader) -> dict[Path, tuple[Path, torch.Tensor]]:
    """``{image path: (part png, fine -> six lookup)}`` of a reader whose COCO json names a per-image ``part_map``
    and ``info.part_names`` (SynthLR); empty for other readers."""
    from lowres_hps.data.errors import load_json

    ann_file = getattr(reader, "ann_file", None)
    if ann_file is None:
        return {}
    data = load_json(ann_file)
    names = (data.get("info") or {}).get("part_names")
    if not names:
        return {}
    lookup = six_part_lookup(names)
    return {Path(reader.image_root) / image["file_name"]: (Path(ann_file).parent / image["part_map"], lookup)
            for image in data.get("images", []) if image.get("part_map") and image.get("file_name")}


class CropMasks(Dataset):
    """Items of a :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` (fixed heights, no augmentation;
    or a ``Subset`` of one) with the person's ground truth in the same crop region at ``size`` x ``size`` px.

    Adds ``gt_mask`` (size, size) int64: 1 on the person (the reader's instance mask, which its readers must load:
    ``load_masks=True``), 0 elsewhere, :data:`IGNORE` outside the source image; ``has_mask`` () 0/1; ``gt_parts``
    (size, size) int64: six-part labels 0..6 (nearest-neighbour warp of the dataset's part map, kept on the person's
    mask only), :data:`IGNORE` outside the image, and ``has_parts`` () 0/1 (only readers whose json names a per-image
    ``part_map`` and ``info.part_names``, i.e. SynthLR).
    """

    def __init__(self, dataset: Dataset, size: int) -> None:
        base, indices = dataset, None
        if isinstance(dataset, Subset):
            base, indices = dataset.dataset, list(dataset.indices)
        if not hasattr(base, "protocol") or not hasattr(base, "readers"):
            raise TypeError(f"expected a MultiResolutionDataset (or a Subset of one), got {type(base).__name__}")
        if base.augment is not None:
            raise ValueError("ground-truth masks need the unaugmented crop: build the dataset with augment=None")
        if base.person_heights is None:
            raise ValueError("build the dataset with fixed person_heights (evaluation heights)")
        self.base = base
        self.indices = indices if indices is not None else list(range(len(base)))
        self.size = int(size)
        self.part_maps: dict[Path, tuple[Path, torch.Tensor]] = {}
        for reader in base.readers:
            self.part_maps.update(_part_maps(reader))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        index = self.indices[i]
        item = self.base[index]
        sample = self.base.sample(index)
        s = self.size
        affine = _crop_affine(sample.bbox, s, self.base.protocol.scale_factor)
        gt_mask = torch.full((s, s), IGNORE, dtype=torch.int64)
        gt_parts = torch.full((s, s), IGNORE, dtype=torch.int64)
        has_mask = has_parts = 0.0
        if sample.mask is not None:
            mask = np.asarray(sample.mask, np.uint8)
            inside = _warp_nearest(np.ones_like(mask), affine, s, 0) > 0
            person = warp_mask(mask, affine, (s, s))
            gt_mask = torch.from_numpy(np.where(inside, person, IGNORE).astype(np.int64))
            has_mask = 1.0
            part_map = self.part_maps.get(Path(sample.image_path))
            if part_map is not None:
                path, lookup = part_map
                fine = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if fine is None or fine.shape != mask.shape:
                    raise ValueError(f"part map {path} is unreadable or not of the image's size {mask.shape}")
                six = lookup.numpy()[fine.astype(np.int64)] * (mask > 0)  # this person's pixels only
                warped = _warp_nearest(six.astype(np.uint8), affine, s, IGNORE)
                gt_parts = torch.from_numpy(warped.astype(np.int64))
                has_parts = 1.0
        return {**item, "gt_mask": gt_mask, "has_mask": torch.tensor(has_mask), "gt_parts": gt_parts,
                "has_parts": torch.tensor(has_parts)}


def _metrics(fg: torch.Tensor, parts: torch.Tensor, people: int, part_people: int) -> dict[str, float | int | None]:
    fg_metrics = metrics_from_confusion(fg) if people else None
    part_metrics = metrics_from_confusion(parts) if part_people else None
    value = lambda m, name: None if m is None else float(getattr(m, name))  # noqa: E731
    return {"fg_accuracy": value(fg_metrics, "accuracy"), "fg_f1": value(fg_metrics, "mean_f1"),
            "part_accuracy": value(part_metrics, "accuracy"), "part_f1": value(part_metrics, "mean_f1"),
            "people": people}


def body_mask_metrics(estimator, dataset: Dataset, size: int = 224, batch_size: int = 16,
                      heights: Sequence[float] | None = None) -> dict[str, dict[str, float | int | None]]:
    """FG-BG and six-part accuracy and F1 of a 3D body estimator's rendered meshes, pooled over a dataset.

    Args:
        estimator: a :class:`~lowres_hps.models.body3d.Body3DEstimator` (``predict_bodies(crops, range_index)`` ->
            a ``BodyPrediction`` with vertices; ``body`` its body model).
        dataset: a :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` with fixed ``person_heights``,
            no augmentation, readers with ``load_masks=True`` (or a ``Subset`` of one), the estimator's canvas and
            scale factor; or a :class:`CropMasks` of one.
        size: side (px) at which predicted and ground-truth masks are compared. 224: SPIN's crop size, about the
            source resolution of SynthLR-test people; the same for every model, whatever its canvas.
        batch_size: people per network call.
        heights: the names of the dataset's resolution positions (default its ``person_heights``).

    Returns:
        ``{height: {"fg_accuracy", "fg_f1", "part_accuracy", "part_f1", "people"}}``, height ``"64"`` etc. or
        ``"source"`` (0 or less), like :func:`~lowres_hps.evaluation.body3d.evaluate_body3d`'s names. ``people``
        counts the people with a ground-truth mask; the part metrics are None where no person has part labels
        (e.g. COCO: instance masks only), the FG metrics None where none has a mask.
    """
    masks = dataset if isinstance(dataset, CropMasks) else CropMasks(dataset, size)
    size = masks.size
    heights = list(masks.base.person_heights if heights is None else heights)
    names = [f"{int(h)}" if h > 0 else "source" for h in heights]
    face_parts = six_part_face_labels(estimator.body).cpu()
    fg = [torch.zeros(2, 2, dtype=torch.int64) for _ in names]
    parts = [torch.zeros(7, 7, dtype=torch.int64) for _ in names]
    people = part_people = 0
    for batch in DataLoader(masks, batch_size=batch_size, shuffle=False, num_workers=0):
        has_mask, has_parts = batch["has_mask"] > 0, batch["has_parts"] > 0
        if not bool(has_mask.any()):
            continue
        images, ranges = batch["images"][has_mask], batch["range_index"][has_mask]
        gt_mask, gt_parts, has_parts = batch["gt_mask"][has_mask], batch["gt_parts"][has_mask], has_parts[has_mask]
        if images.shape[1] != len(names):
            raise ValueError(f"the dataset has {images.shape[1]} resolutions per person, heights name {len(names)}")
        people += len(images)
        part_people += int(has_parts.sum())
        for p in range(len(names)):
            prediction = estimator.predict_bodies(images[:, p], ranges[:, p])
            labels = render_part_masks(prediction, size, face_parts.to(prediction.vertices.device)).cpu()
            fg[p] += confusion_matrix((labels > 0).long(), gt_mask, 2, ignore_index=IGNORE)
            if bool(has_parts.any()):
                parts[p] += confusion_matrix(labels[has_parts], gt_parts[has_parts], 7, ignore_index=IGNORE)
    return {name: _metrics(fg[p], parts[p], people, part_people) for p, name in enumerate(names)}

