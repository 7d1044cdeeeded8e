"""Writing RGB frames to a video file (``cv2.VideoWriter``), e.g. keypoint overlays of a video."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lowres_hps.core.checks import check_image

__all__ = ["VideoWriterRGB"]


class VideoWriterRGB:
    """Writes (H, W, 3) uint8 RGB frames; the size is set by the first frame.

    Args:
        path: output file; its folder is created.
        fps: frames per second.
        fourcc: codec four-character code; ``"mp4v"`` (MPEG-4 part 2) suits .mp4/.mov, ``"MJPG"`` .avi.

    Use as a context manager, or call :meth:`close`, so that the container is finalised.
    """

    def __init__(self, path: str | Path, fps: float, fourcc: str = "mp4v") -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must have four characters, got {fourcc!r}")
        self.path = Path(path)
        self.fps = float(fps)
        self.fourcc = fourcc
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None  # (w, h)
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame (same size as the first)."""
        check_image(np.asarray(frame), "frame")
        if self._closed:
            raise ValueError(f"video already closed: {self.path}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
            if not writer.isOpened():
                raise ValueError(f"cannot open a {self.fourcc} video writer for {self.path}")
            self._writer, self._size = writer, size
        elif size != self._size:
            raise ValueError(f"frame size {size[0]} x {size[1]} differs from the video's "
                             f"{self._size[0]} x {self._size[1]}: {self.path}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriterRGB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
