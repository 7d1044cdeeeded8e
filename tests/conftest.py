"""Shared fixtures: the shared real-data folder (optional) and the Anny body model (built once)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

# The Anny cache (~790 MB, ~90 s to build) lives in an ignored folder and is reused across runs.
os.environ.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))
# One thread per xdist worker: two workers with two threads each would oversubscribe 2 cores.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


def _shared_data_dir() -> Path | None:
    env = os.environ.get("LOWRES_HPS_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (or $LOWRES_HPS_SHARED_DATA); skips the test cleanly when absent."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip("shared data not available (set LOWRES_HPS_SHARED_DATA or place it at ../shared/data)")
    return path


@pytest.fixture(scope="session")
def anny_body():
    """The default body model (Anny, float32, CPU), built once per test session."""
    from lowres_hps.body import load_body_model

    return load_body_model("anny", dtype=torch.float32)


devices = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")),
]


@pytest.fixture(params=devices)
def device(request) -> torch.device:
    return torch.device(request.param)
