"""The codec contract (keypoints <-> training targets) and the UDP coordinate mapping shared by all codecs.

Coordinates: pixel centres at integer coordinates, in the input crop and in the heatmap alike. A heatmap
of ``w_hm`` columns covers an input of ``w_in`` columns with the unbiased (UDP, Huang et al. 2020) mapping
``x_in = x_hm * (w_in - 1) / (w_hm - 1)`` (same along y), so the first and last pixel centres coincide and
a horizontal flip is exact at both resolutions.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

__all__ = [
    "KeypointTargets",
    "KeypointCodec",
    "OffsetCodec",
    "heatmap_argmax",
    "gather_at",
    "gather_cells",
    "udp_radius",
]

# UDP's "combined" target: positive radius = factor * max(h_hm, w_hm) heatmap px (mmpose UDPHeatmap default).
UDP_RADIUS_FACTOR = 0.0546875


def udp_radius(heatmap_size: tuple[int, int]) -> float:
    """UDP's default radius of the positive disc, in heatmap pixels: ``0.0546875 * max(h, w)``."""
    return UDP_RADIUS_FACTOR * max(heatmap_size)


@dataclass
class KeypointTargets:
    """Training targets of a batch of ``B`` people with ``K`` keypoints on an ``h x w`` heatmap.

    Attributes:
        heatmaps: (B, K, h, w) heatmap targets (zero for keypoints with zero weight).
        keypoint_weights: (B, K) 1 for visible keypoints whose target touches the heatmap, else 0.
        keypoints_hm: (B, K, 2) keypoints ``x, y`` in heatmap pixels, unrounded (0 where not visible).
        offsets: (B, K, 2, h, w) offset field ``(y - p) / offset_scale`` at every pixel ``p``; None for
            heatmap-only codecs.
        offset_weights: (B, K, h, w) per-pixel weights of the offset loss; None for heatmap-only codecs.
    """

    heatmaps: torch.Tensor
    keypoint_weights: torch.Tensor
    keypoints_hm: torch.Tensor
    offsets: torch.Tensor | None = None
    offset_weights: torch.Tensor | None = None


