"""Contact sheets of person crops with their silhouettes: to check what an adaptation learns from."""
from __future__ import annotations

import cv2
import numpy as np

from lowres_hps.core.checks import check_shape

__all__ = ["silhouette_sheet"]


def silhouette_sheet(images: np.ndarray, silhouettes: np.ndarray, columns: int = 10,
                     others: np.ndarray | None = None, color=(255, 64, 32), other_color=(32, 200, 255)) -> np.ndarray:
    """One RGB image of crops, each with its silhouette outlined (and, optionally, a second mask outlined, e.g. a
    rendered body's).

    Args:
        images: (N, 3, S, S) or (N, S, S, 3) uint8 crops.
        silhouettes: (N, S, S) 0/1 masks.
        columns: crops per row.
        others: optional (N, S, S) 0/1 masks drawn in ``other_color``.

    Returns:
        (rows * S, columns * S, 3) uint8 RGB; empty cells are black.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    check_shape(images, "N S S 3", "images")
    n, size = images.shape[0], images.shape[1]
    check_shape(silhouettes, f"{n} {size} {size}", "silhouettes")
    if others is not None:
        check_shape(others, f"{n} {size} {size}", "others")
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    sheet = np.zeros((rows * size, columns * size, 3), np.uint8)
    for i in range(n):
        cell = np.ascontiguousarray(images[i], dtype=np.uint8).copy()
        for masks, rgb in ((silhouettes, color), (others, other_color)):
            if masks is None:
                continue
            contours, _ = cv2.findContours(np.asarray(masks[i], np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(cell, contours, -1, rgb, 1)
        r, c = divmod(i, columns)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = cell
    return sheet
