"""RSC-Net's resolution-aware ResNet (Xu et al. 2020, Eq. 6): one row of residual weights per resolution range.

Every residual block ``k`` computes ``z_k = relu(shortcut(z_{k-1}) + alpha[i, k] * phi_k(z_{k-1}))`` where
``i`` is the resolution range of the input (0 = the original high resolution, 4 = the lowest; see
:mod:`lowres_hps.imaging.protocol`). ``alpha`` is initialised to 1, which is the plain ResNet, so a
torchvision checkpoint loads unchanged into the trunk. With ``resolution_aware=False`` there is no
``alpha``: the baseline network ("Ba") of the paper's ablations.

The paper leaves the downsampling blocks out of Eq. 5 "for clarity"; here every block, downsampling
ones included, gets its weight (8 for ResNet-18, 16 for ResNet-50).
"""
from __future__ import annotations

import os

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from lowres_hps.core.checks import check_shape
from lowres_hps.models.backbones.common import load_start

__all__ = ["ResolutionAwareResNet", "residual_branch"]

_RESNETS = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}


def residual_branch(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``phi_k(x)``: the residual path of a torchvision ``BasicBlock`` or ``Bottleneck`` (before the sum)."""
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    elif not isinstance(block, BasicBlock):
        raise TypeError(f"expected a torchvision BasicBlock or Bottleneck, got {type(block).__name__}")
    return out


class ResolutionAwareResNet(nn.Module):
    """ResNet trunk + global average pooling -> feature vector ``phi``, with per-range residual weights.

    Args:
        depth: 18, 34 or 50.
        num_ranges: rows of ``alpha`` (the protocol's P = 5 resolution ranges).
        resolution_aware: learn ``alpha`` (RA); False gives the plain ResNet (Ba).
        pretrained: path to a torchvision ImageNet checkpoint of the same depth (never downloaded);
            ``None`` or ``"none"``: random initialisation.

    Forward: ``images (B, 3, H, W)`` float (already normalised), ``range_index (B,)`` int64 in
    ``[0, num_ranges)`` (ignored without ``alpha``) -> ``(B, feature_dim)``.
    """

    def __init__(self, depth: int = 18, num_ranges: int = 5, resolution_aware: bool = True,
                 pretrained: str | os.PathLike | None = None) -> None:
        super().__init__()
        if depth not in _RESNETS:
            raise ValueError(f"ResNet depth must be one of {sorted(_RESNETS)}, got {depth}")
        if num_ranges < 1:
            raise ValueError(f"num_ranges must be at least 1, got {num_ranges}")
        trunk = _RESNETS[depth](weights=None)
        load_start(trunk, pretrained, f"resnet{depth}")
        trunk.fc = nn.Identity()  # the classifier is not used; keeps torchvision's key names otherwise
        self.trunk = trunk
        self.blocks = [block for stage in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4) for block in stage]
        self.num_ranges = int(num_ranges)
        self.feature_dim = int(trunk.inplanes)  # channels out of layer4: 512 (18, 34) or 2048 (50)
        self.alpha = nn.Parameter(torch.ones(num_ranges, len(self.blocks))) if resolution_aware else None

    @property
    def resolution_aware(self) -> bool:
        return self.alpha is not None

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(images, "B 3 H W", "images")
        weights = None
        if self.alpha is not None:
            if range_index is None:
                raise ValueError("a resolution-aware network needs range_index (B,) for its inputs")
            range_index = torch.as_tensor(range_index, device=images.device).long().reshape(-1)
            if range_index.shape[0] != images.shape[0]:
                raise ValueError(f"range_index must be ({images.shape[0]},), got {tuple(range_index.shape)}")
            if bool(((range_index < 0) | (range_index >= self.num_ranges)).any()):
                raise ValueError(f"range_index must be in [0, {self.num_ranges}), got {range_index.tolist()}")
            weights = self.alpha[range_index].to(images.dtype)  # (B, num_blocks)
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(images))))
        for k, block in enumerate(self.blocks):
            shortcut = x if block.downsample is None else block.downsample(x)
            residual = residual_branch(block, x)
            if weights is not None:
                residual = residual * weights[:, k, None, None, None]
            x = torch.relu(shortcut + residual)
        return torch.flatten(t.avgpool(x), 1)
