"""Keypoints and bodies of the people in whole images, by the contract of the estimator
(:mod:`lowres_hps.models.estimator`).

Top-down (a :class:`~lowres_hps.models.estimator.PoseEstimator`): person boxes -> low-resolution protocol
crops -> estimator -> image px. Each person box is cropped
by :class:`~lowres_hps.imaging.protocol.LowResProtocol` with the estimator's input size and scale factor
(setting ``"upsample"``): without ``person_height`` the crop goes straight to the input size; with it the
crop is taken at the source resolution, degraded so the person is ``person_height`` px tall, then resized
to the input size. The people of all images are batched together, and the keypoints are mapped back to
the image with the inverse of each crop's affine. Each crop goes with its resolution range
(``LowResCrop.range_index``), which resolution-aware estimators run it with.

Whole image (a :class:`~lowres_hps.models.estimator.MultiPersonEstimator`): the estimator finds and describes
the people itself; no boxes, no detector, no crops.

With a 3D body model (a :class:`~lowres_hps.models.estimator.BodyEstimator`, as ``body_estimator`` or as
the estimator itself) every person also gets a body. The 3D model sees its own protocol crop (its input
size and margin, the same ``person_height``) and predicts in its crop camera; the body is moved to the
camera of the whole image with :func:`~lowres_hps.geometry.camera.crop_to_full_translation`. That camera
is ASSUMED, since images do not say theirs: focal ``sqrt(W^2 + H^2)`` px (CLIFF's estimate, a ~53 degree
diagonal field of view) and principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``. The
conversion keeps the body's size in the image: its 3D keypoints seen by that camera
(``keypoints_3d_projected``) cover the crop region as the crop camera saw them (exactly on the root's depth
plane; off it, by the assumed camera's perspective).

Memory stays bounded for huge people: the protocol warps a crop region at its own pixel size, so a region
with a side above :data:`MAX_CROP_SIDE` px is first cut from the image and reduced (area averaging) by a
whole factor, then cropped as usual; its affine and box are given in the original image's pixels.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from lowres_hps.apis.detector import Detector
from lowres_hps.body.keypoints import get_convention
from lowres_hps.core.checks import check_image
from lowres_hps.fitting import KeypointFitConfig
from lowres_hps.geometry.camera import crop_to_full_translation, perspective_project
from lowres_hps.geometry.transforms import apply_affine, invert_affine
from lowres_hps.imaging.crop import crop_box
from lowres_hps.imaging.protocol import LowResCrop, LowResProtocol, input_range_index
from lowres_hps.models.estimator import BodyEstimator, ImagePeople, MultiPersonEstimator, PoseEstimator

__all__ = ["MAX_CROP_SIDE", "PersonPrediction", "Predictor", "full_image_camera", "bounded_crop", "project_to_image",
           "why_no_keypoint_fit", "mask_to_rle", "rle_to_mask"]

MAX_CROP_SIDE = 4096
"""Crop regions with a longer side (px; people above ~3300 px tall) are reduced before the protocol."""


def full_image_camera(image_size: tuple[int, int]) -> tuple[float, tuple[float, float]]:
    """The camera assumed for a whole ``(H, W)`` image: ``(focal, (cx, cy))`` with CLIFF's focal
    ``sqrt(W^2 + H^2)`` px and the principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)``."""
    height, width = image_size
    return math.hypot(width, height), ((width - 1) / 2.0, (height - 1) / 2.0)


def project_to_image(keypoints_3d: np.ndarray | None, body: dict[str, Any] | None) -> np.ndarray | None:
    """(K3, 3) metres in the camera of ``body`` (its ``focal`` and ``principal_point``) -> (K3, 2) float64
    image px; None when either is missing or the body names no camera (e.g. a multi-person estimator's own)."""
    if keypoints_3d is None or body is None or "focal" not in body or "principal_point" not in body:
        return None
    points = torch.as_tensor(np.asarray(keypoints_3d, dtype=np.float64))
    pixels = perspective_project(points, float(body["focal"]),
                                 torch.tensor(body["principal_point"], dtype=torch.float64))
    return pixels.numpy()


@dataclass(frozen=True)
class PersonPrediction:
    """Keypoints of one person in image coordinates.

    Attributes:
        bbox: (4,) float64 person box ``x, y, w, h`` the crop was made from (given or detected).
        keypoints: (K, 3) float64 ``x, y, score`` in image pixels (pixel centres at integers), in the
            estimator's convention.
        score: person score: the mean keypoint score times ``box_score`` (a multi-person estimator's own
            person score).
        box_score: the detector's score of the box; 1 for given boxes and for multi-person estimators.
        keypoints_3d: (K3, 3) float64 3D keypoints in metres in the full image camera (OpenCV axes: x right,
            y down, z forward), in the 3D model's convention; None without a 3D model.
        body: JSON-ready body of the 3D model, None without one: ``body_model`` (name), ``pose_vector``
            (the body model's regression vector, root rotation in camera axes), ``camera`` (weak-perspective
            ``[s, tx, ty]`` of the crop), ``translation`` (root position in the full camera, metres),
            ``focal`` and ``principal_point`` (the assumed full camera, px; see :func:`full_image_camera`),
            ``range_index`` (the resolution range the model ran with).
        vertices: (V, 3) float32 mesh in the full camera (metres) when asked for, else None; the faces are
            :attr:`Predictor.faces`.
        keypoints_3d_projected: (K3, 2) float64 ``keypoints_3d`` seen by the camera of ``body`` (``focal``,
            ``principal_point``), image px; None without a 3D model. It differs from a 3D model's own 2D
            keypoints (``keypoints``, its crop camera's view mapped back) off the plane of the root, by the
            perspective of the full camera.
        mask: the person's instance mask as COCO RLE (``size`` [H, W], ``counts`` a string; ``pycocotools.mask``
            decodes it) from a detector that gives masks (``MILIDetector(masks=True)``), else None.
        track_id: the person's id across a video's frames (:class:`~lowres_hps.apis.people_tracker.PeopleTracker`),
            else None.
    """

    bbox: np.ndarray
    keypoints: np.ndarray
    score: float
    box_score: float = 1.0
    keypoints_3d: np.ndarray | None = None
    body: dict[str, Any] | None = None
    vertices: np.ndarray | None = None
    keypoints_3d_projected: np.ndarray | None = None
    mask: dict[str, Any] | None = None
    track_id: int | None = None


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool mask -> COCO RLE with a JSON-ready string ``counts`` (pycocotools)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (``counts`` a string or bytes) -> (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str)
                              else counts}).astype(bool)


