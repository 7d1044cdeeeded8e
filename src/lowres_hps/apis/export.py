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

import os
import warnings
from pathlib import Path

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
]

DEFAULT_OPSET = 17
INPUT_NAME = "images"
RANGE_INPUT_NAME = "range_index"
BODY3D_OUTPUT_NAMES = ("pose_vector", "camera", "features")


def _default_card(network, path: Path) -> ModelCard:
    """A card made from the network's config when none came with it."""
    config = getattr(network, "config", None)
    if config is None:
        raise ValueError("the model has no config; pass card=ModelCard(...)")
    return ModelCard.from_config(path.stem, config, notes="exported without a model card")


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
                opset, graph.doc.replace("{name}", repr(card.name)), metadata)
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
        self.config = self.card.model_config("kp2d")
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

    def __call__(self, crops: torch.Tensor,
                 range_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
        self.config = self.card.model_config("hps3d")
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
