"""ONNX export of any registered model kind, and ONNX Runtime runners for the built-in ones.

:func:`export_onnx` traces what the model's kind gives (:class:`~lowres_hps.models.kinds.OnnxGraph`: the
network with tuple outputs, its inputs and the ``metadata_props`` documenting the preprocessing, the crop
protocol, the outputs and the keypoint names) and adds the model card JSON. The graphs of the built-in kinds:
:func:`lowres_hps.models.pose2d.onnx_graph` (2D: ``images`` -> ``heatmaps``, ``offsets``) and
:func:`lowres_hps.models.body3d.onnx_graph` (3D: ``images``, ``range_index`` -> ``pose_vector``, ``camera``,
``features``; the body model runs after it). :class:`OnnxEstimator` decodes a 2D export like
:class:`~lowres_hps.models.pose2d.TopDownEstimator`; :class:`OnnxBody3DNet` runs a 3D export like
:class:`~lowres_hps.models.body3d.Body3DNet`.

Uses the TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``, which
is not a dependency.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lowres_hps.apis.registry import CARD_METADATA_KEY, ModelCard
from lowres_hps.models.kinds import get_kind

__all__ = [
    "DEFAULT_OPSET",
    "export_onnx",
    "verify_onnx",
    "read_onnx_card",
    "OnnxEstimator",
    "OnnxBody3DNet",
    "open_session",
    "CALIBRATION_METHODS",
    "CalibrationSet",
    "calibration_crops",
    "calibration_frames",
    "quantize_onnx",
    "export_onnx_int8",
    "read_onnx_metadata",
    "compare_onnx",
]

DEFAULT_OPSET = 17
INPUT_NAME = "images"
RANGE_INPUT_NAME = "range_index"
BODY3D_OUTPUT_NAMES = ("pose_vector", "camera", "features")
CALIBRATION_METHODS = ("minmax", "percentile")
"""Activation range estimators of :func:`quantize_onnx`: ONNX Runtime's MinMax and Percentile calibrators."""
INT8_KINDS = ("kp2d", "mili")
MILI_FLOAT_NODES = ("/laterals.", "/smooth.", "/center/", "/box_scale/", "/box_offset/")
"""Node-name parts of a MILI detector export that :func:`quantize_onnx` keeps float32: the FPN's lateral and
output convolutions and the dense heads (measured: see :func:`quantize_onnx`)."""
"""Kinds :func:`quantize_onnx` takes: their graphs have one input, ``images``."""
PRECISION_KEY = "precision"
QUANTIZATION_KEY = "quantization"
NEEDS_CALIBRATION = ("int8 quantization needs calibration images: pass a COCO keypoints json of real people "
                     "(`--calibration ANN.json`; its images are found like the dataset readers find them), whose "
                     "crops set the int8 activation ranges")


def _default_card(network, path: Path) -> ModelCard:
    """A card made from the network's config when none came with it."""
    config = getattr(network, "config", None)
    if config is None:
        raise ValueError("the model has no config; pass card=ModelCard(...)")
    return ModelCard.from_config(path.stem, config, notes="exported without a model card")


def _write_onnx(wrapper: nn.Module, examples: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                output_names: list[str], dynamic: bool, opset: int, doc: str, metadata: dict[str, str],
                extra_axes: dict[str, dict[int, str]] | None = None) -> None:
    """Export, then set the doc string and ``metadata_props``, check and save (atomically). ``extra_axes``: other
    dynamic axes than the batch, per input/output name."""
    import onnx

    from lowres_hps.core.io import atomic_write

    names = [*input_names, *output_names]
    dynamic_axes = {name: {**({0: "batch"} if dynamic else {}), **(extra_axes or {}).get(name, {})} for name in names}
    dynamic_axes = {name: axes for name, axes in dynamic_axes.items() if axes} or None
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # dynamo=False is deprecated upstream, but the dynamo exporter needs onnxscript (not a dependency).
        warnings.simplefilter("ignore", DeprecationWarning)
        # The shape and range checks at the model's API boundary are constants in a trace (they pass here).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, examples, str(tmp), dynamo=False, input_names=input_names,
            output_names=output_names, dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
        )
        proto = onnx.load(str(tmp))
        proto.producer_name = "lowres-hps"
        proto.doc_string = doc
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))


