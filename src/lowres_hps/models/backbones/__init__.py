"""Backbones: images -> features at a fixed stride, sized for CPUs; weights are never downloaded.

``build_backbone(name, input_size, stride, **params)`` builds one by name; every backbone has
``out_channels`` and ``stride`` attributes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lowres_hps.models.backbones.common import Backbone
from lowres_hps.models.backbones.mobilenet import MobileNetBackbone
from lowres_hps.models.backbones.movenet import MoveNetBackbone
from lowres_hps.models.backbones.resnet import ResNetBackbone

__all__ = ["Backbone", "ResNetBackbone", "MobileNetBackbone", "MoveNetBackbone", "BACKBONES", "build_backbone"]

# name -> (class, fixed keyword arguments); user params are added on top.
BACKBONES: dict[str, tuple[type[Backbone], dict[str, Any]]] = {
    "resnet18": (ResNetBackbone, {"depth": 18}),
    "resnet34": (ResNetBackbone, {"depth": 34}),
    "resnet50": (ResNetBackbone, {"depth": 50}),
    "mobilenet_v2": (MobileNetBackbone, {"arch": "mobilenet_v2"}),
    "mobilenet_v3_small": (MobileNetBackbone, {"arch": "mobilenet_v3_small"}),
    "mobilenet_v3_large": (MobileNetBackbone, {"arch": "mobilenet_v3_large"}),
    "movenet_lightning": (MoveNetBackbone, {"variant": "lightning"}),
    "movenet_thunder": (MoveNetBackbone, {"variant": "thunder"}),
}


def build_backbone(name: str, input_size: Sequence[int], stride: int = 4, **params: Any) -> Backbone:
    """Backbone ``name`` (a key of :data:`BACKBONES`) for ``input_size`` ``(h, w)`` at output ``stride``.

    ``params`` go to the backbone class (e.g. ``neck_channels``, ``trunk_stride``, ``width_mult``,
    ``pretrained``); an unknown name or parameter raises ``ValueError``.
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
