"""Person detectors for the predictor: a small ``Detector`` protocol, MoveNet MultiPose and OpenCV's HOG detector.

:class:`MILIDetector` runs a MILI network's person detector (PyTorch or ONNX Runtime). :class:`MultiPoseDetector` runs MoveNet MultiPose (Google, Apache-2.0; a CenterNet with person boxes, ported in
:mod:`lowres_hps.models.movenet`) on the whole image, upscaled so that small people reach its comfort zone.
:class:`HOGPeopleDetector` (Dalal & Triggs 2005,
OpenCV's pretrained linear SVM, nothing to download) finds people. Its 64 x 128 window misses people
shorter than about 100 px, so the image is upscaled first (2x by default) and the boxes are mapped back.
The image it works on is bounded (:data:`HOG_MAX_PIXELS`): a large image is reduced instead, so that time
and memory stay bounded (a 12000 x 9000 photo upscaled 2x would be 432 MP).
OpenCV 5 moved HOG to opencv-contrib: the ``opencv-contrib-python-headless`` wheel provides it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch
import torchvision

from lowres_hps.core.checks import check_image
from lowres_hps.imaging.frame import long_side_factor, resize_and_pad

__all__ = ["Detector", "HOGPeopleDetector", "HOG_WINDOW", "HOG_PERSON_EXTENT", "HOG_MAX_PIXELS", "hog_available",
           "MultiPoseDetector", "MILIDetector", "Detections", "PeopleDetector", "boxes_in_image"]

HOG_WINDOW = (64, 128)
"""Width and height in px of the default people detector's window."""
HOG_PERSON_EXTENT = (0.5, 0.75)
"""Fraction of the window's width and height the person fills: the INRIA training windows keep about 16 px
of margin on all four sides of the person (Dalal & Triggs 2005, §6.5), i.e. a 32 x 96 px person in 64 x 128."""
HOG_MAX_PIXELS = 3840 * 2160
"""Most pixels the detector works on (a 4K UHD frame, ~9 s on 2 cores): a 1080p frame still gets the 2x
upscale; larger images get less, or are reduced."""


@runtime_checkable
class Detector(Protocol):
    """Finds people in an image."""

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """People in one image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``(boxes (N, 4) float64 x, y, w, h in image px, scores (N,) float64 in [0, 1])``; boxes span
            ``[x, x + w] x [y, y + h]`` with pixel centres at integers (:mod:`lowres_hps.imaging.crop`).
        """
        ...


def hog_available() -> bool:
    """Whether this OpenCV build has the HOG people detector (OpenCV 4, or opencv-contrib in OpenCV 5)."""
    return hasattr(cv2, "HOGDescriptor")


