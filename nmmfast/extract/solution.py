"""The whole-body solution: YOLOX every `det_every` frames (and when confidence drops), boxes
carried from the previous keypoints in between, pose crops batched across frames. With
`det_every=1` the result equals rtmlib's `Wholebody` on the largest person.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.extract.detector import YOLOX, largest_box
from nmmfast.extract.models import file_sha256
from nmmfast.extract.pose import RTMPose
from nmmfast.extract.video import VideoError, VideoReader
from nmmfast.runtime import Session

__all__ = [
    "PRESETS",
    "Extraction",
    "ExtractionError",
    "NoPersonError",
    "Wholebody",
    "extract_video",
]

# Named settings. "rtmlib": detect every frame, BGR input, mean score: rtmlib's `Wholebody` numbers.
# "tracking": detect every 8th frame and carry the box from the keypoints in between.
PRESETS: dict[str, dict[str, Any]] = {
    "rtmlib": {"det_every": 1, "color": "bgr", "score": "mean"},
    "tracking": {"det_every": 8, "color": "bgr", "score": "mean"},
}

# Upper-body joints a signer keeps in view (nose, eyes, ears, shoulders, elbows, wrists): their mean
# score is the tracking confidence.
_TRACK_JOINTS = np.arange(11)


class ExtractionError(RuntimeError):
    """A video could not be turned into poses (the message names the file)."""


class NoPersonError(ExtractionError):
    """The detector found no person in any frame of a video."""


@dataclass
class Extraction:
    """Poses of one video. keypoints [T, 133, 2] float32 in frame pixels; scores [T, 133] float32;
    boxes [T, 4] float32, the crop box of each frame (x1, y1, x2, y2); detected [T] bool, True where
    the box came from the detector on that frame."""

    path: Path
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    fps: float | None
    width: int
    height: int
    frames_expected: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.keypoints.shape[0])

    def raw(self) -> np.ndarray:
        """[T, 133, 3] float32 (x / width, y / height, score): the pose store's layout."""
        out = np.empty((self.frames, self.keypoints.shape[1], 3), np.float32)
        out[..., 0] = self.keypoints[..., 0] / self.width
        out[..., 1] = self.keypoints[..., 1] / self.height
        out[..., 2] = self.scores
        return out


