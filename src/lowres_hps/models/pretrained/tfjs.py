"""Read the weights of a TensorFlow.js graph model (``model.json`` + binary shards) with numpy alone.

TensorFlow.js stores a graph model as a JSON file whose ``weightsManifest`` lists, in order, every
constant tensor (name, shape, dtype, optional quantisation) and the binary shard files that hold
them back to back. No maintained Python library reads this without TensorFlow (tensorflowjs's
converter imports TensorFlow), hence this small reader.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TFJSGraphModel", "read_tfjs_model"]

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
           "uint8": np.uint8, "uint16": np.uint16, "int8": np.int8, "int16": np.int16}


@dataclass
class TFJSGraphModel:
    """A TFJS graph model: its graph nodes and its constant tensors.

    Attributes:
        path: the ``model.json`` it was read from.
        nodes: graph nodes by name (``{"op": ..., "input": [...], "attr": {...}}``), file order kept.
        weights: constant tensors by name, dequantised to their original dtype (float32 or int32).
        meta: the JSON's other top-level fields (``format``, ``generatedBy``, ``convertedBy``, ``signature``).
    """

    path: Path
    nodes: dict[str, dict[str, Any]]
    weights: dict[str, np.ndarray]
    meta: dict[str, Any]


def read_tfjs_model(path: str | os.PathLike) -> TFJSGraphModel:
    """Read ``model.json`` and the shards its manifest names (looked up next to it).

    Raises:
        FileNotFoundError: the JSON or a shard is missing (the message names it).
        ValueError: the JSON is not a TFJS graph model, or a shard is shorter than its manifest says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFJS model not found: {path}")
    try:
        spec = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a TFJS model.json: {exc}") from None
    if not isinstance(spec, dict) or "weightsManifest" not in spec or "modelTopology" not in spec:
        raise ValueError(f"{path} is not a TFJS graph model (no 'modelTopology' / 'weightsManifest')")
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join(_read_shard(path.parent / shard, path) for shard in group["paths"])
        offset = 0
        for entry in group["weights"]:
            array, offset = _decode_entry(entry, blob, offset, path)
            weights[entry["name"]] = array
        if offset != len(blob):
            raise ValueError(f"{path}: shards of {group['paths']} hold {len(blob)} bytes, the manifest uses {offset}")
    nodes = {node["name"]: node for node in spec["modelTopology"].get("node", [])}
    meta = {k: v for k, v in spec.items() if k not in ("modelTopology", "weightsManifest")}
    return TFJSGraphModel(path=path, nodes=nodes, weights=weights, meta=meta)


def _read_shard(path: Path, model_path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"TFJS weight shard not found: {path} (named in {model_path}'s manifest)")
    return path.read_bytes()


def _decode_entry(entry: dict[str, Any], blob: bytes, offset: int, path: Path) -> tuple[np.ndarray, int]:
    shape = [int(v) for v in entry["shape"]]
    count = int(np.prod(shape)) if shape else 1
    quant = entry.get("quantization")
    stored = quant["dtype"] if quant else entry["dtype"]
    if stored not in _DTYPES or entry["dtype"] not in _DTYPES:
        raise ValueError(f"{path}: weight {entry['name']!r} has unsupported dtype {stored!r}")
    dtype = np.dtype(_DTYPES[stored]).newbyteorder("<")
    size = count * dtype.itemsize
    if offset + size > len(blob):
        raise ValueError(f"{path}: weight shards end before {entry['name']!r} (truncated download?)")
    raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
    if quant and stored in ("uint8", "uint16"):  # affine quantisation: value = q * scale + min
        array = raw.astype(np.float32) * float(quant["scale"]) + float(quant["min"])
    else:
        array = raw
    array = array.astype(_DTYPES[entry["dtype"]]).reshape(shape)
    return array, offset + size
