"""Person detection with rtmlib's YOLOX ONNX models (mmdeploy end2end exports, NMS inside the
graph). Pre-processing is rtmlib's exactly: letterbox into the model input (top-left aligned, fill
114, bilinear resize, raw BGR 0-255, batch 1); post-processing divides the boxes by the letterbox
ratio and keeps those scoring above 0.3. `largest_box` picks the signer as the largest person.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nmmfast.extract.models import model_hint, require_cv2
from nmmfast.runtime import Session, SessionError, open_session

__all__ = ["YOLOX", "largest_box"]


def largest_box(boxes: np.ndarray) -> np.ndarray | None:
    """The box of largest area among boxes [M, 4] (x1, y1, x2, y2), or None when M == 0; ties go to
    the first (the detector orders by score)."""
    if len(boxes) == 0:
        return None
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))]


class YOLOX:
    """A YOLOX person detector with non-maximum suppression in the graph.

    Model I/O: input `[1, 3, H, W]` float32 (raw BGR, letterboxed); first output `dets` [1, K, 5]
    (x1, y1, x2, y2, score in input pixels). `input_size` (H, W) is read from the model, and is only
    needed for models whose spatial axes are dynamic.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Session,
        *,
        backend: str = "onnxruntime",
        device: str = "cpu",
        score_thr: float = 0.3,
        input_size: tuple[int, int] | None = None,
        threads: int | None = None,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(model, Session):
            self.session = model
        else:
            options = dict(session_options or {})
            if backend == "onnxruntime" and threads:
                options["threads"] = threads
            self.session = open_session(
                model, backend, device, hint=model_hint("detector"), **options
            )
        self.path = self.session.path
        shape = self.session.input.shape
        if len(shape) != 4 or shape[1] not in (3, None):
            raise SessionError(
                f"{self.path}: a YOLOX detector takes input [1, 3, H, W], this model takes {shape}"
            )
        if shape[2] is not None and shape[3] is not None:
            self.input_size = (int(shape[2]), int(shape[3]))
        elif input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        else:
            raise SessionError(
                f"{self.path}: the model's spatial input axes are dynamic ({shape}); "
                f"pass input_size=(H, W)"
            )
        names = self.session.output_names
        self._dets_name = "dets" if "dets" in names else names[0]
        self.score_thr = score_thr
        self._input_name = self.session.input.name
        height, width = self.input_size
        self._canvas = np.empty((1, 3, height, width), np.float32)

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Letterbox one BGR uint8 frame [h, w, 3] into the model input [1, 3, H, W] float32;
        returns (input, ratio). The returned array is reused by the next call."""
        cv2 = require_cv2()

        height, width = self.input_size
        canvas = self._canvas
        if frame.shape[:2] == (height, width):
            canvas[0] = frame.transpose(2, 0, 1)
            return canvas, 1.0
        ratio = min(height / frame.shape[0], width / frame.shape[1])
        new_w, new_h = int(frame.shape[1] * ratio), int(frame.shape[0] * ratio)
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        canvas.fill(114.0)
        canvas[0, :, :new_h, :new_w] = resized.transpose(2, 0, 1)
        return canvas, ratio

    def inference(self, batch: np.ndarray) -> np.ndarray:
        """dets [1, K, 5] for one letterboxed input."""
        dets = self.session.run({self._input_name: batch})[self._dets_name]
        if dets.ndim != 3 or dets.shape[-1] != 5:
            raise SessionError(
                f"{self.path}: expected a YOLOX end2end model with NMS in the graph (first output "
                f"[1, K, 5]: x1, y1, x2, y2, score), got an output of shape {dets.shape}"
            )
        return dets

    def postprocess(self, dets: np.ndarray, ratio: float) -> np.ndarray:
        """Boxes [M, 4] float32 in frame pixels with score > score_thr, in the model's order."""
        boxes = dets[0, :, :4] / np.float32(ratio) if ratio != 1.0 else dets[0, :, :4].copy()
        keep = dets[0, :, 4] > self.score_thr
        return boxes[keep]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """All person boxes [M, 4] (x1, y1, x2, y2) in one BGR frame."""
        batch, ratio = self.preprocess(frame)
        return self.postprocess(self.inference(batch), ratio)
