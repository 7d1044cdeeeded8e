"""Crash-safe checkpoints (written with :func:`lowres_hps.core.io.atomic_write`), RNG states, final weights
as safetensors."""
from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from lowres_hps.core.io import atomic_write

__all__ = [
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "save_weights",
    "load_weights",
]


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``torch.save(state)`` to ``path`` atomically (see :func:`atomic_write`).

    ``state`` should hold only tensors and plain Python data so that it loads with
    ``weights_only=True``; :func:`capture_rng_state` gives RNG states in that form.
    """
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(dict(state), f)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The python, numpy and torch (CPU and, for a CUDA ``device``, CUDA) RNG states as plain data."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(state["torch"].cpu())
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def save_weights(model: torch.nn.Module, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """The model's weights as safetensors (atomically), with string ``metadata`` (e.g. the config)."""
    with atomic_write(path) as tmp:
        safetensors.torch.save_model(model, os.fspath(tmp), metadata=dict(metadata or {}))


def load_weights(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True) -> dict[str, str]:
    """Load safetensors weights written by :func:`save_weights` into ``model``; returns the metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights not found: {path}")
    device = next(iter(model.parameters()), torch.empty(0)).device
    safetensors.torch.load_model(model, os.fspath(path), strict=strict, device=str(device))
    with safetensors.safe_open(os.fspath(path), framework="pt") as f:
        return dict(f.metadata() or {})
