"""Gaussian heatmaps (SimpleBaseline / HRNet) with the argmax + quarter-offset decoder or DARK's decoder."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lowres_hps.models.codecs.base import KeypointCodec, KeypointTargets, heatmap_argmax

__all__ = ["MSRAHeatmap", "quarter_offset_refine", "dark_refine", "dark_blur_kernel_size"]


def dark_blur_kernel_size(sigma: float) -> int:
    """Odd blur kernel size whose OpenCV default sigma ``0.3 * ((k - 1) / 2 - 1) + 0.8`` matches ``sigma``.

    This is the rule behind mmpose's DARK defaults (11 for sigma 2, 17 for sigma 3).
    """
    half = max(1, round((sigma - 0.8) / 0.3 + 1))
    return 2 * half + 1


def _gaussian_kernel1d(kernel_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1D Gaussian with OpenCV's default sigma for ``kernel_size`` (``cv2.getGaussianKernel``)."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(kernel_size, dtype=dtype, device=device) - (kernel_size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _modulate(heatmaps: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """DARK's modulation: Gaussian blur (zero padding) rescaled to keep each heatmap's maximum."""
    b, k, h, w = heatmaps.shape
    kernel = _gaussian_kernel1d(kernel_size, heatmaps.dtype, heatmaps.device)
    x = heatmaps.reshape(b * k, 1, h, w)
    pad = kernel_size // 2
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, pad))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(pad, 0))
    blurred = x.view(b, k, h, w)
    original_max = heatmaps.amax(dim=(-2, -1), keepdim=True)
    blurred_max = blurred.amax(dim=(-2, -1), keepdim=True)
    safe_max = blurred_max.clamp_min(torch.finfo(heatmaps.dtype).tiny)
    ratio = torch.where(blurred_max > 0, original_max / safe_max, torch.ones_like(blurred_max))
    return blurred * ratio


def quarter_offset_refine(heatmaps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Shift integer maxima a quarter pixel towards the higher neighbour along x and y (SimpleBaseline).

    Args:
        heatmaps: (B, K, h, w).
        xy: (B, K, 2) long integer positions (usually the argmax).

    Returns:
        (B, K, 2) refined positions in heatmap pixels (dtype of ``heatmaps``); no shift along an axis
        where the position lacks a neighbour on either side.
    """
    h, w = heatmaps.shape[-2:]
    x, y = xy[..., 0], xy[..., 1]
    flat = heatmaps.flatten(-2)

    def at(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
        index = (py.clamp(0, h - 1) * w + px.clamp(0, w - 1))[..., None]
        return flat.gather(-1, index)[..., 0]

    dx = torch.where((x > 0) & (x < w - 1), at(x + 1, y) - at(x - 1, y), torch.zeros_like(flat[..., 0]))
    dy = torch.where((y > 0) & (y < h - 1), at(x, y + 1) - at(x, y - 1), torch.zeros_like(flat[..., 0]))
    return xy.to(heatmaps.dtype) + 0.25 * torch.stack([dx.sign(), dy.sign()], dim=-1)


def dark_refine(heatmaps: torch.Tensor, xy: torch.Tensor, blur_kernel_size: int = 11) -> torch.Tensor:
    """DARK (Zhang et al. 2020) sub-pixel refinement of integer maxima.

    The heatmap is blurred by a Gaussian (keeping its maximum), its log taken (clamped at 1e-10), and the
    maximum moved by one Newton step ``-H^-1 g`` with finite-difference gradient ``g`` and Hessian ``H``
    (the stencils of the reference implementation, mmpose's ``refine_keypoints_dark``). Positions within 2
    pixels of the border or with a singular Hessian stay unrefined.

    Args:
        heatmaps: (B, K, h, w).
        xy: (B, K, 2) long integer positions (usually the argmax of ``heatmaps``).
        blur_kernel_size: odd size of the modulation kernel (see :func:`dark_blur_kernel_size`).

    Returns:
        (B, K, 2) refined positions in heatmap pixels (dtype of ``heatmaps``).
    """
    if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")
    h, w = heatmaps.shape[-2:]
    log_maps = _modulate(heatmaps, blur_kernel_size).clamp_min(1e-10).log().flatten(-2)
    x, y = xy[..., 0], xy[..., 1]

    def at(ox: int, oy: int) -> torch.Tensor:
        index = ((y + oy).clamp(0, h - 1) * w + (x + ox).clamp(0, w - 1))[..., None]
        return log_maps.gather(-1, index)[..., 0]

    centre = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    interior = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2) & (det != 0)
    safe_det = torch.where(interior, det, torch.ones_like(det))
    # -H^-1 g with the closed-form inverse of the symmetric 2 x 2 Hessian.
    shift_x = -(dyy * dx - dxy * dy) / safe_det
    shift_y = -(dxx * dy - dxy * dx) / safe_det
    shift = torch.stack([shift_x, shift_y], dim=-1) * interior[..., None]
    return xy.to(heatmaps.dtype) + shift


