"""CAL (Confidence-Aware Learning) codec: Gaussian-weighted disc heatmap, offsets, Gaussian offset weights."""
from __future__ import annotations

import torch

from lowres_hps.models.codecs.base import KeypointTargets, OffsetCodec
from lowres_hps.models.codecs.gmm import mixed_gaussian_masks

__all__ = ["CALCodec"]


class CALCodec(OffsetCodec):
    """Gaussian heatmap weighing ``G = B * C`` (Eq. 10) with offsets (Eq. 7), decoded by Algorithm 2.

    Targets: ``heatmaps = G`` for an L2 loss; ``offset_weights = G``, the stage-1 offset weighing of Eq. 14.
    Stage 2 (Eq. 15) replaces them by the Mixed Gaussian Masks of :meth:`mixed_gaussian_masks`. Decoding
    is the argmax of the heatmap plus the offset there; the score is the raw heatmap value at the argmax.

    Args:
        input_size, stride, radius: see :class:`~lowres_hps.models.codecs.base.OffsetCodec`.
        sigma: std of the Gaussian ``C`` (Eq. 2) in heatmap pixels.
    """

    def __init__(
        self, input_size: tuple[int, int], stride: int = 4, radius: float | None = None, sigma: float = 2.0
    ) -> None:
        super().__init__(input_size, stride, radius)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_size={self.input_size}, stride={self.stride}, "
                f"radius={self.radius}, sigma={self.sigma})")

    def _heatmap_and_weights(
        self, inside: torch.Tensor, distance2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gaussian = torch.exp(-distance2 / (2 * self.sigma**2)) * inside
        return gaussian, gaussian

    def decode(
        self, heatmaps: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._decode_offsets(heatmaps, offsets)

    def mixed_gaussian_masks(
        self,
        pred_heatmaps: torch.Tensor,
        targets: KeypointTargets,
        num_components: int = 1,
        **gmm_options,
    ) -> torch.Tensor:
        """Stage-2 offset weights (Eq. 13, Algorithm 1) for a batch, falling back to ``G`` when degenerate.

        Args:
            pred_heatmaps: (B, K, h, w) predicted heatmaps of the batch (detached internally).
            targets: this codec's :meth:`encode` of the batch.
            num_components: GMM components (the paper: 1 below 256 x 192 inputs, 2 from 256 x 192).
            gmm_options: forwarded to :func:`~lowres_hps.models.codecs.gmm.mixed_gaussian_masks`.

        Returns:
            (B, K, h, w) masks in [0, 1], zero for keypoints of zero weight.
        """
        return mixed_gaussian_masks(
            pred_heatmaps,
            targets.keypoints_hm,
            targets.keypoint_weights,
            radius=self.radius,
            num_components=num_components,
            fallback_weights=targets.offset_weights,
            **gmm_options,
        )
