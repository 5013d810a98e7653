from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import nmmfast

_GPU_USABLE = nmmfast.info()["gpu_usable"]
_NO_GPU_REASON = (
    "no usable GPU: needs nmmfast built with CUDA kernels and an NVIDIA GPU with a driver "
    f"(cuda_compiled={nmmfast.info()['cuda_compiled']}, "
    f"cuda_devices={nmmfast.info()['cuda_devices']})"
)


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=[pytest.mark.cuda, pytest.mark.skipif(not _GPU_USABLE, reason=_NO_GPU_REASON)],
        ),
    ]
)
def device(request: pytest.FixtureRequest) -> str:
    """Runs a test on the CPU kernels and, where a GPU is usable, on the CUDA kernels."""
    return request.param


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tests run torch on one thread: their models are tiny, and on a small, busy machine torch's
    worker threads wait on each other and tiny ops get many times slower. Tests that need more
    threads set them themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
