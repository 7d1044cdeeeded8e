"""Keep each person's surroundings in memory, small, so that training crops do not wait on JPEG decoding.

A training crop needs only the person box and its context, at no more resolution than the network
input can use. :class:`CroppedReader` reads every person once, cuts a margin around the box, shrinks it
(antialiased) so the box is at most ``max_height`` px tall, and serves samples whose images are these
small arrays, with boxes and keypoints moved to match. Low-resolution training never needs more than
the input's person height (51 px at 64 x 48), so ``max_height`` of 2-3 times that changes nothing the
network sees while making each sample ~10-100x cheaper to load.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowres_hps.data.reader import PersonReader
from lowres_hps.imaging.crop import warp_box
from lowres_hps.data.sample import PersonSample

__all__ = ["CroppedReader", "InMemorySample"]


@dataclass
class InMemorySample(PersonSample):
    """A :class:`PersonSample` whose image is held in memory (``pixels``, (H, W, 3) uint8 RGB)."""

    pixels: np.ndarray | None = None

    def load_image(self) -> np.ndarray:
        return self.pixels


class CroppedReader(PersonReader):
    """A reader's people, each cut to ``margin`` x its box (square about the box centre) and shrunk so the
    box is at most ``max_height`` px tall.

    Args:
        reader: any :class:`PersonReader` (its convention and metadata are kept).
        max_height: largest person box height kept, px.
        margin: side of the kept square region over the box's longer side (2.0 leaves room for the
            scale and rotation augmentation).
    """

    def __init__(self, reader: PersonReader, max_height: float = 160.0, margin: float = 2.0) -> None:
        super().__init__(reader.convention, reader.image_root)
        if not max_height > 0 or not margin >= 1.0:
            raise ValueError(f"max_height must be > 0 and margin >= 1, got {max_height}, {margin}")
        self.dataset = reader.dataset
        self.source = reader
        self.skipped = list(reader.skipped)
        self.filtered = dict(reader.filtered)
        self.has_3d, self.has_smpl, self.has_mask = reader.has_3d, reader.has_smpl, reader.has_mask
        self.train_person_heights = reader.train_person_heights
        last_path, image = None, None
        for sample in reader:
            if sample.image_path != last_path:
                image, last_path = sample.load_image(), sample.image_path
            self._handles.append(_cut(sample, image, max_height, margin))

    def _load(self, handle: InMemorySample) -> InMemorySample:
        return handle


def _cut(sample: PersonSample, image: np.ndarray, max_height: float, margin: float) -> InMemorySample:
    x, y, w, h = (float(v) for v in sample.bbox)
    side = margin * max(w, h)
    region = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side])
    out = max(1, round(side * min(1.0, max_height / max(h, 1e-6))))
    # The protocol's own warp: zeros outside the image, area reduction when shrinking.
    pixels, affine = warp_box(image, region, (out, out), border_value=0, antialias=True)
    keypoints = sample.keypoints2d.copy()
    keypoints[:, :2] = keypoints[:, :2] @ affine[:, :2].T + affine[:, 2]
    keypoints[sample.keypoints2d[:, 2] <= 0, :2] = 0.0
    # Boxes span [x, x + w] in the same pixel-centre coordinates as the keypoints: the same map moves both.
    corner = np.array([x, y]) @ affine[:, :2].T + affine[:, 2]
    scale = affine[0, 0]
    bbox = np.array([corner[0], corner[1], w * scale, h * scale], dtype=np.float32)
    fields = {f: getattr(sample, f) for f in sample.__dataclass_fields__}
    fields.update(bbox=bbox, keypoints2d=keypoints, mask=None, pixels=np.ascontiguousarray(pixels))
    return InMemorySample(**fields)
