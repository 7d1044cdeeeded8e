"""ONNX export of 2D pose networks, and an ONNX Runtime estimator that decodes with the same codec.

The exported graph takes ``images`` (B, 3, h, w) float32 RGB with raw pixel values 0..255 (uint8 values
as float; the ImageNet normalisation is inside) and returns ``heatmaps`` (B, K, h/s, w/s) and, for
offset codecs, ``offsets`` (B, K, 2, h/s, w/s). ``metadata_props`` document the preprocessing, the crop
protocol, the decoding and the keypoint names, and hold the model card JSON.

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

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_metadata", "read_onnx_card", "OnnxEstimator", "main"]

DEFAULT_OPSET = 17
INPUT_NAME = "images"


class _ExportWrapper(nn.Module):
    """Tuple outputs (ONNX has no dict outputs and no None)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return (out["heatmaps"],) if out["offsets"] is None else (out["heatmaps"], out["offsets"])


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


def export_onnx(
    model,
    path: str | os.PathLike,
    card: ModelCard | None = None,
    batch: int | str = "dynamic",
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a pose network to ONNX with documented ``metadata_props``; checked with ``onnx.checker``.

    Args:
        model: a :class:`~lowres_hps.models.pose2d.TopDownPoseModel` or ``TopDownEstimator``.
        path: output ``.onnx`` file.
        card: its model card (default: the estimator's card, else one made from the model's config).
        batch: ``"dynamic"`` or a fixed batch size.
        opset: ONNX opset version.

    Returns:
        The path written.
    """
    import onnx

    from lowres_hps.engine.checkpoint import atomic_write

    if card is None:
        card = getattr(model, "card", None)
    network = getattr(model, "model", model)
    if card is None:
        if getattr(network, "config", None) is None:
            raise ValueError("the model has no config; pass card=ModelCard(...)")
        card = ModelCard.from_config(Path(path).stem, network.config, notes="exported without a model card")
    cfg = card.pose2d_config()
    if batch != "dynamic" and (not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    wrapper = _ExportWrapper(network).eval()
    param = next(network.parameters())
    example = torch.zeros(1 if batch == "dynamic" else batch, 3, *cfg.input_size,
                          dtype=param.dtype, device=param.device)
    with torch.no_grad():
        num_outputs = len(wrapper(example))
    output_names = ["heatmaps", "offsets"][:num_outputs]
    dynamic_axes = None
    if batch == "dynamic":
        dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *output_names]}
    path = Path(path)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # dynamo=False is deprecated upstream, but the dynamo exporter needs onnxscript (not a dependency).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper, (example,), str(tmp), dynamo=False, input_names=[INPUT_NAME],
            output_names=output_names, dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
        )
        proto = onnx.load(str(tmp))
        proto.producer_name = "lowres-hps"
        proto.doc_string = (f"lowres-hps 2D keypoint model {card.name!r}: {cfg.backbone} backbone, {cfg.codec} "
                            f"codec, input {cfg.input_size[0]}x{cfg.input_size[1]} RGB 0..255; see metadata_props")
        del proto.metadata_props[:]
        for key, value in onnx_metadata(card).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
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


class OnnxEstimator:
    """An exported model run by ONNX Runtime: a :class:`~lowres_hps.apis.estimator.PoseEstimator`.

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
        import onnxruntime as ort

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
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) else None

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


def _max_abs_difference(estimator, path: Path, batch: int | str, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over the raw outputs, on random 0..255 images."""
    import onnxruntime as ort

    size = 2 if batch == "dynamic" else int(batch)
    images = torch.randint(0, 256, (size, 3, *estimator.input_size),
                           generator=torch.Generator().manual_seed(seed)).float()
    with torch.inference_mode():
        out = estimator.model(images.to(estimator.device))
    expected = [out["heatmaps"]] + ([out["offsets"]] if out["offsets"] is not None else [])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: images.numpy()})
    return max(float(np.abs(g - e.cpu().numpy()).max()) for g, e in zip(got, expected))


def main(args: argparse.Namespace) -> int:
    """``lowres-hps export``: a registered model or checkpoint -> ONNX (checked, then compared with PyTorch)."""
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
    print(f"wrote {out} ({size_mb:.1f} MiB, opset {args.opset}, batch {batch}, input "
          f"{estimator.input_size[0]}x{estimator.input_size[1]} RGB 0..255, codec {estimator.config.codec})")
    if args.verify:
        diff = _max_abs_difference(estimator, out, batch)
        print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e}")
        if not diff <= 1e-3:
            print("warning: outputs differ by more than 1e-3")
            return 1
    return 0
