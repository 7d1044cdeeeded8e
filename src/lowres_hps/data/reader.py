"""The common reader interface: a sized, indexable sequence of :class:`PersonSample`."""
from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from pathlib import Path

import numpy as np

from lowres_hps.body.keypoints import get_convention
from lowres_hps.data.errors import bbox_problem, keypoints_problem
from lowres_hps.data.sample import PersonSample

__all__ = ["PersonReader", "default_image_root"]

logger = logging.getLogger(__name__)


def default_image_root(ann_file: Path, split: str | None = None) -> Path:
    """The image folder to use when none is given, from the annotation file's place.

    The first folder that exists of: ``<root>/<split>`` and ``<root>/images`` when the file sits in
    an ``annotations/`` folder under ``<root>`` (COCO and mmpose layouts), then ``images/`` next to the
    file (LSP, OCHuman); otherwise the file's own folder.
    """
    folder = ann_file.parent
    candidates = []
    if folder.name == "annotations":
        if split:
            candidates.append(folder.parent / split)
        candidates.append(folder.parent / "images")
    candidates.append(folder / "images")
    return next((c for c in candidates if c.is_dir()), folder)


class PersonReader:
    """Base of the dataset readers.

    Subclasses parse and check every person at construction, call :meth:`_accept` for each (which
    reports and records bad ones in :attr:`skipped`), keep a light handle per accepted person in
    ``self._handles`` and build the :class:`PersonSample` lazily in :meth:`_load`.

    Attributes:
        convention: keypoint convention name of ``keypoints2d``.
        image_root: folder the image paths are relative to.
        skipped: ``(key, reason)`` for every bad person that was left out (key: annotation id or index).
        filtered: count per reason of people left out on purpose (crowd, too few keypoints).
        has_3d, has_smpl, has_mask: whether samples carry 3D keypoints, SMPL parameters, masks.
        train_person_heights: ``(lo, hi)`` px: in 2D keypoint training (``TopDownKeypointDataset``), this source's
            people are degraded to a random height in this range instead of the augmentation's ``person_heights``
            (None: the augmentation's), e.g. to keep synthetic people out of the smallest sizes, where a model
            leans most on its priors.
    """

    dataset: str = ""
    # What the samples carry, for summaries without building samples; subclasses set them.
    has_3d: bool = False
    has_smpl: bool = False
    has_mask: bool = False
    train_person_heights: tuple[int, int] | None = None

    def __init__(self, convention: str, image_root: Path, check_images: bool = False) -> None:
        self.convention = get_convention(convention).name
        self.num_keypoints = len(get_convention(convention))
        self.image_root = Path(image_root)
        self.check_images = check_images
        self.skipped: list[tuple[Hashable, str]] = []
        self.filtered: dict[str, int] = {}
        self._handles: list = []

    def __len__(self) -> int:
        return len(self._handles)

    def __getitem__(self, index: int) -> PersonSample:
        n = len(self._handles)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        return self._load(self._handles[index])

    def __iter__(self) -> Iterator[PersonSample]:
        for handle in self._handles:
            yield self._load(handle)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} samples, {len(self.skipped)} skipped, "
                f"convention={self.convention!r}, image_root='{self.image_root}')")

    def keep_random_subset(self, max_people: int, seed: int = 0) -> PersonReader:
        """Keep a fixed random subset of at most ``max_people`` people, in their original order (the same subset
        on every run), e.g. to mix a few thousand people of a large synthetic set into a small real one."""
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        if max_people < len(self._handles):
            keep = np.sort(np.random.default_rng(seed).permutation(len(self._handles))[:max_people])
            self._handles = [self._handles[i] for i in keep]
        return self

    def _load(self, handle) -> PersonSample:
        raise NotImplementedError

    def _skip(self, key: Hashable, reason: str) -> None:
        logger.warning("%s: skipping sample %s: %s", self.dataset or type(self).__name__, key, reason)
        self.skipped.append((key, reason))

    def _filter(self, reason: str) -> None:
        self.filtered[reason] = self.filtered.get(reason, 0) + 1

    def _accept(self, key: Hashable, keypoints: np.ndarray, bbox: np.ndarray,
                image_path: Path | None = None) -> bool:
        """Check one person; report, record and return False when it is bad."""
        reason = keypoints_problem(keypoints, self.num_keypoints) or bbox_problem(bbox)
        if reason is None and self.check_images and image_path is not None and not Path(image_path).is_file():
            reason = f"image file not found: {image_path}"
        if reason is not None:
            self._skip(key, reason)
            return False
        return True
