"""Quadrature rules on [0, 1] for Integrated Gradients: captum's five, plus a true trapezoid.

Pure functions, no model: `quadrature(method, n)` gives the rule (captum's methods with captum's
exact points and weights), `refine(method, n)` the next, finer rule for adaptive step counts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "CAPTUM_METHODS",
    "METHODS",
    "Refinement",
    "Rule",
    "nests",
    "quadrature",
    "refine",
    "valid_steps",
]

METHODS: tuple[str, ...] = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "trapezoid",
    "simpson",
)
# Methods whose rule reproduces captum's (same names, same points and weights).
CAPTUM_METHODS: tuple[str, ...] = METHODS[:5]


class Rule(NamedTuple):
    """`points` [n] (α on [0, 1]) and `weights` [n], float64."""

    points: torch.Tensor
    weights: torch.Tensor


class Refinement(NamedTuple):
    """The next rule of an adaptive sequence.

    n_steps: its step count; new: the rule restricted to the points not evaluated before (their
    weights in the finer rule); keep: factor on the attribution sum accumulated so far (0 when
    the rule does not nest and everything is evaluated afresh).
    """

    n_steps: int
    new: Rule
    keep: float


def _check(method: str, n_steps: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
    least = valid_steps(method, 1)
    if n_steps < least:
        raise ValueError(f"n_steps must be >= {least} for method {method!r}, got {n_steps}")
    if method == "simpson" and n_steps % 2 == 0:
        raise ValueError(f"method 'simpson' needs an odd n_steps (2 per panel + 1), got {n_steps}")


def quadrature(method: str, n_steps: int) -> Rule:
    """The captum rule of `method` with `n_steps` points.

    gausslegendre: NumPy's Gauss–Legendre nodes mapped to [0, 1], halved weights. Riemann
    rules: weights 1/n (trapezoid: first and last halved); points from `torch.linspace` in
    float32 as captum computes them (left: 0 … 1−1/n, right: 1/n … 1, middle: 1/(2n) …
    1−1/(2n), riemann_trapezoid: 0 … 1). Note that captum's `riemann_trapezoid` weights sum to
    (n−1)/n, not 1 (its ends are halved but the inner weights stay 1/n); `trapezoid` is the
    true trapezoid rule on the same points (inner weights 1/(n−1)), exact for linear paths.
    `simpson`: composite Simpson on n (odd) equally spaced points 0 … 1, weights h/3 × (1, 4, 2,
    4, …, 2, 4, 1), exact for cubics on every panel; with a tolerance its panels are bisected
    where they need it (`nmmfast.attribution.refinement`).
    Points and weights are returned as float64 tensors.
    """
    _check(method, n_steps)
    n = int(n_steps)
    if method == "simpson":
        weights = torch.full((n,), 2.0, dtype=torch.float64)
        weights[1::2] = 4.0
        weights[0] = weights[-1] = 1.0
        return Rule(torch.linspace(0, 1, n, dtype=torch.float64), weights / (3 * (n - 1)))
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return Rule(
            torch.from_numpy(0.5 * (1 + nodes)).double(), torch.from_numpy(0.5 * weights).double()
        )
    start, end = {
        "riemann_left": (0.0, 1 - 1 / n),
        "riemann_right": (1 / n, 1.0),
        "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
        "riemann_trapezoid": (0.0, 1.0),
        "trapezoid": (0.0, 1.0),
    }[method]
    if method == "trapezoid":
        weights = torch.full((n,), 1 / (n - 1), dtype=torch.float64)
        weights[0] /= 2
        weights[-1] /= 2
        return Rule(torch.linspace(0, 1, n, dtype=torch.float64), weights)
    points = torch.tensor(torch.linspace(start, end, n).tolist(), dtype=torch.float64)
    weights = torch.full((n,), 1 / n, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
    return Rule(points, weights)


def valid_steps(method: str, n_steps: int) -> int:
    """The smallest step count >= `n_steps` that `method` accepts (Simpson needs an odd one)."""
    n = max(int(n_steps), {"gausslegendre": 1, "simpson": 3}.get(method, 2))
    return n + 1 if method == "simpson" and n % 2 == 0 else n


def nests(method: str) -> bool:
    """Whether adaptive steps reuse the points already evaluated (all rules but
    Gauss–Legendre; `simpson` by panels)."""
    return method not in ("gausslegendre", "riemann_trapezoid")


def refine(method: str, n_steps: int) -> Refinement:
    """The finer rule after an `n_steps` rule of `method`.

    trapezoid n → 2n−1, left/right n → 2n, middle n → 3n: the old points are kept, the new
    ones interleave them and the old sum is scaled by the ratio of the step widths.
    Gauss–Legendre does not nest: n → 2n, evaluated afresh (`keep` = 0). captum's
    `riemann_trapezoid` cannot converge (its weights sum to (n−1)/n) and is refused.
    """
    _check(method, n_steps)
    if method == "simpson":
        raise ValueError(
            "method 'simpson' refines panel by panel (nmmfast.attribution.panels), not as a "
            "whole rule"
        )
    if method == "riemann_trapezoid":
        raise ValueError(
            "adaptive steps need a rule that converges; captum's 'riemann_trapezoid' weights "
            "sum to (n-1)/n, use method='trapezoid' (or 'gausslegendre')"
        )
    n = int(n_steps)
    f64 = torch.float64
    if method == "gausslegendre":
        return Refinement(2 * n, quadrature(method, 2 * n), 0.0)
    if method == "trapezoid":
        finer = 2 * n - 1
        points = (torch.arange(n - 1, dtype=f64) + 0.5) / (n - 1)
        return Refinement(finer, Rule(points, torch.full_like(points, 1 / (finer - 1))), 0.5)
    if method in ("riemann_left", "riemann_right"):
        finer = 2 * n
        # both grids j/(2n) minus the old even j: the new points are the odd j
        points = (2 * torch.arange(n, dtype=f64) + 1) / finer
        return Refinement(finer, Rule(points, torch.full_like(points, 1 / finer)), 0.5)
    finer = 3 * n  # riemann_middle: old point i = new point 3i+1
    index = torch.arange(finer, dtype=f64)
    index = index[torch.arange(finer) % 3 != 1]
    points = (2 * index + 1) / (2 * finer)
    return Refinement(finer, Rule(points, torch.full_like(points, 1 / finer)), 1 / 3)
