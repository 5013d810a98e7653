"""Video frames as BGR uint8 arrays, decoded by PyAV (OpenCV as the fallback) in a background thread
so that decoding overlaps inference. Frames are streamed through a bounded queue, never the whole
video in memory; unreadable, empty or broken files raise `VideoError` naming the file.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoReader"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
_END = object()


class VideoError(RuntimeError):
    """A video file is missing, unreadable, empty, or breaks off while decoding."""


def _have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class VideoReader:
    """Frames of one video, decoded ahead in a background thread.

    backend: "pyav", "opencv" or "auto" (PyAV when installed). prefetch: frames decoded ahead.
    Attributes known after opening: `fps`, `width`, `height`, `frames` (the frame count the
    container declares, or its duration x fps; 0 when unknown). Iterating yields BGR uint8 arrays
    [height, width, 3]; iterate once. A video that ends well short of `frames` (more than 2 frames
    and 2 % missing) raises VideoError as truncated.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, backend: str = "auto", prefetch: int = 32
    ) -> None:
        self.path = Path(path)
        if backend == "auto":
            backend = "pyav" if _have_pyav() else "opencv"
        if backend not in ("pyav", "opencv"):
            raise ValueError(f"{self.path}: video backend must be 'pyav', 'opencv' or 'auto'")
        if not self.path.exists():
            raise VideoError(f"{self.path}: no such video file")
        if not self.path.is_file():
            raise VideoError(f"{self.path}: not a file")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: empty file (0 bytes)")
        self.backend = backend
        self.prefetch = max(1, prefetch)
        self.fps: float | None = None
        self.width = 0
        self.height = 0
        self.frames = 0
        self._handle: Any = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._open()

    # -- opening -----------------------------------------------------------------------------------

    def _open(self) -> None:
        if self.backend == "pyav":
            import av

            try:
                container = av.open(str(self.path))
            except Exception as err:  # av.error.* (InvalidDataError, ...) and OSError
                raise VideoError(f"{self.path}: not a readable video ({err})") from None
            if not container.streams.video:
                container.close()
                raise VideoError(f"{self.path}: contains no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame/slice threads inside the decoder
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.width, self.height = (
                int(stream.codec_context.width),
                int(stream.codec_context.height),
            )
            self.frames = int(stream.frames or 0)
            if not self.frames and self.fps:  # no frame count (e.g. Matroska): from the duration
                if stream.duration is not None and stream.time_base is not None:
                    seconds = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    seconds = container.duration / 1_000_000  # av.time_base
                else:
                    seconds = 0.0
                self.frames = int(round(seconds * self.fps))
            self._handle = (container, stream)
        else:
            from nmmfast.extract.models import require_cv2

            cv2 = require_cv2()

            capture = cv2.VideoCapture(str(self.path))
            if not capture.isOpened():
                raise VideoError(f"{self.path}: OpenCV cannot open this video")
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and fps > 0 else None
            self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            self.frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            self._handle = capture
        if self.width <= 0 or self.height <= 0:
            self.close()
            raise VideoError(f"{self.path}: video stream has no frame size (corrupt header?)")

    def close(self) -> None:
        """Stop the decoding thread (if running) and release the file."""
        if self._worker is not None:
            self._stop.set()
            self._worker.join()
            self._worker = None
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self.backend == "pyav":
            handle[0].close()
        else:
            handle.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- decoding ----------------------------------------------------------------------------------

    def _decode(self) -> Iterator[np.ndarray]:
        if self.backend == "pyav":
            container, stream = self._handle
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="bgr24")
        else:
            capture = self._handle
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._handle is None or self._worker is not None:
            raise VideoError(f"{self.path}: reader is closed (a VideoReader is iterated once)")
        frames: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = self._stop

        def produce() -> None:
            count = 0
            try:
                for frame in self._decode():
                    while not stop.is_set():
                        try:
                            frames.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                    count += 1
                result: object = _END
            except Exception as err:  # decoder errors surface in the consumer, with the file
                result = VideoError(f"{self.path}: decoding failed after {count} frames ({err})")
            while not stop.is_set():
                try:
                    frames.put(result, timeout=0.1)
                    return
                except queue.Full:
                    continue

        worker = threading.Thread(target=produce, name=f"decode:{self.path.name}", daemon=True)
        self._worker = worker
        worker.start()
        produced = 0
        try:
            while True:
                item = frames.get()
                if item is _END:
                    break
                if isinstance(item, VideoError):
                    raise item
                produced += 1
                yield item
        finally:
            self.close()
        if produced == 0:
            raise VideoError(f"{self.path}: the video holds no decodable frames")
        missing = self.frames - produced
        if missing > max(2, 0.02 * self.frames):
            raise VideoError(
                f"{self.path}: truncated: decoded {produced} of the {self.frames} frames the "
                f"container declares"
            )
