"""ONNX Runtime sessions: CPU execution provider by default, the CUDA provider on request. A CUDA
request that ONNX Runtime cannot honour fails loudly instead of running silently on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nmmfast.runtime.base import Session, SessionError, TensorSpec, parse_device

__all__ = ["OrtSession"]

# ONNX Runtime type strings -> NumPy dtypes (the ones these models use).
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _spec(node) -> TensorSpec:  # noqa: ANN001 - onnxruntime NodeArg
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(_ORT_TYPES.get(node.type, np.float32)))


class OrtSession(Session):
    """An ONNX model on ONNX Runtime.

    device: "cpu" or "cuda[:N]". threads: intra-op threads (None: ONNX Runtime's default, one per
    core); give each of K worker processes about cores / K. spinning: let idle worker threads
    busy-wait for the next run (ONNX Runtime's default). Off here: a pipeline alternates two models
    and a decoding thread, and spinning threads take the cores the others need.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        *,
        threads: int | None = None,
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.device = device
        kind, index = parse_device(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node placement chatter
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"{self.path}: threads must be >= 1, got {threads}")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if kind == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise SessionError(
                    f"{self.path}: device {device!r} needs ONNX Runtime's CUDAExecutionProvider, "
                    f"but this onnxruntime offers {available}; install onnxruntime-gpu with a "
                    f"matching CUDA and cuDNN, or use device='cpu'"
                )
            providers: list = [
                ("CUDAExecutionProvider", {"device_id": index}),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise SessionError(
                f"{self.path}: ONNX Runtime cannot load this model ({err})"
            ) from None
        if kind == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise SessionError(
                f"{self.path}: ONNX Runtime fell back to the CPU (CUDA provider failed to "
                f"initialise: check the CUDA/cuDNN libraries); refusing to run silently on the CPU"
            )
        self.inputs = tuple(_spec(node) for node in self._session.get_inputs())
        self.outputs = tuple(_spec(node) for node in self._session.get_outputs())
        self._names = [spec.name for spec in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._names, dict(feeds))
        except Exception as err:
            shapes = {name: tuple(np.shape(a)) for name, a in feeds.items()}
            expected = {s.name: s.shape for s in self.inputs}
            raise SessionError(
                f"{self.path}: inference failed for inputs {shapes} (model expects {expected}): "
                f"{err}"
            ) from None
        return dict(zip(self._names, values, strict=True))
