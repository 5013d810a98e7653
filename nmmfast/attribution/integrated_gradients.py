"""Integrated Gradients over ragged pose sequences, with captum's call signature.

`IntegratedGradients.attribute` checks and normalises its arguments (`inputs`), picks the
quadrature rule (`quadrature`), and runs it on the batching engine (`engine`), adaptively when
a tolerance is asked for (`refinement`); `IGResult` holds what comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from nmmfast.attribution.calibration import fastest_rows, shared_tuner
from nmmfast.attribution.engine import Engine
from nmmfast.attribution.inputs import (
    Samples,
    batch_rows_setting,
    forward_args,
    prepare_samples,
    region_vector,
    resolve_regions,
    target_tensor,
)
from nmmfast.attribution.modules import frozen_eval, modules_of
from nmmfast.attribution.panels import check_stop
from nmmfast.attribution.quadrature import Rule, quadrature, refine, valid_steps
from nmmfast.attribution.refinement import Refined, refine_panels, refine_whole_rule

__all__ = ["AbsSigned", "IGResult", "IntegratedGradients"]


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
        self.modules = modules_of(forward_func, model)
        self.region_of_joint, self.region_names = resolve_regions(
            layout, region_of_joint, region_names
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
                forward pass. Default: on CPU timed on the first batches
                (`calibration.RowsTuner`: sizes from 4 to 128, the fastest per real frame
                kept for the engine's later calls); on CUDA from `memory_budget`. Batches
                hold one sample's steps, or (with `batch_rows` above the step count, and on
                CUDA) several samples' whole rules when their lengths are within 15 %.
            memory_budget: bytes a batch may use on CUDA (default half the free memory).
            return_convergence_delta: evaluate F(x) and F(baseline) (free when the rule has
                α = 0 and 1, else two forward-only rows per sample packed with the others).
            tolerance: adaptive steps, per sample, until the error is within `tolerance` or
                `max_steps` points are in use (`nmmfast.attribution.refinement`). Without a
                method this chooses adaptive Simpson panels with the `joint` stopping rule,
                because its error estimate is per joint: every other rule checks |delta|
                alone, a single number that cancellation can meet while joints are far off.
                Panels also nest (nothing evaluated is thrown away), while whole-rule
                Gauss–Legendre refinement starts each doubling afresh. A fixed rule of known
                size can still be faster where its per-joint error is already known to be
                small enough: on ReLU models the per-joint error falls only as 1/n for every
                rule, so adaptive steps gain little there (benchmarks/RESULTS.md).
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
        rule = quadrature(method, n_steps)  # the one check of method and n_steps
        check_stop(stop)
        batch_rows = batch_rows_setting(internal_batch_size, batch_rows)  # one setting, two names
        if tolerance is not None:
            if not float(tolerance) > 0:
                raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
            if method != "simpson":  # simpson refines by panels
                refine(method, n_steps)  # refuses rules that cannot converge
            if max_steps < n_steps:
                raise ValueError(f"max_steps={max_steps} is below n_steps={n_steps}")
            if per_output:
                raise ValueError("tolerance (adaptive steps) cannot be combined with per_output")
        samples = prepare_samples(inputs, baselines, mask)
        with frozen_eval(self.modules):
            return self._attribute(
                samples,
                rule,
                method=method,
                target=target,
                extra=forward_args(additional_forward_args),
                batch_rows=batch_rows,
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
        samples: Samples,
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
        out_dtype = out_dtype or samples.dtype
        tuner = None
        if batch_rows is None and samples.device.type != "cuda":
            # one tuner per model (engines built afresh around the same model share it), input
            # shape, dtype fed to the model and output kind
            owner = tuple(id(m) for m in self.modules) or (id(self.forward_func),)
            tuner = shared_tuner((owner, *samples.packed.shape[1:], out_dtype, per_output))
        engine = Engine(
            forward=self.forward_func,
            tuner=tuner,
            samples=samples,
            regions=region_vector(self.region_of_joint, samples.packed.shape[1]).to(
                samples.device
            ),
            n_regions=len(self.region_names),
            target=target_tensor(target, n_samples),
            extra=extra,
            batch_rows=batch_rows,
            memory_budget=memory_budget,
            out_dtype=out_dtype,
            per_output=per_output,
        )
        if tolerance is None:
            engine.accumulate(list(range(n_samples)), rule, keep=0.0, endpoints=endpoints)
            refined = Refined(
                torch.full((n_samples,), rule.points.numel(), dtype=torch.int64),
                torch.ones(n_samples, dtype=torch.bool),
            )
        elif method == "simpson":
            refined = refine_panels(
                engine,
                start_steps=rule.points.numel(),
                tolerance=tolerance,
                max_steps=max_steps,
                stop=stop,
            )
        else:
            refined = refine_whole_rule(
                engine, method, rule, tolerance=tolerance, max_steps=max_steps
            )
        f_input, f_baseline = engine.f_values()
        sums = engine.sums()
        stats = dict(engine.stats)
        stats["seconds"] = time.perf_counter() - began
        if engine.tuned_rows is not None:
            stats["batch_rows"] = engine.tuned_rows
        return IGResult(
            attributions=engine.attributions(),
            delta=sums.total - (f_input - f_baseline),
            f_input=f_input,
            f_baseline=f_baseline,
            joint=AbsSigned(sums.joint_abs, sums.joint_signed),
            region=AbsSigned(sums.region_abs, sums.region_signed),
            total=sums.total,
            n_steps=refined.n_steps,
            converged=refined.converged,
            method=method,
            region_names=self.region_names,
            stats=stats,
        )
