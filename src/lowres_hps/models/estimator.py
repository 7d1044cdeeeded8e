"""The contracts between models and the tools that run them (predict, evaluate, export).

Two ways of finding people, one contract each; :class:`~lowres_hps.apis.predictor.Predictor` branches on them:

- Top-down (:class:`PoseEstimator`): person crops made by
  :class:`~lowres_hps.imaging.protocol.LowResProtocol` in, keypoints in crop pixels out. 2D keypoint models
  and 3D body models share it: every call gets the crops' resolution ranges (``LowResCrop.range_index``),
  which resolution-aware networks need and the others ignore. A 3D model is also a :class:`BodyEstimator`.
- Whole image (:class:`MultiPersonEstimator`): images in, every person found in them out
  (:class:`ImagePeople`), with no boxes and no crops from the caller.

Anything with these attributes and methods fits: a model from the registry, an ONNX session, a test double.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["PoseEstimator", "BodyEstimator", "BodyPrediction", "MultiPersonEstimator", "ImagePeople"]


@runtime_checkable
class PoseEstimator(Protocol):
    """A top-down keypoint estimator on person crops.

    Attributes:
        input_size: network input ``(h, w)``, e.g. (64, 48), (128, 96), (64, 64).
        scale_factor: context margin of the crop around the aspect-fixed person box (the low-resolution
            protocol's ``scale_factor``, 1.25 by default).
        convention: keypoint convention of the output (e.g. ``"coco17"``).
    """

    input_size: tuple[int, int]
    scale_factor: float
    convention: str

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints of a batch of crops.

        Args:
            crops: (B, 3, h, w) uint8 RGB crops made by :class:`lowres_hps.imaging.protocol.LowResProtocol`
                with this estimator's ``input_size`` and ``scale_factor``.
            range_index: (B,) int64, the resolution range of each crop (``LowResCrop.range_index``).
                Estimators that are not resolution-aware ignore it; resolution-aware ones require it.

        Returns:
            ``(keypoints (B, K, 2), scores (B, K))``: keypoints in crop (input) pixel coordinates,
            pixel centres at integer coordinates; scores in [0, 1].
        """
        ...


@dataclass
class BodyPrediction:
    """Bodies of a batch of crops (all tensors on the CPU), in the crop camera.

    Attributes:
        pose_vector: (B, D) the body model's regression vector, root rotation in camera axes.
        camera: (B, 3) weak-perspective crop camera ``[s, tx, ty]``.
        translation: (B, 3) root position in the crop camera (metres).
        keypoints3d: (B, K, 3) keypoints in the crop camera (metres).
        keypoints2d: (B, K, 2) keypoints in crop pixels.
        vertices: (B, V, 3) mesh in the crop camera (metres), or None when not asked for.
        faces: (F, 3) triangles of the mesh.
        range_index: (B,) the resolution range each crop was run with.
        crop_focal: focal length (px) of the crop camera, whose principal point is the crop centre.
        crop_size: side (px) of the square crop the camera sees.
        fitted: (B,) bool, the bodies fitted to 2D keypoints after the network
            (:meth:`~lowres_hps.models.body3d.Body3DEstimator.fit_bodies`); None when no fit ran.
    """

    pose_vector: torch.Tensor
    camera: torch.Tensor
    translation: torch.Tensor
    keypoints3d: torch.Tensor
    keypoints2d: torch.Tensor
    vertices: torch.Tensor | None
    faces: torch.Tensor
    range_index: torch.Tensor
    crop_focal: float
    crop_size: int
    fitted: torch.Tensor | None = None


@runtime_checkable
class BodyEstimator(PoseEstimator, Protocol):
    """A top-down 3D body estimator; as a :class:`PoseEstimator` its keypoints are the bodies' projections.

    Attributes:
        body: the body model it runs after the network (``name``, ``faces``; :mod:`lowres_hps.body`).
    """

    body: Any

    def predict_bodies(self, crops: torch.Tensor, range_index: torch.Tensor,
                       with_vertices: bool = True) -> BodyPrediction:
        """Bodies of (B, 3, S, S) uint8 crops run at their resolution ranges (B,)."""
        ...


@dataclass(frozen=True)
class ImagePeople:
    """The people a :class:`MultiPersonEstimator` found in one image.

    Attributes:
        boxes: (N, 4) float64 person boxes ``x, y, w, h`` in image pixels.
        keypoints: (N, K, 3) float64 ``x, y, score`` in image pixels (pixel centres at integers).
        scores: (N,) float64 person scores in [0, 1].
        keypoints_3d: (N, K3, 3) float64 3D keypoints in metres in the camera of the image, or None.
        bodies: one JSON-ready body per person (as :attr:`~lowres_hps.apis.predictor.PersonPrediction.body`),
            or None.
        vertices: (N, V, 3) float32 meshes in the camera of the image, or None.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    keypoints_3d: np.ndarray | None = None
    bodies: list[dict[str, Any]] | None = None
    vertices: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if np.shape(self.boxes) != (n, 4) or np.ndim(self.keypoints) != 3 or len(self.keypoints) != n \
                or np.shape(self.keypoints)[2] != 3 or np.shape(self.scores) != (n,):
            raise ValueError(f"ImagePeople needs boxes (N, 4), keypoints (N, K, 3) and scores (N,), got "
                             f"{np.shape(self.boxes)}, {np.shape(self.keypoints)} and {np.shape(self.scores)}")
        for name in ("keypoints_3d", "bodies", "vertices"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"ImagePeople: {name} has {len(value)} entries for {n} people")


@runtime_checkable
class MultiPersonEstimator(Protocol):
    """A whole-image estimator: finds and describes every person itself (e.g. MILI), no boxes needed.

    Attributes:
        convention: keypoint convention of :attr:`ImagePeople.keypoints`.
    """

    convention: str

    def predict_people(self, images: Sequence[np.ndarray]) -> list[ImagePeople]:
        """The people of each (H, W, 3) uint8 RGB image, one :class:`ImagePeople` per image."""
        ...
