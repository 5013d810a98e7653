"""Shared timing helpers for the benchmark scripts: warm up, repeat, report the median."""

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


def timeit_side_by_side(
    fns: dict[str, Callable[[], Any]], warmup: int = 1, repeats: int = 5
) -> dict[str, list[float]]:
    """Seconds of every round of each function, timed in rounds that run every function once,
    so that load from other processes falls on all of them alike (a shared machine's load comes
    and goes over seconds; timing one function's repeats after another's puts it all on one
    side). Compare the best round of each (what the code costs when nothing else runs) and
    give the median beside it."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    return times