class HOGPeopleDetector:
    """OpenCV's HOG + linear SVM people detector, on an upscaled image, with boxes shrunk to the person.

    Steps: resize by ``upscale`` (bilinear) -> ``cv2.HOGDescriptor.detectMultiScale`` (OpenCV's default
    window grouping, ``group_threshold``) -> boxes mapped back to the image -> non-maximum suppression at
    ``nms_iou`` -> each window shrunk about its centre by :data:`HOG_PERSON_EXTENT` to the person's extent.

    The score of a box is the logistic ``1 / (1 + exp(-margin))`` of the SVM margin of its best window: a
    monotone squashing into (0, 1), not a calibrated probability; 0.5 is the SVM's decision boundary
    (OpenCV's default ``hitThreshold`` of 0).

    Args:
        upscale: resize factor before detection; 2 lets the 128 px window see people about 50-100 px tall.
            Run time grows with its square (about 2 s for a 768 x 576 frame at 2x on 2 cores).
        min_score: boxes scoring below are dropped (passed to OpenCV as the margin ``logit(min_score)``).
        nms_iou: IoU above which the lower-scoring of two boxes is suppressed.
        group_threshold: OpenCV's grouping of overlapping windows (a detection needs more than this many);
            0 disables it and leaves NMS alone.
        scale_step: scale ratio between the pyramid levels.
        win_stride: window step in px of the upscaled image.
        max_pixels: the resized image has at most this many pixels: images for which ``upscale`` would give
            more are resized by the largest factor that fits instead (reduced, with area averaging, when
            below 1), so people smaller than about ``100 / factor`` px are missed there.
    """

    def __init__(self, upscale: float = 2.0, min_score: float = 0.5, nms_iou: float = 0.5,
                 group_threshold: int = 2, scale_step: float = 1.05, win_stride: int = 8,
                 max_pixels: int = HOG_MAX_PIXELS) -> None:
        if not hog_available():
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it to opencv-contrib): "
                "install opencv-contrib-python-headless, or give person boxes (--boxes)")
        if not 0 < upscale < math.inf:
            raise ValueError(f"upscale must be positive and finite, got {upscale}")
        if not max_pixels >= HOG_WINDOW[0] * HOG_WINDOW[1]:
            raise ValueError(f"max_pixels must be at least one {HOG_WINDOW[0]} x {HOG_WINDOW[1]} window, "
                             f"got {max_pixels}")
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {min_score}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not scale_step > 1.0:
            raise ValueError(f"scale_step must be above 1, got {scale_step}")
        if group_threshold < 0 or win_stride < 1:
            raise ValueError(f"group_threshold must be >= 0 and win_stride >= 1, got {group_threshold}, {win_stride}")
        self.upscale = float(upscale)
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self.group_threshold = int(group_threshold)
        self.scale_step = float(scale_step)
        self.win_stride = int(win_stride)
        self.max_pixels = int(max_pixels)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())

    def __repr__(self) -> str:
        return (f"HOGPeopleDetector(upscale={self.upscale}, min_score={self.min_score}, nms_iou={self.nms_iou}, "
                f"group_threshold={self.group_threshold}, max_pixels={self.max_pixels})")

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Detector`."""
        check_image(image)
        height, width = image.shape[:2]
        scale = min(self.upscale, math.sqrt(self.max_pixels / (width * height)))
        up_w, up_h = round(width * scale), round(height * scale)
        empty = np.zeros((0, 4)), np.zeros(0)
        if up_w < HOG_WINDOW[0] or up_h < HOG_WINDOW[1]:
            return empty  # smaller than one window
        work = image if (up_w, up_h) == (width, height) else cv2.resize(
            image, (up_w, up_h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        margin = math.log(self.min_score / (1.0 - self.min_score))
        # HOG takes the strongest gradient over the channels, so RGB and BGR give the same result.
        rects, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(work), hitThreshold=margin, winStride=(self.win_stride, self.win_stride),
            scale=self.scale_step, groupThreshold=self.group_threshold)
        if len(rects) == 0:
            return empty
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        keep = scores >= self.min_score  # grouping may report a group below the per-window threshold
        rects, scores = rects[keep], scores[keep]

        # Window pixel indices x .. x + w - 1 have edges x - 0.5 and x + w - 0.5 in the upscaled image;
        # cv2.resize maps an upscaled point u to (u + 0.5) / s - 0.5, so the edges become x / s - 0.5 ...
        boxes = np.concatenate([rects[:, :2] / scale - 0.5, rects[:, 2:] / scale], axis=1)
        corners = torch.from_numpy(np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1))
        order = torchvision.ops.nms(corners, torch.from_numpy(scores), self.nms_iou).numpy()
        boxes, scores = boxes[order], scores[order]

        extent = np.asarray(HOG_PERSON_EXTENT)
        centre = boxes[:, :2] + 0.5 * boxes[:, 2:]
        size = boxes[:, 2:] * extent
        return np.concatenate([centre - 0.5 * size, size], axis=1), scores


class _WholeImageDetector:
    """What the detectors that run a network on the whole resized image share: the resize rule, the score and
    NMS settings, and their description."""

    def _set_options(self, upscale: float | None, min_score: float, nms_iou: float, max_people: int,
                     max_pixels: int, target_long_side: int, max_upscale: float) -> None:
        _check_resize_options(upscale, target_long_side, max_upscale, min_score, nms_iou, max_people, max_pixels)
        self.upscale = None if upscale is None else float(upscale)
        self.target_long_side = int(target_long_side)
        self.max_upscale = float(max_upscale)
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self.max_people = int(max_people)
        self.max_pixels = int(max_pixels)

    def _settings(self) -> str:
        upscale = f"auto (long side {self.target_long_side}, at most x{self.max_upscale:g})" if self.upscale is None \
            else f"{self.upscale:g}"
        return f"upscale={upscale}, min_score={self.min_score}, nms_iou={self.nms_iou}, max_people={self.max_people}"

    def factor(self, height: int, width: int) -> float:
        """The resize factor used for an image of ``height x width``."""
        if self.upscale is None:
            return long_side_factor(height, width, self.target_long_side, self.max_upscale, self.max_pixels)
        return min(self.upscale, math.sqrt(self.max_pixels / (width * height)))


class MultiPoseDetector(_WholeImageDetector):
    """People from MoveNet MultiPose's box heads, on the whole image resized by ``upscale``.

    Steps: resize by ``upscale`` (bilinear up, area down), capped at ``max_pixels`` -> zero-pad right and
    bottom to multiples of 32 -> the network and its own decoder (:func:`~lowres_hps.models.movenet.decode_multipose`,
    up to ``max_people`` peaks) -> boxes mapped back to the image -> boxes scoring below ``min_score`` dropped
    -> non-maximum suppression at ``nms_iou`` (the decoder's 5 x 5 peak test leaves duplicates on tall people).

    The score of a box is MultiPose's person score: the centre peak times the mean of the keypoint scores above
    0.127; not a calibrated probability.

    Args:
        upscale: resize factor before detection; None (default): the factor that brings the image's long side to
            ``target_long_side``, between 1 and ``max_upscale``. MultiPose finds people best when they are 50 px
            tall or more in its input (``benchmarks/README.md``): upscaling lets it see small ones.
        target_long_side, max_upscale: the automatic factor (never below 1: large frames keep their pixels).
        min_score: boxes scoring below are dropped.
        nms_iou: IoU above which the lower-scoring of two boxes is suppressed.
        max_people: centre peaks decoded per image (memory grows with it times the image's area).
        max_pixels: the resized image has at most this many pixels (as :data:`HOG_MAX_PIXELS`).
        model: a loaded :class:`~lowres_hps.models.movenet.MoveNetMultiPose`; default: the published weights
            (``scripts/get_pretrained.sh``).
        device: where the network runs.
    """

    def __init__(self, upscale: float | None = None, min_score: float = 0.1, nms_iou: float = 0.5,
                 max_people: int = 20, max_pixels: int = 1920 * 1088, target_long_side: int = 1024,
                 max_upscale: float = 4.0, model=None, device: str | torch.device = "cpu") -> None:
        self._set_options(upscale, min_score, nms_iou, max_people, max_pixels, target_long_side, max_upscale)
        if model is None:
            from lowres_hps.models.movenet import load_movenet_multipose

            model = load_movenet_multipose()
        self.model = model.eval().to(device)
        self.model.max_people = int(max_people)
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"MultiPoseDetector({self._settings()})"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Detector`."""
        check_image(image)
        height, width = image.shape[:2]
        work, (new_h, new_w) = resize_and_pad(image, self.factor(height, width))
        tensor = torch.from_numpy(work).permute(2, 0, 1).unsqueeze(0).to(self.device)
        with torch.no_grad():
            out = self.model(tensor)[0].float().cpu().numpy()  # (P, 56)
        in_h, in_w = work.shape[:2]
        boxes_norm, scores = out[:, 51:55].astype(np.float64), out[:, 55].astype(np.float64)
        keep = scores >= max(self.min_score, 1e-6)
        # Normalised edges (0 = the first pixel's edge) -> edges in the resized image.
        edges = boxes_norm[keep][:, [1, 0, 3, 2]] * np.array([in_w, in_h, in_w, in_h])
        return boxes_in_image(edges, scores[keep], (new_h / height, new_w / width), (height, width), self.nms_iou)


def boxes_in_image(edges: np.ndarray, scores: np.ndarray, scale: tuple[float, float], size: tuple[int, int],
                   nms_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes found on a resized image -> the image's boxes: ``edges`` (N, 4) ``x0, y0, x1, y1`` in the resized
    image's edge coordinates (0 = the first pixel's left edge), ``scale`` its ``(sy, sx)`` factors, ``size`` the
    image's ``(height, width)`` -> ``(boxes (N', 4) x, y, w, h image px with pixel centres at integers, scores)``,
    clipped to the image, empty boxes dropped, non-maximum suppression at ``nms_iou``, strongest first.
    (cv2.resize maps a resized pixel centre u to (u + 0.5) / s - 0.5, so an edge e maps to e / s - 0.5.)"""
    height, width = size
    sy, sx = scale
    edges = np.asarray(edges, np.float64).reshape(-1, 4)
    x0 = np.clip(edges[:, 0] / sx - 0.5, -0.5, width - 0.5)
    y0 = np.clip(edges[:, 1] / sy - 0.5, -0.5, height - 0.5)
    x1 = np.clip(edges[:, 2] / sx - 0.5, -0.5, width - 0.5)
    y1 = np.clip(edges[:, 3] / sy - 0.5, -0.5, height - 0.5)
    valid = (x1 - x0 > 0) & (y1 - y0 > 0)
    corners = np.stack([x0, y0, x1, y1], axis=1)[valid]
    scores = np.asarray(scores, np.float64)[valid]
    if len(scores) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    order = torchvision.ops.nms(torch.from_numpy(corners), torch.from_numpy(scores), nms_iou).numpy()
    corners, scores = corners[order], scores[order]
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1), scores