def heatmap_argmax(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer position and value of the maximum of each heatmap (first one on ties).

    Args:
        heatmaps: (..., h, w).

    Returns:
        ``(xy (..., 2) long, values (...))``.
    """
    w = heatmaps.shape[-1]
    values, flat = heatmaps.flatten(-2).max(dim=-1)
    return torch.stack([flat % w, torch.div(flat, w, rounding_mode="floor")], dim=-1), values


def gather_at(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Values of ``maps`` (..., C, h, w) at integer pixels ``xy`` (..., 2) -> (..., C)."""
    w = maps.shape[-1]
    flat = (xy[..., 1] * w + xy[..., 0])[..., None, None]  # (..., 1, 1)
    index = flat.expand(*maps.shape[:-2], 1)
    return maps.flatten(-2).gather(-1, index)[..., 0]


def gather_cells(maps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Values of ``maps`` (B, C, h, w) at flat cells ``index`` (B, N) (``y * w + x``) -> (B, N, C)."""
    b, c = maps.shape[:2]
    return maps.flatten(2).gather(2, index.unsqueeze(1).expand(b, c, index.shape[1])).transpose(1, 2)


class KeypointCodec(abc.ABC):
    """Encodes keypoints (input pixels) into heatmap targets and decodes network outputs back.

    Args:
        input_size: network input ``(h, w)`` in pixels, e.g. (64, 48).
        stride: input pixels per heatmap pixel; both input sides must be divisible by it and the heatmap
            must be at least 2 x 2 (e.g. stride 4: 64 x 48 -> 16 x 12; stride 1 keeps the input size).
    """

    #: Whether the codec has an offset field (the network must then predict ``offsets``).
    has_offsets: bool = False

    def __init__(self, input_size: tuple[int, int], stride: int = 4) -> None:
        if len(input_size) != 2 or any(int(s) != s or s < 2 for s in input_size):
            raise ValueError(f"input_size must be two integers >= 2 (h, w), got {tuple(input_size)}")
        if int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride}")
        h, w = int(input_size[0]), int(input_size[1])
        stride = int(stride)
        if h % stride or w % stride or h // stride < 2 or w // stride < 2:
            raise ValueError(
                f"input_size {(h, w)} must be divisible by stride {stride} into a heatmap of at least 2 x 2"
            )
        self.input_size = (h, w)
        self.stride = stride
        self.heatmap_size = (h // stride, w // stride)
        # (x, y) input pixels per heatmap pixel under the UDP mapping.
        self.scale = ((w - 1) / (self.heatmap_size[1] - 1), (h - 1) / (self.heatmap_size[0] - 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, stride={self.stride})"

    def input_to_heatmap(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 2) input pixels -> heatmap pixels."""
        return points / points.new_tensor(self.scale)

    def heatmap_to_input(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 2) heatmap pixels -> input pixels."""
        return points * points.new_tensor(self.scale)

    @abc.abstractmethod
    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor | None = None) -> KeypointTargets:
        """Targets of a batch.

        Args:
            keypoints: (B, K, 2) ``x, y`` in input pixels (floating point; may be non-finite where invisible).
            visible: (B, K) bool or 0/1; all visible when None. Values > 0.5 count as visible.
        """

    @abc.abstractmethod
    def decode(
        self, heatmaps: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints from network outputs.

        Args:
            heatmaps: (B, K, h, w).
            offsets: (B, K, 2, h, w) for codecs with offsets, else None.

        Returns:
            ``(keypoints (B, K, 2) in input pixels, scores (B, K))``.
        """

    # ------------------------------------------------------------------ helpers for subclasses

    def _check_encode_inputs(
        self, keypoints: torch.Tensor, visible: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated ``(keypoints_hm (B, K, 2), visible (B, K) bool)``; invisible/non-finite points -> 0."""
        if not isinstance(keypoints, torch.Tensor) or not keypoints.is_floating_point():
            raise TypeError("keypoints must be a floating point torch.Tensor")
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(f"keypoints must have shape (B, K, 2), got {tuple(keypoints.shape)}")
        if visible is None:
            visible = torch.ones(keypoints.shape[:2], dtype=torch.bool, device=keypoints.device)
        if not isinstance(visible, torch.Tensor) or visible.shape != keypoints.shape[:2]:
            shape = tuple(visible.shape) if isinstance(visible, torch.Tensor) else type(visible).__name__
            raise ValueError(f"visible must be a tensor of shape {tuple(keypoints.shape[:2])}, got {shape}")
        visible = (visible.to(keypoints.device) > 0.5) & torch.isfinite(keypoints).all(dim=-1)
        keypoints = torch.where(visible[..., None], keypoints, torch.zeros_like(keypoints))
        return self.input_to_heatmap(keypoints), visible

    def _check_maps(self, maps: torch.Tensor, name: str, channels: tuple[int, ...] = ()) -> None:
        h, w = self.heatmap_size
        if not isinstance(maps, torch.Tensor) or maps.ndim != 4 + len(channels) \
                or tuple(maps.shape[2:]) != (*channels, h, w):
            expected = "(B, K, " + "".join(f"{c}, " for c in channels) + f"{h}, {w})"
            got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(f"{name} must have shape {expected}, got {got}")

    def _pixel_deltas(self, keypoints_hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y - p`` for every heatmap pixel ``p``, as x (B, K, 1, w) and y (B, K, h, 1) parts."""
        h, w = self.heatmap_size
        xs = torch.arange(w, dtype=keypoints_hm.dtype, device=keypoints_hm.device)
        ys = torch.arange(h, dtype=keypoints_hm.dtype, device=keypoints_hm.device)
        return keypoints_hm[..., 0, None, None] - xs, keypoints_hm[..., 1, None, None] - ys[:, None]


class OffsetCodec(KeypointCodec):
    """Heatmap on a disc of radius ``radius`` around each keypoint plus an offset field (G-RMI / UDP).

    Encoding (Eqs. 6-7): the disc ``B(p) = [|p - y| <= R]`` (heatmap pixels); the offset field stores
    ``(y - p) / R`` at EVERY pixel. Eq. 7 zeroes it outside the disc, but those pixels only ever meet zero
    weight under the binary and Gaussian offset weights, while the square Mixed Gaussian Masks of CAL reach
    beyond the disc and need the true offsets there. Decoding (Eq. 9, CAL Algorithm 2):
    ``y = argmax(heatmap) + R * offsets(argmax)``.

    Args:
        input_size, stride: see :class:`KeypointCodec`.
        radius: ``R`` in heatmap pixels; None for UDP's ``0.0546875 * max(h_hm, w_hm)`` (e.g. 0.875 for a
            16 x 12 heatmap, 3.5 for 64 x 48). A visible keypoint gets zero weight when no pixel centre lies
            within ``R``, which happens inside the heatmap too once ``R < sqrt(2) / 2``.
    """

    has_offsets = True

    def __init__(self, input_size: tuple[int, int], stride: int = 4, radius: float | None = None) -> None:
        super().__init__(input_size, stride)
        radius = udp_radius(self.heatmap_size) if radius is None else float(radius)
        if not radius > 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        self.radius = radius

    @property
    def offset_scale(self) -> float:
        """Heatmap pixels per offset unit: stored offsets are ``(y - p) / offset_scale``."""
        return self.radius

    def __repr__(self) -> str:
        return f"{type(self).__name__}(input_size={self.input_size}, stride={self.stride}, radius={self.radius})"

    @abc.abstractmethod
    def _heatmap_and_weights(
        self, inside: torch.Tensor, distance2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(heatmaps, offset_weights)`` from the disc ``inside`` and squared distances, both (B, K, h, w)."""

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor | None = None) -> KeypointTargets:
        keypoints_hm, visible = self._check_encode_inputs(keypoints, visible)
        dx, dy = self._pixel_deltas(keypoints_hm)
        distance2 = dx**2 + dy**2
        inside = distance2 <= self.radius**2
        keypoint_weights = (visible & inside.flatten(-2).any(dim=-1)).to(keypoints.dtype)
        heatmaps, offset_weights = self._heatmap_and_weights(inside, distance2)
        mask = keypoint_weights[..., None, None]
        offsets = torch.stack(torch.broadcast_tensors(dx, dy), dim=2) * (mask / self.offset_scale)[:, :, None]
        return KeypointTargets(
            heatmaps=heatmaps * mask,
            keypoint_weights=keypoint_weights,
            keypoints_hm=keypoints_hm,
            offsets=offsets,
            offset_weights=offset_weights * mask,
        )

    def _decode_offsets(
        self, heatmaps: torch.Tensor, offsets: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(keypoints (B, K, 2) input px, max heatmap value (B, K))`` by Eq. 9."""
        self._check_maps(heatmaps, "heatmaps")
        if offsets is None:
            raise ValueError(f"{type(self).__name__} decodes heatmaps AND offsets; offsets is None")
        self._check_maps(offsets, "offsets", channels=(2,))
        if offsets.shape[:2] != heatmaps.shape[:2]:
            raise ValueError(f"offsets {tuple(offsets.shape)} and heatmaps {tuple(heatmaps.shape)} disagree")
        xy, values = heatmap_argmax(heatmaps)
        offset = gather_at(offsets, xy)
        keypoints_hm = xy.to(offset.dtype) + offset * self.offset_scale
        return self.heatmap_to_input(keypoints_hm), values
