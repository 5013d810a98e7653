"""Batch Integrated Gradients over ragged pose sequences, with captum's call signature.

Packs (sample, step point) rows into length-bucketed batches built by `nmmfast.kernels.ig_scale`,
folds the gradients with `ig_reduce`, and reports per-sample completeness, per-joint and per-region
sums; optional adaptive step counts per sample.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from nmmfast.attribution.panels import STOP_RULES, refine_panels
from nmmfast.attribution.quadrature import METHODS, Rule, quadrature, refine, valid_steps
from nmmfast.kernels import IgReduceResult, ig_reduce, ig_scale

__all__ = ["AbsSigned", "IGResult", "IntegratedGradients", "frozen_eval"]

# Rows per batch on CPU when `batch_rows` is not given: the engine times its first gradient
# batches at these sizes (real work, not a separate trial) and keeps the fastest per real
# frame. The best size is model dependent: 8-17 rows on a Uni-Sign-sized encoder, about 25 on
# the tiny one, 32 or more on a per-frame MLP, where 8-row batches ran 12 % slower.
CPU_ROWS_START = 16
CPU_ROWS_RANGE = (4, 128)
# A sample joins a batch only if it has at least this share of the batch's longest frames:
# padded frames cost as much as real ones, so a sample's rows are at most 15 % padding.
BUCKET_RATIO = 0.85
# Share of the free GPU memory a batch may use when `memory_budget` is not given.
GPU_MEMORY_SHARE = 0.5


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
_TUNERS: dict[tuple, RowsTuner] = {}


class AbsSigned(NamedTuple):
    """Sums over frames and channels of |attribution| (`abs`) and of attribution (`signed`)."""

    abs: torch.Tensor
    signed: torch.Tensor


@dataclass
class IGResult:
    """Integrated Gradients of N samples; every tensor is on the host except `attributions`.

    attributions: like the inputs: a list of [T_i, J, C] or one [N, T, J, C] tensor (zeros on
        padded frames), on the inputs' device and dtype.
    delta: [N] float64, signed completeness gap Σ attributions − (F(x) − F(baseline)).
    f_input, f_baseline: [N] float64, F at the input and at the baseline (NaN, and so delta,
        when return_convergence_delta=False and the rule has no point at α = 0 / 1).
    joint: AbsSigned of [N, J]; region: AbsSigned of [N, R] (R = len(region_names)).
    total: [N] float64, Σ attributions.
    n_steps: [N] int64, step points each sample's rule ended with; converged: [N] bool (True
        when no tolerance was asked for or it was met).
    """

    attributions: list[torch.Tensor] | torch.Tensor
    delta: torch.Tensor
    f_input: torch.Tensor
    f_baseline: torch.Tensor
    joint: AbsSigned
    region: AbsSigned
    total: torch.Tensor
    n_steps: torch.Tensor
    converged: torch.Tensor
    method: str
    region_names: tuple[str, ...]
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def relative_delta(self) -> torch.Tensor:
        """[N] |delta| / |F(x) − F(baseline)| (inf where F(x) = F(baseline) and delta ≠ 0)."""
        gap = (self.f_input - self.f_baseline).abs()
        return torch.where(self.delta == 0, torch.zeros_like(gap), self.delta.abs() / gap)


@contextlib.contextmanager
def frozen_eval(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode and `requires_grad=False` on every parameter for the block, then restored;
    modules that offer `batch_norm_folded()` (`nmmfast.model.UniSignModel`) run with their batch
    norms folded into the layers before them.

    Eval mode keeps rows independent (train-mode batch norm and dropout couple or perturb them);
    frozen parameters keep autograd from saving what weight gradients would need; folded batch
    norms compute the same function without their passes over the activations.
    """
    training = [(m, m.training) for root in modules for m in root.modules()]
    params = [p for root in modules for p in root.parameters() if p.requires_grad]
    try:
        for module, _ in training:
            module.training = False
        for p in params:
            p.requires_grad_(False)
        with contextlib.ExitStack() as folded:
            for root in modules:
                if callable(getattr(root, "batch_norm_folded", None)):
                    folded.enter_context(root.batch_norm_folded())
            yield
    finally:
        for module, was in training:
            module.training = was
        for p in params:
            p.requires_grad_(True)


def _modules_of(forward_func: Callable, model: nn.Module | Sequence[nn.Module] | None) -> list:
    """The modules behind forward_func: `model` when given, else the function itself, the module
    of a bound method, and modules a closure, a functools.partial or a global name of the
    function refers to (a lambda around a model is the common case)."""
    if model is not None:
        return [model] if isinstance(model, nn.Module) else list(model)
    found: list[nn.Module] = []

    def visit(obj: Any, depth: int = 0) -> None:
        if isinstance(obj, nn.Module):
            if not any(obj is m for m in found):
                found.append(obj)
            return
        if depth > 2 or not callable(obj):
            return
        visit(getattr(obj, "__self__", None), depth + 1)
        if isinstance(obj, functools.partial):
            for value in (obj.func, *obj.args, *obj.keywords.values()):
                visit(value, depth + 1)
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, depth + 1)
        code, names = getattr(obj, "__code__", None), getattr(obj, "__globals__", {})
        for name in code.co_names if code is not None else ():
            if name in names:
                visit(names[name], depth + 1)

    visit(forward_func)
    return found


@dataclass
class _Samples:
    """The inputs as one packed [F, J, C] tensor, sorted longest first."""

    packed: torch.Tensor  # [F, J, C] in sorted order
    offsets: list[int]  # [N + 1] in sorted order
    order: torch.Tensor  # [N] sorted position -> original index
    baseline: torch.Tensor | None  # None, [J, C], or [F, J, C] in sorted order
    lengths: list[int]  # [N] original order
    padded_to: int | None  # T when the inputs were one [N, T, J, C] tensor
    device: torch.device
    dtype: torch.dtype


