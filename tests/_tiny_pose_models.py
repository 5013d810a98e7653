"""Tiny random ONNX models with the I/O contracts of rtmlib's files (YOLOX: `input` [1,3,S,S] ->
`dets` [1,M,5], `labels` [1,M] after in-graph NMS; pose: `input` [N,3,H,W] -> `simcc_x`
[N,133,2W], `simcc_y` [N,133,2H]), exported from small torch modules; synthetic PyAV videos.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

__all__ = ["make_detector", "make_pose_model", "write_video"]

KEYPOINTS = 133


class _TinyDetector(torch.nn.Module):
    def __init__(self, size: int, boxes: int, score_bias: float, width: int) -> None:
        super().__init__()
        self.size = size
        self.boxes = boxes
        self.score_bias = score_bias
        self.pool = torch.nn.AvgPool2d(size // 8)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(192, width), torch.nn.Tanh(), torch.nn.Linear(width, boxes * 5)
        )
        self.conv = torch.nn.Conv2d(
            3, width // 4, 3, stride=2, padding=1
        )  # compute, like a backbone
        with torch.no_grad():
            self.head[0].weight.mul_(12.0)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image / 255.0
        x = x + 1e-3 * torch.relu(self.conv(x)).mean()  # keeps the backbone in the graph
        pooled = self.pool(x).flatten(1)  # [1, 192]
        raw = self.head(pooled).view(1, self.boxes, 5)
        cx = torch.sigmoid(raw[..., 0]) * self.size
        cy = torch.sigmoid(raw[..., 1]) * self.size
        w = (0.25 + 0.5 * torch.sigmoid(raw[..., 2])) * self.size
        h = (0.25 + 0.5 * torch.sigmoid(raw[..., 3])) * self.size
        scores = torch.sigmoid(raw[..., 4] * 3.0 + self.score_bias)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        return boxes, scores.view(1, 1, self.boxes)


class _TinyPose(torch.nn.Module):
    def __init__(self, height: int, width: int, channels: int) -> None:
        super().__init__()
        features = (height // 4) * (width // 4)
        self.stem = torch.nn.Conv2d(3, channels, 4, stride=4)
        self.body = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.keypoints = torch.nn.Conv2d(channels, KEYPOINTS, 1)
        self.head_x = torch.nn.Linear(features, 2 * width)
        self.head_y = torch.nn.Linear(features, 2 * height)
        # per-keypoint offsets: some keypoints score <= 0 (rtmlib marks them with location -1)
        self.offset = torch.nn.Parameter(torch.randn(KEYPOINTS, 1) * 0.4 + 0.1)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.stem(crops))
        x = torch.relu(self.body(x)) + x
        maps = self.keypoints(x).flatten(2)  # [N, 133, h*w]
        return self.head_x(maps) + self.offset, self.head_y(maps) + self.offset


def _export(
    module: torch.nn.Module, example: torch.Tensor, path: Path, outputs: list[str], dynamic: bool
) -> None:
    module.eval()
    with warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation; the ONNX it writes is what we test
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", "The feature will be removed", DeprecationWarning, "torch.onnx"
        )
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=outputs,
            dynamic_axes={"input": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
            if dynamic
            else None,
            opset_version=17,
            dynamo=False,
        )


def make_pose_model(
    path: str | Path,
    *,
    input_hw: tuple[int, int] = (64, 48),
    channels: int = 8,
    dynamic_batch: bool = True,
    seed: int = 0,
) -> Path:
    """A tiny SimCC pose model: input [N, 3, H, W] (N fixed at 1 unless dynamic_batch), outputs
    simcc_x [N, 133, 2W] and simcc_y [N, 133, 2H]."""
    path = Path(path)
    torch.manual_seed(seed)
    height, width = input_hw
    module = _TinyPose(height, width, channels)
    _export(module, torch.zeros(1, 3, height, width), path, ["simcc_x", "simcc_y"], dynamic_batch)
    return path


def make_detector(
    path: str | Path,
    *,
    size: int = 320,
    boxes: int = 6,
    score_bias: float = 0.0,
    width: int = 32,
    seed: int = 0,
) -> Path:
    """A tiny YOLOX-like detector with in-graph NMS: input [1, 3, size, size] raw BGR 0-255,
    outputs dets [1, M, 5] (x1, y1, x2, y2, score) and labels [1, M]. score_bias << 0 makes a
    detector that never finds anyone."""
    path = Path(path)
    torch.manual_seed(seed)
    module = _TinyDetector(size, boxes, score_bias, width)
    raw_path = path.with_suffix(".raw.onnx")
    _export(module, torch.zeros(1, 3, size, size), raw_path, ["boxes", "scores"], dynamic=False)
    model = onnx.load(str(raw_path))
    raw_path.unlink()
    graph = model.graph
    constants = [
        numpy_helper.from_array(np.array([boxes], np.int64), "nms_max"),
        numpy_helper.from_array(np.array([0.45], np.float32), "nms_iou"),
        numpy_helper.from_array(np.array([0.05], np.float32), "nms_score"),
        numpy_helper.from_array(np.array(2, np.int64), "col_box"),
        numpy_helper.from_array(np.array([1, boxes], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([2], np.int64), "last_axis"),
        numpy_helper.from_array(np.zeros((1, boxes), np.int64), "zero_labels"),
    ]
    graph.initializer.extend(constants)
    graph.node.extend(
        [
            helper.make_node(
                "NonMaxSuppression",
                ["boxes", "scores", "nms_max", "nms_iou", "nms_score"],
                ["selected"],
            ),
            helper.make_node("Gather", ["selected", "col_box"], ["keep"], axis=1),
            helper.make_node("Gather", ["boxes", "keep"], ["kept_boxes"], axis=1),
            helper.make_node("Reshape", ["scores", "flat_shape"], ["flat_scores"]),
            helper.make_node("Gather", ["flat_scores", "keep"], ["kept_scores"], axis=1),
            helper.make_node("Unsqueeze", ["kept_scores", "last_axis"], ["kept_scores3"]),
            helper.make_node("Concat", ["kept_boxes", "kept_scores3"], ["dets"], axis=2),
            helper.make_node("Gather", ["zero_labels", "keep"], ["labels"], axis=1),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, "num_dets", 5]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, "num_dets"]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_video(
    path: str | Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (160, 120),
    fps: int = 25,
    codec: str = "mpeg4",
    seed: int = 0,
) -> Path:
    """A short synthetic video (width, height = size): a textured background and a moving, changing
    "person" blob with two "hands", so every frame differs."""
    import av

    path = Path(path)
    rng = np.random.default_rng(seed)
    width, height = size
    background = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            image = (background * 0.5).astype(np.uint8)
            cx = width * (0.4 + 0.2 * np.sin(t / 5))
            cy = height * 0.5
            body = ((xs - cx) / (0.15 * width)) ** 2 + ((ys - cy) / (0.35 * height)) ** 2 < 1
            image[body] = (40 + 5 * t % 200, 120, 200)
            for side in (-1, 1):
                hx = cx + side * width * (0.2 + 0.1 * np.cos(t / 3 + side))
                hy = cy - height * 0.1 * np.sin(t / 2)
                hand = (xs - hx) ** 2 + (ys - hy) ** 2 < (0.05 * width) ** 2
                image[hand] = (230, 180, 150)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
