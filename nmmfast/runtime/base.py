"""The session interface every runtime implements (`run({name: array}) -> {name: array}`, `inputs`,
`outputs`, `max_batch`), the backend table keyed by (backend, device) and `open_session`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "ModelNotFoundError",
    "Session",
    "SessionError",
    "TensorSpec",
    "open_session",
    "parse_device",
]


class SessionError(RuntimeError):
    """A model could not be loaded or run (the message names the file and the cause)."""


class ModelNotFoundError(FileNotFoundError):
    """A model file does not exist (the message says where to get it when the caller knows)."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, shape (None for a dynamic axis) and NumPy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Session(ABC):
    """A loaded model. Subclasses fill `path`, `backend`, `device`, `inputs`, `outputs`."""

    path: Path
    backend: str
    device: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @abstractmethod
    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on host arrays keyed by input name; returns host arrays keyed by output
        name, in the model's output order."""

    @property
    def input(self) -> TensorSpec:
        """The first input (the image for detection and pose models)."""
        return self.inputs[0]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @property
    def max_batch(self) -> int | None:
        """Rows one call may carry: None when the batch axis is dynamic and unbounded, else the
        fixed batch (or the engine profile's maximum)."""
        return self.inputs[0].shape[0] if self.inputs[0].shape else None

    @property
    def fixed_batch(self) -> bool:
        """True when every call must carry exactly `max_batch` rows (a static batch axis)."""
        return self.max_batch is not None

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s.name}{list(s.shape)}" for s in self.inputs)
        return f"{type(self).__name__}({str(self.path)!r}, {self.backend}/{self.device}, {shapes})"


def parse_device(device: str) -> tuple[str, int]:
    """'cpu' -> ('cpu', 0); 'cuda' -> ('cuda', 0); 'cuda:N' -> ('cuda', N)."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (or 'auto'), got {device!r}")
    return kind, int(index or 0)


def _onnxruntime(path: Path, device: str, **options: Any) -> Session:
    from nmmfast.runtime.ort import OrtSession

    return OrtSession(path, device, **options)


def _tensorrt(path: Path, device: str, **options: Any) -> Session:
    from nmmfast.runtime.trt import TensorRTSession

    return TensorRTSession(path, device, **options)


# (backend, device kind) -> factory(path, device, **options). A pair that is absent is unsupported.
BACKENDS: dict[tuple[str, str], Callable[..., Session]] = {
    ("onnxruntime", "cpu"): _onnxruntime,
    ("onnxruntime", "cuda"): _onnxruntime,
    ("tensorrt", "cuda"): _tensorrt,
}


def _auto_device(backend: str) -> str:
    if backend == "tensorrt":
        return "cuda"
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return "cpu"
    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


def open_session(
    path: str | os.PathLike[str],
    backend: str = "onnxruntime",
    device: str = "cpu",
    *,
    hint: str = "",
    **options: Any,
) -> Session:
    """Load a model file with a backend ("onnxruntime" or "tensorrt") on a device ("cpu", "cuda",
    "cuda:N" or "auto": CUDA when the backend can use it). `hint` is appended to the not-found
    message (e.g. where to download the file). Backend options: ORT `threads`, `spinning` (see
    `nmmfast.runtime.ort.OrtSession`); TensorRT `fp16`, `max_batch`, `opt_batch`, `cache_dir` (see
    `nmmfast.runtime.trt.TensorRTSession`)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a model file" if path.is_dir() else "not found"
        raise ModelNotFoundError(f"{path}: model file {what}" + (f". {hint}" if hint else ""))
    backends = sorted({b for b, _ in BACKENDS})
    if backend not in backends:
        raise ValueError(f"{path}: unknown backend {backend!r}; choose one of {backends}")
    if device == "auto":
        device = _auto_device(backend)
    kind, _ = parse_device(device)
    factory = BACKENDS.get((backend, kind))
    if factory is None:
        supported = [d for b, d in BACKENDS if b == backend]
        raise ValueError(f"{path}: backend {backend!r} runs on {supported}, not on {device!r}")
    return factory(path, device, **options)
