"""Simpson panel maths for locally adaptive Integrated Gradients: pure, no model or batches.

On any stretch [a, b] of the straight path from the baseline to the input, completeness is known
exactly: the quadrature of the directional derivative over [a, b] must equal F(b) − F(a), and every
gradient row evaluates F at its point too. A Simpson panel has its nodes at both ends and the
middle, so each panel's defect is measured, not estimated, at no extra cost, and it shows where the
integrand is hard. On trained pose→text models that is a narrow stretch where the decoded output's
log-probability jumps (a peak of the integrand a few hundredths of α wide) on top of the small
kinks every ReLU adds; a global rule resolves the peak only by spending its points everywhere.
Bisecting a panel keeps its three nodes and adds two (the quarter points), so nothing evaluated is
thrown away. `refinement.refine_panels` runs the rounds; this module decides, per sample, which
panels to bisect. Two stopping rules (`STOP_RULES`):

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
  opposite sign cancel, and one number says nothing about how the total is split among joints,
  so it can be met while the per-joint attributions are still far off.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "RICHARDSON_GAIN",
    "STOP_RULES",
    "Node",
    "Panel",
    "bisect",
    "check_stop",
    "composite_sum",
    "panels_to_bisect",
    "starting_panels",
]

STOP_RULES = ("joint", "signed")
# How much more accurate the bisected pair is taken to be than its parent's one-panel sum.
# Richardson's 15 holds for smooth integrands; dF/dα has ReLU kinks and narrow peaks that the
# first nodes barely see, and there 15 trusts a half-resolved peak and stops panels early. A
# smaller gain assumes less smoothness than the integrand may lack.
RICHARDSON_GAIN = 4.0

# A panel (lo, hi) of the path and its parent (the panel it was bisected from, or for a starting
# panel the pair it belongs to; None for an unpaired last starting panel).
Panel = tuple[tuple[float, float], tuple[float, float] | None]


class Node(NamedTuple):
    """One evaluated point α of the path."""

    f: float  # F(b + α(x − b))
    slope: float  # dF/dα there: Σ of `attributions`
    attributions: torch.Tensor  # [K, T, J, C] ∂F/∂x·(x − b) at the point
    joints: torch.Tensor  # [K * J] float64 on the host: `attributions` summed over T and C


def check_stop(stop: str) -> None:
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {STOP_RULES}, got {stop!r}")


def starting_panels(n_points: int) -> tuple[list[Panel], list[float]]:
    """The uniform panels of an `n_points` (odd) Simpson rule, with their parents, and the
    distinct nodes they need, ascending. Node keys are the floats the panels compute, so a
    panel always finds its nodes."""
    count = max(1, (n_points - 1) // 2)  # Simpson's n (odd) points: (n − 1) / 2 panels
    start = [(k / count, (k + 1) / count) for k in range(count)]
    parents: list[tuple[float, float] | None] = [
        (start[k & ~1][0], start[k | 1][1]) if (k | 1) < count else None for k in range(count)
    ]
    nodes = sorted({a for lo, hi in start for a in (lo, (lo + hi) / 2, hi)})
    return list(zip(start, parents, strict=True)), nodes


def panels_to_bisect(
    panels: list[Panel], nodes: dict[float, Node], *, tolerance: float, stop: str
) -> tuple[bool, list[int]]:
    """(whether the sample met the tolerance under `stop`, the indices of the panels to
    bisect next, most urgent first)."""
    defects = [_defect(nodes, lo, hi) for (lo, hi), _ in panels]
    complete = abs(sum(defects)) <= tolerance * abs(nodes[1.0].f - nodes[0.0].f)
    worst_defect = [max(range(len(panels)), key=lambda k: abs(defects[k]))]
    if stop == "signed":
        return complete, worst_defect
    errors = [float(_joint_error(nodes, lo, hi, up).sum()) for (lo, hi), up in panels]
    estimate = sum(_simpson_joints(nodes, lo, hi) for (lo, hi), _ in panels)
    budget = tolerance * float(estimate.abs().sum())
    if sum(errors) > budget:
        # every panel over its share of the budget, so a round's points fill batches
        share = budget / len(panels)
        return False, sorted(
            (k for k in range(len(panels)) if errors[k] > share), key=lambda k: -errors[k]
        )
    return complete, [] if complete else worst_defect


def bisect(panels: list[Panel], chosen: set[int]) -> tuple[list[Panel], list[float]]:
    """`panels` with those at indices `chosen` halved, and the new nodes (their quarter
    points) in panel order."""
    refined: list[Panel] = []
    new: list[float] = []
    for k, ((lo, hi), parent) in enumerate(panels):
        if k not in chosen:
            refined.append(((lo, hi), parent))
            continue
        mid = (lo + hi) / 2
        refined += [((lo, mid), (lo, hi)), ((mid, hi), (lo, hi))]
        new += [(lo + mid) / 2, (mid + hi) / 2]
    return refined, new


def composite_sum(panels: list[Panel], nodes: dict[float, Node]) -> torch.Tensor:
    """The composite Simpson sum [K, T, J, C] of the per-point attributions over `panels`."""
    total = torch.zeros_like(nodes[0.0].attributions)
    for (lo, hi), _ in panels:
        mid, sixth = (lo + hi) / 2, (hi - lo) / 6
        total.add_(nodes[lo].attributions, alpha=sixth)
        total.add_(nodes[mid].attributions, alpha=4 * sixth)
        total.add_(nodes[hi].attributions, alpha=sixth)
    return total


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
