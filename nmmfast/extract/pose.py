"""Top-down whole-body pose with rtmlib's RTMPose/RTMW/DWPose ONNX files, crops batched across
frames. Pre-processing matches rtmlib bit for bit (padding 1.25, aspect fit, affine warp, mean/std
by lookup table); SimCC decoding: argmax / 2.0, score = mean (rtmlib) or min of the two maxima.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nmmfast.extract.models import model_hint, require_cv2
from nmmfast.runtime import Session, SessionError, open_session

__all__ = ["MEAN", "STD", "RTMPose", "boxes_to_center_scale", "simcc_decode"]

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
SCORES = ("mean", "min")
COLORS = ("bgr", "rgb")


def boxes_to_center_scale(
    boxes: np.ndarray, input_wh: tuple[int, int], padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] (x1, y1, x2, y2) -> centres [N, 2] and crop sizes [N, 2] (w, h): padded by
    `padding`, then widened or heightened to the model's aspect ratio (rtmlib's float32 arithmetic).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    x1, y1, x2, y2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    center = np.hstack([x1 + x2, y1 + y2]) * 0.5
    scale = np.hstack([x2 - x1, y2 - y1]) * padding
    w, h = input_wh
    aspect = w / h
    b_w, b_h = scale[:, 0:1], scale[:, 1:2]
    scale = np.where(
        b_w > b_h * aspect, np.hstack([b_w, b_w / aspect]), np.hstack([b_h * aspect, b_h])
    )
    return center, scale


def _warp_matrix(center: np.ndarray, scale: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine matrix mapping the crop (centre, size) onto the model input, computed from
    three float32 point pairs exactly as rtmlib (and mmpose) do, so the warped pixels agree."""
    cv2 = require_cv2()

    dst_w, dst_h = input_wh
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    direction = src[0] - src[1]
    src[2] = src[1] + np.r_[-direction[1], direction[0]]
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5])
    direction = dst[0] - dst[1]
    dst[2] = dst[1] + np.r_[-direction[1], direction[0]]
    return cv2.getAffineTransform(src, dst)


