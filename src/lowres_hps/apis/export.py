"""ONNX export of 2D pose networks and 3D body networks, and ONNX Runtime runners for both.

2D (``kp2d`` cards): the graph takes ``images`` (B, 3, h, w) float32 RGB with raw pixel values 0..255
(uint8 values as float; the ImageNet normalisation is inside) and returns ``heatmaps`` (B, K, h/s, w/s)
and, for offset codecs, ``offsets`` (B, K, 2, h/s, w/s); :class:`OnnxEstimator` decodes them.

3D (``hps3d`` cards): the graph is the :class:`~lowres_hps.models.body3d.Body3DNet` alone; it takes
``images`` (B, 3, S, S) uint8 RGB and ``range_index`` (B,) int64 and returns ``pose_vector`` (B, D),
``camera`` (B, 3) and ``features`` (B, F); a baseline (not resolution-aware) network has no
``range_index`` input. The body model is not in the graph: it runs after the network
(:class:`OnnxBody3DNet` gives the outputs as tensors for it).

``metadata_props`` document the preprocessing, the crop protocol, the outputs and the keypoint names,
and hold the model card JSON.

Uses the TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``, which
is not a dependency.
"""
from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lowres_hps.apis.registry import CARD_METADATA_KEY, ModelCard

__all__ = [
    "DEFAULT_OPSET",
    "export_onnx",
    "onnx_metadata",
    "body3d_onnx_metadata",
    "read_onnx_card",
    "OnnxEstimator",
    "OnnxBody3DNet",
    "main",
]

DEFAULT_OPSET = 17
INPUT_NAME = "images"
RANGE_INPUT_NAME = "range_index"
BODY3D_OUTPUT_NAMES = ("pose_vector", "camera", "features")


class _ExportWrapper(nn.Module):
    """Tuple outputs (ONNX has no dict outputs and no None)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return (out["heatmaps"],) if out["offsets"] is None else (out["heatmaps"], out["offsets"])


class _Body3DExportWrapper(nn.Module):
    """Body3DNet with tuple outputs in :data:`BODY3D_OUTPUT_NAMES` order (``range_index`` optional:
    the baseline network does not use it)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out = self.model(images, range_index)
        return tuple(out[name] for name in BODY3D_OUTPUT_NAMES)


def _decode_text(config, codec) -> str:
    """How to turn the outputs into keypoints in input pixels, in words (for non-Python users)."""
    h, w = config.input_size
    hh, hw = h // config.stride, w // config.stride
    to_input = (f"heatmap px -> input px: x_in = x_hm * {w - 1}/{hw - 1}, y_in = y_hm * {h - 1}/{hh - 1} "
                f"(pixel centres at integer coordinates, UDP mapping)")
    if getattr(codec, "has_offsets", False):
        score = "sigmoid(heatmap logit at the argmax)" if config.codec == "udp" else "heatmap value at the argmax"
        return (f"{config.codec}: per keypoint k, (x, y) = argmax of heatmaps[k] (integer heatmap px), then "
                f"add {codec.offset_scale:g} * offsets[k, :, y, x] (channel 0 = x, 1 = y); {to_input}; "
                f"score = {score}.")
    refine = ("DARK (Taylor expansion of the log of the blurred heatmap)" if getattr(codec, "decode_dark", False)
              else "a quarter pixel towards the higher neighbour along x and y")
    return (f"{config.codec}: per keypoint k, (x, y) = argmax of heatmaps[k] (integer heatmap px), refined by "
            f"{refine}; {to_input}; score = heatmap value at the argmax.")


