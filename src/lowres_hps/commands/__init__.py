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
