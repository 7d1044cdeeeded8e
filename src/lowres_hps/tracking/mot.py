"""MOTChallenge text files and CLEAR-MOT / identity scores of a tracker, through ``motmetrics``.

A MOTChallenge row is ``frame, id, x, y, w, h, score, -1, -1, -1``: the frame counted from 1, the track id, the box
(top-left corner, width, height, pixels) and the detection score; the last three columns (3D position, unused in
2D tracking) are -1. Ground-truth files (MOT17's ``gt.txt``) use columns 7-9 for a "consider" flag, the class and
the visibility instead; filter those rows before scoring, :func:`mot_metrics` takes every row it is given.

    rows = np.concatenate([mot_rows(frame + 1, tracker.update(boxes, scores)) for frame, (boxes, scores) in ...])
    write_mot("hyp.txt", rows)
    mot_metrics(read_mot("gt.txt"), rows)   # {"mota": ..., "idf1": ..., ...}
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowres_hps.tracking.bytetrack import Track, iou_matrix

__all__ = ["MOT_COLUMNS", "mot_rows", "mot_lines", "write_mot", "read_mot", "mot_metrics"]

MOT_COLUMNS = 10
_FORMATS = ["%d", "%d", "%.3f", "%.3f", "%.3f", "%.3f", "%.6g", "%g", "%g", "%g"]


def _as_rows(rows: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    """(N, 6..10) rows to (N, 10) float64, the missing trailing columns -1."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, MOT_COLUMNS))
    if rows.ndim != 2 or not 6 <= rows.shape[1] <= MOT_COLUMNS:
        raise ValueError(f"{name} must be (N, 6..10) rows frame, id, x, y, w, h[, score, -1, -1, -1], "
                         f"got shape {rows.shape}")
    if not np.all(np.isfinite(rows[:, :6])):
        raise ValueError(f"{name} must have finite frame, id and box columns, got NaN or infinite values")
    if np.any(rows[:, :2] != np.round(rows[:, :2])):
        raise ValueError(f"{name}: frame and id (columns 1 and 2) must be integers")
    if rows.shape[1] < MOT_COLUMNS:
        rows = np.concatenate([rows, -np.ones((len(rows), MOT_COLUMNS - rows.shape[1]))], axis=1)
    return rows


def mot_rows(frame_index_1based: int, tracks: Sequence[Track]) -> np.ndarray:
    """One frame's rows from :meth:`ByteTracker.update`'s tracks.

    Args:
        frame_index_1based: the frame number as MOTChallenge counts, from 1.
        tracks: the frame's tracks (their detection boxes are written).

    Returns:
        (len(tracks), 10) float64 rows ``frame, id, x, y, w, h, score, -1, -1, -1``.
    """
    if isinstance(frame_index_1based, bool) or not isinstance(frame_index_1based, (int, np.integer)) \
            or frame_index_1based < 1:
        raise ValueError(f"frame_index_1based must be an integer >= 1, got {frame_index_1based!r}")
    rows = np.full((len(tracks), MOT_COLUMNS), -1.0)
    for row, track in zip(rows, tracks):
        row[:7] = [frame_index_1based, track.track_id, *np.asarray(track.box, dtype=np.float64), track.score]
    return rows


def write_mot(path: str | Path, rows: np.ndarray | Sequence[Sequence[float]]) -> None:
    """Write rows as a MOTChallenge text file (comma-separated, one box per line, in the given order).

    Args:
        path: the file; its folder is created if needed.
        rows: (N, 6..10) ``frame, id, x, y, w, h[, score, -1, -1, -1]``; missing trailing columns are written -1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.writelines(mot_lines(rows))


def mot_lines(rows: np.ndarray | Sequence[Sequence[float]]) -> list[str]:
    """Rows as the lines of a MOTChallenge file (``\\n``-terminated), e.g. to append a frame's rows as they come."""
    return [",".join(fmt % value for fmt, value in zip(_FORMATS, row)) + "\n" for row in _as_rows(rows, "rows")]


def read_mot(path: str | Path) -> np.ndarray:
    """Read a MOTChallenge text file (comma- or space-separated).

    Args:
        path: the file.

    Returns:
        (N, 10) float64 rows, in file order; columns missing from the file (6 to 9 columns) are -1 and columns
        beyond the tenth are dropped. An empty file gives (0, 10).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing MOTChallenge file, got {str(path)!r}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f"{path}:{number}: not a row of numbers: {line!r}") from None
        if len(values) < 6:
            raise ValueError(f"{path}:{number}: a MOTChallenge row needs at least 6 values, got {len(values)}")
        rows.append(values[:MOT_COLUMNS] + [-1.0] * (MOT_COLUMNS - len(values)))
    return _as_rows(np.array(rows, dtype=np.float64).reshape(-1, MOT_COLUMNS), f"the rows of {path}")


def mot_metrics(gt_rows: np.ndarray, hyp_rows: np.ndarray, iou_threshold: float = 0.5) -> dict[str, float | int]:
    """CLEAR-MOT and identity scores of tracker rows against ground-truth rows, with ``motmetrics``.

    A ground-truth box and a hypothesis box may match when their IoU is at least ``iou_threshold``; matching and
    identity switches follow motmetrics (the MOTChallenge rules).

    Args:
        gt_rows: (N, 6..10) ground-truth rows ``frame, id, x, y, w, h, ...``.
        hyp_rows: (M, 6..10) tracker rows, same layout.
        iou_threshold: the IoU a match needs, in (0, 1].

    Returns:
        ``mota``, ``motp`` (mean ``1 - IoU`` of the matched pairs, motmetrics' convention: 0 is perfect;
        MOTChallenge reports one minus it), ``idf1`` as floats (NaN when there is nothing to score), and
        ``num_switches``, ``num_false_positives``, ``num_misses``, ``num_objects``, ``mostly_tracked`` as ints.
    """
    import motmetrics  # imported here: it loads pandas, which the rest of the package does not need

    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    gt = _as_rows(gt_rows, "gt_rows")
    hyp = _as_rows(hyp_rows, "hyp_rows")
    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    for frame in np.union1d(gt[:, 0], hyp[:, 0]).astype(np.int64):
        g, h = gt[gt[:, 0] == frame], hyp[hyp[:, 0] == frame]
        # motmetrics' own distances.iou_matrix calls np.asfarray, gone in NumPy 2: the same distances, ours.
        distances = 1.0 - iou_matrix(g[:, 2:6], h[:, 2:6])
        distances[distances > 1.0 - iou_threshold] = np.nan  # NaN: may not match
        accumulator.update(g[:, 1].astype(np.int64), h[:, 1].astype(np.int64), distances, frameid=int(frame))
    names = ["mota", "motp", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects",
             "mostly_tracked"]
    summary = motmetrics.metrics.create().compute(accumulator, metrics=names, name="sequence").iloc[0]
    return {name: float(summary[name]) if name in ("mota", "motp", "idf1") else int(summary[name]) for name in names}