def onnx_metadata(card: ModelCard) -> dict[str, str]:
    """``metadata_props`` of an exported model: preprocessing, crop protocol, decoding, keypoints, card."""
    from lowres_hps.body.keypoints import get_convention
    from lowres_hps.models.pose2d import build_codec

    cfg = card.pose2d_config()
    codec = build_codec(cfg)
    h, w = cfg.input_size
    hh, hw = codec.heatmap_size
    mean = [round(255.0 * m, 4) for m in cfg.mean]
    std = [round(255.0 * s, 4) for s in cfg.std]
    outputs = f"heatmaps (B, {cfg.num_keypoints}, {hh}, {hw})"
    if codec.has_offsets:
        outputs += f"; offsets (B, {cfg.num_keypoints}, 2, {hh}, {hw}) as (x, y) per keypoint"
    return {
        "input": f"{INPUT_NAME}: float32 (B, 3, {h}, {w}), NCHW",
        "input_size": f"{h}x{w} (height x width)",
        "color_order": "RGB",
        "value_range": "0..255 (uint8 pixel values cast to float32; do not scale to [0, 1])",
        "normalization": f"applied inside the model: (x - {mean}) / {std} per RGB channel "
                         f"(ImageNet mean {list(cfg.mean)} and std {list(cfg.std)} times 255)",
        "crop_protocol": (f"top-down person crop: grow the person box to aspect w/h = {w / h:g} about its centre, "
                          f"enlarge it by scale_factor {cfg.scale_factor:g}, warp that region to {h}x{w} "
                          f"(antialiased when shrinking; zeros outside the image); "
                          f"lowres_hps.imaging.protocol.LowResProtocol(setting='native')"),
        "scale_factor": f"{cfg.scale_factor:g}",
        "aspect_ratio": f"{w / h:g}",
        "outputs": outputs,
        "heatmap_stride": str(cfg.stride),
        "codec": cfg.codec,
        "codec_params": json.dumps(cfg.codec_params),
        "decode": _decode_text(cfg, codec),
        "flip_test": (f"{cfg.flip_test}: average the outputs of the crop and of its mirror image after flipping "
                      f"the latter back (x -> w - 1 - x, left/right keypoints swapped, x offsets negated)"),
        "keypoint_convention": cfg.convention,
        "keypoint_names": json.dumps(list(get_convention(cfg.convention).names)),
        CARD_METADATA_KEY: card.to_json(),
    }


def body3d_onnx_metadata(card: ModelCard, feature_dim: int | None = None) -> dict[str, str]:
    """``metadata_props`` of an exported 3D body network: preprocessing, crop protocol, range index,
    outputs, crop camera, body model, keypoints and the card."""
    from lowres_hps.body.keypoints import get_convention
    from lowres_hps.imaging.protocol import HIGH_RESOLUTION, RESOLUTION_RANGES
    from lowres_hps.models.body3d import MIN_CAMERA_SCALE, SPIN_FOCAL_224

    cfg = card.body3d_config()
    spec = cfg.pose_spec
    s = cfg.canvas
    mean = [round(255.0 * m, 4) for m in cfg.mean]
    std = [round(255.0 * v, 4) for v in cfg.std]
    full = HIGH_RESOLUTION / cfg.scale_factor
    last = len(RESOLUTION_RANGES) - 1
    bounds = ([f"0 for h >= {full:g} (= {HIGH_RESOLUTION} / scale_factor)",
               f"1 for [{RESOLUTION_RANGES[1][0]}, {full:g})"]
              + [f"{i} for [{low}, {high})" for i, (low, high) in enumerate(RESOLUTION_RANGES) if 1 < i < last]
              + [f"{last} below {RESOLUTION_RANGES[last][1]}"])
    if cfg.resolution_aware:
        ranges = (f"int64 (B,), the resolution range of each crop from its person height h in source image px (the "
                  f"height of the aspect-fixed person box, i.e. the side of the crop region / {cfg.scale_factor:g}): "
                  f"{', '.join(bounds)}; clipped to [0, {cfg.num_ranges - 1}]. "
                  f"lowres_hps.imaging.protocol.input_range_index(h, {cfg.scale_factor:g}). It picks the row of "
                  f"RSC-Net's per-range residual weights.")
    else:
        ranges = "not an input: this baseline (not resolution-aware) network runs every resolution alike."
    pose_layout = (f"{spec.num_joints} joint rotations x 6 values (the first two columns of the 3x3 rotation, "
                   f"row-major [R00, R01, R10, R11, R20, R21]; Gram-Schmidt gives the rotation) for joints "
                   f"{list(spec.joint_names)}, the root first and in camera axes (x right, y down, z forward); "
                   f"then {spec.shape_size} shape values {list(spec.shape_names)}")
    focal = cfg.crop_focal
    centre = (s - 1) / 2
    return {
        "task": "hps3d: 3D body pose and shape of a person crop",
        "input": (f"{INPUT_NAME}: uint8 (B, 3, {s}, {s}), NCHW" + (f"; {RANGE_INPUT_NAME}: int64 (B,)"
                                                                   if cfg.resolution_aware else "")),
        "input_size": f"{s}x{s} (height x width)",
        "color_order": "RGB",
        "value_range": "0..255 uint8 pixel values (cast to float32 inside the graph)",
        "normalization": f"applied inside the model: (x - {mean}) / {std} per RGB channel "
                         f"(mean {list(cfg.mean)} and std {list(cfg.std)} times 255)",
        "crop_protocol": (f"top-down person crop: grow the person box to a square about its centre, enlarge it by "
                          f"scale_factor {cfg.scale_factor:g}, warp that region to {s}x{s} (bicubic, antialiased when "
                          f"shrinking; zeros outside the image); "
                          f"lowres_hps.imaging.protocol.LowResProtocol(({s}, {s}), {cfg.scale_factor:g}, "
                          f"setting='upsample')"),
        "scale_factor": f"{cfg.scale_factor:g}",
        "aspect_ratio": "1",
        "range_index": ranges,
        "outputs": (f"pose_vector (B, {spec.vector_size}); camera (B, 3) weak-perspective [s, tx, ty] of the crop; "
                    f"features (B, {feature_dim or 'F'}) the pooled image feature (RSC-Net's phi)"),
        "pose_vector_layout": pose_layout,
        "camera": (f"crop camera: focal {focal:g} px (SPIN's {SPIN_FOCAL_224:g} px at 224 px, scaled to the {s} px "
                   f"canvas), principal point ({centre:g}, {centre:g}) (pixel centres at integer coordinates); root "
                   f"translation t = (tx, ty, 2 * {focal:g} / ({s} * max(s, {MIN_CAMERA_SCALE:g}))) metres; a body "
                   f"point X (root-relative, camera axes, metres) projects to {focal:g} * (X + t)[:2] / (X + t)[2] + "
                   f"({centre:g}, {centre:g})"),
        "body_model": (f"{cfg.body_model}, NOT in this graph: run it after the network on pose_vector "
                       f"(lowres_hps.body.load_body_model({cfg.body_model!r}).forward_vector(pose_vector)) for the "
                       f"vertices and {cfg.convention} keypoints, root at the origin; then add the camera translation"),
        "keypoint_convention": cfg.convention,
        "keypoint_names": json.dumps(list(get_convention(cfg.convention).names)),
        CARD_METADATA_KEY: card.to_json(),
    }


