"""Inference sessions behind one interface, `session.run(feeds) -> outputs`, for ONNX Runtime (CPU,
CUDA) and TensorRT engines built from the same ONNX. `open_session` picks the implementation from
the `BACKENDS` table by backend and device; input and output shapes are read when the model is
loaded.
"""

from __future__ import annotations

from nmmfast.runtime.base import (
    BACKENDS,
    ModelNotFoundError,
    Session,
    SessionError,
    TensorSpec,
    open_session,
    parse_device,
)

__all__ = [
    "BACKENDS",
    "ModelNotFoundError",
    "Session",
    "SessionError",
    "TensorSpec",
    "open_session",
    "parse_device",
]