@dataclass(frozen=True)
class _Bodies:
    """3D results of a batch of people, in the full image cameras."""

    keypoints2d: np.ndarray  # (B, K, 3) x, y, score of the 3D model's projection, image px
    keypoints_3d: np.ndarray  # (B, K3, 3)
    bodies: list[dict[str, Any]]
    vertices: np.ndarray | None  # (B, V, 3) float32


def _with_projection(person: PersonPrediction) -> PersonPrediction:
    """``person`` with :attr:`PersonPrediction.keypoints_3d_projected` filled in from its body's camera."""
    projected = project_to_image(person.keypoints_3d, person.body)
    return person if projected is None else dataclasses.replace(person, keypoints_3d_projected=projected)


def _check_boxes(boxes, scores) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    if not np.isfinite(boxes).all() or (boxes[:, 2:] <= 0).any():
        raise ValueError(f"boxes must be finite x, y, w, h with positive w and h, got {boxes.tolist()}")
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(boxes),):
        raise ValueError(f"expected {len(boxes)} box scores, got {scores.shape[0]}")
    return boxes, scores


def bounded_crop(protocol: LowResProtocol, image: np.ndarray, bbox: np.ndarray, person_height: float | None,
                 max_side: int = MAX_CROP_SIDE) -> LowResCrop:
    """``protocol(image, bbox, person_height)``, with the crop region reduced first when a side of it is
    above ``max_side`` px (the protocol would warp it at full size: GBs for a huge person).

    The region (clipped to the image) is cut out, reduced by the smallest whole factor that brings it within
    ``max_side`` (``cv2.INTER_AREA``), and cropped by the protocol there; the affine and the region box are
    mapped back to ``image`` pixels. The reduced person is still over ``max_side / 2 / scale_factor`` px
    tall, far above any network input, so the input differs from the direct crop by resampling only.
    """
    bbox = np.asarray(bbox, dtype=np.float64)
    region = crop_box(bbox, protocol.input_size, protocol.scale_factor)
    factor = math.ceil(max(region[2], region[3]) / max_side)
    if factor <= 1:
        return protocol(image, bbox, person_height)
    height, width = image.shape[:2]
    x0, y0 = max(0, math.floor(region[0])), max(0, math.floor(region[1]))
    x1 = min(width, math.ceil(region[0] + region[2]) + 1)
    y1 = min(height, math.ceil(region[1] + region[3]) + 1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"person box {bbox.tolist()} lies outside the {width} x {height} image")
    if min(x1 - x0, y1 - y0) < factor:  # a sliver of the region in the image: too thin to reduce
        raise ValueError(f"person box {bbox.tolist()} barely overlaps the {width} x {height} image")
    # With fx = fy = 1 / factor OpenCV's area reduction uses exactly that scale on both axes (the size is
    # rounded, the scale is not): an image coordinate u maps to (u - x0 + 0.5) / factor - 0.5 in the cut.
    small = cv2.resize(image[y0:y1, x0:x1], None, fx=1.0 / factor, fy=1.0 / factor, interpolation=cv2.INTER_AREA)
    scale = 1.0 / factor
    to_small = np.array([[scale, 0.0, (0.5 - x0) * scale - 0.5], [0.0, scale, (0.5 - y0) * scale - 0.5]])
    small_box = np.concatenate([bbox[:2] * scale + to_small[:, 2], bbox[2:] * scale])
    crop = protocol(small, small_box, person_height)
    affine = crop.affine.numpy() @ np.vstack([to_small, [0.0, 0.0, 1.0]])
    box = np.concatenate([(crop.box[:2] - to_small[:, 2]) / scale, crop.box[2:] / scale])
    source_height = float(box[3]) / protocol.scale_factor
    effective = source_height if person_height is None else min(float(person_height), source_height)
    return LowResCrop(image=crop.image, affine=torch.from_numpy(affine).to(crop.affine.dtype),
                      person_height=effective, box=box,
                      range_index=int(input_range_index(effective, protocol.scale_factor)))


