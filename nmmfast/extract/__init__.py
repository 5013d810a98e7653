"""Whole-body pose extraction from video: RTMPose/RTMW/DWPose top-down models with a YOLOX person
detector, on ONNX Runtime or TensorRT (`nmmfast.runtime`), in three layers: sessions, model classes
(`YOLOX`, `RTMPose`), and the `Wholebody` solution; `extract_to_store` fills a pose store from
videos.
"""

from __future__ import annotations

from nmmfast.extract.detector import YOLOX, largest_box
from nmmfast.extract.models import find_models, model_hint
from nmmfast.extract.pose import RTMPose, boxes_to_center_scale, simcc_decode
from nmmfast.extract.runner import ExtractReport, discover_videos, extract_to_store, shard
from nmmfast.extract.solution import (
    PRESETS,
    Extraction,
    ExtractionError,
    NoPersonError,
    Wholebody,
    extract_video,
)
from nmmfast.extract.video import VideoError, VideoReader

__all__ = [
    "PRESETS",
    "RTMPose",
    "YOLOX",
    "ExtractReport",
    "Extraction",
    "ExtractionError",
    "NoPersonError",
    "VideoError",
    "VideoReader",
    "Wholebody",
    "boxes_to_center_scale",
    "discover_videos",
    "extract_to_store",
    "extract_video",
    "find_models",
    "largest_box",
    "model_hint",
    "shard",
    "simcc_decode",
]