class MILIDetector(_WholeImageDetector):
    """People from a MILI network's detector: its CenterNet centre and box heads on the low-resolution branch
    (:mod:`lowres_hps.models.mili`), without its RoI heads, in PyTorch or in ONNX Runtime.

    Steps as :class:`MultiPoseDetector`'s: resize (long side to ``target_long_side`` by default: 768 px, chosen on
    validation frames, where it beat 1024 with people 80-27 px tall and tied at 20 px, at half the time) -> zero-pad to
    multiples of 32 -> the dense heads -> the ``max_people`` strongest 3 x 3 centre peaks
    (:class:`~lowres_hps.models.codecs.centernet.CenterNetBoxCodec`) -> boxes mapped back, those below
    ``min_score`` dropped -> non-maximum suppression. The score is the centre peak's probability. An untrained
    MILI network carries MoveNet MultiPose's centre and box heads, so ``MILIDetector(MILINet(MILIConfig()))``
    is MultiPose without its keypoint decoder (most of :class:`MultiPoseDetector`'s time).

    Args:
        model: a :class:`~lowres_hps.models.mili.MILINet`, a :class:`~lowres_hps.models.mili.MILIEstimator`, or
            the path of its detector's ONNX export (``lowres-hps export``; float32 or int8).
        upscale, target_long_side, max_upscale, max_pixels: the resize, as :class:`MultiPoseDetector`'s.
        min_score, nms_iou, max_people: as :class:`MultiPoseDetector`'s.
        num_threads: ONNX Runtime's intra-op threads (None: its default).
        device: where a PyTorch network runs.
        masks: also give each person's instance mask (:meth:`detect`; PyTorch models with a mask head only).
        mask_threshold: mask probability from which a pixel belongs to the person. 0.3 was chosen on held-out
            SynthLR scenes reduced 3x (mask IoU of matched people with ``mili_multipose``: 0.352 / 0.439 / 0.429 /
            0.257 at 0.2 / 0.3 / 0.4 / 0.5): its mask head is soft.
    """

    def __init__(self, model, upscale: float | None = None, min_score: float = 0.2, nms_iou: float = 0.5,
                 max_people: int = 20, max_pixels: int = 1920 * 1088, target_long_side: int = 768,
                 max_upscale: float = 4.0, num_threads: int | None = None, device: str | torch.device = "cpu",
                 masks: bool = False, mask_threshold: float = 0.3) -> None:
        self._set_options(upscale, min_score, nms_iou, max_people, max_pixels, target_long_side, max_upscale)
        from lowres_hps.models.codecs.centernet import CenterNetBoxCodec

        self.codec = CenterNetBoxCodec(stride=4)
        self.session = None
        if isinstance(model, (str, Path)):
            from lowres_hps.apis.export import open_session, read_onnx_card

            card = read_onnx_card(model)
            if card.task != "mili":
                raise ValueError(f"{model}: a {card.task} model, not a MILI detector export")
            if masks:
                raise ValueError(f"{model}: instance masks come from the RoI heads, which the ONNX export leaves "
                                 f"out; use the MILI model itself (its name or checkpoint) for masks")
            self.session, _ = open_session(model, num_threads, None)
            self.name = f"{card.name} (ONNX Runtime, {Path(model).name})"
        else:
            network = getattr(model, "model", model)
            self.network = network.eval().to(device)
            card = getattr(model, "card", None)
            self.name = getattr(card, "name", None) or "MILINet"
            if masks and not network.config.mask_head:
                raise ValueError(f"{self.name} has no mask head (mask_head: false): it gives no instance masks")
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {mask_threshold}")
        self.masks = bool(masks)
        self.mask_threshold = float(mask_threshold)
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"MILIDetector({self.name}, {self._settings()}{', masks' if self.masks else ''})"

    def heads(self, work: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The dense heads on one padded (H, W, 3) uint8 image: ``center`` (1, 1, H/4, W/4) logits, ``box_scale``
        and ``box_offset`` (1, 2, H/4, W/4), on the CPU."""
        return self._forward(work)[:3]

    def _forward(self, work: np.ndarray) -> tuple[torch.Tensor, ...]:
        """:meth:`heads`, plus the stride-4 features (PyTorch only) for the RoI heads."""
        if self.session is not None:
            images = np.ascontiguousarray(work.transpose(2, 0, 1)[None], dtype=np.float32)
            return tuple(torch.from_numpy(v) for v in self.session.run(None, {"images": images}))
        tensor = torch.from_numpy(work).permute(2, 0, 1).unsqueeze(0).to(self.device)
        with torch.no_grad():
            from lowres_hps.models.mili import LOW

            out = self.network(tensor, LOW)
        return (*(out[k].float().cpu() for k in ("center", "box_scale", "box_offset")), out["features"])

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Detector`."""
        found = self.detect(image)
        return found.boxes, found.scores

    def detect(self, image: np.ndarray) -> Detections:
        """The people of one (H, W, 3) uint8 RGB image: boxes and scores as :meth:`__call__`, and with ``masks``
        each person's instance mask from the occlusion-aware mask head (Eq. 5), pasted into the image."""
        check_image(image)
        height, width = image.shape[:2]
        work, (new_h, new_w) = resize_and_pad(image, self.factor(height, width))
        outputs = self._forward(work)
        boxes, scores, _ = self.codec.decode(*outputs[:3], self.max_people)
        boxes, scores = boxes[0].double().numpy(), scores[0].double().numpy()
        keep = scores >= max(self.min_score, 1e-6)
        boxes, scores = boxes[keep], scores[keep]
        edges = np.concatenate([boxes[:, :2] + 0.5, boxes[:, :2] + 0.5 + boxes[:, 2:]], axis=1)
        scale = (new_h / height, new_w / width)
        boxes, scores = boxes_in_image(edges, scores, scale, (height, width), self.nms_iou)
        if not self.masks:
            return Detections(boxes, scores)
        return Detections(boxes, scores, self._masks(outputs[3], boxes, scale, (height, width)))

    def _masks(self, features: torch.Tensor, boxes: np.ndarray, scale: tuple[float, float],
               size: tuple[int, int]) -> np.ndarray:
        """(N, H, W) bool masks of ``boxes`` (image px): the mask head's probabilities on each box's RoI grid,
        resized to the box and thresholded at ``mask_threshold``."""
        height, width = size
        masks = np.zeros((len(boxes), height, width), bool)
        if not len(boxes):
            return masks
        sy, sx = scale
        # Image boxes -> edges in the resized image (the inverse of boxes_in_image's mapping).
        x0, y0 = (boxes[:, 0] + 0.5) * sx, (boxes[:, 1] + 0.5) * sy
        x1, y1 = (boxes[:, 0] + boxes[:, 2] + 0.5) * sx, (boxes[:, 1] + boxes[:, 3] + 0.5) * sy
        rois = torch.from_numpy(np.stack([np.zeros(len(boxes)), x0, y0, x1, y1], axis=1)).float().to(features.device)
        with torch.no_grad():
            probs = torch.sigmoid(self.network.roi(features, rois)["mask_logits"].float())[:, 0].cpu().numpy()
        for n, (box, prob) in enumerate(zip(boxes, probs)):
            left, top = int(np.floor(box[0] + 0.5)), int(np.floor(box[1] + 0.5))
            right = int(np.ceil(box[0] + box[2] + 0.5))
            bottom = int(np.ceil(box[1] + box[3] + 0.5))
            if right <= left or bottom <= top:
                continue
            pasted = cv2.resize(prob, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR) >= self.mask_threshold
            t0, l0, t1, l1 = max(0, top), max(0, left), min(height, bottom), min(width, right)
            masks[n, t0:t1, l0:l1] = pasted[t0 - top:t1 - top, l0 - left:l1 - left]
        return masks


@dataclass(frozen=True)
class Detections:
    """People found in one image: ``boxes`` (N, 4) float64 ``x, y, w, h`` image px, ``scores`` (N,), and ``masks``
    (N, H, W) bool instance masks when the detector gives them, else None."""

    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None = None


def _check_resize_options(upscale, target_long_side, max_upscale, min_score, nms_iou, max_people, max_pixels) -> None:
    if upscale is not None and not 0 < upscale < math.inf:
        raise ValueError(f"upscale must be positive and finite, got {upscale}")
    if not target_long_side >= 32 or not 1.0 <= max_upscale < math.inf:
        raise ValueError(f"target_long_side must be >= 32 and max_upscale >= 1, got {target_long_side}, "
                         f"{max_upscale}")
    if not 0.0 <= min_score < 1.0:
        raise ValueError(f"min_score must be in [0, 1), got {min_score}")
    if not 0.0 < nms_iou <= 1.0:
        raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
    if max_people < 1 or max_pixels < 32 * 32:
        raise ValueError(f"max_people must be >= 1 and max_pixels >= 1024, got {max_people}, {max_pixels}")


class PeopleDetector:
    """The boxes of a whole-image :class:`~lowres_hps.models.estimator.MultiPersonEstimator` (e.g. MILI) as a
    :class:`Detector` (its keypoints and bodies are not used here)."""

    def __init__(self, estimator, min_score: float = 0.0) -> None:
        self.estimator = estimator
        self.min_score = float(min_score)

    def __repr__(self) -> str:
        return f"PeopleDetector({self.estimator!r}, min_score={self.min_score})"

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`Detector`."""
        check_image(image)
        people = self.estimator.predict_people([image])[0]
        keep = people.scores >= self.min_score
        return np.asarray(people.boxes, np.float64)[keep], np.asarray(people.scores, np.float64)[keep]
