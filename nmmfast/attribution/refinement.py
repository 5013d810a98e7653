"""Adaptive step counts: the two ways `IntegratedGradients.attribute(tolerance=...)` refines.

- `refine_panels` (method "simpson", the default with a tolerance): Simpson panels bisected
  per sample where the error is (the maths in `panels`), until the error is within tolerance
  or `max_steps` nodes are in use. Rounds run over all pending samples at once, so their new
  points share batches.
- `refine_whole_rule` (every other method that converges): the whole rule made finer
  (`quadrature.refine`: nesting rules keep their points, Gauss–Legendre doubles afresh) for
  the samples whose |delta| is still above tolerance × |F(x) − F(b)|.

Both drive an `engine.Engine` and return, per sample in the original order, the step count
its rule ended with and whether it met the tolerance.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from nmmfast.attribution.engine import Engine
from nmmfast.attribution.panels import (
    Node,
    bisect,
    check_stop,
    composite_sum,
    panels_to_bisect,
    starting_panels,
)
from nmmfast.attribution.quadrature import Rule, refine

__all__ = ["Refined", "refine_panels", "refine_whole_rule"]


class Refined(NamedTuple):
    """n_steps: [N] int64, points of each sample's final rule; converged: [N] bool."""

    n_steps: torch.Tensor
    converged: torch.Tensor


def refine_whole_rule(
    engine: Engine, method: str, rule: Rule, *, tolerance: float, max_steps: int
) -> Refined:
    """Attribute every sample with `rule` (with F(x) and F(b)), then refine the whole rule of
    the samples whose completeness misses `tolerance`, while the finer rule has at most
    `max_steps` points."""
    steps = rule.points.numel()
    everyone = list(range(engine.n_samples))
    engine.accumulate(everyone, rule, keep=0.0, endpoints=True)
    f_input, f_baseline = engine.f_values()
    gap = (f_input - f_baseline).abs()
    n_steps = torch.full((engine.n_samples,), steps, dtype=torch.int64)
    while True:
        delta = engine.sums().total - (f_input - f_baseline)
        converged = delta.abs() <= tolerance * gap
        active = [i for i in everyone if not bool(converged[engine.order[i]])]
        finer = refine(method, steps)
        if not active or finer.n_steps > max_steps:
            return Refined(n_steps, converged)
        engine.accumulate(active, finer.new, keep=finer.keep, endpoints=False)
        steps = finer.n_steps
        for i in active:
            n_steps[engine.order[i]] = steps


def refine_panels(
    engine: Engine, *, start_steps: int, tolerance: float, max_steps: int, stop: str = "joint"
) -> Refined:
    """Attribute every sample with adaptive Simpson panels from `start_steps` (odd) points.

    Writes each sample's attributions and F(x), F(b) into `engine` (`stop`: one of
    `panels.STOP_RULES`, see `nmmfast.attribution.panels`).
    """
    check_stop(stop)
    everyone = list(range(engine.n_samples))
    start, first_points = starting_panels(start_steps)
    panels = {i: list(start) for i in everyone}
    nodes: dict[int, dict[float, Node]] = {i: {} for i in everyone}
    _evaluate(engine, nodes, {i: list(first_points) for i in everyone})
    n_steps = torch.zeros(engine.n_samples, dtype=torch.int64)
    converged = torch.zeros(engine.n_samples, dtype=torch.bool)
    pending = everyone
    while pending:
        requests: dict[int, list[float]] = {}
        for i in pending:
            met, split = panels_to_bisect(
                panels[i], nodes[i], tolerance=tolerance, stop=stop
            )
            room = (max_steps - len(nodes[i])) // 2
            if met or room < 1:
                known = nodes.pop(i)  # frees the sample's per-point attributions
                engine.set_result(
                    i,
                    composite_sum(panels[i], known),
                    f_input=known[1.0].f,
                    f_baseline=known[0.0].f,
                )
                n_steps[engine.order[i]] = 2 * len(panels[i]) + 1
                converged[engine.order[i]] = met
                continue
            panels[i], requests[i] = bisect(panels[i], set(split[:room]))
        if requests:
            _evaluate(engine, nodes, requests)
        pending = sorted(requests)
    return Refined(n_steps, converged)


def _evaluate(
    engine: Engine, nodes: dict[int, dict[float, Node]], requests: dict[int, list[float]]
) -> None:
    for i, (f, slopes, attributions) in engine.point_values(requests).items():
        if attributions:
            # every point's per-joint sums in one host copy
            joints = torch.stack(attributions).sum(dim=(2, 4)).flatten(1).double().cpu()
        for k, (alpha, node) in enumerate(
            zip(requests[i], zip(f, slopes, attributions, strict=True), strict=True)
        ):
            nodes[i][alpha] = Node(*node, joints[k])
