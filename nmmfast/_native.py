"""Loads the compiled core `nmmfast._C`; reports what it was built with and what is usable now."""

from __future__ import annotations

from typing import Any

try:
    from nmmfast import _C
except ImportError as exc:  # pragma: no cover - only hit in a broken or source-only checkout
    raise ImportError(
        "nmmfast's compiled core (nmmfast._C) could not be imported. Install the package with "
        "`pip install .` from the repository root (a source checkout on sys.path has no compiled "
        f"core). Original error: {exc}"
    ) from exc

__version__: str = _C.build_info()["version"]


def cuda_usable() -> bool:
    """True when the CUDA kernels were compiled in and the CUDA runtime sees at least one GPU."""
    return bool(_C.build_info()["cuda_compiled"]) and _C.cuda_device_count() > 0


def info() -> dict[str, Any]:
    """What the compiled core was built with and what is usable on this machine now.

    Keys: `version`, `cuda_compiled` (bool), `cuda_architectures` (list of str, e.g. "90" or
    "80-real"), `cuda_compiler` (nvcc version or None), `cuda_devices` (GPUs the CUDA runtime sees),
    `gpu_usable` (CUDA kernels compiled and a GPU present), `torch_cuda` (torch.cuda.is_available(),
    or None when torch is not importable), `cpu_threads`.
    """
    build = _C.build_info()
    archs = [a for a in build["cuda_architectures"].split(",") if a]
    devices = _C.cuda_device_count() if build["cuda_compiled"] else 0
    try:
        import torch

        torch_cuda: bool | None = torch.cuda.is_available()
    except ImportError:
        torch_cuda = None
    import os

    return {
        "version": build["version"],
        "cuda_compiled": bool(build["cuda_compiled"]),
        "cuda_architectures": archs,
        "cuda_compiler": build["cuda_compiler"] or None,
        "cuda_devices": devices,
        "gpu_usable": bool(build["cuda_compiled"]) and devices > 0,
        "torch_cuda": torch_cuda,
        "cpu_threads": os.cpu_count() or 1,
    }
