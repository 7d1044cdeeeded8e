"""Metrics of a run: ``metrics.csv`` (always) and TensorBoard (when it is installed)."""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lowres_hps.core.io import atomic_write

__all__ = ["MetricLogger"]

_INDEX_COLUMNS = ("step", "epoch")


class MetricLogger:
    """Appends one row per :meth:`log` call to ``<out_dir>/metrics.csv``.

    Columns are ``step, epoch`` then every metric key in the order first seen; a new key rewrites
    the file with the wider header (earlier rows get empty cells). With ``resume_step`` the
    existing file is kept up to that step and later rows (logged after the last checkpoint by a
    run that was killed) are dropped, so a resumed run does not log a step twice.
    A disabled logger (ranks other than 0) does nothing.
    """

    def __init__(self, out_dir: str | os.PathLike, enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.csv"
        self.columns: list[str] = list(_INDEX_COLUMNS)
        self._tensorboard = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            columns, rows = self.read(self.path)
            self.columns = columns or list(_INDEX_COLUMNS)
            self._rewrite([r for r in rows if int(r["step"]) <= resume_step])
        else:
            self._rewrite([])
        self._tensorboard = _open_tensorboard(self.path.parent, purge_step=resume_step)

    def log(self, step: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """One row: ``metrics`` (floats) at optimizer step ``step`` of epoch ``epoch``."""
        if not self.enabled:
            return
        new_keys = [k for k in metrics if k not in self.columns]
        row = {"step": step, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        if new_keys:
            _, rows = self.read(self.path)
            self.columns += new_keys
            self._rewrite([*rows, row])
        else:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        if self._tensorboard is not None:
            for key, value in metrics.items():
                self._tensorboard.add_scalar(key, float(value), step)
            self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    @staticmethod
    def read(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
        """``(columns, rows)`` of a metrics CSV; cells are strings, empty where not logged."""
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with atomic_write(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)


def _open_tensorboard(log_dir: Path, purge_step: int | None) -> Any:
    # Optional: TensorBoard is not a dependency, so its absence is silent.
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    # On resume, events after the checkpoint (logged by the killed run) are dropped.
    purge = None if purge_step is None else purge_step + 1
    return SummaryWriter(log_dir=str(log_dir / "tensorboard"), purge_step=purge)
