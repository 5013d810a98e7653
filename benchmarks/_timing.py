"""Shared timing helper for the benchmark scripts: warm up, repeat, report the median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timeit(fn: Callable[[], Any], warmup: int = 2, repeats: int = 5) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` runs, after `warmup` untimed runs.

    CPU only; a GPU benchmark synchronises inside `fn` (e.g. `torch.cuda.synchronize()`).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)
