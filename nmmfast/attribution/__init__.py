"""Integrated Gradients for pose→text models: quadrature rules, batch attribution
(`IntegratedGradients`), sequence attribution (`SequenceAttributor`) and the study's share tables;
jobs over a partition and the `nmmfast attribute` command live in `nmmfast.attribution.job`.

Where things live: `integrated_gradients` (the public class and `IGResult`), `inputs` (argument
checks and packing into `Samples`), `engine` (`Engine`: rows in batches, kernels, sums),
`quadrature` (rules, pure), `panels` (Simpson panel maths, pure), `refinement` (adaptive step
counts: panel bisection and whole-rule refinement), `calibration` (rows per CPU batch),
`modules` (the models behind a forward function, held frozen in eval mode).

Adding an attribution method (e.g. Expected Gradients or SmoothGrad) is a new class beside
`IntegratedGradients`, over the same engine and never its private methods: check the
arguments with `inputs.prepare_samples(inputs, baselines, mask)` (with `target_tensor` and
`forward_args`), find the models with `modules.modules_of(forward_func, model)`, and inside
`modules.frozen_eval(modules)` build one `engine.Engine(forward=..., samples=...,
regions=..., ...)`. A method whose samples all take one rule on the straight path calls
`engine.accumulate(list(range(engine.n_samples)), rule, keep=0.0, endpoints=True)` and reads
`engine.f_values()`, `engine.sums()` and `engine.attributions()` (original order). Expected
Gradients passes the inputs repeated once per drawn baseline, with those baselines, calls
`engine.point_values({i: [α_i]})` with one random α per copy (rows of similar length share
batches) and averages the returned ∂F/∂x·(x − b) over each sample's copies before taking
joint and region sums of the average; SmoothGrad in its gradient × input form is the same
with noisy copies of the input, a zero baseline and α = 1.
"""

from __future__ import annotations

from nmmfast.attribution.integrated_gradients import AbsSigned, IGResult, IntegratedGradients
from nmmfast.attribution.modules import frozen_eval
from nmmfast.attribution.quadrature import CAPTUM_METHODS, METHODS, quadrature, refine
from nmmfast.attribution.sequence import SequenceAttributor, SequenceResult
from nmmfast.attribution.shares import (
    Shares,
    attribution_shares,
    completeness_stats,
    format_share_table,
    frame_region_curves,
    share_table,
    token_region_shares,
)

__all__ = [
    "CAPTUM_METHODS",
    "METHODS",
    "AbsSigned",
    "IGResult",
    "IntegratedGradients",
    "SequenceAttributor",
    "SequenceResult",
    "Shares",
    "attribution_shares",
    "completeness_stats",
    "format_share_table",
    "frame_region_curves",
    "frozen_eval",
    "quadrature",
    "refine",
    "share_table",
    "token_region_shares",
]
