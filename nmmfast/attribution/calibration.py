"""Rows per batch on CPU: chosen by timing, because the best size depends on the model.

`fastest_rows` is the explicit calibration behind `IntegratedGradients.calibrate` and
`SequenceAttributor.calibrate`; `RowsTuner` does the same while real work runs, one tuner per
model and input kind for the life of the process (`shared_tuner`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch

__all__ = ["CPU_ROWS_RANGE", "CPU_ROWS_START", "RowsTuner", "fastest_rows", "shared_tuner"]

# Rows per batch on CPU when `batch_rows` is not given: the engine times its first gradient
# batches (real work, not a separate trial) from CPU_ROWS_START within CPU_ROWS_RANGE and
# keeps the fastest per real frame. No single size is right: a larger batch amortises
# per-pass overhead, a smaller one keeps a model's activations in cache, and where that
# balance lies depends on the model's width and on attention over frames, so the size is
# timed rather than guessed. The start sits mid-range so that the search reaches either end
# in a few steps.
CPU_ROWS_START = 16
CPU_ROWS_RANGE = (4, 128)


def fastest_rows(
    run: Callable[[int], Any],
    candidates: Sequence[int],
    *,
    device: torch.device,
    repeats: int = 1,
) -> int:
    """The candidate rows per batch for which `run(rows)` is fastest: one untimed warm-up call,
    then the best of `repeats` timed calls per candidate (synchronising CUDA devices)."""
    if not candidates:
        raise ValueError("calibrate: candidates is empty")
    timings: dict[int, float] = {}
    for rows in [candidates[0], *candidates]:
        best = float("inf")
        for _ in range(max(1, repeats)):
            began = time.perf_counter()
            run(int(rows))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - began)
        timings[int(rows)] = best  # the first candidate's warm-up entry is overwritten
    return min(timings, key=timings.get)


class RowsTuner:
    """Rows per CPU batch, chosen while the work runs: each gradient batch reports its time
    per real (row x frame); sizes are tried from CPU_ROWS_START by doubling or halving towards
    the faster side, and the fastest is kept. Each size counts the best of `tries` batches, so
    that a moment of load from other processes does not decide, and the first batch only warms
    up (one-time setup of the model's kernels would otherwise count against the first size).
    One tuner per model, input shape and dtype lives for the process, so later calls start
    from the chosen size."""

    def __init__(
        self,
        start: int = CPU_ROWS_START,
        limits: tuple[int, int] = CPU_ROWS_RANGE,
        tries: int = 2,
    ) -> None:
        self.lowest, self.highest = limits
        self.tries = max(1, int(tries))
        self.seconds_per_frame: dict[int, float] = {}
        self.timings: dict[int, list[float]] = {}
        self.current = int(start)
        self.warmed = False
        self.chosen: int | None = None

    @property
    def rows(self) -> int:
        return self.chosen if self.chosen is not None else self.current

    def record(self, rows: int, seconds: float, real_frames: int) -> None:
        """A gradient batch run with `rows` per batch took `seconds` for `real_frames`."""
        if self.chosen is not None or rows != self.current or real_frames <= 0:
            return
        if not self.warmed:
            self.warmed = True
            return
        timings = self.timings.setdefault(rows, [])
        timings.append(seconds / real_frames)
        if len(timings) < self.tries:
            return
        self.seconds_per_frame[rows] = min(timings)
        tried = sorted(self.seconds_per_frame)
        best = min(tried, key=self.seconds_per_frame.get)
        if len(tried) == 1:
            nxt = 2 * rows if 2 * rows <= self.highest else rows // 2
        elif best == tried[-1] and 2 * best <= self.highest:
            nxt = 2 * best
        elif best == tried[0] and best // 2 >= self.lowest:
            nxt = best // 2
        else:
            nxt = None
        if nxt is None or nxt in self.seconds_per_frame:
            self.chosen = best
        else:
            self.current = nxt


# RowsTuner per model and input kind, kept for the life of the process
_TUNERS: dict[Hashable, RowsTuner] = {}


def shared_tuner(key: Hashable) -> RowsTuner:
    """The process's tuner for `key` (model, input shape, dtype fed to it, output kind)."""
    return _TUNERS.setdefault(key, RowsTuner())
