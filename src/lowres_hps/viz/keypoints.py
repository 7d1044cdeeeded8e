"""Drawing keypoints and skeletons on images, and tiling images into a contact sheet."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lowres_hps.core.checks import check_image
from lowres_hps.body.keypoints import KeypointConvention, get_convention

__all__ = ["draw_keypoints", "contact_sheet"]

# RGB colours by body side: the subject's left, right, and the centre line.
_LEFT = (255, 140, 0)
_RIGHT = (0, 150, 255)
_CENTRE = (60, 220, 60)


def _side_colour(names: tuple[str, ...], *indices: int) -> tuple[int, int, int]:
    sides = {names[i].split("_", 1)[0] for i in indices}
    if sides == {"left"}:
        return _LEFT
    if sides == {"right"}:
        return _RIGHT
    return _CENTRE


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, convention: str | KeypointConvention,
                   radius: int | None = None, thickness: int | None = None) -> np.ndarray:
    """Draw the labelled keypoints and the convention's limbs on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (K, 3) ``x, y, visibility`` (0 not drawn, 1 hollow circle, 2 filled) or (K, 2), all drawn.
        convention: keypoint convention of ``keypoints`` (its skeleton gives the limbs).
        radius, thickness: in pixels; default scaled to the image size.

    Returns:
        (H, W, 3) uint8 RGB image with the drawing.
    """
    convention = get_convention(convention)
    image = np.asarray(image)
    check_image(image)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[0] != len(convention) or keypoints.shape[1] not in (2, 3):
        raise ValueError(f"expected ({len(convention)}, 2 or 3) keypoints for {convention.name}, "
                         f"got {keypoints.shape}")
    visibility = keypoints[:, 2] if keypoints.shape[1] == 3 else np.full(len(keypoints), 2.0)
    drawn = (visibility > 0) & np.isfinite(keypoints[:, :2]).all(1)
    scale = max(image.shape[:2]) / 256.0
    radius = radius or max(1, round(2 * scale))
    thickness = thickness or max(1, round(scale))

    canvas = np.ascontiguousarray(image.copy())
    points = np.round(np.where(drawn[:, None], keypoints[:, :2], 0)).astype(np.int32)
    for a, b in convention.skeleton:
        if drawn[a] and drawn[b]:
            cv2.line(canvas, tuple(points[a].tolist()), tuple(points[b].tolist()),
                     _side_colour(convention.names, a, b), thickness, cv2.LINE_AA)
    for i in np.flatnonzero(drawn):
        fill = -1 if visibility[i] >= 2 else thickness
        cv2.circle(canvas, tuple(points[i].tolist()), radius, _side_colour(convention.names, i), fill, cv2.LINE_AA)
    return canvas


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4, pad: int = 2,
                  background: int = 0) -> np.ndarray:
    """Tile equally sized (H, W, 3) uint8 images row by row with ``pad`` pixels between them.

    Returns:
        (rows * (H + pad) + pad, columns * (W + pad) + pad, 3) uint8 image.
    """
    if not tiles:
        raise ValueError("no tiles to put on the contact sheet")
    height, width = tiles[0].shape[:2]
    if any(t.shape != tiles[0].shape for t in tiles):
        raise ValueError(f"tiles must share one shape, got {sorted({t.shape for t in tiles})}")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), background, np.uint8)
    for n, tile in enumerate(tiles):
        y, x = pad + (n // columns) * (height + pad), pad + (n % columns) * (width + pad)
        sheet[y:y + height, x:x + width] = tile
    return sheet
