"""Person boxes <-> CenterNet targets (Zhou et al. 2019, "Objects as points"), in MoveNet MultiPose's layout.

A box is a peak on a ``center`` heatmap at stride ``s``, its height and width in cells (``box_scale``) and its
centre's offset from the peak cell (``box_offset``), read at the peak; two-channel maps are ``(y, x)``. As in
MultiPose's graph, cell ``c`` stands at input coordinate ``s x c`` counted from the first pixel's edge, so a box
with edges ``[y0, y1]`` (edge coordinates) has its centre at ``(y0 + y1) / 2s`` cells. Boxes outside, in and
out of this codec are ``x, y, w, h`` with pixel centres at integers (the :class:`~lowres_hps.apis.detector.Detector`
convention): edges at ``x`` and ``x + w`` in centre coordinates, ``x + 0.5`` and ``x + w + 0.5`` in edge ones.

``encode`` splats a Gaussian per person on the heatmap with CenterNet's radius (the largest shift that keeps
IoU >= ``min_overlap`` with the true box); ``decode`` keeps cells equal to their 5 x 5 maximum and takes the
highest. Hand-written: no maintained library ships CenterNet targets without its training framework.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lowres_hps.models.codecs.base import gather_cells

__all__ = ["CenterTargets", "CenterNetBoxCodec", "gaussian_radius"]


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's Gaussian radius (cells) for boxes ``height x width`` (cells): the smallest of the three
    corner-shift cases that keep IoU >= ``min_overlap`` (the corrected formulas of the CornerNet issue)."""
    h, w = height.double(), width.double()
    a1, b1, c1 = 1.0, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - torch.sqrt(b1 ** 2 - 4 * a1 * c1)) / (2 * a1)
    a2, b2, c2 = 4.0, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 - torch.sqrt(b2 ** 2 - 4 * a2 * c2)) / (2 * a2)
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (-b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / (2 * a3)
    return torch.minimum(torch.minimum(r1, r2), r3).clamp(min=0).to(height.dtype)


@dataclass
class CenterTargets:
    """CenterNet targets of ``B`` images with up to ``N`` people on an ``h x w`` map.

    Attributes:
        heatmap: (B, 1, h, w) in [0, 1], 1 exactly at each person's peak cell.
        index: (B, N) long, the peak cell ``y * w + x`` (0 for padding).
        box_scale: (B, N, 2) box height and width in cells.
        box_offset: (B, N, 2) box centre minus the peak cell, cells.
        weight: (B, N) 1 for real people whose centre falls on the map, else 0.
    """

    heatmap: torch.Tensor
    index: torch.Tensor
    box_scale: torch.Tensor
    box_offset: torch.Tensor
    weight: torch.Tensor


class CenterNetBoxCodec:
    """Boxes (input px) <-> CenterNet heatmap, box scale and offset targets at ``stride``.

    Args:
        stride: input px per map cell (4 for MoveNet's heads).
        min_overlap: CenterNet's IoU for the Gaussian radius.
        peak_window: side of the max-pooling window of the decoder's peak test (MultiPose's 5).
    """

    def __init__(self, stride: int = 4, min_overlap: float = 0.7, peak_window: int = 5) -> None:
        if stride < 1 or not 0 < min_overlap < 1 or peak_window < 1 or peak_window % 2 == 0:
            raise ValueError(f"stride >= 1, min_overlap in (0, 1) and an odd peak_window needed, got {stride}, "
                             f"{min_overlap}, {peak_window}")
        self.stride = int(stride)
        self.min_overlap = float(min_overlap)
        self.peak_window = int(peak_window)

    def centres(self, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes (..., 4) x, y, w, h -> (centres (..., 2) y, x in cells, sizes (..., 2) h, w in cells)."""
        x, y, w, h = boxes.unbind(-1)
        centre = torch.stack([(y + 0.5 + h / 2), (x + 0.5 + w / 2)], dim=-1) / self.stride
        return centre, torch.stack([h, w], dim=-1) / self.stride

    def encode(self, boxes: torch.Tensor, valid: torch.Tensor, map_size: tuple[int, int]) -> CenterTargets:
        """Targets of ``boxes`` (B, N, 4) x, y, w, h input px, ``valid`` (B, N) bool, on a ``map_size`` (h, w) map."""
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or valid.shape != boxes.shape[:2]:
            raise ValueError(f"boxes (B, N, 4) and valid (B, N) expected, got {tuple(boxes.shape)}, {tuple(valid.shape)}")
        b, n = valid.shape
        mh, mw = (int(v) for v in map_size)
        centre, size = self.centres(boxes.float())
        peak = centre.round().long()
        on_map = valid.bool() & (peak[..., 0] >= 0) & (peak[..., 0] < mh) & (peak[..., 1] >= 0) & (peak[..., 1] < mw)
        peak_y, peak_x = peak[..., 0].clamp(0, mh - 1), peak[..., 1].clamp(0, mw - 1)
        radius = gaussian_radius(size[..., 0], size[..., 1], self.min_overlap).floor().clamp(min=0)
        sigma = (2 * radius + 1) / 6
        ys = torch.arange(mh, dtype=torch.float32, device=boxes.device).view(1, 1, mh, 1)
        xs = torch.arange(mw, dtype=torch.float32, device=boxes.device).view(1, 1, 1, mw)
        dy = ys - peak_y.float().view(b, n, 1, 1)
        dx = xs - peak_x.float().view(b, n, 1, 1)
        r = radius.view(b, n, 1, 1)
        gauss = torch.exp(-(dy ** 2 + dx ** 2) / (2 * sigma.view(b, n, 1, 1) ** 2))
        gauss = gauss * ((dy.abs() <= r) & (dx.abs() <= r)) * on_map.view(b, n, 1, 1)
        heatmap = gauss.amax(dim=1, keepdim=True) if n else torch.zeros(b, 1, mh, mw, device=boxes.device)
        return CenterTargets(heatmap=heatmap, index=(peak_y * mw + peak_x) * on_map, box_scale=size * on_map[..., None],
                             box_offset=(centre - peak.float()) * on_map[..., None], weight=on_map.float())

    def decode(self, center_logits: torch.Tensor, box_scale: torch.Tensor, box_offset: torch.Tensor,
               max_people: int = 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Head outputs -> the ``max_people`` strongest people per image.

        Args:
            center_logits: (B, 1, h, w); box_scale, box_offset: (B, 2, h, w) in cells.

        Returns:
            ``(boxes (B, P, 4) x, y, w, h input px, scores (B, P) peak sigmoid, index (B, P) peak cells)``, sorted by
            score (cells that fail the peak test score 0).
        """
        b, _, h, w = center_logits.shape
        prob = torch.sigmoid(center_logits.float())
        pooled = F.max_pool2d(prob, self.peak_window, stride=1, padding=self.peak_window // 2)
        peaks = (prob * (prob >= pooled)).flatten(1)
        scores, index = peaks.topk(min(max_people, h * w), dim=1)
        cy, cx = (index // w).float(), (index % w).float()
        size = gather_cells(box_scale.float(), index).clamp(min=0) * self.stride
        centre = torch.stack([cy, cx], dim=-1) + gather_cells(box_offset.float(), index)
        centre = centre * self.stride
        boxes = torch.stack([centre[..., 1] - size[..., 1] / 2 - 0.5, centre[..., 0] - size[..., 0] / 2 - 0.5,
                             size[..., 1], size[..., 0]], dim=-1)
        return boxes, scores, index
