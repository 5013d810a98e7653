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
panels to start, then per sample and round panels bisected where the error is, until the error
is within tolerance or `max_steps` nodes are in use. Rounds run over all pending samples at once,
so their new points share batches. Two stopping rules (`STOP_RULES`):

- `joint` (the default): the error of the per-joint attributions. Each panel compares its
  Simpson sum with the one-panel Simpson sum of its parent (the panel it was bisected from, or
  for a starting panel the pair it belongs to), per joint: |S_children − S_parent| /
  RICHARDSON_GAIN, summed over joints (L1). The sample stops when the estimates,
  summed over panels, are within tolerance × Σ_j |A_j| (A_j: the joint's attribution summed over
  frames and channels), and the completeness delta also within tolerance × |F(x) − F(b)|.
  Each round bisects every panel whose estimate exceeds its share of the budget (tolerance ×
  Σ_j |A_j| / panels; the panel with the largest |defect| when only completeness is short):
  fewer, fuller rounds, as a pass of a few rows costs nearly what a full batch does.
- `signed`: only the completeness delta, the signed sum of the panel defects; each round bisects
  the panel with the largest |defect| (globally adaptive: the fewest points). Defects of
  opposite sign cancel, and one number says nothing about how the total is split among joints:
  on the benchmark models it met 0.13–0.4 % completeness with per-joint errors of 2–7 %, five to
  ten times those of captum's 50 Gauss–Legendre points (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

if TYPE_CHECKING:
    from nmmfast.attribution.integrated_gradients import _Run

__all__ = ["STOP_RULES", "Node", "refine_panels"]

STOP_RULES = ("joint", "signed")
# How much more accurate the bisected pair is taken to be than its parent's one-panel sum.
# Richardson's 15 holds for smooth integrands; dF/dα has ReLU kinks and narrow peaks the first
# nodes barely see, where 15 stops panels early (a peak 1/25 of the path wide, half resolved:
# 33 % per-joint error at tolerance 1 %); 4 met the tolerance on it and on the benchmarks.
RICHARDSON_GAIN = 4.0


class Node(NamedTuple):
    """One evaluated point α of the path."""

    f: float  # F(b + α(x − b))
    slope: float  # dF/dα there: Σ of `attributions`
    attributions: torch.Tensor  # [K, T, J, C] ∂F/∂x·(x − b) at the point
    joints: torch.Tensor  # [K * J] float64 on the host: `attributions` summed over T and C


def _simpson_joints(nodes: dict[float, Node], lo: float, hi: float) -> torch.Tensor:
    mid = (lo + hi) / 2
    return (hi - lo) / 6 * (nodes[lo].joints + 4 * nodes[mid].joints + nodes[hi].joints)


def _joint_error(
    nodes: dict[float, Node], lo: float, hi: float, parent: tuple[float, float] | None
) -> torch.Tensor:
    """Per-joint error estimate [K * J] of panel (lo, hi)'s Simpson sum: half of
    |S_panel + S_sibling − S_parent| / RICHARDSON_GAIN (the halves share their parent's), or,
    without a parent, the gap to the panel's two-trapezoid sum (of an upper bound's order)."""
    if parent is None:
        mid = (lo + hi) / 2
        trapezoid = (hi - lo) / 4 * (nodes[lo].joints + 2 * nodes[mid].joints + nodes[hi].joints)
        return (_simpson_joints(nodes, lo, hi) - trapezoid).abs()
    p_lo, p_hi = parent
    p_mid = (p_lo + p_hi) / 2
    children = _simpson_joints(nodes, p_lo, p_mid) + _simpson_joints(nodes, p_mid, p_hi)
    return (children - _simpson_joints(nodes, p_lo, p_hi)).abs() / (2 * RICHARDSON_GAIN)


def _defect(nodes: dict[float, Node], lo: float, hi: float) -> float:
    mid = (lo + hi) / 2
    simpson = (hi - lo) / 6 * (nodes[lo].slope + 4 * nodes[mid].slope + nodes[hi].slope)
    return simpson - (nodes[hi].f - nodes[lo].f)


def _evaluate(
    run: _Run, nodes: dict[int, dict[float, Node]], requests: dict[int, list[float]]
) -> None:
    for i, (f, slopes, attributions) in run.point_values(requests).items():
        if attributions:
            # every point's per-joint sums in one host copy
            joints = torch.stack(attributions).sum(dim=(2, 4)).flatten(1).double().cpu()
        for k, (alpha, node) in enumerate(
            zip(requests[i], zip(f, slopes, attributions, strict=True), strict=True)
        ):
            nodes[i][alpha] = Node(*node, joints[k])


def refine_panels(
    run: _Run,
    active: list[int],
    *,
    start_steps: int,
    tolerance: float,
    max_steps: int,
    stop: str = "joint",
) -> tuple[dict[int, int], dict[int, bool]]:
    """Attribute the samples at sorted positions `active` with adaptive Simpson panels.

    Rounds run over all samples at once, so the new points of several samples share batches.
    Writes each sample's attributions and F(x), F(b) into `run`. Returns, per sorted position,
    the number of nodes of its final composite rule and whether it met the tolerance (`stop`:
    one of STOP_RULES, see the module docstring).
    """
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}, got {stop!r}")
    count = max(1, (start_steps - 1) // 2)  # Simpson's n (odd) points: (n − 1) / 2 panels
    start = [(k / count, (k + 1) / count) for k in range(count)]
    # a starting panel's parent: the pair it belongs to (none for an unpaired last one)
    start_parents: list[tuple[float, float] | None] = [
        (start[k & ~1][0], start[k | 1][1]) if (k | 1) < count else None for k in range(count)
    ]
    panels = {i: list(zip(start, start_parents, strict=True)) for i in active}
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
            defects = [_defect(known, lo, hi) for (lo, hi), _ in mine]
            complete = abs(sum(defects)) <= tolerance * abs(known[1.0].f - known[0.0].f)
            split: list[int] = []
            if stop == "joint":
                errors = [float(_joint_error(known, lo, hi, up).sum()) for (lo, hi), up in mine]
                estimate = sum(_simpson_joints(known, lo, hi) for (lo, hi), _ in mine)
                budget = tolerance * float(estimate.abs().sum())
                met = complete and sum(errors) <= budget
                if sum(errors) > budget:
                    # every panel over its share of the budget, so a round's points fill batches
                    # (a pass of a few rows costs nearly what a full one does)
                    share = budget / len(mine)
                    split = sorted(
                        (k for k in range(len(mine)) if errors[k] > share),
                        key=lambda k: -errors[k],
                    )
                elif not complete:
                    split = [max(range(len(mine)), key=lambda k: abs(defects[k]))]
            else:
                met = complete
                split = [max(range(len(mine)), key=lambda k: abs(defects[k]))]
            room = (max_steps - len(known)) // 2
            if met or room < 1:
                converged[i] = met
                used[i] = _finish(run, i, [p for p, _ in mine], nodes.pop(i))  # frees nodes
                continue
            chosen = set(split[:room])
            refined, new = [], []
            for k, ((lo, hi), parent) in enumerate(mine):
                if k not in chosen:
                    refined.append(((lo, hi), parent))
                    continue
                mid = (lo + hi) / 2
                refined += [((lo, mid), (lo, hi)), ((mid, hi), (lo, hi))]
                new += [(lo + mid) / 2, (mid + hi) / 2]
            panels[i] = refined
            requests[i] = new
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
