"""TensorRT engines built from the same ONNX files (one batch profile; cached by ONNX hash, TensorRT
version, GPU and settings) and a session that runs them. FP16: the builder flag on TensorRT 10, an
FP16-converted ONNX with float32 I/O on TensorRT >= 11, which has only strongly typed networks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import file_sha256
from nmmfast.runtime.base import Session, SessionError, TensorSpec, parse_device

__all__ = [
    "TensorRTSession",
    "batch_profiles",
    "build_engine",
    "convert_onnx_fp16",
    "default_cache_dir",
    "engine_cache_key",
]

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def default_cache_dir() -> Path:
    """$NMMFAST_CACHE/engines, else $XDG_CACHE_HOME/nmmfast/engines, else ~/.cache/nmmfast/engines.

    Engines depend on the GPU and the TensorRT version, so they are cached per machine."""
    if os.environ.get("NMMFAST_CACHE"):
        return Path(os.environ["NMMFAST_CACHE"]) / "engines"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nmmfast" / "engines"


def batch_profiles(
    onnx_path: str | os.PathLike[str],
    min_batch: int = 1,
    opt_batch: int = 16,
    max_batch: int = 64,
    axes: Mapping[str, tuple[int, int, int]] | None = None,
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes per ONNX input: a dynamic leading axis spans the batch range; any
    other dynamic axis must be named (ONNX dim_param, e.g. "frames") in `axes`, which gives its
    (min, opt, max). A fixed leading axis gives min = opt = max."""
    import onnx

    path = Path(onnx_path)
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(
            f"{path}: need 1 <= min_batch <= opt_batch <= max_batch, got "
            f"{min_batch}, {opt_batch}, {max_batch}"
        )
    axes = dict(axes or {})
    for name, bounds in axes.items():
        if len(bounds) != 3 or not 1 <= bounds[0] <= bounds[1] <= bounds[2]:
            raise ValueError(f"{path}: axis {name!r} needs 1 <= min <= opt <= max, got {bounds}")
    model = onnx.load(str(path), load_external_data=False)
    initialisers = {init.name for init in model.graph.initializer}
    profiles = {}
    for value in model.graph.input:
        if value.name in initialisers:
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") else d.dim_param or None
            for d in value.type.tensor_type.shape.dim
        ]
        if not dims:
            raise ValueError(f"{path}: input {value.name!r} has no shape")
        low, opt, high = [], [], []
        for position, dim in enumerate(dims):
            if isinstance(dim, int):
                bounds = (dim, dim, dim)
            elif position == 0:
                bounds = (min_batch, opt_batch, max_batch)
            elif dim in axes:
                bounds = axes[dim]
            else:
                raise ValueError(
                    f"{path}: input {value.name!r} has dynamic axis {position} ({dim or 'unnamed'})"
                    f" in {dims}; give its range in axes={{name: (min, opt, max)}}"
                )
            for shape, bound in zip((low, opt, high), bounds, strict=True):
                shape.append(int(bound))
        profiles[value.name] = (tuple(low), tuple(opt), tuple(high))
    return profiles


