"""Dataset readers: every format is read into the common :class:`PersonSample`."""
from __future__ import annotations

from pathlib import Path

from lowres_hps.data.coco import CocoKeypointsReader, CrowdPoseReader, OCHumanReader
from lowres_hps.data.errors import DatasetFileError
from lowres_hps.data.lsp import LspReader
from lowres_hps.data.mpii import MpiiReader
from lowres_hps.data.reader import PersonReader
from lowres_hps.data.sample import PersonSample
from lowres_hps.data.synthlr import SynthLRReader
from lowres_hps.data.spin import SPIN24, SpinNpzReader

__all__ = [
    "PersonSample",
    "PersonReader",
    "CocoKeypointsReader",
    "CrowdPoseReader",
    "OCHumanReader",
    "LspReader",
    "SpinNpzReader",
    "MpiiReader",
    "DatasetFileError",
    "SPIN24",
    "SynthLRReader",
    "READERS",
    "open_reader",
    "build_readers",
]

# Format name (as on the command line) -> reader class.
READERS: dict[str, type[PersonReader]] = {
    "coco": CocoKeypointsReader,
    "crowdpose": CrowdPoseReader,
    "ochuman": OCHumanReader,
    "lsp": LspReader,
    "spin": SpinNpzReader,
    "mpii": MpiiReader,
    "synthlr": SynthLRReader,
}


def open_reader(format: str, path: str | Path, image_root: str | Path | None = None, **options) -> PersonReader:
    """The reader of ``format`` (a key of :data:`READERS`) on ``path``; ``options`` go to its constructor."""
    try:
        reader_cls = READERS[format]
    except KeyError:
        raise ValueError(f"unknown dataset format {format!r}; known: {sorted(READERS)}") from None
    return reader_cls(path, image_root, **options)


def build_readers(synthlr: list[str], lspet: str | None, lspet_indices: tuple[int, int] | None,
                  coco: str | None, extra: list[dict] = ()) -> list:
    """Readers of the training sources in the config.

    ``extra`` opens any other dataset through the foundation's readers, e.g.
    ``{format: mpii, path: mpii/annotations/mpii_train.json, images: mpii/images}`` or
    ``{format: coco, path: coco/annotations/person_keypoints_train2017.json}``; ``max_people: N`` keeps a fixed
    random N of a source's people (:meth:`PersonReader.keep_random_subset`); ``person_heights: [lo, hi]`` sets the
    source's training degradation range (:attr:`PersonReader.train_person_heights`); other keys go to the reader.
    """
    readers = [SynthLRReader(path) for path in synthlr]
    if lspet:
        indices = range(*lspet_indices) if lspet_indices else None
        readers.append(LspReader(lspet, indices=indices))
    if coco:
        readers.append(CocoKeypointsReader(coco))
    for source in extra:
        options = dict(source)
        try:
            format_name, path = options.pop("format"), options.pop("path")
        except KeyError as exc:
            raise ValueError(f"each extra training source needs 'format' and 'path', got {source}") from exc
        max_people = options.pop("max_people", None)
        person_heights = options.pop("person_heights", None)
        reader = open_reader(format_name, path, options.pop("images", None), **options)
        if max_people is not None:
            reader.keep_random_subset(int(max_people))
        if person_heights is not None:
            low, high = (int(v) for v in person_heights)
            if not 1 <= low <= high:
                raise ValueError(f"person_heights of {path} must be [low, high] with 1 <= low <= high, "
                                 f"got {person_heights}")
            reader.train_person_heights = (low, high)
        readers.append(reader)
    return readers

