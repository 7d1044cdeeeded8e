"""Plots of tracked people: each track's path drawn on a frame of the video (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lowres_hps.core.checks import check_image

__all__ = ["plot_trajectories"]


def plot_trajectories(frame: np.ndarray, trajectories: dict[int, np.ndarray], path: str | Path,
                      dpi: int = 100) -> Path:
    """Draw each track's path (the bottom centre of its boxes: where the person stands) on ``frame`` and save a PNG.

    Args:
        frame: (H, W, 3) uint8 RGB, e.g. the video's first frame.
        trajectories: track id -> (T, 4) boxes ``x, y, w, h`` in frame order.
        path: the PNG to write (its folder is created).
        dpi: resolution of the figure; the image keeps the frame's pixel size.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, also on headless machines
    import matplotlib.pyplot as plt

    check_image(frame)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frame.shape[:2]
    figure = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(frame)
    axes.set_axis_off()
    colours = plt.get_cmap("tab20")
    for n, (track_id, boxes) in enumerate(sorted(trajectories.items())):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        feet = np.column_stack([boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3]])
        colour = colours(n % 20)
        axes.plot(feet[:, 0], feet[:, 1], "-", color=colour, linewidth=1.5)
        axes.plot(feet[-1, 0], feet[-1, 1], "o", color=colour, markersize=3)
        axes.text(feet[0, 0], feet[0, 1], str(track_id), color="white", fontsize=7,
                  bbox={"facecolor": colour, "edgecolor": "none", "pad": 1})
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
