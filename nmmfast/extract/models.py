"""Where rtmlib's ONNX model files come from, for error messages and the `--models DIR` lookup.
Nothing here downloads: models are local files the user fetched once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nmmfast._io import file_sha256

__all__ = ["DETECTOR_URLS", "POSE_URLS", "file_sha256", "find_models", "model_hint", "require_cv2"]

_BASE = "https://download.openmmlab.com/mmpose/v1/projects"
DETECTOR_URLS = {
    "yolox-m (rtmlib balanced/performance)": (
        f"{_BASE}/rtmposev1/onnx_sdk/yolox_m_8xb8-300e_humanart-c2c7a14a.zip"
    ),
    "yolox-tiny (rtmlib lightweight)": (
        f"{_BASE}/rtmposev1/onnx_sdk/yolox_tiny_8xb8-300e_humanart-6f3252f9.zip"
    ),
}
POSE_URLS = {
    "rtmw-x-l 384x288 (rtmlib performance)": (
        f"{_BASE}/rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.zip"
    ),
    "rtmw-x-l 256x192 (rtmlib balanced)": (
        f"{_BASE}/rtmw/onnx_sdk/rtmw-dw-x-l_simcc-cocktail14_270e-256x192_20231122.zip"
    ),
    "dwpose-l 384x288": (
        f"{_BASE}/rtmposev1/onnx_sdk/rtmpose-l_simcc-ucoco_dw-ucoco_270e-384x288-2438fd99_20230728.zip"
    ),
}


def require_cv2() -> Any:
    """The OpenCV module (resize, affine warp, lookup tables), or an ImportError saying what to
    install."""
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "nmmfast.extract needs OpenCV: pip install opencv-python-headless (or opencv-python)"
        ) from None
    return cv2


def model_hint(kind: str) -> str:
    """One paragraph telling the user where to get the `kind` ("detector" or "pose") ONNX file."""
    urls = DETECTOR_URLS if kind == "detector" else POSE_URLS
    listed = "; ".join(f"{name}: {url}" for name, url in urls.items())
    return (
        f"nmmfast does not download models. Get rtmlib's {kind} ONNX file: unzip one of [{listed}] "
        f"and pass its end2end.onnx, or reuse rtmlib's cache (~/.cache/rtmlib/hub/checkpoints, or "
        f"$TORCH_HOME/hub/checkpoints)"
    )


def find_models(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(detector, pose) ONNX files in a models directory: the detector's name contains "yolox", the
    pose model's "rtmw", "rtmpose" or "dw". Raises FileNotFoundError when either is missing or
    ambiguous, listing what was found."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: models directory not found. {model_hint('detector')}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".onnx")
    detectors = [p for p in files if "yolox" in p.name.lower()]
    poses = [
        p
        for p in files
        if p not in detectors and any(k in p.name.lower() for k in ("rtmw", "rtmpose", "dw"))
    ]
    found = [p.name for p in files]
    for kind, matches in (("detector", detectors), ("pose", poses)):
        if len(matches) != 1:
            what = "no" if not matches else "several"
            raise FileNotFoundError(
                f"{root}: {what} {kind} ONNX files ({[p.name for p in matches]}; "
                f"all .onnx: {found}); "
                f"pass --det-model/--pose-model explicitly. {model_hint(kind)}"
            )
    return detectors[0], poses[0]
