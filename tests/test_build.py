from __future__ import annotations

import json
import os
import shutil

import nmmfast
from nmmfast.cli import main


def test_info_reports_build() -> None:
    report = nmmfast.info()
    assert report["version"] == nmmfast.__version__
    assert set(report) >= {"cuda_compiled", "cuda_architectures", "cuda_devices", "gpu_usable"}
    if report["gpu_usable"]:
        assert report["cuda_compiled"] and report["cuda_devices"] > 0


def test_cuda_kernels_built_whenever_nvcc_is_present() -> None:
    """Keeps CI compiling the CUDA kernels: wherever nvcc is found, the build must include them."""
    nvcc = os.environ.get("CUDACXX") or shutil.which("nvcc")
    if os.environ.get("NMMFAST_CUDA", "AUTO").upper() == "OFF" or nvcc is None:
        return
    report = nmmfast.info()
    assert report["cuda_compiled"], f"nvcc found at {nvcc} but the CUDA kernels were not compiled"
    numbers = {arch.split("-")[0] for arch in report["cuda_architectures"]}
    if not os.environ.get("NMMFAST_CUDA_ARCHITECTURES"):
        assert {"75", "80", "86", "89", "90"} <= numbers
        assert "90" in report["cuda_architectures"], "the newest architecture must ship PTX"


def test_info_command_line(capsys) -> None:
    assert main(["info", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] == nmmfast.__version__
    assert main(["info"]) == 0
    assert "cuda_compiled" in capsys.readouterr().out
