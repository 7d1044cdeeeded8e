"""Backbones: images -> features at a fixed stride, sized for CPUs; weights are never downloaded.

``build_backbone(name, input_size, stride, **params)`` builds one by name; every backbone has
``out_channels`` and ``stride`` attributes.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from lowres_hps.models.backbones.common import Backbone
from lowres_hps.models.backbones.efficientnet import EfficientNetLiteBackbone
from lowres_hps.models.backbones.mobilenet import MobileNetBackbone
from lowres_hps.models.backbones.movenet import MoveNetBackbone
from lowres_hps.models.backbones.resnet import ResNetBackbone
from lowres_hps.models.pretrained import PRETRAINED_FILES, PretrainedFile

__all__ = [
    "Backbone", "ResNetBackbone", "MobileNetBackbone", "EfficientNetLiteBackbone", "MoveNetBackbone", "BACKBONES",
    "build_backbone", "backbone_start",
]

# name -> (class, fixed keyword arguments); user params are added on top.
BACKBONES: dict[str, tuple[type[Backbone], dict[str, Any]]] = {
    "resnet18": (ResNetBackbone, {"depth": 18}),
    "resnet34": (ResNetBackbone, {"depth": 34}),
    "resnet50": (ResNetBackbone, {"depth": 50}),
    "mobilenet_v2": (MobileNetBackbone, {"arch": "mobilenet_v2"}),
    "mobilenet_v3_small": (MobileNetBackbone, {"arch": "mobilenet_v3_small"}),
    "mobilenet_v3_large": (MobileNetBackbone, {"arch": "mobilenet_v3_large"}),
    "efficientnet_lite0": (EfficientNetLiteBackbone, {"arch": "efficientnet_lite0"}),
    "movenet_lightning": (MoveNetBackbone, {"variant": "lightning"}),
    "movenet_thunder": (MoveNetBackbone, {"variant": "thunder"}),
}

# (backbone, its ``pretrained`` value) -> the PRETRAINED_FILES key of the published weights it starts from
_STARTS = {
    ("mobilenet_v2", "imagenet"): "mobilenet_v2_imagenet",
    ("efficientnet_lite0", "imagenet"): "efficientnet_lite0_imagenet",
    ("movenet_lightning", "movenet"): "movenet_lightning",
    ("movenet_thunder", "movenet"): "movenet_thunder",
}


def backbone_start(name: str, params: Mapping[str, Any]) -> PretrainedFile | None:
    """The published weights (source, licence) that backbone ``name`` with ``params`` starts from, for model cards.

    None for a random start or a user's checkpoint path (whose provenance the user states).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    default = inspect.signature(BACKBONES[name][0]).parameters["pretrained"].default
    key = _STARTS.get((name, params.get("pretrained", default)))
    return PRETRAINED_FILES[key] if key else None


def build_backbone(name: str, input_size: Sequence[int], stride: int = 4, **params: Any) -> Backbone:
    """Backbone ``name`` (a key of :data:`BACKBONES`) for ``input_size`` ``(h, w)`` at output ``stride``.

    ``params`` go to the backbone class (e.g. ``neck_channels``, ``trunk_stride``, ``width_mult``,
    ``pretrained``: ``"imagenet"`` where local ImageNet weights exist, ``"none"``/None, or a checkpoint
    path); an unknown name or parameter raises ``ValueError``.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    cls, fixed = BACKBONES[name]
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise ValueError(f"backbone {name!r} fixes {clash}; choose another backbone name instead")
    try:
        return cls(input_size=tuple(input_size), stride=stride, **fixed, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for backbone {name!r}: {exc}") from None
