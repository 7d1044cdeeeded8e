"""The handlers of the ``lowres-hps`` subcommands, one module per command (the table is in ``lowres_hps.cli``).

The top layer: a handler parses nothing (``cli`` does), takes the ``argparse.Namespace`` and returns an
exit code; it may use every package below it. Library code never imports from here.
"""
from __future__ import annotations


def parse_frame_range(text: str | None, option: str) -> tuple[int, int] | None:
    """``A:B`` (1-based first and last frame, inclusive) -> ``(A, B)``; None stays None. A ``ValueError`` names
    ``option`` (the CLI prints it as one line)."""
    if text is None:
        return None
    first, _, last = text.partition(":")
    if not (first.isdigit() and last.isdigit() and 1 <= int(first) <= int(last)):
        raise ValueError(f"{option} must be A:B with 1 <= A <= B, got {text!r}")
    return int(first), int(last)


def open_work_and_model3d(args, out):
    """The work folder of a command that trains a copy of a 3D model (``--work-dir``, default OUT with ``.work``;
    emptied first with ``--restart``) and that model (``--model3d``, default ``predict``'s), checked to be a 3D body
    model. Returns ``(work, estimator)``."""
    import shutil
    from pathlib import Path

    from lowres_hps.apis.registry import load_model
    from lowres_hps.commands.predict import DEFAULT_MODEL_3D

    work = Path(args.work_dir) if args.work_dir else Path(out).with_suffix(".work")
    if args.restart and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    estimator = load_model(args.model3d or DEFAULT_MODEL_3D, device=args.device)
    if estimator.card.task != "hps3d":
        raise ValueError(f"--model3d {args.model3d}: a {estimator.card.task} model, not a 3D body model")
    return work, estimator