def export_onnx(
    model,
    path: str | os.PathLike,
    card: ModelCard | None = None,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a network of any registered kind to ONNX with documented ``metadata_props``; checked with
    ``onnx.checker``.

    Args:
        model: a network (e.g. :class:`~lowres_hps.models.pose2d.TopDownPoseModel`,
            :class:`~lowres_hps.models.body3d.Body3DNet`) or an estimator holding one (``.model``).
        path: output ``.onnx`` file.
        card: its model card (default: the estimator's card, else one made from the model's config).
        batch: ``"dynamic"`` or a fixed batch size.
        opset: ONNX opset version.

    Returns:
        The path written.
    """
    path = Path(path)
    if card is None:
        card = getattr(model, "card", None)
    network = getattr(model, "model", model)
    if card is None:
        card = _default_card(network, path)
    if batch != "dynamic" and (not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    kind = get_kind(card.task)
    if kind.export is None:
        raise ValueError(f"model {card.name!r}: {kind.description} models ({card.task}) have no ONNX export")
    card.model_config()  # the card must describe the network's architecture
    graph = kind.export(network)
    device = next(network.parameters()).device
    inputs = {k: v.to(device) for k, v in graph.sample_inputs(1 if batch == "dynamic" else batch, None).items()}
    metadata = {**graph.metadata, CARD_METADATA_KEY: card.to_json()}
    _write_onnx(graph.module, tuple(inputs.values()), path, list(inputs), graph.output_names, batch == "dynamic",
                opset, graph.doc.replace("{name}", repr(card.name)), metadata, graph.dynamic_axes)
    return path


def verify_onnx(model, path: str | os.PathLike, batch: int | str = "dynamic", seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over the raw outputs of an exported model, on random valid inputs."""
    import onnxruntime as ort

    network = getattr(model, "model", model)
    card = getattr(model, "card", None) or read_onnx_card(path)
    graph = get_kind(card.task).export(network)
    inputs = graph.sample_inputs(2 if batch == "dynamic" else int(batch), torch.Generator().manual_seed(seed))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    device = next(network.parameters()).device
    with torch.no_grad():
        expected = graph.module(*(v.to(device) for v in inputs.values()))
    got = session.run(None, {k: v.numpy() for k, v in inputs.items() if k in names})
    return max(float(np.abs(g - e.cpu().numpy()).max()) for g, e in zip(got, expected))


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (an int8 export has ``precision`` and ``quantization``)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card stored in an exported model's ``metadata_props``."""
    props = read_onnx_metadata(path)
    if CARD_METADATA_KEY not in props:
        raise ValueError(f"{path} has no lowres-hps model card in its metadata_props; export it with "
                         f"`lowres-hps export`")
    return ModelCard.from_json(props[CARD_METADATA_KEY])


def open_session(path, num_threads: int | None, providers: list[str] | None):
    """An ONNX Runtime session (``num_threads`` intra-op threads when given) and its fixed batch size,
    or None when the batch dimension is dynamic."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Several sessions (detector, 2D, 3D) and torch share the cores: threads that spin while waiting for work
    # would take them from each other.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    batch_dim = session.get_inputs()[0].shape[0]
    return session, (batch_dim if isinstance(batch_dim, int) else None)


class OnnxEstimator:
    """An exported model run by ONNX Runtime: a :class:`~lowres_hps.models.estimator.PoseEstimator`.

    Decodes with the codec of the model card, like :class:`~lowres_hps.models.pose2d.TopDownEstimator`;
    the flip test runs the mirrored crops in the same batch. Models exported with a fixed batch size
    are fed in chunks of that size (the last one padded).

    Args:
        path: ``.onnx`` file written by :func:`export_onnx`.
        num_threads: ONNX Runtime intra-op threads (default: its own choice).
        flip_test: overrides the card's flip test setting.
        providers: ONNX Runtime execution providers (default CPU).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        flip_test: bool | None = None,
        providers: list[str] | None = None,
    ) -> None:
        from lowres_hps.body.keypoints import get_convention
        from lowres_hps.models.pose2d import build_codec

        self.card = read_onnx_card(path)
        self.precision: str = read_onnx_metadata(path).get(PRECISION_KEY, "float32")
        self.config = self.card.model_config("kp2d")
        self.codec = build_codec(self.config)
        self.flip_test = self.config.flip_test if flip_test is None else bool(flip_test)
        self.input_size: tuple[int, int] = tuple(self.config.input_size)
        self.scale_factor: float = float(self.config.scale_factor)
        self.convention: str = self.config.convention
        self.flip_permutation = get_convention(self.convention).flip_permutation
        self.session, self.fixed_batch = open_session(path, num_threads, providers)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """Raw outputs ``[heatmaps, (offsets)]`` of float32 images (N, 3, h, w) 0..255, any N."""
        if self.fixed_batch is None:
            return self.session.run(None, {INPUT_NAME: images})
        n, step = len(images), self.fixed_batch
        chunks = []
        for start in range(0, n, step):
            chunk = images[start:start + step]
            if len(chunk) < step:
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            chunks.append(self.session.run(None, {INPUT_NAME: chunk}))
        return [np.concatenate([c[i] for c in chunks])[:n] for i in range(len(chunks[0]))]

    def outputs(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(heatmaps, offsets or None)`` of a batch, flip-merged when ``flip_test`` (CPU tensors)."""
        from lowres_hps.models.codecs import merge_flip
        from lowres_hps.models.pose2d import check_crops

        check_crops(crops, self.input_size)
        images = crops.detach().to("cpu", torch.float32)
        batch = len(images)
        if self.flip_test:
            images = torch.cat([images, images.flip(-1)])
        outs = [torch.from_numpy(o) for o in self.run(np.ascontiguousarray(images.numpy()))]
        heatmaps, offsets = outs[0], (outs[1] if len(outs) > 1 else None)
        if not self.flip_test:
            return heatmaps, offsets
        return merge_flip(heatmaps[:batch], heatmaps[batch:], self.flip_permutation,
                          None if offsets is None else offsets[:batch],
                          None if offsets is None else offsets[batch:])

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, offsets = self.outputs(crops)
        keypoints, scores = self.codec.decode(heatmaps, offsets)
        return keypoints.to(crops.device), scores.clamp(0.0, 1.0).to(crops.device)

    def __repr__(self) -> str:
        return (f"OnnxEstimator({self.card.name!r}, {self.precision}, input_size={self.input_size}, "
                f"flip_test={self.flip_test})")


class OnnxBody3DNet:
    """An exported 3D body network run by ONNX Runtime, called like :class:`~lowres_hps.models.body3d.Body3DNet`:
    ``(images, range_index) -> {"pose_vector", "camera", "features"}`` (CPU float32 tensors). The body
    model is not part of it. Models exported with a fixed batch size are fed in chunks of that size.

    Args:
        path: ``.onnx`` file written by :func:`export_onnx` from a 3D (``hps3d``) model.
        num_threads: ONNX Runtime intra-op threads (default: its own choice).
        providers: ONNX Runtime execution providers (default CPU).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        self.card = read_onnx_card(path)
        self.config = self.card.model_config("hps3d")
        self.input_size: tuple[int, int] = self.config.input_size
        self.session, self.fixed_batch = open_session(path, num_threads, providers)
        # A baseline (not resolution-aware) network does not use range_index, so its graph has no such input.
        self.takes_range_index = RANGE_INPUT_NAME in {i.name for i in self.session.get_inputs()}

    @property
    def device(self) -> torch.device:
        """Where the outputs are: the CPU (ONNX Runtime gives numpy arrays)."""
        return torch.device("cpu")

    def eval(self) -> OnnxBody3DNet:
        """Nothing to switch (an inference graph); lets :class:`~lowres_hps.models.body3d.Body3DEstimator` hold it."""
        return self

    def _feed(self, images: np.ndarray, ranges: np.ndarray) -> dict[str, np.ndarray]:
        return {INPUT_NAME: images, RANGE_INPUT_NAME: ranges} if self.takes_range_index else {INPUT_NAME: images}

    def _run(self, images: np.ndarray, ranges: np.ndarray) -> list[np.ndarray]:
        if self.fixed_batch is None:
            return self.session.run(None, self._feed(images, ranges))
        n, step = len(images), self.fixed_batch
        chunks = []
        for start in range(0, n, step):
            chunk, chunk_ranges = images[start:start + step], ranges[start:start + step]
            pad = step - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
                chunk_ranges = np.concatenate([chunk_ranges, np.zeros(pad, chunk_ranges.dtype)])
            chunks.append(self.session.run(None, self._feed(chunk, chunk_ranges)))
        return [np.concatenate([c[i] for c in chunks])[:n] for i in range(len(chunks[0]))]

    def __call__(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``images`` (B, 3, S, S) uint8; ``range_index`` (B,) (default 0, the highest resolution)."""
        from lowres_hps.models.pose2d import check_crops

        check_crops(images, self.input_size)
        if images.dtype != torch.uint8:
            raise TypeError(f"the exported 3D network takes uint8 images, got {images.dtype}")
        batch = images.shape[0]
        ranges = torch.zeros(batch, dtype=torch.int64) if range_index is None else \
            torch.as_tensor(range_index).to("cpu", torch.int64).reshape(-1)
        if ranges.shape != (batch,):
            raise ValueError(f"range_index must be ({batch},), got {tuple(ranges.shape)}")
        if bool(((ranges < 0) | (ranges >= self.config.num_ranges)).any()):
            raise ValueError(f"range_index must be in [0, {self.config.num_ranges}), got {ranges.tolist()}")
        outs = self._run(np.ascontiguousarray(images.detach().cpu().numpy()), ranges.numpy())
        return {name: torch.from_numpy(out) for name, out in zip(BODY3D_OUTPUT_NAMES, outs)}

    def __repr__(self) -> str:
        return f"OnnxBody3DNet({self.card.name!r}, canvas={self.config.canvas}, fixed_batch={self.fixed_batch})"


# ---------------------------------------------------------------------------------------------
# int8: static quantization by ONNX Runtime (QDQ), calibrated on real people through the protocol

@dataclass(frozen=True)
class CalibrationSet:
    """Network inputs that set the int8 activation ranges, and where they came from.

    Attributes:
        crops: (N, 3, h, w) uint8 RGB crops, made like the predictor makes them.
        source: JSON-safe description for the int8 file's metadata (file, its sha256, people, degradation, seed).
    """

    crops: np.ndarray
    source: dict[str, Any]


def calibration_crops(
    ann_file: str | os.PathLike,
    input_size: tuple[int, int],
    scale_factor: float = 1.25,
    num_crops: int = 256,
    low_res_fraction: float = 0.5,
    person_heights: tuple[float, float] = (16.0, 96.0),
    image_root: str | os.PathLike | None = None,
    seed: int = 0,
) -> CalibrationSet:
    """Calibration crops of the people of a COCO keypoints json (those with labelled keypoints), made by
    :class:`~lowres_hps.imaging.protocol.LowResProtocol` (upsample setting, as :class:`~lowres_hps.apis.predictor.
    Predictor` crops) at ``input_size``; ``low_res_fraction`` of them degraded to person heights drawn uniformly
    in ``person_heights`` px, so that the ranges cover low-resolution inputs as well as sharp ones.

    People are drawn without replacement; when there are fewer than ``num_crops``, they come round again,
    mirrored every other round (the flip test feeds mirrored crops too) and degraded to new heights.
    Unreadable images are skipped with a warning.

    Args:
        ann_file: COCO keypoints json; images under ``image_root`` (default: found like
            :class:`~lowres_hps.data.coco.CocoKeypointsReader` finds them).
        input_size: network input ``(h, w)``.
        scale_factor: the model's crop margin.
        num_crops: crops to make.
        low_res_fraction: fraction of them degraded.
        person_heights: ``(low, high)`` person heights of the degraded crops, px.
        seed: seed of the draws.
    """
    import re

    from lowres_hps.apis.inputs import load_image
    from lowres_hps.apis.predictor import bounded_crop
    from lowres_hps.data.coco import CocoPeople
    from lowres_hps.data.errors import load_json
    from lowres_hps.data.reader import default_image_root
    from lowres_hps.imaging.protocol import LowResProtocol

    ann_file = Path(ann_file)
    if num_crops < 1 or not 0.0 <= low_res_fraction <= 1.0:
        raise ValueError(f"num_crops must be >= 1 and low_res_fraction in [0, 1], got {num_crops}, {low_res_fraction}")
    low, high = (float(v) for v in person_heights)
    if not 0 < low <= high:
        raise ValueError(f"person_heights must be 0 < low <= high, got {person_heights}")
    people = CocoPeople(load_json(ann_file), ann_file, min_keypoints=1).people
    if not people:
        raise ValueError(f"{ann_file}: no person with labelled keypoints to calibrate with")
    if image_root is None:
        image_root = default_image_root(ann_file, re.sub(r"^person_keypoints_", "", ann_file.stem))
    image_root = Path(image_root)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(people))
    num_low = round(num_crops * low_res_fraction)
    degraded = rng.permutation(num_crops) < num_low
    heights = rng.uniform(low, high, num_crops)
    protocol = LowResProtocol(tuple(input_size), float(scale_factor), "upsample")
    crops: dict[int, np.ndarray] = {}
    unreadable: dict[str, str] = {}
    image, image_path = None, None
    # Each image is read once: the draws are made in image order, then put back in their drawn order.
    draws = sorted(range(num_crops), key=lambda i: (people[order[i % len(people)]].image["file_name"], i))
    for i in draws:
        person = people[order[i % len(people)]]
        path = image_root / person.image["file_name"]
        if path != image_path:
            image_path = path
            try:
                image = load_image(path)[0]
            except ValueError as exc:  # InputError: missing, unreadable, too small
                image = None
                unreadable[str(path)] = str(exc)
                warnings.warn(f"calibration: skipping {path}: {exc}", stacklevel=2)
        if image is None:
            continue
        crop = bounded_crop(protocol, image, person.bbox, float(heights[i]) if degraded[i] else None).image.numpy()
        crops[i] = crop[..., ::-1] if (i // len(people)) % 2 else crop
    if not crops:
        raise ValueError(f"{ann_file}: none of its images could be read under {image_root} "
                         f"(e.g. {next(iter(unreadable.values()))}); pass the image folder")
    kept = sorted(crops)
    source = {
        "file": "/".join(ann_file.resolve().parts[-2:]),
        "sha256": hashlib.sha256(ann_file.read_bytes()).hexdigest()[:16],
        "people": len({order[i % len(people)] for i in kept}),
        "crops": len(kept),
        "degraded": int(degraded[kept].sum()),
        "person_heights_px": [low, high],
        "protocol": f"LowResProtocol({tuple(input_size)}, scale_factor={float(scale_factor):g}, setting='upsample')",
        "seed": seed,
    }
    if unreadable:
        source["unreadable_images"] = len(unreadable)
    return CalibrationSet(np.ascontiguousarray(np.stack([crops[i] for i in kept])), source)


def calibration_frames(
    source: str | os.PathLike,
    num_frames: int = 8,
    frames: tuple[int, int] | None = None,
    target_long_side: int = 768,
    max_upscale: float = 4.0,
    reduce: tuple[float, float] = (1.0, 4.0),
    seed: int = 0,
) -> CalibrationSet:
    """Whole frames as a MILI detector sees them, to calibrate its int8 export: ``num_frames`` frames evenly
    spaced over a video (within ``frames``, 1-based first and last, when given) or the images of a folder; each
    reduced by a random factor in ``reduce`` (log-uniform, area averaging; small people, as the detector meets
    them), then resized as the detector resizes it (long side to ``target_long_side``, between x1 and
    ``max_upscale``) and zero-padded to multiples of 32. All frames share the first one's padded size (images of
    other shapes are letterboxed into it), since the calibrator stacks them. Memory: ONNX Runtime's calibrators
    (min/max and percentile alike) keep every activation of every frame until the end, about 0.85 GB per 768 x 576
    frame for MultiPose's trunk (16 frames at 1024 x 768 did not fit in 24 GiB; 8 at 768 x 576 take ~7 GB).

    Returns:
        A :class:`CalibrationSet` of (N, 3, H, W) uint8 images; its ``source`` names the file and frames.
    """
    import cv2

    from lowres_hps.apis.inputs import VideoReader, collect_inputs, load_image
    from lowres_hps.imaging.frame import long_side_factor, resize_and_pad

    sources, errors = collect_inputs([source])
    if errors:
        raise ValueError(f"calibration frames: {errors[0]}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if not 1.0 <= reduce[0] <= reduce[1]:
        raise ValueError(f"reduce must be 1 <= lo <= hi, got {reduce}")
    picked: list[tuple[str, np.ndarray]] = []
    if len(sources) == 1 and sources[0].kind == "video":
        with VideoReader(sources[0].path) as reader:
            count = reader.frame_count or 0
            first, last = frames or (1, max(1, count))
            wanted = set(np.linspace(first - 1, last - 1, num_frames).round().astype(int).tolist())
            for index, frame in reader:
                if index in wanted:
                    picked.append((str(index + 1), frame))
                if index >= last - 1:
                    break
        described = {"video": str(sources[0].path), "frames": [int(f) for f, _ in picked]}
    else:
        images = [s.path for s in sources if s.kind == "image"]
        chosen = [images[i] for i in sorted(set(np.linspace(0, len(images) - 1, num_frames).round().astype(int)))]
        picked = [(p.name, load_image(p)[0]) for p in chosen]
        described = {"images": str(source), "files": [name for name, _ in picked]}
    if not picked:
        raise ValueError(f"calibration frames: no frame of {source} could be read")
    rng = np.random.default_rng(seed)
    shaped: list[np.ndarray] = []
    for _, image in picked:
        factor = float(np.exp(rng.uniform(np.log(reduce[0]), np.log(reduce[1]))))
        if factor > 1:
            size = (max(1, round(image.shape[1] / factor)), max(1, round(image.shape[0] / factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        work, _ = resize_and_pad(image, long_side_factor(*image.shape[:2], target_long_side, max_upscale))
        if shaped and work.shape != shaped[0].shape:
            fit = min(shaped[0].shape[0] / work.shape[0], shaped[0].shape[1] / work.shape[1])
            resized = cv2.resize(work, (int(work.shape[1] * fit), int(work.shape[0] * fit)), interpolation=cv2.INTER_AREA)
            work = np.zeros_like(shaped[0])
            work[:resized.shape[0], :resized.shape[1]] = resized
        shaped.append(work)
    path = Path(source)
    return CalibrationSet(
        crops=np.stack(shaped).transpose(0, 3, 1, 2).copy(),
        source={**described, **({"sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]} if path.is_file() else {}),
                "reduced": list(reduce),
                "long_side": target_long_side, "seed": seed})


def _output_heads(graph) -> list[str]:
    """Names of the nodes from each graph output back to (and including) the convolution that computes it
    (e.g. heatmap Conv -> Sigmoid; offset Conv -> Reshape), following each node's first input."""
    producer = {out: node for node in graph.node for out in node.output}
    names: list[str] = []
    for output in graph.output:
        node = producer.get(output.name)
        while node is not None and node.name not in names:
            names.append(node.name)
            if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                break
            node = producer.get(node.input[0]) if node.input else None
    return names


class _CropFeed:
    """ONNX Runtime calibration data reader: the crops as float32 0..255 batches of ``batch`` crops.

    The last batch is filled with the first crops again: a fixed-batch graph takes whole batches only, and the
    percentile calibrator stacks the outputs of all batches into one array."""

    def __init__(self, crops: np.ndarray, batch: int) -> None:
        if len(crops) % batch:
            crops = np.concatenate([crops, np.resize(crops, (batch - len(crops) % batch, *crops.shape[1:]))])
        self.batches = iter([crops[i:i + batch].astype(np.float32) for i in range(0, len(crops), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        images = next(self.batches, None)
        return None if images is None else {INPUT_NAME: images}


def quantize_onnx(
    fp32_path: str | os.PathLike,
    path: str | os.PathLike,
    calibration: CalibrationSet,
    method: str | None = None,
    percentile: float = 99.999,
    float_first_convs: int = 3,
    float_heads: bool | None = None,
    float_nodes: tuple[str, ...] | None = None,
) -> Path:
    """Static int8 quantization of a 2D or MILI detector export (:func:`export_onnx`) by ONNX Runtime: QDQ format, weights int8
    per output channel (symmetric), activations uint8 per tensor with ranges calibrated on ``calibration``.

    The graph keeps its interface (``images`` float32 0..255, the same outputs), so :class:`OnnxEstimator`
    runs it unchanged. Its ``metadata_props`` are those of the float32 file plus ``precision`` and
    ``quantization`` (method, calibration crops and their source, nodes kept in float); the model card
    says the same in ``extra["quantization"]``.

    What stays float32 (measured on ``lrmove_l_128x96``, a MobileNetV2-FPN MoveNet student, against its
    float32 export on LSP-extended validation crops, sharp and at R = 24-64 px): the input normalisation
    (ONNX Runtime has no int8 Sub/Div; the first QuantizeLinear then sees the normalised pixels, 256 levels
    like the pixels themselves), and the first ``float_first_convs`` convolutions: in int8, the stem and
    first block moved the most keypoints (of those scored >= 0.3, 1.6% moved over 4 input px; 0.4% with
    them float), and keeping them float cost 0-10% of the speed (within the noise of a loaded machine). The output heads (the last convolutions
    and the sigmoid) are int8 unless ``float_heads``: int8 heatmaps have plateaus (about 60 values; 13% of
    confident maxima tied) that the offsets of an offset codec correct (keypoints moved no more), and float
    heads cost about 8% of the speed; None keeps them float for codecs without offsets, whose decoding
    refines on the heatmap's shape.

    Args:
        fp32_path: a 2D (``kp2d``) or MILI (``mili``) export of :func:`export_onnx`.
        path: the int8 ``.onnx`` to write.
        calibration: crops (:func:`calibration_crops`) for a 2D model; for a MILI detector whole images as it
            sees them (resized and padded, (N, 3, H, W) uint8, one size).
        method: ``"minmax"`` or ``"percentile"`` (:data:`CALIBRATION_METHODS`); None: percentile for a 2D model,
            min/max for a MILI detector (as good there, and it keeps only running ranges, not every activation).
        percentile: the percentile method's coverage of each activation's histogram, %.
        float_first_convs: leading convolutions kept float32.
        float_heads: keep the output heads float32 (None: for a 2D model when its codec has no offsets; always
            for a MILI detector).
        float_nodes: parts of node names whose nodes stay float32 (None: none for a 2D model; for a MILI
            detector :data:`MILI_FLOAT_NODES`).

    MILI detectors (measured on a trained ``mili_multipose`` run against its float32 export, vtest.avi frames
    301-400 with teacher boxes, long side 768): with only the first convolutions and the output convolutions float,
    int8 lost 0.08 AP50 with people 80 px tall (0.893 against 0.971) and 0.05 at 27 px; keeping the FPN's lateral
    and output convolutions and the dense heads' hidden convolutions float too (:data:`MILI_FLOAT_NODES`) lost
    nothing (0.981 and 0.959, min/max calibration) at the same speed (97 against 96 ms per 768 x 576 frame).

    Returns:
        The path written.
    """
    import tempfile

    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lowres_hps.core.io import atomic_write

    fp32_path, path = Path(fp32_path), Path(path)
    card = read_onnx_card(fp32_path)
    if method is None:
        method = "minmax" if card.task == "mili" else "percentile"
    if float_nodes is None:
        float_nodes = MILI_FLOAT_NODES if card.task == "mili" else ()
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if card.task not in INT8_KINDS:
        raise ValueError(f"{fp32_path}: int8 export is for 2D keypoint models and MILI detectors "
                         f"({', '.join(INT8_KINDS)}), not {card.task}")
    if QUANTIZATION_KEY in read_onnx_metadata(fp32_path):
        raise ValueError(f"{fp32_path} is already quantized; quantize the float32 export")
    crops = calibration.crops
    if card.task == "kp2d":
        h, w = card.input_size
        if crops.ndim != 4 or crops.shape[1:] != (3, h, w) or crops.dtype != np.uint8:
            raise ValueError(f"calibration crops must be (N, 3, {h}, {w}) uint8 (the model's input), got "
                             f"{crops.shape} {crops.dtype}")
    elif crops.ndim != 4 or crops.shape[1] != 3 or crops.shape[2] % 32 or crops.shape[3] % 32 or crops.dtype != np.uint8:
        raise ValueError(f"calibration images must be (N, 3, H, W) uint8 with H and W multiples of 32 (whole "
                         f"frames as the detector sees them), got {crops.shape} {crops.dtype}")
    if float_heads is None and card.task == "kp2d":
        from lowres_hps.models.pose2d import build_codec

        float_heads = not build_codec(card.model_config("kp2d")).has_offsets
    elif float_heads is None:
        float_heads = True  # a detector's centre logits: int8 steps near the score threshold move people in or out
    source = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Constant folding and shape inference first (ONNX Runtime's advice); its symbolic shape inference
        # cannot follow the TorchScript exporter's shape arithmetic, and is not needed for CNNs.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        convs = [node.name for node in graph.node if node.op_type == "Conv"]
        keep_float = convs[:max(0, float_first_convs)] + (_output_heads(graph) if float_heads else [])
        keep_float += [node.name for node in graph.node if node.name not in keep_float
                       and any(part in node.name for part in float_nodes)]
        batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
        batch = batch_dim.dim_value if batch_dim.HasField("dim_value") else \
            (1 if card.task == "mili" else min(16, len(calibration.crops)))  # whole frames: one at a time
        quantized = Path(tmp) / "int8.onnx"

        def quantize(how: str) -> None:
            quantize_static(
                str(prepared), str(quantized), _CropFeed(calibration.crops, batch),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,  # VNNI / ARM: no 7-bit weights
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                calibrate_method=CalibrationMethod.MinMax if how == "minmax" else CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": float(percentile)} if how == "percentile" else {},
            )

        calibrated = {"method": method, **({"percentile": percentile} if method == "percentile" else {})}
        try:
            quantize(method)
        except ValueError as exc:
            # The percentile calibrator's histograms (numpy, 2048 bins) fail on an activation that is constant
            # to float32 precision; min/max ranges are exact there.
            if method != "percentile" or "bins" not in str(exc):
                raise
            warnings.warn(f"{fp32_path}: percentile calibration failed ({exc}); calibrating by min/max", stacklevel=2)
            calibrated = {"method": "minmax", "requested": f"percentile ({exc})"}
            quantize("minmax")
        proto = onnx.load(str(quantized))
    quantization = {
        "format": "QDQ (QuantizeLinear/DequantizeLinear around int8 operators)",
        "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor",
        "calibration": {**calibrated, **calibration.source},
        "float32_nodes": ["input normalisation (Sub, Div)", *keep_float],
        "onnxruntime": onnxruntime.__version__,
        "metrics": "the model card's metrics are those of the float32 model",
    }
    card = dataclasses.replace(card, extra={**card.extra, "quantization": quantization})
    metadata = {p.key: p.value for p in source.metadata_props}
    metadata.update({CARD_METADATA_KEY: card.to_json(), PRECISION_KEY: "int8",
                     QUANTIZATION_KEY: json.dumps(quantization)})
    proto.producer_name = "lowres-hps"
    proto.doc_string = (f"{source.doc_string}; int8 (ONNX Runtime static quantization, QDQ, calibrated by "
                        f"{calibrated['method']} on {len(calibration.crops)} crops)")
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_write(path) as tmp_path:
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp_path))
    return path


def export_onnx_int8(
    model,
    path: str | os.PathLike,
    calibration: str | os.PathLike | CalibrationSet | None,
    card: ModelCard | None = None,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
    method: str = "percentile",
    num_crops: int = 256,
    image_root: str | os.PathLike | None = None,
    seed: int = 0,
    **quantize_options,
) -> Path:
    """:func:`export_onnx`, then :func:`quantize_onnx` with crops of ``calibration``: a COCO keypoints json
    (:func:`calibration_crops` at the model's input size, ``num_crops`` of them, half degraded to 16-96 px),
    or a :class:`CalibrationSet`. Only the int8 file is written. ``quantize_options``: those of
    :func:`quantize_onnx` (``percentile``, ``float_first_convs``, ``float_heads``).
    """
    import tempfile

    if calibration is None:
        raise ValueError(NEEDS_CALIBRATION)
    if card is None:
        card = getattr(model, "card", None) or _default_card(getattr(model, "model", model), Path(path))
    if card.task != "kp2d":
        raise ValueError(f"model {card.name!r}: int8 export is for 2D keypoint models (kp2d), not {card.task}")
    if method not in CALIBRATION_METHODS:  # fail before the export and the crops
        raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    if not isinstance(calibration, CalibrationSet):
        calibration = calibration_crops(calibration, tuple(card.input_size), card.scale_factor, num_crops=num_crops,
                                        image_root=image_root, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "float32.onnx", card=card, batch=batch, opset=opset)
        return quantize_onnx(fp32, path, calibration, method=method, **quantize_options)


def compare_onnx(reference: str | os.PathLike, candidate: str | os.PathLike, crops: np.ndarray | torch.Tensor,
                 min_score: float = 0.3, num_threads: int | None = None) -> dict[str, float]:
    """How far the keypoints of one 2D export (e.g. int8) are from another's (its float32 export) on ``crops``
    (N, 3, h, w) uint8, each with its flip test setting.

    Returns:
        ``median_px``, ``p90_px``, ``max_px`` (input pixels) and ``over_4px`` (fraction) over the keypoints the
        reference scores at least ``min_score`` (``keypoints`` of them), ``score_diff`` (mean absolute score
        difference, all keypoints) and ``heatmap_correlation`` (Pearson, all heatmap values).
    """
    crops = torch.as_tensor(crops)
    runners = [OnnxEstimator(p, num_threads=num_threads) for p in (reference, candidate)]
    (ref_heatmaps, ref_offsets), (heatmaps, offsets) = (r.outputs(crops) for r in runners)
    ref_keypoints, ref_scores = runners[0].codec.decode(ref_heatmaps, ref_offsets)
    keypoints, scores = runners[1].codec.decode(heatmaps, offsets)
    distance = (keypoints - ref_keypoints).norm(dim=-1)[ref_scores >= min_score].double()
    if distance.numel() == 0:
        distance = torch.full((1,), float("nan"), dtype=torch.float64)
    correlation = np.corrcoef(ref_heatmaps.numpy().ravel(), heatmaps.numpy().ravel())[0, 1]
    return {"keypoints": int((ref_scores >= min_score).sum()), "median_px": float(distance.median()),
            "p90_px": float(distance.quantile(0.9)), "max_px": float(distance.max()),
            "over_4px": float((distance > 4).double().mean()),
            "score_diff": float((scores.clamp(0, 1) - ref_scores.clamp(0, 1)).abs().mean()),
            "heatmap_correlation": float(correlation)}
