"""RSC-Net's resolution awareness (Eq. 6) on MoveNet's person-pretrained MobileNetV2-FPN, for 3D bodies.

The 3D network's trunk starts from a low-resolution 2D keypoint model (``lrmove_l_128``: all of MoveNet
Lightning fine-tuned on real people degraded to 12-128 px), so the body regressor reads features that already
find limbs on small, real people. Every inverted-residual block with a skip connection computes
``z_k = z_{k-1} + alpha[i, k] * phi_k(z_{k-1})`` for an input of resolution range ``i`` (``alpha`` starts at 1:
the plain network); blocks without a skip (stride 2 or a width change) have no residual to weigh, as the
paper's Eq. 5 leaves out ResNet's downsampling blocks.

The feature ``phi`` (RSC-Net's, used by the regressor and the feature-consistency losses) concatenates
- the trunk's top (1280 channels at stride 32), averaged over the image: what the body looks like;
- the 2D model's keypoint heatmaps (sigmoid, 17 at stride 4) average-pooled to ``heatmap_grid`` x
  ``heatmap_grid``: where each joint is, which a pooled feature alone loses (HMR's weakness on limbs);
- with ``keypoint_coordinates``, each joint's soft-argmax position in the crop (x, y in [-1, 1], from a
  softmax over its heatmap logits) and its peak probability: the precise 2D pose, which lifting networks
  turn into 3D far faster than pooled appearance features. They are read out without gradient (see forward).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lowres_hps.core.checks import check_shape
from lowres_hps.models.movenet import MOVENET_VARIANTS, MoveNet

__all__ = ["ResolutionAwareMoveNet", "MOVENET_3D_BACKBONES", "soft_argmax"]

MOVENET_3D_BACKBONES = {"movenet_lightning": "lightning", "movenet_thunder": "thunder"}


class ResolutionAwareMoveNet(nn.Module):
    """MoveNet trunk + FPN + keypoint-heatmap head -> feature vector ``phi``, with per-range residual weights.

    Args:
        variant: ``"lightning"`` or ``"thunder"``.
        num_ranges: rows of ``alpha`` (the protocol's P = 5 resolution ranges).
        resolution_aware: learn ``alpha`` (RA); False gives the plain network (Ba).
        pretrained: ``"movenet"`` loads MoveNet's published weights from the local TFJS files; ``None`` or
            ``"none"`` starts from scratch (a 2D checkpoint is loaded afterwards with :meth:`load_pose2d_state`).
        heatmap_grid: side of the pooled heatmap grid in ``phi``.
        keypoint_coordinates: append each joint's soft-argmax (x, y) and peak probability to ``phi``.

    Forward: ``images (B, 3, H, W)`` float normalised to [-1, 1] (MoveNet's), ``range_index (B,)`` int64 in
    ``[0, num_ranges)`` (ignored without ``alpha``) -> ``(B, feature_dim)``.
    """

    def __init__(self, variant: str = "lightning", num_ranges: int = 5, resolution_aware: bool = True,
                 pretrained: str | None = "movenet", heatmap_grid: int = 8,
                 keypoint_coordinates: bool = True) -> None:
        super().__init__()
        if variant not in MOVENET_VARIANTS:
            raise ValueError(f"unknown MoveNet variant {variant!r}; known: {', '.join(MOVENET_VARIANTS)}")
        if pretrained not in (None, "none", "movenet"):
            raise ValueError(f"pretrained must be 'movenet', 'none' or None, got {pretrained!r}")
        if num_ranges < 1 or heatmap_grid < 1:
            raise ValueError(f"num_ranges and heatmap_grid must be positive, got {num_ranges}, {heatmap_grid}")
        if pretrained == "movenet":
            from lowres_hps.models.movenet import load_movenet

            source = load_movenet(variant)
        else:
            source = MoveNet(MOVENET_VARIANTS[variant].width_mult)
        self.features = source.features
        self.heatmap = source.heads["kpt_heatmap"]
        self.variant = variant
        self.num_ranges = int(num_ranges)
        self.heatmap_grid = int(heatmap_grid)
        self.keypoint_coordinates = bool(keypoint_coordinates)
        self.residual_blocks = [k for k, block in enumerate(self.features.blocks) if block.residual]
        joints = self.heatmap.out.out_channels
        self.feature_dim = (self.features.last_conv.out_channels + joints * heatmap_grid ** 2
                            + 3 * joints * self.keypoint_coordinates)
        self.alpha = nn.Parameter(torch.ones(num_ranges, len(self.residual_blocks))) if resolution_aware else None

    @property
    def resolution_aware(self) -> bool:
        return self.alpha is not None

    def load_pose2d_state(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> int:
        """Load the trunk, FPN and heatmap head of a 2D MoveNet-head keypoint model (``backbone.features.*`` and
        ``head.heatmap.*`` keys of its state dict); returns the number of tensors loaded."""
        features = {k[len("backbone.features."):]: v for k, v in state.items() if k.startswith("backbone.features.")}
        heatmap = {k[len("head.heatmap."):]: v for k, v in state.items() if k.startswith("head.heatmap.")}
        ours_f, ours_h = self.features.state_dict(), self.heatmap.state_dict()
        if set(features) != set(ours_f) or set(heatmap) != set(ours_h) or any(
                v.shape != ours_f[k].shape for k, v in features.items()) or any(
                v.shape != ours_h[k].shape for k, v in heatmap.items()):
            raise ValueError(f"{source}: not a 2D MoveNet-{self.variant} keypoint model with MoveNet's heads "
                             f"({len(features)} trunk and {len(heatmap)} heatmap-head tensors found, "
                             f"{len(ours_f)} and {len(ours_h)} expected)")
        self.features.load_state_dict({k: v.to(ours_f[k].dtype) for k, v in features.items()})
        self.heatmap.load_state_dict({k: v.to(ours_h[k].dtype) for k, v in heatmap.items()})
        return len(features) + len(heatmap)

    def _weights(self, images: torch.Tensor, range_index: torch.Tensor | None) -> torch.Tensor | None:
        if self.alpha is None:
            return None
        if range_index is None:
            raise ValueError("a resolution-aware network needs range_index (B,) for its inputs")
        range_index = torch.as_tensor(range_index, device=images.device).long().reshape(-1)
        if range_index.shape[0] != images.shape[0]:
            raise ValueError(f"range_index must be ({images.shape[0]},), got {tuple(range_index.shape)}")
        if not torch.jit.is_tracing() and bool(((range_index < 0) | (range_index >= self.num_ranges)).any()):
            raise ValueError(f"range_index must be in [0, {self.num_ranges}), got {range_index.tolist()}")
        return self.alpha[range_index].to(images.dtype)  # (B, residual blocks)

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(images, "B 3 H W", "images")
        fpn, top = self.features(images, self._weights(images, range_index), with_top=True)
        logits = self.heatmap(fpn)
        heatmaps = torch.sigmoid(logits)
        parts = [top.mean(dim=(-2, -1)), _grid_pool(heatmaps, self.heatmap_grid).flatten(1)]
        if self.keypoint_coordinates:
            # Read-outs of the 2D head, not trained through: with gradients through the softmax, a run's trunk
            # collapsed to constant features within 600 steps (heatmaps saturated, every person the same body).
            coordinates = soft_argmax(logits.detach().float()).flatten(1).to(top.dtype)
            parts += [coordinates, heatmaps.detach().flatten(2).amax(-1)]
        return torch.cat(parts, dim=1)


def _grid_pool(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """Average pooling to ``grid`` x ``grid``: a plain average pool when the sides divide (ONNX exports it;
    the exporter refuses adaptive pooling of a traced size), adaptive otherwise (same values)."""
    h, w = int(maps.shape[-2]), int(maps.shape[-1])
    if h % grid == 0 and w % grid == 0:
        return F.avg_pool2d(maps, (h // grid, w // grid))
    return F.adaptive_avg_pool2d(maps, grid)


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) heatmap logits -> (B, K, 2) expected (x, y) under a softmax over each map, in [-1, 1]
    (pixel centres: -1 + (2 i + 1) / side)."""
    b, k, h, w = logits.shape
    probabilities = torch.softmax(logits.flatten(2), dim=-1).view(b, k, h, w)
    xs = (2 * torch.arange(w, device=logits.device, dtype=logits.dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=logits.device, dtype=logits.dtype) + 1) / h - 1
    return torch.stack([(probabilities.sum(-2) * xs).sum(-1), (probabilities.sum(-1) * ys).sum(-1)], dim=-1)
