"""The contract between a 2D pose model and the tools that run it (predict, evaluate, export).

Anything with these attributes and this call signature can be driven by
``lowres_hps.apis.predictor``: a trained top-down model from the registry, an ONNX session, or
a test double.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["PoseEstimator"]


@runtime_checkable
class PoseEstimator(Protocol):
    """A top-down 2D keypoint estimator on person crops.

    Attributes:
        input_size: network input ``(h, w)``, e.g. (64, 48), (128, 96), (256, 192).
        scale_factor: context margin of the crop around the aspect-fixed person box (the
            low-resolution protocol's ``scale_factor``, 1.25 by default).
        convention: keypoint convention of the output (e.g. ``"coco17"``).
    """

    input_size: tuple[int, int]
    scale_factor: float
    convention: str

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints of a batch of crops.

        Args:
            crops: (B, 3, h, w) uint8 RGB crops made by :class:`lowres_hps.imaging.protocol.LowResProtocol`
                with this estimator's ``input_size`` and ``scale_factor``.

        Returns:
            ``(keypoints (B, K, 2), scores (B, K))``: keypoints in crop (input) pixel coordinates,
            pixel centres at integer coordinates; scores in [0, 1].
        """
        ...
