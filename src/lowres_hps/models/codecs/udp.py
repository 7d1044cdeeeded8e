"""UDP / G-RMI offset codec: binary disc heatmap (trained with cross-entropy) plus an offset field."""
from __future__ import annotations

import torch

from lowres_hps.models.codecs.base import OffsetCodec

__all__ = ["UDPBinary"]


class UDPBinary(OffsetCodec):
    """Binary heatmap ``B`` (Eq. 6) and offsets (Eq. 7), decoded by Eq. 9.

    Targets: ``heatmaps = B`` for a binary cross-entropy on logits; ``offset_weights = B`` (every pixel of
    the disc counts equally, Eq. 8). :meth:`decode` reads ``heatmaps`` as LOGITS: the argmax is the same
    as for probabilities and the score is ``sigmoid`` of the logit there.

    Args:
        input_size, stride, radius: see :class:`~lowres_hps.models.codecs.base.OffsetCodec`.
    """

    def _heatmap_and_weights(
        self, inside: torch.Tensor, distance2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        binary = inside.to(distance2.dtype)
        return binary, binary

    def decode(
        self, heatmaps: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keypoints, logits = self._decode_offsets(heatmaps, offsets)
        return keypoints, torch.sigmoid(logits)
