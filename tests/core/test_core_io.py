"""Atomic writes: the old file survives a failure, no temporary file is left, the usual file mode."""
from __future__ import annotations

import pytest

from lowres_hps.core.io import atomic_write, atomic_write_text


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):  # also on an interrupt, not only on errors
        with atomic_write(path) as tmp:
            tmp.write_text("new but unfinished")
            raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_atomic_write_text_creates_folders(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.json", "[1]")
    assert path.read_text() == "[1]"
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]