def engine_cache_key(
    onnx_sha256: str,
    *,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    profiles: Mapping[str, Any],
    fp16: bool,
) -> str:
    """A hex key that changes whenever the engine would: model bytes, TensorRT version, GPU, profile
    shapes or precision."""
    record = {
        "onnx_sha256": onnx_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "sm": list(compute_capability),
        "profiles": {k: [list(s) for s in v] for k, v in sorted(profiles.items())},
        "fp16": bool(fp16),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def convert_onnx_fp16(onnx_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Write an FP16 version of an ONNX model with float32 inputs and outputs, for TensorRT >= 11.
    Uses NVIDIA ModelOpt AutoCast when installed, else onnxconverter-common."""
    import onnx

    src, dst = Path(onnx_path), Path(out_path)
    try:
        from modelopt.onnx import autocast  # type: ignore[import-not-found]

        model = autocast.convert_to_mixed_precision(
            onnx_path=str(src), low_precision_type="fp16", keep_io_types=True
        )
    except ImportError:
        try:
            from onnxconverter_common import float16  # type: ignore[import-not-found]
        except ImportError:
            raise SessionError(
                f"{src}: FP16 on TensorRT >= 11 needs the ONNX converted first; install "
                f"nvidia-modelopt (AutoCast) or onnxconverter-common, or build without fp16"
            ) from None
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def _trt() -> Any:
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:
        raise SessionError(
            "TensorRT is not installed: pip install tensorrt (10.x or 11.x) on a machine with an "
            "NVIDIA GPU, or use backend='onnxruntime'"
        ) from None
    return trt


def _gpu(device_index: int) -> tuple[str, tuple[int, int]]:
    import torch

    if not torch.cuda.is_available():
        raise SessionError(
            "TensorRT needs a CUDA GPU, and torch sees none (torch.cuda.is_available)"
        )
    return torch.cuda.get_device_name(device_index), torch.cuda.get_device_capability(device_index)


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    fp16: bool = False,
    min_batch: int = 1,
    opt_batch: int = 16,
    max_batch: int = 64,
    workspace: int = 1 << 30,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "cuda",
    rebuild: bool = False,
    axes: Mapping[str, tuple[int, int, int]] | None = None,
) -> Path:
    """Build (or find in the cache) a serialised TensorRT engine for an ONNX model; return its path.

    The batch axis gets one profile [min_batch, opt_batch, max_batch], other named dynamic axes
    theirs from `axes` (`batch_profiles`). The cache file is
    `<cache_dir>/<model stem>-<key>.engine` with a JSON sidecar recording what the key covers."""
    trt = _trt()
    src = Path(onnx_path)
    if not src.is_file():
        raise SessionError(f"{src}: ONNX model not found")
    _, index = parse_device(device)
    gpu_name, capability = _gpu(index)
    profiles = batch_profiles(src, min_batch, opt_batch, max_batch, axes)
    model_hash = file_sha256(src)
    key = engine_cache_key(
        model_hash,
        trt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=capability,
        profiles=profiles,
        fp16=fp16,
    )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    engine_path = cache / f"{src.stem}-{key}.engine"
    if engine_path.is_file() and not rebuild:
        return engine_path
    cache.mkdir(parents=True, exist_ok=True)

    major = int(trt.__version__.split(".")[0])
    parse_path = src
    if fp16 and major >= 11:  # strongly typed only: precision comes from the ONNX itself
        parse_path = convert_onnx_fp16(src, cache / f"{src.stem}-{model_hash[:16]}-fp16.onnx")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode from TensorRT 10 on
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(parse_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SessionError(f"{parse_path}: TensorRT cannot parse this ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profiles.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    if fp16 and major < 11:
        config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise SessionError(f"{src}: TensorRT engine build failed (see the TensorRT log above)")
    tmp = engine_path.with_suffix(".engine.tmp")
    tmp.write_bytes(bytes(plan))
    os.replace(tmp, engine_path)
    sidecar = {
        "onnx": str(src),
        "onnx_sha256": model_hash,
        "tensorrt": trt.__version__,
        "gpu": gpu_name,
        "sm": list(capability),
        "profiles": {k: [list(s) for s in v] for k, v in profiles.items()},
        "fp16": fp16,
    }
    engine_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return engine_path


def _make_output_allocator(device: Any) -> Any:
    """A TensorRT output allocator for outputs whose shape depends on the data (TensorRT >= 10
    reports such shapes only through this interface): byte buffers as torch CUDA tensors."""
    import torch

    trt = _trt()

    class _OutputAllocator(trt.IOutputAllocator):
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)
            self.buffers: dict[str, Any] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(
            self, tensor_name: str, memory: int, size: int, alignment: int
        ) -> int:
            buffer = self.buffers.get(tensor_name)
            if buffer is None or buffer.numel() < max(size, 1):
                buffer = torch.empty(max(size, 1), dtype=torch.uint8, device=device)
                self.buffers[tensor_name] = buffer
            return buffer.data_ptr()

        def reallocate_output_async(
            self, tensor_name: str, memory: int, size: int, alignment: int, stream: int
        ) -> int:
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

    return _OutputAllocator()


class TensorRTSession(Session):
    """A TensorRT engine run on one GPU through the name-based tensor API (TensorRT >= 10).

    `path` is an engine (.engine/.plan/.trt) or an ONNX file, which is built (or taken from the
    cache) with `build_engine(fp16=..., max_batch=..., opt_batch=..., cache_dir=...)`. Device
    buffers are torch CUDA tensors, grown to the largest batch seen; one CUDA stream per session.
    """

    backend = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        device: str = "cuda",
        *,
        fp16: bool = False,
        max_batch: int = 64,
        opt_batch: int = 16,
        cache_dir: str | os.PathLike[str] | None = None,
        axes: Mapping[str, tuple[int, int, int]] | None = None,
    ) -> None:
        import torch

        trt = _trt()
        self.path = Path(path)
        self.device = device
        kind, index = parse_device(device)
        if kind != "cuda":
            raise SessionError(f"{self.path}: TensorRT runs on 'cuda[:N]', not {device!r}")
        _gpu(index)
        self._torch_device = torch.device("cuda", index)
        engine_path = self.path
        if self.path.suffix.lower() not in ENGINE_SUFFIXES:
            engine_path = build_engine(
                self.path,
                fp16=fp16,
                opt_batch=min(opt_batch, max_batch),
                max_batch=max_batch,
                cache_dir=cache_dir,
                device=device,
                axes=axes,
            )
        self.engine_path = engine_path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self._torch_device):
            self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self._engine is None:
                raise SessionError(
                    f"{engine_path}: TensorRT cannot deserialise this engine (built by another "
                    f"TensorRT version or for another GPU? rebuild it from the ONNX)"
                )
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._torch_device)
        inputs, outputs = [], []
        self._max_rows: dict[str, int] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if shape and shape[0] == -1:
                    _, _, high = self._engine.get_tensor_profile_shape(name, 0)
                    self._max_rows[name] = int(high[0])
                spec_shape = tuple(None if d == -1 else d for d in shape)
                inputs.append(TensorSpec(name, spec_shape, dtype))
            else:
                outputs.append(
                    TensorSpec(name, tuple(None if d == -1 else d for d in shape), dtype)
                )
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        self._buffers: dict[str, Any] = {}
        self._allocator: Any = None

    @property
    def max_batch(self) -> int | None:
        first = self.inputs[0]
        return self._max_rows.get(first.name, first.shape[0] if first.shape else None)

    @property
    def fixed_batch(self) -> bool:
        return self.inputs[0].name not in self._max_rows and self.max_batch is not None

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        import torch

        count = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < count:
            torch_dtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            buf = torch.empty(count, dtype=torch_dtype, device=self._torch_device)
            self._buffers[name] = buf
        return buf[:count].view(shape)

    def run_device(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run on torch CUDA tensors already on this session's GPU; returns CUDA tensors (views of
        the session's buffers, valid until the next call)."""
        import torch

        context = self._context
        with torch.cuda.stream(self._stream):
            for spec in self.inputs:
                if spec.name not in feeds:
                    raise SessionError(f"{self.path}: missing input {spec.name!r}")
                tensor = feeds[spec.name]
                limit = self._max_rows.get(spec.name)
                if limit is not None and tensor.shape[0] > limit:
                    raise SessionError(
                        f"{self.path}: batch {tensor.shape[0]} for {spec.name!r} exceeds the "
                        f"engine profile maximum {limit}; rebuild with a larger max_batch"
                    )
                staged = self._buffer(spec.name, tuple(tensor.shape), spec.dtype)
                staged.copy_(tensor, non_blocking=True)
                if not context.set_input_shape(spec.name, tuple(tensor.shape)):
                    raise SessionError(
                        f"{self.path}: input {spec.name!r} shape {tuple(tensor.shape)} is outside "
                        f"the engine's profile"
                    )
                context.set_tensor_address(spec.name, staged.data_ptr())
            results = {}
            dynamic = []
            for spec in self.outputs:
                shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
                if any(d < 0 for d in shape):  # data-dependent (e.g. boxes kept by NMS)
                    if self._allocator is None:
                        self._allocator = _make_output_allocator(self._torch_device)
                    context.set_output_allocator(spec.name, self._allocator)
                    dynamic.append(spec)
                    continue
                out = self._buffer(spec.name, shape, spec.dtype)
                context.set_tensor_address(spec.name, out.data_ptr())
                results[spec.name] = out
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise SessionError(f"{self.path}: TensorRT execution failed")
            if dynamic:  # shapes are known once the engine has run
                self._stream.synchronize()
                for spec in dynamic:
                    shape = self._allocator.shapes[spec.name]
                    raw = self._allocator.buffers[spec.name]
                    count = int(np.prod(shape))
                    torch_dtype = torch.from_numpy(np.zeros(0, spec.dtype)).dtype
                    flat = raw[: count * spec.dtype.itemsize].view(torch_dtype)
                    results[spec.name] = flat.view(shape)
        return {spec.name: results[spec.name] for spec in self.outputs}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.cuda.stream(self._stream):
            device_feeds = {
                name: torch.from_numpy(np.ascontiguousarray(a)).to(
                    self._torch_device, non_blocking=True
                )
                for name, a in feeds.items()
            }
        outputs = self.run_device(device_feeds)
        with torch.cuda.stream(self._stream):
            host = {name: t.to("cpu", non_blocking=False) for name, t in outputs.items()}
        self._stream.synchronize()
        return {name: t.numpy() for name, t in host.items()}