def simcc_decode(
    simcc_x: np.ndarray, simcc_y: np.ndarray, *, split_ratio: float = 2.0, score: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC logits simcc_x [N, K, Wx], simcc_y [N, K, Wy] -> locations [N, K, 2] float32 in model
    input pixels (bin / split_ratio; -1 / split_ratio where the score is <= 0) and scores [N, K]
    float32 (mean or min of the x and y maxima)."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if simcc_x.ndim != 3 or simcc_y.ndim != 3 or simcc_x.shape[:2] != simcc_y.shape[:2]:
        raise ValueError(
            f"simcc_decode: expected simcc_x [N, K, Wx] and simcc_y [N, K, Wy], got "
            f"{simcc_x.shape} and {simcc_y.shape}"
        )
    x_locs = simcc_x.argmax(axis=2)
    y_locs = simcc_y.argmax(axis=2)
    max_x = np.take_along_axis(simcc_x, x_locs[..., None], axis=2)[..., 0]
    max_y = np.take_along_axis(simcc_y, y_locs[..., None], axis=2)[..., 0]
    vals = 0.5 * (max_x + max_y) if score == "mean" else np.minimum(max_x, max_y)
    locs = np.stack((x_locs, y_locs), axis=-1).astype(np.float32)
    locs[vals <= 0.0] = -1
    return locs / np.float32(split_ratio), vals.astype(np.float32, copy=False)


class RTMPose:
    """A top-down SimCC whole-body pose model.

    Model I/O: input `input` [N, 3, H, W] float32 (normalised crops); outputs `simcc_x` [N, K, 2W]
    and `simcc_y` [N, K, 2H]. The input size is read from the model; the batch axis may be dynamic
    (crops of many frames per call, at most `batch_size`) or fixed (exactly that many rows per call,
    padded). `color`: "bgr" feeds the decoded BGR channels with the mean/std in the given order, as
    rtmlib does; "rgb" swaps to RGB first, as mmpose trained the models. `score`: "mean" (rtmlib) or
    "min" of the two SimCC maxima.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Session,
        *,
        backend: str = "onnxruntime",
        device: str = "cpu",
        color: str = "bgr",
        score: str = "mean",
        padding: float = 1.25,
        mean: tuple[float, float, float] = MEAN,
        std: tuple[float, float, float] = STD,
        split_ratio: float = 2.0,
        batch_size: int | None = None,
        threads: int | None = None,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        if color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {color!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if isinstance(model, Session):
            self.session = model
        else:
            options = dict(session_options or {})
            if backend == "onnxruntime" and threads:
                options["threads"] = threads
            self.session = open_session(model, backend, device, hint=model_hint("pose"), **options)
        self.path = self.session.path
        shape = self.session.input.shape
        if len(shape) != 4 or shape[2] is None or shape[3] is None:
            raise SessionError(
                f"{self.path}: a top-down pose model takes input [N, 3, H, W] with fixed H, W; "
                f"this model takes {shape}"
            )
        names = self.session.output_names
        if "simcc_x" in names and "simcc_y" in names:
            self._out_x, self._out_y = "simcc_x", "simcc_y"
        elif len(names) >= 2:
            self._out_x, self._out_y = names[0], names[1]
        else:
            raise SessionError(f"{self.path}: expected outputs simcc_x and simcc_y, found {names}")
        self.input_wh = (int(shape[3]), int(shape[2]))
        self._input_name = self.session.input.name
        self.color, self.score, self.padding, self.split_ratio = color, score, padding, split_ratio
        model_rows = self.session.max_batch
        if self.session.fixed_batch:
            self.batch_size = int(model_rows)
        else:
            wanted = 16 if batch_size is None else int(batch_size)
            self.batch_size = max(1, min(wanted, model_rows) if model_rows else wanted)
        # (value - mean) / std in float64, rounded to float32 once: rtmlib's numbers, at table cost.
        levels = np.arange(256, dtype=np.float64)
        lut = np.stack([(levels - m) / s for m, s in zip(mean, std, strict=True)], axis=-1)
        if color == "rgb":  # decoded channel j is RGB channel 2 - j: normalise it with that one
            lut = lut[:, ::-1]
        self._lut = np.ascontiguousarray(lut.astype(np.float32).reshape(1, 256, 3))

    # -- the three stages --------------------------------------------------------------------------

    def preprocess(
        self, frames: list[np.ndarray], boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crops of frames[i] (BGR uint8) around boxes[i] (x1, y1, x2, y2) -> (input [N, 3, H, W]
        float32, centres [N, 2], crop sizes [N, 2])."""
        cv2 = require_cv2()

        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(frames) != len(boxes):
            raise ValueError(f"preprocess: {len(frames)} frames but {len(boxes)} boxes")
        width, height = self.input_wh
        centers, scales = boxes_to_center_scale(boxes, self.input_wh, self.padding)
        batch = np.empty((len(frames), 3, height, width), np.float32)
        for i, frame in enumerate(frames):
            matrix = _warp_matrix(centers[i], scales[i], self.input_wh)
            crop = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR)
            normalised = cv2.LUT(crop, self._lut)  # [H, W, 3] float32
            planes = normalised.transpose(2, 0, 1)
            batch[i] = planes[::-1] if self.color == "rgb" else planes
        return batch, centers, scales

    def inference(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """simcc_x [N, K, Wx], simcc_y [N, K, Wy] for crops [N, 3, H, W], in calls of at most
        `batch_size` rows (exactly that many, zero-padded, for a fixed-batch model)."""
        rows = len(batch)
        parts_x, parts_y = [], []
        step = self.batch_size
        for start in range(0, rows, step):
            chunk = batch[start : start + step]
            real = len(chunk)
            if self.session.fixed_batch and real < step:
                padded = np.zeros((step, *chunk.shape[1:]), np.float32)
                padded[:real] = chunk
                chunk = padded
            out = self.session.run({self._input_name: chunk})
            parts_x.append(out[self._out_x][:real])
            parts_y.append(out[self._out_y][:real])
        if len(parts_x) == 1:
            return parts_x[0], parts_y[0]
        return np.concatenate(parts_x), np.concatenate(parts_y)

    def postprocess(
        self,
        simcc_x: np.ndarray,
        simcc_y: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decoded keypoints [N, K, 2] float64 in frame pixels and scores [N, K] float32."""
        locs, scores = simcc_decode(
            simcc_x, simcc_y, split_ratio=self.split_ratio, score=self.score
        )
        size = np.array(self.input_wh, dtype=np.float64)
        keypoints = locs / size * scales[:, None, :] + centers[:, None, :] - scales[:, None, :] / 2
        return keypoints, scores

    def __call__(
        self, frames: list[np.ndarray], boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints [N, K, 2] (frame pixels) and scores [N, K] of one person per frame, frames[i]
        cropped around boxes[i]."""
        if len(frames) == 0:
            return np.zeros((0, 0, 2)), np.zeros((0, 0), np.float32)
        batch, centers, scales = self.preprocess(frames, boxes)
        simcc_x, simcc_y = self.inference(batch)
        return self.postprocess(simcc_x, simcc_y, centers, scales)