class Wholebody:
    """Detector + pose model over the frames of a video (see the module docstring).

    det_model, pose_model: ONNX/engine paths, loaded `Session`s, or `YOLOX` / `RTMPose` instances.
    det_every: detect on frames 0, N, 2N, ...; frames in between reuse the box spanned by the
    previous keypoints with score > kpt_thr (expanded by `carry_expand` about its centre), and a
    frame whose upper-body mean score falls below `redetect_below` makes the next frame detect.
    device: "cpu", "cuda[:N]" or "auto" (None: "cpu" for ONNX Runtime, "cuda" for TensorRT).
    session_options: backend options for both models (TensorRT: fp16, max_batch, cache_dir).
    A detection frame with no person falls back to the whole frame when det_every == 1 (rtmlib's
    behaviour) and to the carried box, when there is one, otherwise.
    batch_size: crops per pose-model call (None: 16, capped by the model). With det_every > 1 the
    carried box of a batch spans the keypoints of the batch before it (since its last detection):
    batch_size=1 follows the previous frame exactly; larger batches trade that for batched calls.
    """

    def __init__(
        self,
        det_model: str | os.PathLike[str] | Session | YOLOX,
        pose_model: str | os.PathLike[str] | Session | RTMPose,
        *,
        det_every: int = 1,
        score: str = "mean",
        color: str = "bgr",
        backend: str = "onnxruntime",
        device: str | None = None,
        batch_size: int | None = None,
        kpt_thr: float = 0.3,
        redetect_below: float = 0.3,
        carry_expand: float = 1.25,
        threads: int | None = None,
        session_options: dict[str, Any] | None = None,
        video_backend: str = "auto",
    ) -> None:
        if det_every < 1:
            raise ValueError(f"det_every must be >= 1, got {det_every}")
        if device is None:
            device = "cuda" if backend == "tensorrt" else "cpu"
        self.detector = (
            det_model
            if isinstance(det_model, YOLOX)
            else YOLOX(
                det_model,
                backend=backend,
                device=device,
                threads=threads,
                session_options=session_options,
            )
        )
        if isinstance(pose_model, RTMPose):
            self.pose = pose_model
        else:
            self.pose = RTMPose(
                pose_model,
                backend=backend,
                device=device,
                color=color,
                score=score,
                batch_size=batch_size,
                threads=threads,
                session_options=session_options,
            )
        self.det_every = det_every
        self.kpt_thr, self.redetect_below, self.carry_expand = kpt_thr, redetect_below, carry_expand
        self._model_hashes: tuple[str, str] | None = None
        self.video_backend = video_backend

    @classmethod
    def from_preset(
        cls,
        name: str,
        det_model: str | os.PathLike[str] | Session | YOLOX,
        pose_model: str | os.PathLike[str] | Session | RTMPose,
        **overrides: Any,
    ) -> Wholebody:
        """A solution with the named settings of `PRESETS`, any of them overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(det_model, pose_model, **{**PRESETS[name], **overrides})

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers, for the store's metadata (model files by name and
        the first 16 hex digits of their SHA-256)."""
        if self._model_hashes is None:
            self._model_hashes = (
                file_sha256(self.detector.path)[:16],
                file_sha256(self.pose.path)[:16],
            )
        return {
            "det_model": self.detector.path.name,
            "det_sha256": self._model_hashes[0],
            "pose_model": self.pose.path.name,
            "pose_sha256": self._model_hashes[1],
            "det_every": self.det_every,
            "score": self.pose.score,
            "color": self.pose.color,
            "backend": self.pose.session.backend,
            "device": self.pose.session.device,
            "kpt_thr": self.kpt_thr,
            "redetect_below": self.redetect_below,
            "carry_expand": self.carry_expand,
            "pose_batch": self.pose.batch_size,
        }

    # -- one frame ---------------------------------------------------------------------------------

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [133, 2] and scores [133] of the largest person in one BGR frame (detection on
        this frame; the whole frame when nobody is found, as rtmlib)."""
        box = largest_box(self.detector(frame))
        if box is None:
            box = np.array([0, 0, frame.shape[1], frame.shape[0]], np.float32)
        keypoints, scores = self.pose([frame], box[None])
        return keypoints[0], scores[0]

    # -- a stream of frames ------------------------------------------------------------------------

    def _carry_box(
        self, keypoints: np.ndarray, scores: np.ndarray, shape: tuple[int, ...]
    ) -> np.ndarray | None:
        """The box spanned by confident keypoints of frames [F, K, 2] (union), expanded; None when
        fewer than two points are confident or the box is degenerate."""
        confident = scores > self.kpt_thr
        if confident.sum() < 2:
            return None
        points = keypoints[confident]
        low, high = points.min(axis=0), points.max(axis=0)
        if np.any(high - low < 1.0):
            return None
        center = (low + high) / 2
        half = (high - low) / 2 * self.carry_expand
        box = np.concatenate([center - half, center + half])
        height, width = shape[:2]
        box = np.clip(box, [0, 0, 0, 0], [width, height, width, height])
        if box[2] - box[0] < 1.0 or box[3] - box[1] < 1.0:
            return None
        return box.astype(np.float32)

    def track(
        self, frames: Iterable[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Process a stream of BGR frames; yields per pose batch (keypoints [B, 133, 2] float64,
        scores [B, 133] float32, boxes [B, 4] float32, detected [B] bool)."""
        step = self.pose.batch_size
        carried: np.ndarray | None = None
        need_detect = True
        index = 0
        chunk: list[np.ndarray] = []
        iterator = iter(frames)
        exhausted = False
        while not exhausted:
            chunk.clear()
            boxes = []
            detected = []
            current = carried  # later frames of this batch follow a detection made inside it
            for frame in iterator:
                detect = need_detect or index % self.det_every == 0
                box = None
                if detect:
                    box = largest_box(self.detector(frame))
                    detected.append(box is not None)
                    if box is not None:
                        need_detect = False
                        current = box
                    elif self.det_every > 1:
                        box = current
                else:
                    detected.append(False)
                    box = current
                if box is None:  # nobody found and nothing to carry: the whole frame, as rtmlib
                    box = np.array([0, 0, frame.shape[1], frame.shape[0]], np.float32)
                chunk.append(frame)
                boxes.append(box)
                index += 1
                if len(chunk) == step:
                    break
            else:
                exhausted = True
            if not chunk:
                return
            box_array = np.stack(boxes).astype(np.float32)
            keypoints, scores = self.pose(chunk, box_array)
            if self.det_every > 1:
                confidence = scores[:, _TRACK_JOINTS].mean(axis=1)
                if (confidence < self.redetect_below).any():
                    need_detect = True
                last_shape = chunk[-1].shape
                # union over frames since the last detection in this batch (or the whole batch)
                since = max((i for i, d in enumerate(detected) if d), default=0)
                carried = self._carry_box(keypoints[since:], scores[since:], last_shape)
                if carried is None:
                    need_detect = True
            yield keypoints, scores, box_array, np.array(detected, dtype=bool)

    def extract(self, path: str | os.PathLike[str], *, on_frames: Any = None) -> Extraction:
        """Poses of every frame of one video file. `on_frames(n)` is called after each batch of n
        frames (for progress bars). Raises VideoError for unreadable/empty/broken files and
        NoPersonError when no frame had a detected person."""
        path = Path(path)
        reader = VideoReader(path, backend=self.video_backend)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        try:
            for part in self.track(reader):
                parts.append(part)
                if on_frames is not None:
                    on_frames(len(part[0]))
        finally:
            reader.close()
        if not parts:
            raise VideoError(f"{path}: the video holds no decodable frames")
        keypoints = np.concatenate([p[0] for p in parts]).astype(np.float32)
        scores = np.concatenate([p[1] for p in parts]).astype(np.float32)
        boxes = np.concatenate([p[2] for p in parts])
        detected = np.concatenate([p[3] for p in parts])
        if not detected.any():
            raise NoPersonError(
                f"{path}: no person detected in any of {len(detected)} frames "
                f"(detector score threshold {self.detector.score_thr})"
            )
        return Extraction(
            path=path,
            keypoints=keypoints,
            scores=scores,
            boxes=boxes,
            detected=detected,
            fps=reader.fps,
            width=reader.width,
            height=reader.height,
            frames_expected=reader.frames,
            settings=self.settings,
        )


def extract_video(
    path: str | os.PathLike[str],
    det_model: str | os.PathLike[str] | Session | YOLOX,
    pose_model: str | os.PathLike[str] | Session | RTMPose,
    *,
    det_every: int = 1,
    score: str = "mean",
    backend: str = "onnxruntime",
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-body poses of the signer (largest person) in every frame of a video.

    Returns keypoints [T, 133, 2] float32 in frame pixels and scores [T, 133] float32. det_model,
    pose_model: rtmlib's YOLOX and RTMPose/RTMW/DWPose ONNX files (or loaded models, to reuse them
    across videos). Further options go to `Wholebody` (color, device, batch_size, ...). With the
    defaults the numbers equal rtmlib's `Wholebody` on the largest person of each frame.
    """
    solution = Wholebody(
        det_model, pose_model, det_every=det_every, score=score, backend=backend, **options
    )
    result = solution.extract(path)
    return result.keypoints, result.scores
