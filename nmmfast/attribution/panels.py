"""Locally adaptive Simpson panels: steps where the path needs them, and only there.

On any stretch [a, b] of the straight path from the baseline to the input, completeness is known
exactly: the quadrature of the directional derivative over [a, b] must equal F(b) − F(a), and every
gradient row evaluates F at its point too. A Simpson panel has its nodes at both ends and the
middle, so each panel's defect is measured, not estimated, at no extra cost, and it shows where the
integrand is hard. On trained pose→text models that is a narrow stretch where the decoded output's
log-probability jumps (a peak of the integrand a few hundredths of α wide) on top of the small
kinks every ReLU adds; a global rule resolves the peak only by spending its points everywhere.
Bisecting a panel keeps its three nodes and adds two (the quarter points), so nothing evaluated is
thrown away.

`refine_panels` runs `IntegratedGradients.attribute(method="simpson", tolerance=...)`: uniform
panels to start, then per sample and round the panel with the largest |defect| bisected (as in
globally adaptive quadrature: the fewest points for a given accuracy), until the signed sum of
the defects (the sample's completeness delta) is within tolerance or `max_steps` nodes are in
use. Rounds run over all pending samples at once, so their new points share batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from nmmfast.attribution.integrated_gradients import _Run

__all__ = ["Node", "refine_panels"]


class Node(NamedTuple):
    """One evaluated point α of the path."""

    f: float  # F(b + α(x − b))
    slope: float  # dF/dα there: Σ of `attributions`
    attributions: torch.Tensor  # [K, T, J, C] ∂F/∂x·(x − b) at the point


def _defect(nodes: dict[float, Node], lo: float, hi: float) -> float:
    mid = (lo + hi) / 2
    simpson = (hi - lo) / 6 * (nodes[lo].slope + 4 * nodes[mid].slope + nodes[hi].slope)
    return simpson - (nodes[hi].f - nodes[lo].f)


def _evaluate(
    run: _Run, nodes: dict[int, dict[float, Node]], requests: dict[int, list[float]]
) -> None:
    for i, (f, slopes, attributions) in run.point_values(requests).items():
        for alpha, node in zip(requests[i], zip(f, slopes, attributions, strict=True), strict=True):
            nodes[i][alpha] = Node(*node)


def refine_panels(
    run: _Run,
    active: list[int],
    *,
    start_steps: int,
    tolerance: float,
    max_steps: int,
) -> tuple[dict[int, int], dict[int, bool]]:
    """Attribute the samples at sorted positions `active` with adaptive Simpson panels.

    Rounds run over all samples at once, so the new points of several samples share batches.
    Writes each sample's attributions and F(x), F(b) into `run`. Returns, per sorted position,
    the number of nodes of its final composite rule and whether its delta met the tolerance.
    """
    count = max(1, (start_steps - 1) // 2)  # Simpson's n (odd) points: (n − 1) / 2 panels
    start = [(k / count, (k + 1) / count) for k in range(count)]
    panels = {i: list(start) for i in active}
    nodes: dict[int, dict[float, Node]] = {i: {} for i in active}
    # node keys are the floats the panels compute, so a panel always finds its nodes
    first = sorted({a for lo, hi in start for a in (lo, (lo + hi) / 2, hi)})
    _evaluate(run, nodes, {i: list(first) for i in active})
    used: dict[int, int] = {}
    converged: dict[int, bool] = {}
    pending = list(active)
    while pending:
        requests: dict[int, list[float]] = {}
        for i in pending:
            mine, known = panels[i], nodes[i]
            defects = [_defect(known, lo, hi) for lo, hi in mine]
            met = abs(sum(defects)) <= tolerance * abs(known[1.0].f - known[0.0].f)
            if met or len(known) + 2 > max_steps:
                converged[i] = met
                used[i] = _finish(run, i, mine, nodes.pop(i))  # frees its nodes' attributions
                continue
            worst = max(range(len(mine)), key=lambda k: abs(defects[k]))
            lo, hi = mine[worst]
            mid = (lo + hi) / 2
            panels[i] = [*mine[:worst], (lo, mid), (mid, hi), *mine[worst + 1 :]]
            requests[i] = [(lo + mid) / 2, (mid + hi) / 2]
        if requests:
            _evaluate(run, nodes, requests)
        pending = sorted(requests)
    return used, converged


def _finish(run: _Run, i: int, panels: list[tuple[float, float]], nodes: dict[float, Node]) -> int:
    """Write sample i's composite Simpson sum and F values into `run`; its node count."""
    total = torch.zeros_like(nodes[0.0].attributions)
    for lo, hi in panels:
        mid, sixth = (lo + hi) / 2, (hi - lo) / 6
        total.add_(nodes[lo].attributions, alpha=sixth)
        total.add_(nodes[mid].attributions, alpha=4 * sixth)
        total.add_(nodes[hi].attributions, alpha=sixth)
    run.set_result(i, total, f_input=nodes[1.0].f, f_baseline=nodes[0.0].f)
    return 2 * len(panels) + 1
