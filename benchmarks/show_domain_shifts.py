"""Contact sheet of the image-domain shifts (:mod:`lowres_hps.imaging.domain_shift`) on SynthLR people.

Rows are people (evenly spread over the folder), columns the kinds: the original (``none``), ``grayscale``,
``thermal`` with the person mask, ``thermal`` without it (the inverted-luminance fallback) and ``night``.
Each column is one :func:`shift_batch` call with ``--seed``, so the sheet is reproducible.

    python benchmarks/show_domain_shifts.py [--synthlr data/synthlr/val_crops] [--people 6] [--seed 0] \
        [--out benchmarks/results/domain_shifts.png]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lowres_hps.data import SynthLRReader
    from lowres_hps.imaging.domain_shift import shift_batch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthlr", type=Path, default=ROOT / "data/synthlr/val_crops")
    parser.add_argument("--people", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/domain_shifts.png")
    args = parser.parse_args()

    reader = SynthLRReader(args.synthlr, load_masks=True)
    indices = np.linspace(0, len(reader) - 1, args.people).round().astype(int)
    samples = [reader[int(i)] for i in indices]
    images = [sample.load_image() for sample in samples]
    masks = [sample.mask for sample in samples]

    columns = {
        "none": shift_batch(images, "none", args.seed),
        "grayscale": shift_batch(images, "grayscale", args.seed),
        "thermal": shift_batch(images, "thermal", args.seed, masks=masks),
        "thermal (no mask)": shift_batch(images, "thermal", args.seed),
        "night": shift_batch(images, "night", args.seed),
    }
    fig, axes = plt.subplots(len(images), len(columns), figsize=(2.0 * len(columns), 2.0 * len(images)),
                             squeeze=False)
    for col, (name, shifted) in enumerate(columns.items()):
        axes[0, col].set_title(name, fontsize=10)
        for row, image in enumerate(shifted):
            axes[row, col].imshow(image)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    for row, sample in enumerate(samples):
        axes[row, 0].set_ylabel(f"ann {sample.ann_id}", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out} ({len(images)} people x {len(columns)} kinds from {args.synthlr})")


if __name__ == "__main__":
    main()