class MSRAHeatmap(KeypointCodec):
    """Gaussian heatmaps (Eq. 2): the heatmap-only baseline of SimpleBaseline / HRNet.

    Encoding centres an unnormalised Gaussian of std ``sigma`` (heatmap pixels) on the exact sub-pixel
    keypoint (the unbiased encoding of DARK and UDP, no rounding of the centre) and zeroes it beyond
    ``3 sigma``; a visible keypoint whose Gaussian misses the heatmap gets zero weight. Decoding takes the
    argmax, then either the quarter-pixel shift towards the higher neighbour or, with ``decode_dark``, the
    DARK refinement. Scores are the heatmap maxima.

    Args:
        input_size, stride: see :class:`KeypointCodec`.
        sigma: Gaussian std in heatmap pixels.
        decode_dark: decode with :func:`dark_refine` instead of the quarter shift.
        blur_kernel_size: DARK modulation kernel; None for :func:`dark_blur_kernel_size` of ``sigma``.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        stride: int = 4,
        sigma: float = 2.0,
        decode_dark: bool = False,
        blur_kernel_size: int | None = None,
    ) -> None:
        super().__init__(input_size, stride)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.decode_dark = bool(decode_dark)
        if blur_kernel_size is None:
            blur_kernel_size = dark_blur_kernel_size(self.sigma)
        self.blur_kernel_size = int(blur_kernel_size)
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, stride={self.stride}, sigma={self.sigma}, "
                f"decode_dark={self.decode_dark})")

    def encode(self, keypoints: torch.Tensor, visible: torch.Tensor | None = None) -> KeypointTargets:
        keypoints_hm, visible = self._check_encode_inputs(keypoints, visible)
        dx, dy = self._pixel_deltas(keypoints_hm)
        distance2 = dx**2 + dy**2
        support = distance2 <= (3 * self.sigma) ** 2
        keypoint_weights = (visible & support.flatten(-2).any(dim=-1)).to(keypoints.dtype)
        heatmaps = torch.exp(-distance2 / (2 * self.sigma**2)) * support
        return KeypointTargets(
            heatmaps=heatmaps * keypoint_weights[..., None, None],
            keypoint_weights=keypoint_weights,
            keypoints_hm=keypoints_hm,
        )

    def decode(
        self, heatmaps: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_maps(heatmaps, "heatmaps")
        if offsets is not None:
            raise ValueError(f"{type(self).__name__} has no offsets; got an offsets tensor")
        xy, scores = heatmap_argmax(heatmaps)
        if self.decode_dark:
            keypoints_hm = dark_refine(heatmaps, xy, self.blur_kernel_size)
        else:
            keypoints_hm = quarter_offset_refine(heatmaps, xy)
        return self.heatmap_to_input(keypoints_hm), scores