def _default_card(network, path: Path) -> ModelCard:
    """A card made from the network's config when none came with it."""
    from lowres_hps.models.body3d import Body3DConfig

    config = getattr(network, "config", None)
    if config is None:
        raise ValueError("the model has no config; pass card=ModelCard(...)")
    notes = "exported without a model card"
    if isinstance(config, Body3DConfig):
        return ModelCard.from_body3d_config(path.stem, config, notes=notes)
    return ModelCard.from_config(path.stem, config, notes=notes)


def _write_onnx(wrapper: nn.Module, examples: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                output_names: list[str], dynamic: bool, opset: int, doc: str, metadata: dict[str, str]) -> None:
    """Export, then set the doc string and ``metadata_props``, check and save (atomically)."""
    import onnx

    from lowres_hps.core.io import atomic_write

    dynamic_axes = {name: {0: "batch"} for name in [*input_names, *output_names]} if dynamic else None
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
    """Export a 2D pose network or a 3D body network to ONNX with documented ``metadata_props``;
    checked with ``onnx.checker``.

    Args:
        model: a :class:`~lowres_hps.models.pose2d.TopDownPoseModel` or ``TopDownEstimator`` (2D), a
            :class:`~lowres_hps.models.body3d.Body3DNet` or ``Body3DEstimator`` (3D: the network only).
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
    size = 1 if batch == "dynamic" else batch
    param = next(network.parameters())
    if card.task == "hps3d":
        cfg = card.body3d_config()
        wrapper = _Body3DExportWrapper(network).eval()
        # uint8 images, as the crops come; range 0 everywhere (any valid index traces the same graph).
        examples = (torch.zeros(size, 3, cfg.canvas, cfg.canvas, dtype=torch.uint8, device=param.device),)
        input_names = [INPUT_NAME]
        if cfg.resolution_aware:
            examples += (torch.zeros(size, dtype=torch.int64, device=param.device),)
            input_names.append(RANGE_INPUT_NAME)
        with torch.no_grad():
            feature_dim = wrapper(*examples)[2].shape[1]
        doc = (f"lowres-hps 3D body network {card.name!r}: {cfg.backbone} "
               f"{'resolution-aware ' if cfg.resolution_aware else ''}backbone, {cfg.body_model} pose vector, "
               f"input {cfg.canvas}x{cfg.canvas} RGB uint8 + range_index; the body model runs after it; "
               f"see metadata_props")
        _write_onnx(wrapper, examples, path, input_names, list(BODY3D_OUTPUT_NAMES),
                    batch == "dynamic", opset, doc, body3d_onnx_metadata(card, feature_dim))
        return path
    cfg = card.pose2d_config()
    wrapper = _ExportWrapper(network).eval()
    example = torch.zeros(size, 3, *cfg.input_size, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        num_outputs = len(wrapper(example))
    doc = (f"lowres-hps 2D keypoint model {card.name!r}: {cfg.backbone} backbone, {cfg.codec} "
           f"codec, input {cfg.input_size[0]}x{cfg.input_size[1]} RGB 0..255; see metadata_props")
    _write_onnx(wrapper, (example,), path, [INPUT_NAME], ["heatmaps", "offsets"][:num_outputs],
                batch == "dynamic", opset, doc, onnx_metadata(card))
    return path


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card stored in an exported model's ``metadata_props``."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if CARD_METADATA_KEY not in props:
        raise ValueError(f"{path} has no lowres-hps model card in its metadata_props; export it with "
                         f"`lowres-hps export`")
    return ModelCard.from_json(props[CARD_METADATA_KEY])


def _open_session(path, num_threads: int | None, providers: list[str] | None):
    """An ONNX Runtime session (``num_threads`` intra-op threads when given) and its fixed batch size,
    or None when the batch dimension is dynamic."""
    import onnxruntime as ort

    options = ort.SessionOptions()
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
        self.config = self.card.pose2d_config()
        self.codec = build_codec(self.config)
        self.flip_test = self.config.flip_test if flip_test is None else bool(flip_test)
        self.input_size: tuple[int, int] = tuple(self.config.input_size)
        self.scale_factor: float = float(self.config.scale_factor)
        self.convention: str = self.config.convention
        self.flip_permutation = get_convention(self.convention).flip_permutation
        self.session, self.fixed_batch = _open_session(path, num_threads, providers)

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

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, offsets = self.outputs(crops)
        keypoints, scores = self.codec.decode(heatmaps, offsets)
        return keypoints.to(crops.device), scores.clamp(0.0, 1.0).to(crops.device)

    def __repr__(self) -> str:
        return f"OnnxEstimator({self.card.name!r}, input_size={self.input_size}, flip_test={self.flip_test})"


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
        self.config = self.card.body3d_config()
        self.input_size: tuple[int, int] = self.config.input_size
        self.session, self.fixed_batch = _open_session(path, num_threads, providers)
        # A baseline (not resolution-aware) network does not use range_index, so its graph has no such input.
        self.takes_range_index = RANGE_INPUT_NAME in {i.name for i in self.session.get_inputs()}

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


def _max_abs_difference(estimator, path: Path, batch: int | str, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over the raw outputs, on random 0..255 images (and random ranges)."""
    import onnxruntime as ort

    size = 2 if batch == "dynamic" else int(batch)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (size, 3, *estimator.input_size), generator=generator, dtype=torch.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    network = estimator.model
    with torch.inference_mode():
        if getattr(estimator, "card", None) is not None and estimator.card.task == "hps3d":
            ranges = torch.randint(0, estimator.config.num_ranges, (size,), generator=generator)
            out = network(images.to(estimator.device), ranges.to(estimator.device))
            expected = [out[name] for name in BODY3D_OUTPUT_NAMES]
            feed = {INPUT_NAME: images.numpy(), RANGE_INPUT_NAME: ranges.numpy()}
            names = {i.name for i in session.get_inputs()}
            got = session.run(None, {k: v for k, v in feed.items() if k in names})
        else:
            out = network(images.float().to(estimator.device))
            expected = [out["heatmaps"]] + ([out["offsets"]] if out["offsets"] is not None else [])
            got = session.run(None, {INPUT_NAME: images.float().numpy()})
    return max(float(np.abs(g - e.cpu().numpy()).max()) for g, e in zip(got, expected))