def why_no_keypoint_fit(estimator, body_estimator) -> str | None:
    """Why the bodies of ``body_estimator`` cannot be fitted to the 2D keypoints of ``estimator``
    (:attr:`Predictor.fit_keypoints`), or None when they can."""
    if body_estimator is None:
        return "no 3D model runs"
    if body_estimator is estimator:
        return "the 3D model is also the 2D model (its keypoints are its own bodies' projections)"
    if not hasattr(body_estimator, "fit_bodies"):
        return f"the 3D model ({type(body_estimator).__name__}) has no keypoint fit (fit_bodies)"
    if getattr(estimator, "convention", None) != body_estimator.convention:
        return (f"the 2D model's keypoints ({getattr(estimator, 'convention', None)}) are not in the 3D model's "
                f"convention ({body_estimator.convention})")
    return None


class Predictor:
    """Keypoints (and, with a 3D model, bodies) of every person in images, from given boxes or a detector.

    Args:
        estimator: a top-down :class:`~lowres_hps.models.estimator.PoseEstimator` (its ``input_size``,
            ``scale_factor`` and ``convention`` are used), or a whole-image
            :class:`~lowres_hps.models.estimator.MultiPersonEstimator`. A top-down
            :class:`~lowres_hps.models.estimator.BodyEstimator` serves as the 3D model too, unless
            ``body_estimator`` names another; its 2D keypoints are its bodies' projections (score 1).
        detector: finds the people when no boxes are given; its scores multiply the person scores.
        person_height: ``R`` in px: each crop is degraded so the person box is ``R`` px tall before the
            estimator sees it (the low-resolution protocol, upsample setting). None: no degradation. Not for
            multi-person estimators, which see whole images.
        batch_size: people per estimator call.
        device: where the crops go before the estimator call; None leaves them on the CPU.
        body_estimator: the 3D body model, run on its own protocol crops of the same boxes (those a multi-person
            estimator found, when it gives no 3D itself); None: no 3D (unless ``estimator`` is one).
        with_vertices: also return each person's mesh (:attr:`PersonPrediction.vertices`), e.g. to draw it.
        fit_keypoints: fit each body to the person's 2D keypoints after the 3D network
            (:func:`lowres_hps.fitting.fit_body_to_keypoints` with these settings): the 2D model's keypoints (or
            a multi-person estimator's) are mapped into the 3D model's crop, and the body's joint rotations and
            crop camera move until its projection meets them, held near the network's output. None: the
            network's bodies as they are. Needs a 3D model other than the 2D estimator, in the same convention.
        fit_silhouettes: fit each body to the person's foreground silhouette after the network (and after the
            keypoint fit), as the silhouette-topology paper's inference-time fitting (its Fig. 5A): settings of
            :class:`~lowres_hps.methods.sta.SilhouetteAdaptConfig` (``fit_steps``, ``fit_lr``, ``losses``,
            ``render_size``). Used for the images given a ``foreground`` mask in :meth:`predict_images`.
        silhouette_prior: the pose prior the silhouette fit moves the body joints through
            (:class:`~lowres_hps.models.pose_prior.PosePrior`); None fits the joint rotations freely.
    """

    def __init__(self, estimator: PoseEstimator | MultiPersonEstimator, detector: Detector | None = None,
                 person_height: float | None = None, batch_size: int = 32,
                 device: torch.device | str | None = None, body_estimator: BodyEstimator | None = None,
                 with_vertices: bool = False, fit_keypoints: KeypointFitConfig | None = None,
                 fit_silhouettes=None, silhouette_prior=None) -> None:
        self.multi_person = isinstance(estimator, MultiPersonEstimator)
        if not self.multi_person and not isinstance(estimator, PoseEstimator):
            raise TypeError(f"estimator must be a PoseEstimator (input_size, scale_factor, convention, callable on "
                            f"crops) or a MultiPersonEstimator (convention, predict_people), got "
                            f"{type(estimator).__name__}")
        if body_estimator is None and isinstance(estimator, BodyEstimator):
            body_estimator = estimator
        if body_estimator is not None and not isinstance(body_estimator, BodyEstimator):
            raise TypeError(f"body_estimator must be a BodyEstimator (a PoseEstimator with body and predict_bodies), "
                            f"got {type(body_estimator).__name__}")
        if person_height is not None and not 0 < person_height < math.inf:
            raise ValueError(f"person_height must be positive and finite, got {person_height}")
        if person_height is not None and self.multi_person:
            raise ValueError("person_height degrades person crops: a multi-person estimator sees whole images")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.estimator = estimator
        self.detector = detector
        self.person_height = None if person_height is None else float(person_height)
        self.batch_size = int(batch_size)
        self.device = None if device is None else torch.device(device)
        self.protocol = None if self.multi_person else LowResProtocol(
            tuple(estimator.input_size), float(estimator.scale_factor), "upsample")
        self.body_estimator = body_estimator
        self.with_vertices = bool(with_vertices)
        self.body_protocol = None if body_estimator is None else LowResProtocol(
            tuple(body_estimator.input_size), float(body_estimator.scale_factor), "upsample")
        if fit_keypoints is not None:
            reason = why_no_keypoint_fit(estimator, body_estimator)
            if reason is not None:
                raise ValueError(f"fit_keypoints cannot run: {reason}")
        self.fit_keypoints = fit_keypoints
        self.fit_silhouettes = fit_silhouettes
        self._silhouette_fitter = None
        if fit_silhouettes is not None:
            if body_estimator is None or not hasattr(body_estimator, "bodies"):
                raise ValueError("fit_silhouettes needs a 3D body model (a Body3DEstimator)")
            from lowres_hps.methods.sta import SilhouetteAdaptLoss

            spec = body_estimator.body.pose_spec
            self._silhouette_fitter = SilhouetteAdaptLoss(fit_silhouettes, body_estimator.config, body_estimator.body,
                                                          torch.tensor(spec.rest_shape), prior=silhouette_prior)

    @property
    def faces(self) -> np.ndarray | None:
        """(F, 3) int64 triangles of :attr:`PersonPrediction.vertices`; None without a body model."""
        body = getattr(self.body_estimator or self.estimator, "body", None)
        if body is None:
            return None
        return torch.as_tensor(body.faces).detach().cpu().numpy().astype(np.int64)

    def crop(self, image: np.ndarray, bbox: np.ndarray) -> LowResCrop:
        """The estimator's input for one person box (what :meth:`predict_images` feeds it)."""
        if self.protocol is None:
            raise ValueError("a multi-person estimator takes whole images, not person crops")
        return bounded_crop(self.protocol, image, bbox, self.person_height)

    def body_crop(self, image: np.ndarray, bbox: np.ndarray) -> LowResCrop:
        """The 3D model's input for one person box (its own input size and margin, same ``person_height``)."""
        if self.body_protocol is None:
            raise ValueError("the predictor has no 3D body model")
        return bounded_crop(self.body_protocol, image, bbox, self.person_height)

    def predict_image(self, image: np.ndarray, boxes: np.ndarray | None = None,
                      box_scores: np.ndarray | None = None) -> list[PersonPrediction]:
        """People of one (H, W, 3) uint8 RGB image; ``boxes`` (N, 4) xywh, or None to run the detector."""
        return self.predict_images([image], None if boxes is None else [boxes],
                                   None if box_scores is None else [box_scores])[0]

    def refit_left_right(self, image: np.ndarray, people: Sequence[PersonPrediction]) -> list[PersonPrediction]:
        """``people`` of ``image`` with their 2D keypoints' left and right exchanged and their bodies fitted again
        to them (:attr:`fit_keypoints`), for when something other than the person's look says which way they face
        (their motion in a video: :class:`~lowres_hps.apis.people_tracker.PeopleTracker`). Each new body says
        ``"left_right_swapped": true``. Silhouette fitting is not repeated."""
        if self.fit_keypoints is None:
            raise ValueError("refit_left_right needs the keypoint fit (fit_keypoints)")
        check_image(image)
        people = list(people)
        if not people:
            return []
        flip = get_convention(self.body_estimator.convention).flip_permutation
        swapped = np.stack([np.asarray(p.keypoints, np.float64)[flip] for p in people])
        boxes = [np.asarray(p.bbox, np.float64) for p in people]
        refitted = []
        for start in range(0, len(people), self.batch_size):
            part = slice(start, start + self.batch_size)
            bodies = self._bodies([image] * len(boxes[part]), boxes[part], swapped[part])
            for n, person in enumerate(people[part]):
                refitted.append(_with_projection(dataclasses.replace(
                    person, keypoints=swapped[start + n], keypoints_3d=bodies.keypoints_3d[n],
                    body={**bodies.bodies[n], "left_right_swapped": True},
                    vertices=None if bodies.vertices is None else bodies.vertices[n])))
        return refitted

    def predict_images(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray] | None = None,
                       box_scores: Sequence[np.ndarray] | None = None,
                       foreground: Sequence[np.ndarray | None] | None = None) -> list[list[PersonPrediction]]:
        """People of several images, batched together across images.

        Args:
            images: (H, W, 3) uint8 RGB images.
            boxes: per image, (N_i, 4) person boxes ``x, y, w, h``; None runs the detector on every image (or
                the multi-person estimator, which takes no boxes).
            box_scores: per image, (N_i,) box scores (default 1); only with ``boxes``.
            foreground: per image, an (H, W) 0/1 foreground mask (e.g. background subtraction of a static camera,
                :mod:`lowres_hps.imaging.foreground`) or None: with :attr:`fit_silhouettes`, each person's
                silhouette (:func:`~lowres_hps.imaging.foreground.person_silhouettes` of the image's boxes) is what
                the body is fitted to.

        Returns:
            per image, one :class:`PersonPrediction` per box, in box order (detector order when detected,
            the estimator's order for a multi-person estimator), with ``keypoints_3d``, ``body`` (and
            ``vertices``) when the predictor has a 3D model.
        """
        for image in images:
            check_image(image)
        masks: list[list[dict[str, Any]]] | None = None
        if self.multi_person:
            if boxes is not None or box_scores is not None:
                raise ValueError("a multi-person estimator finds the people itself: give no boxes")
            return self._people(images)
        if boxes is None:
            if box_scores is not None:
                raise ValueError("box_scores need boxes")
            if self.detector is None:
                raise ValueError("no boxes given and the predictor has no detector")
            if getattr(self.detector, "masks", False):  # a detector with instance masks (MILIDetector(masks=True))
                found = [self.detector.detect(image) for image in images]
                boxes, box_scores = [d.boxes for d in found], [d.scores for d in found]
                masks = [[mask_to_rle(m) for m in d.masks] for d in found]
            else:
                detections = [self.detector(image) for image in images]
                boxes, box_scores = [d[0] for d in detections], [d[1] for d in detections]
        if len(boxes) != len(images) or (box_scores is not None and len(box_scores) != len(images)):
            raise ValueError(f"expected boxes for {len(images)} images, got {len(boxes)}")
        checked = [_check_boxes(b, None if box_scores is None else box_scores[i]) for i, b in enumerate(boxes)]
        silhouettes = self._person_silhouettes(images, [b for b, _ in checked], foreground)

        people = [(i, j) for i, (image_boxes, _) in enumerate(checked) for j in range(len(image_boxes))]
        results: list[list[PersonPrediction | None]] = [[None] * len(b) for b, _ in checked]
        for start in range(0, len(people), self.batch_size):
            batch = people[start:start + self.batch_size]
            bodies = None
            keypoints = None
            crops = None
            if self.body_estimator is not self.estimator:
                crops = [self.crop(images[i], checked[i][0][j]) for i, j in batch]
                keypoints = self._keypoints(crops)
            if self.body_estimator is not None:
                # The 2D default and the 3D default crop alike (128 px, margin 1.25): one crop serves both.
                shared = crops if crops is not None and self.body_protocol == self.protocol else None
                bodies = self._bodies([images[i] for i, _ in batch], [checked[i][0][j] for i, j in batch],
                                      keypoints if self.fit_keypoints is not None else None,
                                      None if silhouettes is None else [silhouettes.get(p) for p in batch],
                                      crops=shared)
            if keypoints is None:
                keypoints = bodies.keypoints2d  # one network call serves both
            for n, ((i, j), person) in enumerate(zip(batch, keypoints)):
                box, score = checked[i][0][j], float(checked[i][1][j])
                extra = {} if bodies is None else dict(
                    keypoints_3d=bodies.keypoints_3d[n], body=bodies.bodies[n],
                    vertices=None if bodies.vertices is None else bodies.vertices[n])
                results[i][j] = _with_projection(PersonPrediction(
                    bbox=box.copy(), keypoints=person, score=float(person[:, 2].mean()) * score, box_score=score,
                    mask=None if masks is None else masks[i][j], **extra))
        return results  # type: ignore[return-value]

    def _people(self, images: Sequence[np.ndarray]) -> list[list[PersonPrediction]]:
        """People of whole images from the multi-person estimator; the 3D model (if any) adds bodies to
        those it gave none."""
        found = self.estimator.predict_people(list(images))
        if len(found) != len(images) or not all(isinstance(p, ImagePeople) for p in found):
            raise ValueError(f"the multi-person estimator must return one ImagePeople per image ({len(images)}), "
                             f"got {[type(p).__name__ for p in found]}")
        results = []
        for image, people in zip(images, found):
            extra: dict[str, Any] = {"keypoints_3d": people.keypoints_3d, "body": people.bodies,
                                     "vertices": people.vertices}
            if people.keypoints_3d is None and self.body_estimator is not None and len(people.boxes):
                starts = range(self.batch_size, len(people.boxes), self.batch_size)
                fit_to = np.split(np.asarray(people.keypoints, np.float64), starts) if self.fit_keypoints else None
                chunks = [self._bodies([image] * len(part), list(part), None if fit_to is None else fit_to[n])
                          for n, part in enumerate(np.split(people.boxes, starts))]
                vertices = None if chunks[0].vertices is None else np.concatenate([c.vertices for c in chunks])
                extra = {"keypoints_3d": np.concatenate([c.keypoints_3d for c in chunks]),
                         "body": [b for c in chunks for b in c.bodies], "vertices": vertices}
            results.append([_with_projection(PersonPrediction(
                bbox=np.asarray(people.boxes[n], np.float64).copy(),
                keypoints=np.asarray(people.keypoints[n], np.float64), score=float(people.scores[n]), box_score=1.0,
                **{k: None if v is None else v[n] for k, v in extra.items()})) for n in range(len(people.boxes))])
        return results

    def _person_silhouettes(self, images, boxes, foreground) -> dict[tuple[int, int], np.ndarray] | None:
        """``(image, box) -> (H, W) silhouette`` of the people with a usable one, when fitting to silhouettes."""
        if self._silhouette_fitter is None or foreground is None:
            return None
        if len(foreground) != len(images):
            raise ValueError(f"expected a foreground mask (or None) for each of the {len(images)} images, "
                             f"got {len(foreground)}")
        from lowres_hps.imaging.foreground import person_silhouettes

        found = {}
        for i, (image, mask) in enumerate(zip(images, foreground)):
            if mask is None or not len(boxes[i]):
                continue
            if mask.shape != image.shape[:2]:
                raise ValueError(f"foreground mask {mask.shape} does not match its image {image.shape[:2]}")
            masks, _ = person_silhouettes(np.asarray(mask, np.uint8), boxes[i])
            found.update({(i, j): m for j, m in enumerate(masks) if m.any()})
        return found

    def _fit_to_silhouettes(self, predicted, crops: list[LowResCrop], silhouettes: list[np.ndarray | None]):
        """``predicted`` with the bodies of the people who have a silhouette fitted to it (in each 3D crop); the
        others keep theirs. Returns ``(prediction, (B,) bool fitted)``."""
        from lowres_hps.imaging.foreground import warp_mask
        from lowres_hps.methods.sta import target_silhouettes

        fitter, canvas = self._silhouette_fitter, self.body_estimator.config.canvas
        fitted = np.zeros(len(crops), bool)
        targets = torch.zeros(len(crops), canvas, canvas)
        for n, (crop, mask) in enumerate(zip(crops, silhouettes)):
            if mask is not None:
                targets[n] = torch.from_numpy(warp_mask(mask, crop.affine.numpy(), (canvas, canvas)).astype(np.float32))
        small = target_silhouettes(targets, fitter.config.render_size)
        chosen = small.sum((-1, -2)) >= fitter.config.min_pixels
        if not bool(chosen.any()):
            return predicted, fitted
        device = self.body_estimator.device
        pose, camera = predicted.pose_vector.clone(), predicted.camera.clone()
        new_pose, new_camera = fitter.fit(pose[chosen].to(device), camera[chosen].to(device), small[chosen].to(device))
        pose[chosen], camera[chosen] = new_pose.cpu().to(pose.dtype), new_camera.cpu().to(camera.dtype)
        fitted[chosen.numpy()] = True
        again = self.body_estimator.bodies(pose, camera, predicted.range_index, with_vertices=self.with_vertices,
                                           fitted=predicted.fitted)
        return again, fitted

    def _bodies(self, images: list[np.ndarray], boxes: list[np.ndarray], keypoints: np.ndarray | None = None,
                silhouettes: list[np.ndarray | None] | None = None,
                crops: list[LowResCrop] | None = None) -> _Bodies:
        """Bodies of a batch of people (``images[n]`` holds ``boxes[n]``), from one 3D model call, fitted to
        their (B, K, 3) image keypoints ``x, y, score`` when given (:attr:`fit_keypoints`) and then to their
        (H, W) silhouettes when given (:attr:`fit_silhouettes`), moved from each crop camera to the assumed camera of
        its image (:func:`full_image_camera`). ``crops``: the 3D model's crops when already made (the 2D model's,
        when both crop alike)."""
        estimator = self.body_estimator
        if crops is None:
            crops = [self.body_crop(image, box) for image, box in zip(images, boxes)]
        inputs = torch.stack([c.image for c in crops])
        if self.device is not None:
            inputs = inputs.to(self.device)
        ranges = torch.tensor([c.range_index for c in crops])
        if keypoints is None:
            predicted = estimator.predict_bodies(inputs, ranges, with_vertices=self.with_vertices)
        else:  # the image keypoints into each 3D crop
            points = torch.as_tensor(np.asarray(keypoints, np.float64))
            affines = torch.stack([c.affine for c in crops]).to(torch.float64)
            predicted = estimator.fit_bodies(inputs, ranges, apply_affine(points[..., :2], affines), points[..., 2],
                                             self.fit_keypoints, with_vertices=self.with_vertices)
        fitted_to_silhouette = None
        if silhouettes is not None and any(s is not None for s in silhouettes):
            predicted, fitted_to_silhouette = self._fit_to_silhouettes(predicted, crops, silhouettes)
        cameras = [full_image_camera(image.shape[:2]) for image in images]
        focal = torch.tensor([f for f, _ in cameras], dtype=torch.float64)
        principal_point = torch.tensor([c for _, c in cameras], dtype=torch.float64)
        regions = torch.as_tensor(np.stack([c.box for c in crops]), dtype=torch.float64)
        crop_translation = predicted.translation.to(torch.float64)
        translation = crop_to_full_translation(
            crop_translation, box_center=regions[:, :2] + 0.5 * regions[:, 2:], box_size=regions[:, 3],
            crop_size=float(predicted.crop_size), full_focal=focal, full_principal_point=principal_point,
            crop_focal=float(predicted.crop_focal))
        shift = (translation - crop_translation)[:, None]  # the body keeps its shape: only the root moves
        keypoints_3d = predicted.keypoints3d.to(torch.float64) + shift
        vertices = None
        if predicted.vertices is not None:
            vertices = (predicted.vertices.to(torch.float64) + shift).to(torch.float32).numpy()
        to_image = invert_affine(torch.stack([c.affine for c in crops]).to(torch.float64))
        pixels = apply_affine(predicted.keypoints2d.to(torch.float64), to_image)
        keypoints2d = torch.cat([pixels, torch.ones(*pixels.shape[:2], 1, dtype=torch.float64)], dim=-1)
        bodies = [{
            "body_model": estimator.body.name,
            "pose_vector": predicted.pose_vector[n].tolist(),
            "camera": predicted.camera[n].tolist(),
            "translation": translation[n].tolist(),
            "focal": float(focal[n]),
            "principal_point": principal_point[n].tolist(),
            "range_index": int(predicted.range_index[n]),
            **({} if predicted.fitted is None else {"fitted_to_keypoints": bool(predicted.fitted[n])}),
            **({} if fitted_to_silhouette is None else {"fitted_to_silhouette": bool(fitted_to_silhouette[n])}),
        } for n in range(len(crops))]
        return _Bodies(keypoints2d=keypoints2d.numpy(), keypoints_3d=keypoints_3d.numpy(), bodies=bodies,
                       vertices=vertices)

    def _keypoints(self, crops: list[LowResCrop]) -> np.ndarray:
        """(B, K, 3) float64 ``x, y, score`` in image pixels of a batch of crops, from one estimator call."""
        inputs = torch.stack([c.image for c in crops])
        if self.device is not None:
            inputs = inputs.to(self.device)
        # no_grad, not inference_mode: roma caches a constant on its first call, and one made in
        # inference mode would break later training in the same process.
        with torch.no_grad():
            points, scores = self.estimator(inputs, torch.tensor([c.range_index for c in crops]))
        batch = len(crops)
        if points.ndim != 3 or points.shape[0] != batch or points.shape[2] != 2:
            raise ValueError(f"estimator returned keypoints of shape {tuple(points.shape)}, expected ({batch}, K, 2)")
        if tuple(scores.shape) != tuple(points.shape[:2]):
            raise ValueError(f"estimator returned scores of shape {tuple(scores.shape)}, "
                             f"expected {tuple(points.shape[:2])}")
        to_image = invert_affine(torch.stack([c.affine for c in crops]).to(torch.float64))
        image_points = apply_affine(points.detach().to("cpu", torch.float64), to_image)
        combined = torch.cat([image_points, scores.detach().to("cpu", torch.float64)[..., None]], dim=-1)
        return combined.numpy()