class IntegratedGradients:
    """Integrated Gradients of a scalar-per-row pose model, many samples × steps per pass.

    `forward_func(inputs [B, T, J, C], mask [B, T] bool, rows [B] int64, *additional_forward_args)`
    returns [B] (or [B, K] with `target` choosing a column). `rows[b]` is the index of the sample
    row b belongs to, so the function can pick that sample's target. Rows of one batch must not
    interact (the engine puts the model in eval mode and freezes its parameters during a pass).

    model: the module(s) whose mode and parameters to manage (default: `forward_func` itself,
        the module of a bound method, and modules that a closure, a functools.partial or a
        global name of `forward_func` refers to; pass `model` where none of these reaches it).
        layout / region_of_joint / region_names: how joints map to
        regions (a `nmmfast.skeleton` layout name or object, or an explicit [J] int vector);
        default one region "all".
    """

    def __init__(
        self,
        forward_func: Callable[..., torch.Tensor],
        *,
        model: nn.Module | Sequence[nn.Module] | None = None,
        layout: Any = None,
        region_of_joint: Any = None,
        region_names: Sequence[str] | None = None,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        self.forward_func = forward_func
        self.modules = _modules_of(forward_func, model)
        if layout is not None and region_of_joint is not None:
            raise ValueError("give either layout or region_of_joint, not both")
        if layout is not None:
            from nmmfast.skeleton import get_layout

            layout = get_layout(layout)
            region_of_joint = layout.region_of_joint
            region_names = tuple(layout.regions) if region_names is None else region_names
        self.region_of_joint = (
            None if region_of_joint is None else torch.as_tensor(region_of_joint).long().cpu()
        )
        if self.region_of_joint is not None and self.region_of_joint.dim() != 1:
            raise ValueError(
                "region_of_joint must be a [J] vector, got shape "
                f"{tuple(self.region_of_joint.shape)}"
            )
        if region_names is None:
            count = 1 if self.region_of_joint is None else int(self.region_of_joint.max()) + 1
            region_names = ("all",) if count == 1 else tuple(f"region{i}" for i in range(count))
        self.region_names = tuple(region_names)
        if self.region_of_joint is not None and int(self.region_of_joint.max()) >= len(
            self.region_names
        ):
            raise ValueError(
                f"region_of_joint uses region {int(self.region_of_joint.max())} but only "
                f"{len(self.region_names)} region_names were given"
            )

    # ---- public -----------------------------------------------------------------------------
    def attribute(
        self,
        inputs: torch.Tensor | Sequence[torch.Tensor],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        n_steps: int | None = None,
        method: str | None = None,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = True,
        *,
        mask: torch.Tensor | None = None,
        batch_rows: int | None = None,
        memory_budget: int | None = None,
        tolerance: float | None = None,
        max_steps: int = 512,
        stop: str = "joint",
        out_dtype: torch.dtype | None = None,
        per_output: bool = False,
    ) -> IGResult:
        """Attribute F to every input frame, joint and channel.

        Args:
            inputs: N samples: a list of [T_i, J, C] float32/float64 tensors (ragged), or one
                [N, T, J, C] tensor (with `mask` [N, T] bool marking each sample's real frames,
                a prefix; default all real).
            baselines: None (zero pose), a number, [J, C] (every frame), or per sample like
                `inputs` (list of [T_i, J, C] or [N, T, J, C]).
            target: None when forward_func returns [B]; for [B, K] outputs an int or N ints.
            additional_forward_args: passed after `rows`; a tensor whose first dim is N is
                indexed by `rows`, anything else is passed unchanged.
            n_steps, method: the quadrature rule (`quadrature.METHODS`; captum's names give
                captum's points and weights). Default: captum's, 50 Gauss–Legendre points;
                with `tolerance` and no method, adaptive Simpson panels from 5 points (see
                `tolerance`). With `tolerance`, n_steps is the starting step count.
            internal_batch_size / batch_rows (same thing; captum's name and ours): rows per
                forward pass. Default: on CPU timed on the first batches (`RowsTuner`: sizes
                from 4 to 128, the fastest per real frame kept for the engine's later calls);
                on CUDA from `memory_budget`. Batches hold one sample's steps, or (with
                `batch_rows` above the step count, and on CUDA) several samples' whole rules
                when their lengths are within 15 %.
            memory_budget: bytes a batch may use on CUDA (default half the free memory).
            return_convergence_delta: evaluate F(x) and F(baseline) (free when the rule has
                α = 0 and 1, else two forward-only rows per sample packed with the others).
            tolerance: adaptive steps, per sample, until the error is within `tolerance` or
                `max_steps` points are in use. Without a method this chooses adaptive Simpson
                panels (`nmmfast.attribution.panels`) with the `joint` stopping rule: of the
                strategies measured against a dense reference (benchmarks/RESULTS.md), the
                only one that met a per-joint tolerance it was given (its error estimate is
                per joint; every other rule checks |delta| alone, a single number that
                cancellation can meet while joints are far off: the `signed` panels met 0.13 %
                completeness at 2.3 % per-joint error on a trained model), and the fastest
                that did: whole-rule Gauss–Legendre refinement does not nest (each doubling
                starts afresh) and stops on |delta|. A fixed rule of known size can be
                faster where its per-joint error is already known to be small enough: on
                ReLU models the per-joint error falls only as 1/n for every rule, so on the
                benchmark models panels matched captum's 50 points only with 45–70 points.
                `stop`: "joint" (default) stops when the per-joint error estimate is within
                tolerance × Σ_j |A_j| and |delta| within tolerance × |F(x) − F(b)|; "signed"
                on |delta| alone. Other methods refine the whole rule (`quadrature.refine`)
                until |delta| <= tolerance × |F(x) − F(b)|.
            out_dtype: dtype of the scaled batch fed to the model (default the inputs').
            per_output: forward_func returns [B, K] and each of the K outputs is attributed on
                its own (one forward per step point, K backwards, batched with vmap where the
                model allows). Attributions are then [K, T_i, J, C] per sample (or
                [N, K, T, J, C]); delta, f_input, f_baseline, total are [N, K]; joint and region
                sums [N, K, J] and [N, K, R]. Summed over K they equal the attribution of ΣF_k.

        Returns:
            IGResult.
        """
        if method is None:
            method = "simpson" if tolerance is not None else "gausslegendre"
            if n_steps is None:
                n_steps = 5 if tolerance is not None else 50
            else:
                n_steps = valid_steps(method, n_steps)
        elif n_steps is None:
            n_steps = 50 if method != "simpson" else 51
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if stop not in STOP_RULES:
            raise ValueError(f"stop must be one of {STOP_RULES}, got {stop!r}")
        if internal_batch_size is not None and batch_rows is not None:
            if int(internal_batch_size) != int(batch_rows):
                raise ValueError(
                    f"internal_batch_size={internal_batch_size} and batch_rows={batch_rows} "
                    "differ; they are the same setting"
                )
        rows_setting = batch_rows if batch_rows is not None else internal_batch_size
        if rows_setting is not None and (isinstance(rows_setting, bool) or int(rows_setting) < 1):
            raise ValueError(f"batch_rows must be a positive int, got {rows_setting!r}")
        if tolerance is not None and not float(tolerance) > 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
        rule = quadrature(method, n_steps)  # validates n_steps
        if tolerance is not None:
            if method != "simpson":  # simpson refines by panels
                refine(method, n_steps)  # refuses rules that cannot converge
            if max_steps < n_steps:
                raise ValueError(f"max_steps={max_steps} is below n_steps={n_steps}")
            if per_output:
                raise ValueError("tolerance (adaptive steps) cannot be combined with per_output")
        samples = _prepare(inputs, baselines, mask)
        with frozen_eval(self.modules):
            return self._attribute(
                samples,
                rule,
                method=method,
                target=target,
                extra=_as_tuple(additional_forward_args),
                batch_rows=None if rows_setting is None else int(rows_setting),
                memory_budget=memory_budget,
                endpoints=bool(return_convergence_delta) or tolerance is not None,
                tolerance=None if tolerance is None else float(tolerance),
                max_steps=int(max_steps),
                stop=stop,
                out_dtype=out_dtype,
                per_output=bool(per_output),
            )

    def calibrate(
        self,
        sample: torch.Tensor,
        candidates: Sequence[int] = (4, 8, 16, 32),
        *,
        n_steps: int = 32,
        method: str = "gausslegendre",
        additional_forward_args: Any = None,
        repeats: int = 1,
    ) -> int:
        """The rows per batch, among `candidates`, that attribute `sample` fastest.

        A short calibration for CPUs, where the best batch is small and model dependent: each
        candidate times one `attribute` call of `sample` ([T, J, C], as the inputs will be)
        with `n_steps` points (`quadrature.valid_steps`: Simpson's next odd count), after one
        untimed warm-up call.
        """
        return fastest_rows(
            lambda rows: self.attribute(
                [sample],
                n_steps=valid_steps(method, n_steps),
                method=method,
                batch_rows=rows,
                additional_forward_args=additional_forward_args,
            ),
            candidates,
            device=sample.device,
            repeats=repeats,
        )

    # ---- the math ---------------------------------------------------------------------------
    def _attribute(
        self,
        samples: _Samples,
        rule: Rule,
        *,
        method: str,
        target: Any,
        extra: tuple,
        batch_rows: int | None,
        memory_budget: int | None,
        endpoints: bool,
        tolerance: float | None,
        max_steps: int,
        stop: str,
        out_dtype: torch.dtype | None,
        per_output: bool,
    ) -> IGResult:
        began = time.perf_counter()
        n_samples = len(samples.lengths)
        joints = samples.packed.shape[1]
        regions = self._regions(joints)
        n_regions = len(self.region_names)
        dev = samples.device
        tuner = None
        if batch_rows is None and dev.type != "cuda":
            # one tuner per model (engines built afresh around the same model share it), input
            # shape, dtype fed to the model and output kind
            owner = tuple(id(m) for m in self.modules) or (id(self.forward_func),)
            key = (owner, *samples.packed.shape[1:], out_dtype or samples.dtype, per_output)
            tuner = _TUNERS.setdefault(key, RowsTuner())
        run = _Run(
            forward=self.forward_func,
            tuner=tuner,
            samples=samples,
            regions=regions.to(dev),
            n_regions=n_regions,
            target=_target_tensor(target, n_samples),
            extra=extra,
            batch_rows=batch_rows,
            memory_budget=memory_budget,
            out_dtype=out_dtype or samples.dtype,
            per_output=per_output,
        )
        n_used = torch.full((n_samples,), rule.points.numel(), dtype=torch.int64)
        active = list(range(n_samples))  # sorted positions
        converged = torch.ones(n_samples, dtype=torch.bool)
        by_panels = tolerance is not None and method == "simpson"
        if by_panels:
            used, met = refine_panels(
                run,
                active,
                start_steps=rule.points.numel(),
                tolerance=tolerance,
                max_steps=max_steps,
                stop=stop,
            )
            for i in active:
                n_used[run.order[i]] = used[i]
                converged[run.order[i]] = met[i]
        else:
            run.round(active, rule, keep=0.0, endpoints=endpoints)
        f_input, f_baseline = run.f_values()
        sums = run.sums()
        steps = rule.points.numel()
        if tolerance is not None and not by_panels:
            while True:
                delta = sums.total - (f_input - f_baseline)
                gap = (f_input - f_baseline).abs()
                ok = delta.abs() <= tolerance * gap
                converged = ok
                active = [i for i in range(n_samples) if not bool(ok[run.order[i]])]
                nxt = refine(method, steps)
                if not active or nxt.n_steps > max_steps:
                    break
                run.round(active, nxt.new, keep=nxt.keep, endpoints=False)
                steps = nxt.n_steps
                for i in active:
                    n_used[run.order[i]] = steps
                sums = run.sums()
        delta = sums.total - (f_input - f_baseline)
        stats = dict(run.stats)
        stats["seconds"] = time.perf_counter() - began
        if tuner is not None:
            stats["batch_rows"] = tuner.rows
        return IGResult(
            attributions=run.attributions(),
            delta=delta,
            f_input=f_input,
            f_baseline=f_baseline,
            joint=AbsSigned(sums.joint_abs, sums.joint_signed),
            region=AbsSigned(sums.region_abs, sums.region_signed),
            total=sums.total,
            n_steps=n_used,
            converged=converged,
            method=method,
            region_names=self.region_names,
            stats=stats,
        )

    def _regions(self, joints: int) -> torch.Tensor:
        if self.region_of_joint is None:
            return torch.zeros(joints, dtype=torch.int64)
        if self.region_of_joint.numel() != joints:
            raise ValueError(
                f"region_of_joint has {self.region_of_joint.numel()} joints but the inputs have "
                f"J={joints}"
            )
        return self.region_of_joint


class _Sums(NamedTuple):
    joint_abs: torch.Tensor
    joint_signed: torch.Tensor
    region_abs: torch.Tensor
    region_signed: torch.Tensor
    total: torch.Tensor


class _Run:
    """State of one `attribute` call: the accumulated attributions and the batches run so far."""

    def __init__(
        self,
        *,
        forward: Callable,
        tuner: RowsTuner | None = None,
        samples: _Samples,
        regions: torch.Tensor,
        n_regions: int,
        target: torch.Tensor | int | None,
        extra: tuple,
        batch_rows: int | None,
        memory_budget: int | None,
        out_dtype: torch.dtype,
        per_output: bool = False,
    ) -> None:
        self.forward = forward
        self.tuner = tuner
        self.per_output = per_output
        self.s = samples
        self.regions = regions
        self.regions_host = regions.cpu()  # ig_reduce validates on the host: no device sync
        self.n_regions = n_regions
        self.target = target
        self.extra = extra
        self.batch_rows = batch_rows
        self.memory_budget = memory_budget
        self.out_dtype = out_dtype
        n = len(samples.lengths)
        self.order = samples.order.tolist()
        # [K, F, J, C] in sorted packed order (K = 1 unless per_output); allocated at the first
        # forward, which tells K
        self.attr: torch.Tensor | None = None
        # per sorted position: kernel sums of a sample whose attribution came from one batch
        self.kernel_sums: dict[int, tuple[torch.Tensor, ...]] = {}
        self.f_in: dict[int, torch.Tensor] = {}
        self.f_base: dict[int, torch.Tensor] = {}
        self.stats = {"batches": 0, "grad_rows": 0, "forward_only_rows": 0, "samples": n}
        self._bytes_per_row_frame: float | None = None
        # the step batch and its mask, reused by every batch (grown when a batch needs more):
        # reused pages are written several times faster than fresh ones
        self._scaled_buffer = torch.empty(0, dtype=out_dtype, device=samples.device)
        self._mask_buffer = torch.empty(0, dtype=torch.bool, device=samples.device)
        self._reduce_buffer = torch.empty(0, dtype=samples.dtype, device=samples.device)

    # ---- batching -----------------------------------------------------------------------------
    def _rows_for(self, t_max: int) -> int:
        if self.batch_rows is not None:
            return self.batch_rows
        if self.tuner is not None:
            return self.tuner.rows
        if self._bytes_per_row_frame is None:
            self._bytes_per_row_frame = self._probe_memory()
        budget = self.memory_budget
        if budget is None:
            free, _ = torch.cuda.mem_get_info(self.s.device)
            budget = int(free * GPU_MEMORY_SHARE)
        return max(1, int(budget // (self._bytes_per_row_frame * max(t_max, 1))))

    def _probe_memory(self) -> float:
        """Peak bytes per (row x frame) of a forward+backward on two rows of the longest sample."""
        dev = self.s.device
        length = self.s.offsets[1] - self.s.offsets[0]
        packed = self.s.packed[: self.s.offsets[1]]
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        scaled, mask = ig_scale(
            packed,
            [0, length],
            torch.tensor([0.5, 1.0], dtype=torch.float64),
            _slice_baseline(self.s.baseline, 0, length),
            out_dtype=self.out_dtype,
        )
        scaled.requires_grad_(True)
        rows = torch.full((2,), self.order[0], dtype=torch.int64, device=dev)
        with torch.enable_grad():
            out = self._call(scaled, mask, rows)
            torch.autograd.grad(out.sum(), scaled)
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
        return max(float(peak) / (2 * length), 1.0)

    def round(self, active: list[int], rule: Rule, *, keep: float, endpoints: bool) -> None:
        """Evaluate `rule` on the samples at sorted positions `active`; old sums times `keep`."""
        points, weights = rule.points, rule.weights
        if endpoints:
            # α = 0 / 1 off the grid: forward-only rows, many samples per batch
            missing = [a for a in (0.0, 1.0) if not bool((points == a).any())]
            if missing:
                ends = torch.tensor(missing, dtype=torch.float64)
                position = 0
                while position < len(active):
                    i = active[position]
                    per_batch = self._rows_for(self._length(i)) // len(missing)
                    group = self._bucket(active, position, per_batch)
                    # a batch has room for fewer rows than endpoints: one α at a time
                    for alphas in [ends] if per_batch else ends.split(1):
                        self._batch(group, alphas, torch.zeros_like(alphas), whole=False)
                    position += len(group)
        m = points.numel()
        for i in active:
            a, b = self.s.offsets[i], self.s.offsets[i + 1]
            if self.attr is None:
                continue
            if keep == 0.0:
                self.attr[:, a:b].zero_()
            elif keep != 1.0:
                self.attr[:, a:b].mul_(keep)
            self.kernel_sums.pop(i, None)
        position = 0
        while position < len(active):
            longest = self.s.offsets[active[position] + 1] - self.s.offsets[active[position]]
            rows = self._rows_for(longest)
            if self.tuner is not None:
                # tuned sizes stop at one sample's rule: the tuner compares batches of the
                # longest samples, and a batch packing several samples would be timed on
                # other lengths (per frame, attention costs more on longer clips)
                rows = min(rows, m)
            if m <= rows:
                group = self._bucket(active, position, rows // m)
                self._batch(group, points, weights, whole=keep == 0.0)
            else:
                # equal chunks (50 points at 16 rows: 13+13+12+12, not 16+16+16+2)
                chunks = -(-m // rows)
                bounds = [(c * m) // chunks for c in range(chunks + 1)]
                for start, end in zip(bounds[:-1], bounds[1:], strict=True):
                    self._batch(
                        active[position : position + 1],
                        points[start:end],
                        weights[start:end],
                        whole=False,
                    )
                group = active[position : position + 1]
            position += len(group)

    def _length(self, i: int) -> int:
        return self.s.offsets[i + 1] - self.s.offsets[i]

    def _step_batch(self, rows: int, t_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled [rows, t_max, J, C], mask [rows, t_max]): views of the reused buffers."""
        joints, channels = self.s.packed.shape[1:]
        need = rows * t_max * joints * channels
        if self._scaled_buffer.numel() < need:
            self._scaled_buffer = self._scaled_buffer.new_empty(need)
        if self._mask_buffer.numel() < rows * t_max:
            self._mask_buffer = self._mask_buffer.new_empty(rows * t_max)
        scaled = self._scaled_buffer[:need].view(rows, t_max, joints, channels)
        return scaled, self._mask_buffer[: rows * t_max].view(rows, t_max)

    def _reduce_out(self, frames: int, n_samples: int, attributions: torch.Tensor | None = None):
        """ig_reduce outputs for `n_samples` samples of `frames` packed frames: `attributions`
        when given (a slice of the result), else a view of the reused buffer; fresh sums."""
        joints, channels = self.s.packed.shape[1:]
        if attributions is None:
            need = frames * joints * channels
            if self._reduce_buffer.numel() < need:
                self._reduce_buffer = self._reduce_buffer.new_empty(need)
            attributions = self._reduce_buffer[:need].view(frames, joints, channels)
        like = dict(dtype=self.s.packed.dtype, device=self.s.device)
        return IgReduceResult(
            attributions,
            torch.empty(n_samples, joints, **like),
            torch.empty(n_samples, joints, **like),
            torch.empty(n_samples, self.n_regions, **like),
            torch.empty(n_samples, self.n_regions, **like),
            torch.empty(n_samples, **like),
        )

    def _bucket(self, active: list[int], position: int, size: int) -> list[int]:
        """Up to `size` samples from `active[position:]` (longest first) whose lengths are
        within BUCKET_RATIO of the first one's, so padding stays small."""
        longest = self._length(active[position])
        group = [active[position]]
        for i in active[position + 1 : position + max(1, size)]:
            if self._length(i) < BUCKET_RATIO * longest:
                break
            group.append(i)
        return group

    def _batch(
        self, group: list[int], points: torch.Tensor, weights: torch.Tensor, *, whole: bool
    ) -> None:
        s = self.s
        dev = s.device
        contiguous = group == list(range(group[0], group[0] + len(group)))
        if contiguous:
            a, b = s.offsets[group[0]], s.offsets[group[-1] + 1]
            packed = s.packed[a:b]
            baseline = _slice_baseline(s.baseline, a, b)
            offsets = [o - a for o in s.offsets[group[0] : group[-1] + 2]]
        else:
            ranges = [(s.offsets[i], s.offsets[i + 1]) for i in group]
            packed = torch.cat([s.packed[a:b] for a, b in ranges])
            baseline = s.baseline
            if baseline is not None and baseline.dim() == 3:
                baseline = torch.cat([baseline[a:b] for a, b in ranges])
            offsets = [0]
            for a, b in ranges:
                offsets.append(offsets[-1] + b - a)
        m = points.numel()
        t_max = max(offsets[k + 1] - offsets[k] for k in range(len(group)))
        scaled, mask = ig_scale(
            packed,
            offsets,
            points,
            baseline,
            t_max=t_max,
            out_dtype=self.out_dtype,
            out=self._step_batch(len(group) * m, t_max),
            check_finite=False,
        )
        rows = torch.tensor([self.order[i] for i in group], dtype=torch.int64)
        rows = rows.repeat_interleave(m).to(dev, non_blocking=True)
        needs_grad = bool((weights != 0).any())
        if needs_grad:
            out, grads = self._gradient_pass(scaled, mask, rows, real_frames=m * offsets[-1])
            nonfinite = torch.zeros(1, dtype=torch.int32, device=dev)
            # a whole rule for samples stored side by side: the kernel writes the result in place
            in_place = whole and contiguous
            for output, grad in enumerate(grads):
                target = None
                if in_place:
                    first, last = s.offsets[group[0]], s.offsets[group[-1] + 1]
                    target = self.attr[output, first:last]
                red = ig_reduce(
                    grad,
                    packed,
                    offsets,
                    weights,
                    baseline,
                    region_of_joint=self.regions_host,
                    n_regions=self.n_regions,
                    out=self._reduce_out(offsets[-1], len(group), target),
                    check_finite=False,
                    nonfinite=nonfinite,
                )
                if not in_place:
                    for k, i in enumerate(group):
                        a, b = s.offsets[i], s.offsets[i + 1]
                        self.attr[output, a:b] += red.attributions[offsets[k] : offsets[k + 1]]
            if int(nonfinite.item()):  # the batch's one host sync
                self._raise_nonfinite(
                    {i: self.attr[:, s.offsets[i] : s.offsets[i + 1]] for i in group}
                )
            if whole and not self.per_output:
                for k, i in enumerate(group):
                    self.kernel_sums[i] = (
                        red.joint_abs[k],
                        red.joint_signed[k],
                        red.region_abs[k],
                        red.region_signed[k],
                        red.total[k],
                    )
        else:
            self.stats["batches"] += 1
            self.stats["forward_only_rows"] += scaled.shape[0]
            with torch.no_grad():
                out = self._call(scaled, mask, rows)
            self._allocate(out)
        values = out.detach().view(len(group), m, -1)
        for where, store in ((0.0, self.f_base), (1.0, self.f_in)):
            hit = torch.nonzero(points == where).flatten()
            if hit.numel():
                for k, i in enumerate(group):
                    # a copy: forward_func's output may be a view of the reused step batch
                    store[i] = values[k, int(hit[0])].clone()

    # ---- panels (`nmmfast.attribution.panels`) --------------------------------------------------
    def point_values(
        self, requests: dict[int, list[float]]
    ) -> dict[int, tuple[list[float], list[float], list[torch.Tensor]]]:
        """Each sample at its own points (sorted position -> α list): F, dF/dα and
        ∂F/∂x·(x − b) [K, T, J, C] per point. Rows of samples of similar length share batches."""
        s = self.s
        rows = [(i, alpha) for i in sorted(requests) for alpha in requests[i]]
        found: dict[int, tuple[list, list, list]] = {i: ([], [], []) for i in requests}
        one = torch.ones(1, dtype=torch.float64)
        start = 0
        while start < len(rows):
            longest = self._length(rows[start][0])
            cap = self._rows_for(longest)
            end = start + 1
            while (
                end < len(rows)
                and end - start < cap
                and self._length(rows[end][0]) >= BUCKET_RATIO * longest
            ):
                end += 1
            segments: list[tuple[int, list[float]]] = []
            for i, alpha in rows[start:end]:
                if segments and segments[-1][0] == i:
                    segments[-1][1].append(alpha)
                else:
                    segments.append((i, [alpha]))
            scaled, mask = self._step_batch(end - start, longest)
            row = 0
            for i, alphas in segments:
                a, b = s.offsets[i], s.offsets[i + 1]
                ig_scale(
                    s.packed[a:b],
                    [0, b - a],
                    torch.tensor(alphas, dtype=torch.float64),
                    _slice_baseline(s.baseline, a, b),
                    t_max=longest,
                    out_dtype=self.out_dtype,
                    out=(scaled[row : row + len(alphas)], mask[row : row + len(alphas)]),
                    check_finite=False,
                )
                row += len(alphas)
            row_ids = torch.tensor([self.order[i] for i, _ in rows[start:end]], dtype=torch.int64)
            real = sum(self._length(i) for i, _ in rows[start:end])
            out, (grad,) = self._gradient_pass(
                scaled, mask, row_ids.to(s.device, non_blocking=True), real_frames=real
            )
            slopes = []
            row = 0
            nonfinite = torch.zeros(1, dtype=torch.int32, device=s.device)
            for i, alphas in segments:
                a, b = s.offsets[i], s.offsets[i + 1]
                for _ in alphas:
                    red = ig_reduce(
                        grad[row : row + 1],
                        s.packed[a:b],
                        [0, b - a],
                        one,
                        _slice_baseline(s.baseline, a, b),
                        region_of_joint=self.regions_host,
                        n_regions=self.n_regions,
                        check_finite=False,
                        nonfinite=nonfinite,
                    )
                    found[i][2].append(red.attributions[None])
                    slopes.append(red.total[0])
                    row += 1
            # one host copy per batch: F and dF/dα of every row, and the finiteness flag
            host = torch.cat([
                out.detach().double(), torch.stack(slopes).double(), nonfinite.double()
            ]).cpu()
            if host[-1]:
                self._raise_nonfinite({i: torch.stack(found[i][2]) for i, _ in segments})
            host = host[:-1].view(2, -1)
            row = 0
            for i, alphas in segments:
                found[i][0].extend(host[0, row : row + len(alphas)].tolist())
                found[i][1].extend(host[1, row : row + len(alphas)].tolist())
                row += len(alphas)
            start = end
        return found

    def set_result(
        self, i: int, attributions: torch.Tensor, *, f_input: float, f_baseline: float
    ) -> None:
        """Sample i's attributions [K, T, J, C] and F values, computed outside `round`."""
        a, b = self.s.offsets[i], self.s.offsets[i + 1]
        self.attr[:, a:b] = attributions
        self.kernel_sums.pop(i, None)
        like = dict(dtype=torch.float64, device=self.s.device)
        self.f_in[i] = torch.tensor([f_input], **like)
        self.f_base[i] = torch.tensor([f_baseline], **like)

    def _gradient_pass(
        self, scaled: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, *, real_frames: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One batch forward and backward: F of the rows and d F / d scaled (per output).
        `real_frames`: the batch's unpadded (row x frame) count, for the rows tuner."""
        self.stats["batches"] += 1
        self.stats["grad_rows"] += scaled.shape[0]
        rows_setting = None if self.tuner is None else self.tuner.rows
        began = time.perf_counter()
        scaled.requires_grad_(True)
        with torch.enable_grad():
            out = self._call(scaled, mask, rows)
            grads = self._gradients(out, scaled)
        if rows_setting is not None:
            self.tuner.record(rows_setting, time.perf_counter() - began, real_frames)
        self._allocate(out)
        return out, grads

    def _raise_nonfinite(self, attributions: dict[int, torch.Tensor]) -> None:
        """attributions: sorted position -> what the batch computed for that sample."""
        bad = [i for i, attr in attributions.items() if not bool(torch.isfinite(attr).all())]
        samples = sorted(int(self.order[i]) for i in bad or attributions)
        raise ValueError(
            f"IntegratedGradients: the attributions of samples {samples} came out NaN or inf: "
            f"forward_func's output or its gradient is not finite at some step point"
        )

    def _allocate(self, out: torch.Tensor) -> None:
        outputs = out.shape[1] if self.per_output else 1
        if self.attr is None:
            self.attr = self.s.packed.new_zeros((outputs, *self.s.packed.shape))
        elif self.attr.shape[0] != outputs:
            raise ValueError(
                f"forward_func returned {outputs} outputs per row, earlier batches "
                f"{self.attr.shape[0]}"
            )

    def _gradients(self, out: torch.Tensor, scaled: torch.Tensor) -> list[torch.Tensor]:
        """d out / d scaled: one [B, T, J, C] (of Σ rows) or, per output, K of them."""
        if not self.per_output:
            return list(torch.autograd.grad(out.sum(), scaled))
        outputs = out.shape[1]
        # one backward per output, batched through vmap where every op supports it
        seeds = torch.eye(outputs, dtype=out.dtype, device=out.device)[:, None, :]
        seeds = seeds.expand(outputs, out.shape[0], outputs)
        try:
            (grads,) = torch.autograd.grad(
                out, scaled, seeds, retain_graph=True, is_grads_batched=True
            )
            return list(grads.unbind(0))
        except RuntimeError:
            return [
                torch.autograd.grad(out[:, k].sum(), scaled, retain_graph=k + 1 < outputs)[0]
                for k in range(outputs)
            ]

    def _call(self, scaled: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        n_samples = len(self.order)
        args = tuple(
            arg[rows]
            if isinstance(arg, torch.Tensor) and arg.dim() and arg.shape[0] == n_samples
            else arg
            for arg in self.extra
        )
        out = self.forward(scaled, mask, rows, *args)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward_func must return a tensor, got {type(out).__name__}")
        batch = scaled.shape[0]
        if self.per_output:
            if out.dim() != 2 or out.shape[0] != batch:
                raise ValueError(
                    f"forward_func must return [B, K] = [{batch}, K] with per_output=True, got "
                    f"shape {tuple(out.shape)}"
                )
            return out
        if out.dim() == 2 and self.target is not None:
            if isinstance(self.target, int):
                out = out[:, self.target]
            else:
                out = out.gather(1, self.target.to(out.device)[rows].view(-1, 1))[:, 0]
        elif out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (batch,):
            raise ValueError(
                f"forward_func must return one value per row, [B]=[{batch}] (or [B, K] with "
                f"target), got shape {tuple(out.shape)}"
            )
        return out

    # ---- results ------------------------------------------------------------------------------
    def f_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """F(x), F(b) [N] (or [N, K]) float64 in the original order (NaN where not evaluated)."""
        shape = (len(self.order), self.attr.shape[0])
        found = []
        for store in (self.f_in, self.f_base):
            values = torch.full(shape, float("nan"), dtype=torch.float64)
            if store:
                keys = list(store)
                values[torch.tensor([self.order[i] for i in keys])] = (
                    torch.stack([store[i] for i in keys]).double().cpu()
                )
            found.append(values if self.per_output else values[:, 0])
        return found[0], found[1]

    def sums(self) -> _Sums:
        """Per-sample joint / region / total sums in the original order, on the host."""
        s = self.s
        n = len(self.order)
        outputs, joints = self.attr.shape[0], s.packed.shape[1]
        one_hot = torch.nn.functional.one_hot(self.regions, self.n_regions).to(s.packed.dtype)
        like = dict(dtype=s.packed.dtype, device=s.device)
        joint_abs = torch.zeros(n, outputs, joints, **like)
        joint_signed = torch.zeros_like(joint_abs)
        region_abs = torch.zeros(n, outputs, self.n_regions, **like)
        region_signed = torch.zeros_like(region_abs)
        total = torch.zeros(n, outputs, **like)
        for i in range(n):
            if i in self.kernel_sums:
                ja, js, ra, rs, tot = (t[None] for t in self.kernel_sums[i])
            else:
                attr = self.attr[:, s.offsets[i] : s.offsets[i + 1]]  # [K, T, J, C]
                ja, js = attr.abs().sum(dim=(1, 3)), attr.sum(dim=(1, 3))
                ra, rs, tot = ja @ one_hot, js @ one_hot, js.sum(1)
            joint_abs[i], joint_signed[i], region_abs[i], region_signed[i], total[i] = (
                ja,
                js,
                ra,
                rs,
                tot,
            )
        order = torch.tensor(self.order, dtype=torch.int64, device=s.device)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(n, device=s.device)
        parts = [
            t[inverse].double().cpu()
            for t in (joint_abs, joint_signed, region_abs, region_signed, total)
        ]
        if not self.per_output:
            parts = [t[:, 0] for t in parts]
        return _Sums(*parts)

    def attributions(self) -> list[torch.Tensor] | torch.Tensor:
        s = self.s
        per_sample: list[torch.Tensor] = [torch.empty(0)] * len(self.order)
        attr = self.attr if self.per_output else self.attr[0]
        frames = 1 if self.per_output else 0  # the frame axis of `attr`
        for i, original in enumerate(self.order):
            start, length = s.offsets[i], s.offsets[i + 1] - s.offsets[i]
            per_sample[original] = attr.narrow(frames, start, length)
        if s.padded_to is None:
            return per_sample
        shape = list(attr.shape)
        shape[frames] = s.padded_to
        out = attr.new_zeros(len(per_sample), *shape)
        for n, sample in enumerate(per_sample):
            out[n].narrow(frames, 0, sample.shape[frames]).copy_(sample)
        return out


# ---- input normalisation ------------------------------------------------------------------------


def _as_tuple(args: Any) -> tuple:
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def _target_tensor(target: Any, n_samples: int) -> torch.Tensor | int | None:
    if target is None or isinstance(target, int):
        return target
    tensor = torch.as_tensor(target)
    if tensor.dim() == 0:
        return int(tensor)
    if tensor.dim() != 1 or tensor.numel() != n_samples or tensor.dtype.is_floating_point:
        raise ValueError(
            f"target must be None, an int or N={n_samples} ints, got {tensor.dtype} of shape "
            f"{tuple(tensor.shape)}"
        )
    return tensor.long()


def _slice_baseline(baseline: torch.Tensor | None, a: int, b: int) -> torch.Tensor | None:
    if baseline is None or baseline.dim() == 2:
        return baseline
    return baseline[a:b]


def _check_pose(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must be [T, J, C], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has zero frames")
    return x.detach()


def _prepare(inputs: Any, baselines: Any, mask: torch.Tensor | None) -> _Samples:
    padded_to = None
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() != 4:
            raise ValueError(
                f"inputs must be a list of [T, J, C] tensors or one [N, T, J, C] tensor, got shape "
                f"{tuple(inputs.shape)}"
            )
        padded_to = inputs.shape[1]
        if mask is None:
            lengths = [padded_to] * inputs.shape[0]
        else:
            lengths = _mask_lengths(mask, inputs.shape[:2])
        samples = [
            _check_pose(inputs[n, : lengths[n]], f"inputs[{n}]") for n in range(len(lengths))
        ]
    else:
        if mask is not None:
            raise ValueError("mask is only for one padded [N, T, J, C] inputs tensor")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise TypeError(
                f"inputs must be a list of [T, J, C] tensors or one [N, T, J, C] tensor, got "
                f"{type(inputs).__name__}"
            )
        samples = [_check_pose(x, f"inputs[{n}]") for n, x in enumerate(inputs)]
        lengths = [x.shape[0] for x in samples]
    if not samples:
        raise ValueError("inputs holds no samples")
    first = samples[0]
    for n, x in enumerate(samples):
        if x.shape[1:] != first.shape[1:] or x.dtype != first.dtype or x.device != first.device:
            raise ValueError(
                f"inputs[{n}] is {tuple(x.shape)} {x.dtype} on {x.device} but inputs[0] is "
                f"{tuple(first.shape)} {first.dtype} on {first.device}: J, C, dtype and device "
                "must agree"
            )
    if not bool(torch.isfinite(torch.cat([x.flatten() for x in samples])).all()):
        bad = next(n for n, x in enumerate(samples) if not bool(torch.isfinite(x).all()))
        raise ValueError(f"inputs[{bad}] contains NaN or inf")
    order = sorted(range(len(samples)), key=lambda n: -lengths[n])  # stable, longest first
    packed = torch.cat([samples[n] for n in order]).contiguous()
    offsets = [0]
    for n in order:
        offsets.append(offsets[-1] + lengths[n])
    baseline = _prepare_baseline(baselines, samples, lengths, order, padded_to)
    return _Samples(
        packed=packed,
        offsets=offsets,
        order=torch.tensor(order, dtype=torch.int64),
        baseline=baseline,
        lengths=lengths,
        padded_to=padded_to,
        device=first.device,
        dtype=first.dtype,
    )


def _mask_lengths(mask: torch.Tensor, shape: torch.Size) -> list[int]:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != shape:
        raise ValueError(f"mask must be a [N, T]={tuple(shape)} bool tensor")
    mask = mask.cpu()
    lengths = mask.sum(1).tolist()
    for n, length in enumerate(lengths):
        if length == 0:
            raise ValueError(f"mask gives sample {n} zero real frames")
        if not bool(mask[n, :length].all()):
            raise ValueError(f"mask of sample {n} is not a prefix of real frames")
    return [int(v) for v in lengths]


def _prepare_baseline(
    baselines: Any,
    samples: list[torch.Tensor],
    lengths: list[int],
    order: list[int],
    padded_to: int | None,
) -> torch.Tensor | None:
    first = samples[0]
    like = dict(dtype=first.dtype, device=first.device)
    if baselines is None:
        return None
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        if baselines == 0:
            return None
        return torch.full(first.shape[1:], float(baselines), **like)
    if isinstance(baselines, torch.Tensor):
        if baselines.dim() == 0:
            return (
                None
                if float(baselines) == 0
                else torch.full(first.shape[1:], float(baselines), **like)
            )
        if tuple(baselines.shape) == tuple(first.shape[1:]):
            _finite(baselines, "baselines")
            return baselines.detach().to(**like).contiguous()
        if baselines.dim() == 4:
            if (
                padded_to is None
                or baselines.shape[:2] != (len(samples), padded_to)
                or (baselines.shape[2:] != first.shape[1:])
            ):
                raise ValueError(
                    f"baselines of shape {tuple(baselines.shape)} do not match the inputs "
                    f"(N={len(samples)}, T={padded_to}, J, C={tuple(first.shape[1:])})"
                )
            per_sample = [baselines[n, : lengths[n]] for n in range(len(samples))]
        else:
            raise ValueError(
                f"baselines must be None, a number, [J, C]={tuple(first.shape[1:])} or shaped "
                f"like the inputs, got shape {tuple(baselines.shape)}"
            )
    elif isinstance(baselines, Sequence) and not isinstance(baselines, (str, bytes)):
        if len(baselines) != len(samples):
            raise ValueError(
                f"baselines has {len(baselines)} entries but inputs has {len(samples)} samples"
            )
        per_sample = list(baselines)
    else:
        raise TypeError(f"baselines must be None, a number or tensors, got {type(baselines)}")
    for n, b in enumerate(per_sample):
        if not isinstance(b, torch.Tensor) or tuple(b.shape) != tuple(samples[n].shape):
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(
                f"baselines[{n}] must match inputs[{n}] {tuple(samples[n].shape)}, got {shape}"
            )
        _finite(b, f"baselines[{n}]")
    return torch.cat([per_sample[n].detach().to(**like) for n in order]).contiguous()


def _finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