def main(args: argparse.Namespace) -> int:
    """``lowres-hps export``: a registered 2D or 3D model or checkpoint -> ONNX (checked, then compared
    with PyTorch)."""
    from lowres_hps.apis.registry import load_model

    if args.format != "onnx":
        raise ValueError(f"unsupported format {args.format!r}; only 'onnx'")
    batch: Any = args.batch
    if batch != "dynamic":
        try:
            batch = int(batch)
        except ValueError:
            raise ValueError(f"--batch must be 'dynamic' or an integer, got {args.batch!r}") from None
    estimator = load_model(args.model)
    out = export_onnx(estimator, args.out, batch=batch, opset=args.opset)
    size_mb = out.stat().st_size / 2**20
    h, w = estimator.input_size
    if estimator.card is not None and estimator.card.task == "hps3d":
        what = (f"input {h}x{w} RGB uint8 + range_index, outputs {', '.join(BODY3D_OUTPUT_NAMES)}; the "
                f"{estimator.config.body_model} body model runs after the network")
    else:
        what = f"input {h}x{w} RGB 0..255, codec {estimator.config.codec}"
    print(f"wrote {out} ({size_mb:.1f} MiB, opset {args.opset}, batch {batch}, {what})")
    if args.verify:
        diff = _max_abs_difference(estimator, out, batch)
        print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e}")
        if not diff <= 1e-3:
            print("warning: outputs differ by more than 1e-3")
            return 1
    return 0
