"""``lowres-hps export``: a registered model or checkpoint of any kind -> ONNX (checked, then compared with
PyTorch)."""
from __future__ import annotations

import argparse
from typing import Any

from lowres_hps.apis.export import export_onnx, verify_onnx
from lowres_hps.apis.registry import load_model
from lowres_hps.models.kinds import get_kind

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
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
    what = get_kind(estimator.card.task).export(estimator.model).summary
    print(f"wrote {out} ({size_mb:.1f} MiB, opset {args.opset}, batch {batch}, {what})")
    if args.verify:
        diff = verify_onnx(estimator, out, batch)
        print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e}")
        if not diff <= 1e-3:
            print("warning: outputs differ by more than 1e-3")
            return 1
    return 0
