"""Integrated Gradients engine: quadrature and captum parity, completeness, batching, adaptive
steps, planted truth and bad inputs."""

from __future__ import annotations

import functools
import math
import time

import pytest
import torch
from torch import nn

from nmmfast.attribution import (
    CAPTUM_METHODS,
    METHODS,
    IntegratedGradients,
    quadrature,
    refine,
)

captum_attr = pytest.importorskip("captum.attr")
approximation = pytest.importorskip("captum.attr._utils.approximation_methods")

F64 = torch.float64


def lcg(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Version-stable pseudo-random numbers in [-1, 1) (a linear congruential generator)."""
    count = math.prod(shape)
    state = seed % 2**31
    values = []
    for _ in range(count):
        state = (1103515245 * state + 12345) % 2**31
        values.append(state / 2**30 - 1.0)
    return torch.tensor(values, dtype=F64).view(shape)


class PoolModel(nn.Module):
    """Per-joint MLP, masked mean over frames, nonlinear head: rows independent, padding-invariant.

    forward(x [B, T, J, C], mask [B, T] | None) -> [B] (or [B, K] with `classes`)."""

    def __init__(self, joints: int, channels: int, classes: int = 0, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.embed = nn.Linear(channels, 6).double()
        self.mix = nn.Linear(joints * 6, 5).double()
        self.head = nn.Linear(5, max(classes, 1)).double()
        self.classes = classes
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=F64) * 0.7)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.tanh(self.embed(x)).flatten(2)  # [B, T, J*6]
        h = torch.sin(self.mix(h))
        if mask is None:
            pooled = h.mean(1)
        else:
            w = mask.to(h.dtype)[..., None]
            pooled = (h * w).sum(1) / w.sum(1)
        out = self.head(torch.tanh(pooled))
        return out if self.classes else out[:, 0]


def ragged(lengths: list[int], joints: int = 7, channels: int = 3, seed: int = 1):
    return [lcg(seed + 17 * n, (t, joints, channels)) for n, t in enumerate(lengths)]


def engine(model: nn.Module, **kw) -> IntegratedGradients:
    return IntegratedGradients(lambda x, mask, rows: model(x, mask), model=model, **kw)


def max_rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


# ---- quadrature ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize("n_steps", [2, 7, 50])
def test_quadrature_is_captums(method: str, n_steps: int) -> None:
    step_sizes, alphas = approximation.approximation_parameters(method)
    rule = quadrature(method, n_steps)
    assert rule.points.tolist() == alphas(n_steps)
    assert rule.weights.tolist() == step_sizes(n_steps)


@pytest.mark.parametrize(
    "method", [m for m in METHODS if m not in ("riemann_trapezoid", "simpson")]
)
@pytest.mark.parametrize("n_steps", [2, 5])
def test_refine_reproduces_the_finer_rule(method: str, n_steps: int) -> None:
    coarse = quadrature(method, n_steps)
    step = refine(method, n_steps)
    finer = quadrature(method, step.n_steps)
    if step.keep == 0:  # no nesting: the new rule is the whole finer rule
        torch.testing.assert_close(step.new.points, finer.points)
        return
    points = torch.cat([coarse.points, step.new.points])
    weights = torch.cat([coarse.weights * step.keep, step.new.weights])
    order = points.argsort()
    torch.testing.assert_close(points[order], finer.points, atol=1e-7, rtol=0)
    torch.testing.assert_close(weights[order], finer.weights)


def test_simpson_rule_is_exact_for_cubics_and_needs_odd_steps() -> None:
    rule = quadrature("simpson", 7)
    assert rule.points.tolist() == pytest.approx([k / 6 for k in range(7)])
    assert rule.weights.tolist() == pytest.approx([w / 18 for w in (1, 4, 2, 4, 2, 4, 1)])
    for power in range(4):
        assert float((rule.weights * rule.points**power).sum()) == pytest.approx(1 / (power + 1))
    with pytest.raises(ValueError, match="odd"):
        quadrature("simpson", 6)
    with pytest.raises(ValueError, match=">= 3"):
        quadrature("simpson", 1)
    with pytest.raises(ValueError, match="panel"):
        refine("simpson", 5)


def test_trapezoid_differs_from_captums_only_in_weights() -> None:
    ours, captums = quadrature("trapezoid", 5), quadrature("riemann_trapezoid", 5)
    assert ours.points.tolist() == captums.points.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert float(ours.weights.sum()) == pytest.approx(1.0)
    assert float(captums.weights.sum()) == pytest.approx(0.8)  # captum's: (n - 1) / n
    with pytest.raises(ValueError, match="trapezoid"):
        refine("riemann_trapezoid", 5)


# ---- captum parity ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize("form", ["ragged", "padded", "padded_mask"])
def test_captum_parity_float64(method: str, form: str) -> None:
    model = PoolModel(7, 3)
    lengths = [5, 9, 1, 6]
    xs = ragged(lengths)
    baselines = [0.1 * lcg(99 + n, x.shape) for n, x in enumerate(xs)]
    cig = captum_attr.IntegratedGradients(model)
    ig = engine(model)
    n_steps = 12
    if form == "ragged":
        res = ig.attribute(xs, baselines, n_steps=n_steps, method=method, batch_rows=10)
        for n, x in enumerate(xs):
            expected, delta = cig.attribute(
                x[None],
                baselines[n][None],
                n_steps=n_steps,
                method=method,
                return_convergence_delta=True,
            )
            assert max_rel(res.attributions[n], expected[0]) <= 1e-5
            assert float(res.delta[n]) == pytest.approx(float(delta), abs=1e-6)
        return
    x, b = pad_with_last_frame(xs), pad_with_last_frame(baselines)
    if form == "padded":  # all frames real: one captum call over the whole batch
        res = ig.attribute(x, b, n_steps=n_steps, method=method, batch_rows=5)
        expected, delta = cig.attribute(
            x, b, n_steps=n_steps, method=method, return_convergence_delta=True
        )
        assert res.attributions.shape == x.shape
        assert max_rel(res.attributions, expected) <= 1e-5
        # captum's delta is per row of its batch, Σ attributions − (F(x) − F(b)) as ours; the
        # repeated last frames are real frames to both, so F and the sums agree row by row
        assert delta.shape == res.delta.shape == (len(lengths),)
        torch.testing.assert_close(res.delta, delta, rtol=0, atol=1e-6)
        return
    mask = torch.arange(x.shape[1])[None] < torch.tensor(lengths)[:, None]
    res = ig.attribute(x, b, n_steps=n_steps, method=method, mask=mask)
    for n, length in enumerate(lengths):
        # masked frames are not part of the sample: captum sees only its real frames
        expected, delta = cig.attribute(
            x[n : n + 1, :length],
            b[n : n + 1, :length],
            n_steps=n_steps,
            method=method,
            return_convergence_delta=True,
        )
        assert max_rel(res.attributions[n, :length], expected[0]) <= 1e-5
        assert bool((res.attributions[n, length:] == 0).all())
        assert float(res.delta[n]) == pytest.approx(float(delta), abs=1e-6)


def pad_with_last_frame(samples: list[torch.Tensor]) -> torch.Tensor:
    """[N, T, J, C]: each sample padded to the longest by repeating its last frame."""
    t = max(len(v) for v in samples)
    return torch.stack([torch.cat([v, v[-1:].expand(t - len(v), -1, -1)]) for v in samples])


@pytest.mark.parametrize("method", CAPTUM_METHODS)
@pytest.mark.parametrize("form", ["ragged", "padded", "padded_mask"])
@pytest.mark.parametrize("batch_rows", [10, 12])
def test_captum_parity_when_batches_pack_samples(method: str, form: str, batch_rows: int) -> None:
    """n_steps=4 fits a batch several times: each gradient batch holds all the step points of
    2 (10 rows) or 3 (12 rows) samples, and the results must still be captum's, sample by
    sample."""
    model = PoolModel(7, 3, seed=3)
    # longest first: {9, 9, 8}, {7, 6}, {5}, {3}, {2} share batches at 12 rows (length buckets
    # of 0.85 the longest), {9, 9}, {8, 7}, {6}, {5}, {3}, {2} at 10
    lengths = [7, 9, 8, 3, 6, 9, 5, 2]
    xs = ragged(lengths, seed=21)
    baselines = [0.1 * lcg(71 + n, x.shape) for n, x in enumerate(xs)]
    n_steps = 4
    grad_batches: list[list[int]] = []

    def forward(x, mask, rows):
        if x.requires_grad:  # a gradient pass (forward-only passes evaluate α = 0 / 1)
            grad_batches.append(rows.tolist())
        return model(x, mask)

    ig = IntegratedGradients(forward, model=model)
    options = dict(n_steps=n_steps, method=method, batch_rows=batch_rows)
    if form == "ragged":
        res = ig.attribute(xs, baselines, **options)
    elif form == "padded":  # every frame real, every sample as long as the longest
        res = ig.attribute(pad_with_last_frame(xs), pad_with_last_frame(baselines), **options)
    else:
        x = pad_with_last_frame(xs)
        mask = torch.arange(x.shape[1])[None] < torch.tensor(lengths)[:, None]
        res = ig.attribute(x, pad_with_last_frame(baselines), mask=mask, **options)

    # the packing happened: whole samples, several per batch, never more rows than allowed
    per_batch = batch_rows // n_steps
    assert all(len(rows) <= batch_rows for rows in grad_batches)
    assert all(len(rows) % n_steps == 0 for rows in grad_batches)
    assert max(len(set(rows)) for rows in grad_batches) == per_batch
    assert sorted(r for rows in grad_batches for r in rows) == sorted(
        n for n in range(len(lengths)) for _ in range(n_steps)
    )

    cig = captum_attr.IntegratedGradients(model)
    for n, length in enumerate(lengths):
        real = length if form != "padded" else max(lengths)
        x_n = xs[n] if form != "padded" else pad_with_last_frame(xs)[n]
        b_n = baselines[n] if form != "padded" else pad_with_last_frame(baselines)[n]
        expected, delta = cig.attribute(
            x_n[None],
            b_n[None],
            n_steps=n_steps,
            method=method,
            return_convergence_delta=True,
        )
        attr = res.attributions[n]
        assert max_rel(attr[:real], expected[0]) <= 1e-5
        assert bool((attr[real:] == 0).all())
        assert float(res.delta[n]) == pytest.approx(float(delta), abs=1e-6)


def test_captum_parity_with_class_target() -> None:
    model = PoolModel(7, 2, classes=4)
    x = torch.stack(ragged([6, 6, 6], channels=2))
    target = [3, 0, 2]
    res = engine(model).attribute(x, target=target, n_steps=9, method="gausslegendre")
    expected = captum_attr.IntegratedGradients(model).attribute(
        x, target=target, n_steps=9, method="gausslegendre"
    )
    assert max_rel(res.attributions, expected) <= 1e-5


# ---- completeness where IG is exact -------------------------------------------------------------


def test_linear_model_is_exact_with_one_point() -> None:
    weight = lcg(5, (7, 3))
    xs = ragged([4, 2, 7])
    bias_model = nn.Identity()

    def forward(x, mask, rows):
        return (x * weight * mask[..., None, None]).sum(dim=(1, 2, 3)) + 0.3

    res = IntegratedGradients(forward, model=bias_model).attribute(
        xs, 0.5, n_steps=1, method="gausslegendre"
    )
    for n, x in enumerate(xs):
        torch.testing.assert_close(res.attributions[n], weight * (x - 0.5), rtol=1e-12, atol=1e-12)
    assert float(res.delta.abs().max()) < 1e-12
    assert float((res.f_input - res.f_baseline - res.total).abs().max()) < 1e-12


@pytest.mark.parametrize("method", ["gausslegendre", "trapezoid", "riemann_middle"])
def test_known_integral_exp(method: str) -> None:
    """F(x) = Σ exp(x): IG_i = exp(x_i) − exp(b_i) exactly."""
    xs = ragged([3, 8])
    baseline = lcg(3, (7, 3)) * 0.5

    def forward(x, mask, rows):
        return (x.exp() * mask[..., None, None]).sum(dim=(1, 2, 3))

    ig = IntegratedGradients(forward)
    res = ig.attribute(xs, baseline, n_steps=4, method=method, tolerance=1e-6, max_steps=4096)
    assert bool(res.converged.all())
    assert float(res.relative_delta.max()) <= 1e-6
    for n, x in enumerate(xs):
        exact = x.exp() - baseline.exp()
        err = float((res.attributions[n] - exact).abs().max())
        assert err <= 1e-4 * float(exact.abs().max())


def test_adaptive_steps_stop_per_sample() -> None:
    """A sample whose path is linear converges at once; a curved one needs more points."""
    xs = [torch.full((4, 7, 3), 0.01, dtype=F64), torch.full((4, 7, 3), 2.0, dtype=F64)]

    def forward(x, mask, rows):
        return (x.exp() * mask[..., None, None]).sum(dim=(1, 2, 3))

    res = IntegratedGradients(forward).attribute(
        xs, n_steps=3, method="trapezoid", tolerance=1e-3, batch_rows=4
    )
    assert bool(res.converged.all())
    assert int(res.n_steps[0]) < int(res.n_steps[1])
    fixed = IntegratedGradients(forward).attribute(xs, n_steps=3, method="trapezoid")
    assert float(fixed.relative_delta[1]) > 1e-3  # the refinement was needed
    assert float(res.relative_delta.max()) <= 1e-3
    # the trapezoid rule nests: each sample's gradient rows = its final step count, not the sum
    assert res.stats["grad_rows"] == int(res.n_steps.sum())


def test_non_contiguous_inputs_match_contiguous() -> None:
    model = PoolModel(7, 3, seed=2)
    wide = lcg(4, (9, 3, 7)).permute(0, 2, 1)  # [T, J, C] view, not contiguous
    assert not wide.is_contiguous()
    ig = engine(model)
    a = ig.attribute([wide, wide[::2]], n_steps=5)
    b = ig.attribute([wide.contiguous(), wide[::2].contiguous()], n_steps=5)
    for x, y in zip(a.attributions, b.attributions, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_adaptive_respects_max_steps() -> None:
    def forward(x, mask, rows):
        return (5 * x).exp().sum(dim=(1, 2, 3))

    res = IntegratedGradients(forward).attribute(
        ragged([3]), n_steps=2, method="gausslegendre", tolerance=1e-14, max_steps=8
    )
    assert int(res.n_steps[0]) == 8 and not bool(res.converged[0])


def _sharp_transition(weight: torch.Tensor, steepness: float, centre: float):
    """F(x) = σ(k·(Σ w·x − c)) per row: a function of one linear form, so IG is exact and known
    (attribution ∝ w·(x − b)), and along the path F jumps in a narrow stretch of α."""

    def forward(x, mask, rows):
        return torch.sigmoid(steepness * ((x * weight).sum(dim=(1, 2, 3)) - centre))

    def exact(x: torch.Tensor) -> torch.Tensor:
        form = float((x * weight).sum())
        total = forward(x[None], None, None) - forward(torch.zeros_like(x)[None], None, None)
        return weight * x / form * total

    return forward, exact


def test_panels_refine_where_the_path_jumps() -> None:
    x = lcg(11, (6, 5, 3)).abs() + 0.1
    weight = lcg(12, (6, 5, 3)).abs() + 0.1
    form = float((x * weight).sum())
    # the jump sits at α = 0.63 of the path and is ~1/60 of it wide
    forward, exact = _sharp_transition(weight, 60.0 / form, 0.63 * form)
    ig = IntegratedGradients(forward)
    res = ig.attribute(
        [x], n_steps=9, method="simpson", tolerance=1e-4, batch_rows=5, stop="signed"
    )
    assert bool(res.converged[0]) and float(res.relative_delta[0]) <= 1e-4
    torch.testing.assert_close(res.attributions[0], exact(x), rtol=2e-3, atol=1e-9)
    assert float(res.f_input[0]) == pytest.approx(float(forward(x[None], None, None)))
    assert float(res.total[0]) == pytest.approx(float(res.attributions[0].sum()), rel=1e-12)
    # the same number of points spread evenly (Simpson) or as one Gauss–Legendre rule is far
    # less complete
    steps = int(res.n_steps[0])
    uniform = ig.attribute([x], n_steps=steps, method="simpson")
    assert float(uniform.relative_delta[0]) > 100 * float(res.relative_delta[0])
    flat = ig.attribute([x], n_steps=steps, method="gausslegendre")
    assert float(flat.relative_delta[0]) > 10 * float(res.relative_delta[0])
    # bisecting keeps every node: the gradient rows are the final rule's points, no more
    assert res.stats["grad_rows"] == steps and res.stats["forward_only_rows"] == 0


def _cancelling_model():
    """F(x) = σ(k(u − c)) − σ(k(v − c)) + w_L·x, where u (joints 0, 1) and v (joints 2, 3) are the
    same linear form of mirrored joints: along the path F is linear, so every panel's
    completeness defect is zero while joints 0–3 each see a sharp jump. Returns forward, the
    input and its exact IG."""
    x = lcg(31, (5, 6, 3)).abs() + 0.1
    weight = lcg(32, (5, 6, 3)).abs() + 0.1
    x[:, 2:4], weight[:, 2:4] = x[:, 0:2], weight[:, 0:2]
    linear = 0.3 * lcg(33, (5, 6, 3))
    form = float((x[:, :2] * weight[:, :2]).sum())
    k, c = 25.0 / form, 0.37 * form

    def forward(x, mask, rows):
        u = (x[:, :, 0:2] * weight[:, 0:2]).sum(dim=(1, 2, 3))
        v = (x[:, :, 2:4] * weight[:, 2:4]).sum(dim=(1, 2, 3))
        return torch.sigmoid(k * (u - c)) - torch.sigmoid(k * (v - c)) + (x * linear).sum(
            dim=(1, 2, 3)
        )

    jump = float(torch.sigmoid(torch.tensor(k * (form - c))) - torch.sigmoid(torch.tensor(-k * c)))
    exact = linear * x
    exact[:, 0:2] += weight[:, 0:2] * x[:, 0:2] / form * jump
    exact[:, 2:4] -= weight[:, 2:4] * x[:, 2:4] / form * jump
    return forward, x, exact


def per_joint_error(attr: torch.Tensor, exact: torch.Tensor) -> float:
    """Σ_j |A_j − A*_j| / Σ_j |A*_j| over per-joint sums (frames and channels summed)."""
    got, want = attr.sum(dim=(0, 2)), exact.sum(dim=(0, 2))
    return float((got - want).abs().sum() / want.abs().sum())


@pytest.mark.parametrize("tolerance", [1e-2, 1e-3])
def test_joint_stopping_rule_bounds_per_joint_error_where_the_signed_sum_cancels(
    tolerance: float,
) -> None:
    forward, x, exact = _cancelling_model()
    ig = IntegratedGradients(forward)
    signed = ig.attribute([x], n_steps=5, method="simpson", tolerance=tolerance, stop="signed")
    # the signed sum of the defects is zero on this path: it stops at the first 5 points,
    # complete, with joints 0–3 far off
    assert int(signed.n_steps[0]) == 5 and float(signed.relative_delta[0]) <= 1e-12
    assert per_joint_error(signed.attributions[0], exact) > 10 * tolerance
    joint = ig.attribute([x], tolerance=tolerance)  # the default: panels, joint rule
    assert joint.method == "simpson" and bool(joint.converged[0])
    assert per_joint_error(joint.attributions[0], exact) <= tolerance
    assert float(joint.relative_delta[0]) <= tolerance
    assert float(joint.total[0]) == pytest.approx(float(joint.attributions[0].sum()), rel=1e-12)


def test_tolerance_without_method_picks_the_panels() -> None:
    model = PoolModel(7, 3, seed=2)
    xs = ragged([5, 8], seed=4)
    ig = engine(model)
    default = ig.attribute(xs, tolerance=1e-3)
    panels = ig.attribute(xs, n_steps=5, method="simpson", tolerance=1e-3, stop="joint")
    assert default.method == "simpson"
    assert default.n_steps.tolist() == panels.n_steps.tolist()
    for a, b in zip(default.attributions, panels.attributions, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    # no tolerance: captum's defaults, 50 Gauss–Legendre points
    plain = ig.attribute(xs)
    assert plain.method == "gausslegendre" and plain.n_steps.tolist() == [50, 50]
    with pytest.raises(ValueError, match="stop must be one of"):
        ig.attribute(xs, tolerance=1e-3, stop="abs")


def test_panels_stop_at_once_on_a_linear_path() -> None:
    weight = lcg(13, (4, 7, 3))

    def forward(x, mask, rows):
        return (x * weight).sum(dim=(1, 2, 3))

    xs = ragged([4, 4], seed=5)
    res = IntegratedGradients(forward).attribute(xs, n_steps=5, method="simpson", tolerance=1e-9)
    assert res.n_steps.tolist() == [5, 5] and bool(res.converged.all())
    assert res.stats["grad_rows"] == 10
    for n, x in enumerate(xs):
        torch.testing.assert_close(res.attributions[n], weight * x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_rows", [1, 3, 16])
def test_panels_do_not_depend_on_batching(batch_rows: int) -> None:
    model = PoolModel(7, 3, seed=6)
    xs = ragged([6, 3, 9], seed=9)
    ig = engine(model, region_of_joint=[0, 0, 1, 1, 1, 2, 2])
    ref = ig.attribute(xs, n_steps=5, method="simpson", tolerance=1e-5, batch_rows=8)
    res = ig.attribute(xs, n_steps=5, method="simpson", tolerance=1e-5, batch_rows=batch_rows)
    assert res.n_steps.tolist() == ref.n_steps.tolist()
    for a, b in zip(res.attributions, ref.attributions, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.region.abs, ref.region.abs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.delta, ref.delta, rtol=1e-8, atol=1e-12)


# ---- batching -----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_rows", [1, 3, 13, 200])
def test_batching_does_not_change_results(batch_rows: int) -> None:
    model = PoolModel(7, 3, seed=4)
    xs = ragged([2, 11, 5, 5, 1], seed=8)
    ig = engine(model, region_of_joint=[0, 0, 1, 1, 1, 2, 2])
    ref = ig.attribute(xs, n_steps=6, method="riemann_middle", batch_rows=6)
    sizes: list[int] = []
    counting = IntegratedGradients(
        lambda x, mask, rows: (sizes.append(x.shape[0]), model(x, mask))[1],
        model=model, region_of_joint=[0, 0, 1, 1, 1, 2, 2],
    )
    res = counting.attribute(xs, n_steps=6, method="riemann_middle", batch_rows=batch_rows)
    assert max(sizes) <= batch_rows  # α = 0 and 1 (off this grid) included
    for a, b in zip(res.attributions, ref.attributions, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(res.delta, ref.delta, rtol=0, atol=1e-12)
    # the per-joint and per-region sums are those of the attributions
    for n, attr in enumerate(res.attributions):
        torch.testing.assert_close(res.joint.abs[n], attr.abs().sum(dim=(0, 2)))
        torch.testing.assert_close(res.joint.signed[n], attr.sum(dim=(0, 2)))
        region = torch.tensor([0, 0, 1, 1, 1, 2, 2])
        expected = torch.zeros(3, dtype=F64).index_add_(0, region, attr.abs().sum(dim=(0, 2)))
        torch.testing.assert_close(res.region.abs[n], expected)
        torch.testing.assert_close(res.total[n], attr.sum())


@pytest.mark.parametrize("seed", range(4))
def test_packed_batches_match_one_sample_per_batch_and_captum(seed: int) -> None:
    """Random ragged shapes: batches packing several samples' whole rules (padded to their
    longest), one sample's steps per batch (no padding), the rows the tuner picks, and
    captum sample by sample all agree."""
    gen = torch.Generator().manual_seed(100 + seed)
    n_samples = int(torch.randint(2, 8, (1,), generator=gen))
    lengths = torch.randint(1, 24, (n_samples,), generator=gen).tolist()
    n_steps = [3, 4, 7, 10][seed]
    method = CAPTUM_METHODS[seed % len(CAPTUM_METHODS)]
    model = PoolModel(5, 2, seed=seed)
    xs = [torch.randn(t, 5, 2, generator=gen, dtype=F64) for t in lengths]
    widths: list[tuple[set[int], int]] = []

    def forward(x, mask, rows):
        if x.requires_grad:
            widths.append((set(rows.tolist()), x.shape[1]))
        return model(x, mask)

    ig = IntegratedGradients(forward, model=model, region_of_joint=[0, 1, 1, 2, 2])
    alone = ig.attribute(xs, n_steps=n_steps, method=method, batch_rows=n_steps)
    # one sample per batch: no padding
    assert all(len(samples) == 1 and lengths[min(samples)] == width for samples, width in widths)
    widths.clear()
    packed = ig.attribute(xs, n_steps=n_steps, method=method, batch_rows=4 * n_steps)
    tuned = ig.attribute(xs, n_steps=n_steps, method=method)
    cig = captum_attr.IntegratedGradients(model)
    for n, x in enumerate(xs):
        expected, delta = cig.attribute(
            x[None], n_steps=n_steps, method=method, return_convergence_delta=True
        )
        for res in (alone, packed, tuned):
            torch.testing.assert_close(res.attributions[n], alone.attributions[n], rtol=1e-10,
                                       atol=1e-13)
            # captum multiplies by float32 step weights: agreement to float32 rounding
            assert max_rel(res.attributions[n], expected[0]) <= 1e-6
            assert float(res.delta[n]) == pytest.approx(float(delta), abs=1e-6)
    for res in (packed, tuned):
        torch.testing.assert_close(res.joint.abs, alone.joint.abs, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(res.region.signed, alone.region.signed, rtol=1e-10, atol=1e-13)
    # packed batches pad only within length buckets: every sample has >= 0.85 of the width
    assert all(lengths[n] >= 0.85 * width for samples, width in widths for n in samples)


def test_rows_tuner_moves_towards_the_faster_size() -> None:
    from nmmfast.attribution.calibration import RowsTuner

    tuner = RowsTuner(start=16, limits=(4, 128), tries=2)
    cost = {4: 3.0, 8: 2.0, 16: 1.5, 32: 1.0, 64: 1.2, 128: 2.0}  # seconds per frame
    seen = []
    while tuner.chosen is None:
        rows = tuner.rows
        seen.append(rows)
        # every size's first batch runs under load (3x slower): the best of two decides
        load = 3.0 if len(seen) % 2 == 0 else 1.0
        tuner.record(rows, cost[rows] * 1000 * load, 1000)
    # warm-up, then 16, 32, 64 twice each; 64 slower than 32: 32 kept
    assert tuner.chosen == 32 and seen == [16, 16, 16, 32, 32, 64, 64]
    tuner.record(32, 100.0, 1)  # settled: later timings change nothing
    assert tuner.rows == 32


def test_rows_name_the_sample_and_batches_pack_samples() -> None:
    seen: list[torch.Tensor] = []
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=F64)

    def forward(x, mask, rows):
        seen.append(rows.clone())
        return (x.sum(dim=(2, 3)) * mask).sum(1) * scale[rows]

    xs = ragged([4, 9, 4], seed=3)
    res = IntegratedGradients(forward).attribute(
        xs, n_steps=2, method="gausslegendre", batch_rows=4
    )
    for n, x in enumerate(xs):
        torch.testing.assert_close(res.attributions[n], x * scale[n])
    grad_batches = [r for r in seen if r.numel() == 4]
    assert any(len(set(r.tolist())) == 2 for r in grad_batches)  # two samples in one pass
    assert res.stats["grad_rows"] == 6 and res.stats["forward_only_rows"] == 6


def test_length_buckets_keep_short_samples_out_of_long_batches() -> None:
    shapes: list[tuple[int, int]] = []

    def forward(x, mask, rows):
        shapes.append((len(set(rows.tolist())), x.shape[1]))
        return x.sum(dim=(1, 2, 3))

    xs = ragged([2, 10, 9, 2], seed=5)
    IntegratedGradients(forward).attribute(
        xs, n_steps=2, batch_rows=100, return_convergence_delta=False
    )
    assert sorted(shapes) == [(2, 2), (2, 10)]  # {10, 9} padded to 10, {2, 2} to 2


def test_eval_mode_and_frozen_parameters_during_the_pass() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4), nn.Linear(4, 1))
    model = model.double().train()
    modes: list[bool] = []

    def forward(x, mask, rows):
        modes.append(model.training or any(p.requires_grad for p in model.parameters()))
        return model(x.mean(dim=(1, 2)))[:, 0]

    xs = ragged([3, 3], channels=3)
    first = IntegratedGradients(forward, model=model).attribute(xs, n_steps=5)
    second = IntegratedGradients(forward, model=model).attribute(xs, n_steps=5)
    assert not any(modes)
    assert model.training and all(p.requires_grad for p in model.parameters())
    torch.testing.assert_close(first.attributions[0], second.attributions[0])
    # without model=: found through the closure, a lambda's closure, a partial, a global name
    wrapped = functools.partial(lambda x, mask, rows, net: net(x.mean(dim=(1, 2)))[:, 0], net=model)
    for func in (forward, lambda x, mask, rows: forward(x, mask, rows), wrapped, _global_forward):
        modes.clear()
        globals()["_GLOBAL_MODEL"] = model
        found = IntegratedGradients(func).modules
        assert len(found) == 1 and found[0] is model
        third = IntegratedGradients(func).attribute(xs, n_steps=5)
        torch.testing.assert_close(third.attributions[0], first.attributions[0])
        assert not any(modes) and model.training


_GLOBAL_MODEL = None


def _global_forward(x, mask, rows):
    return _GLOBAL_MODEL(x.mean(dim=(1, 2)))[:, 0]


def test_calibrate_returns_the_fastest_candidate() -> None:
    calls: list[int] = []

    def forward(x, mask, rows):
        calls.append(x.shape[0])
        time.sleep(0.02 if x.shape[0] == 3 else 0.001)  # 3-row batches are slow
        return x.sum(dim=(1, 2, 3))

    best = IntegratedGradients(forward).calibrate(lcg(1, (4, 7, 3)), candidates=(3, 6), n_steps=6)
    assert best == 6 and 3 in calls and 6 in calls


def test_device_results_match_cpu(device: str) -> None:
    """On CUDA: same numbers as on the CPU, and rows sized from a memory budget."""
    model = PoolModel(7, 3, seed=6)
    xs = ragged([3, 8, 5], seed=12)
    ig = engine(model, region_of_joint=[0, 1, 1, 2, 2, 2, 0])
    ref = ig.attribute(xs, n_steps=7, batch_rows=4)
    model.to(device)
    try:
        res = ig.attribute([x.to(device) for x in xs], n_steps=7, memory_budget=1 << 20)
    finally:
        model.to("cpu")
    for a, b in zip(res.attributions, ref.attributions, strict=True):
        assert a.device.type == device
        torch.testing.assert_close(a.cpu(), b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(res.region.abs, ref.region.abs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(res.delta, ref.delta, rtol=0, atol=1e-10)


# ---- planted truth ------------------------------------------------------------------------------


def test_face_only_model_gets_all_face_share() -> None:
    from nmmfast.skeleton import get_layout

    layout = get_layout("unisign69")
    face = torch.from_numpy(layout.region_mask("face"))
    weight = lcg(11, (69, 3)) * face[:, None]

    def forward(x, mask, rows):
        return torch.tanh((x * weight).sum(dim=(2, 3)) * mask).sum(1)

    xs = [lcg(20 + n, (t, 69, 3)) for n, t in enumerate([6, 3])]
    res = IntegratedGradients(forward, layout=layout).attribute(xs, n_steps=16)
    assert res.region_names == ("hands", "face", "body")
    share = res.region.abs.sum(0) / res.region.abs.sum()
    assert float(share[1]) == pytest.approx(1.0, abs=1e-6)


def test_ignored_confidence_channel_gets_zero() -> None:
    def forward(x, mask, rows):
        return torch.sin(x[..., :2]).sum(dim=(1, 2, 3))

    res = IntegratedGradients(forward).attribute(ragged([5, 2]), n_steps=8)
    for attr in res.attributions:
        assert bool((attr[..., 2] == 0).all()) and bool((attr[..., :2] != 0).any())


# ---- bad inputs ---------------------------------------------------------------------------------


def _sum_forward(x, mask, rows):
    return x.sum(dim=(1, 2, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"inputs": [torch.zeros(3, 7, 3, dtype=F64), torch.zeros(3, 6, 3, dtype=F64)]},
            ValueError,
            r"inputs\[1\]",
        ),
        (
            {"inputs": [torch.zeros(3, 7, 3), torch.tensor([[[float("nan")] * 3] * 7])]},
            ValueError,
            r"inputs\[1\] contains NaN",
        ),
        ({"inputs": [torch.zeros(0, 7, 3)]}, ValueError, r"inputs\[0\] has zero frames"),
        ({"inputs": torch.zeros(7, 3)}, ValueError, "inputs must be"),
        ({"inputs": []}, ValueError, "no samples"),
        ({"method": "romberg"}, ValueError, "method must be one of"),
        ({"n_steps": 1, "method": "riemann_left"}, ValueError, "n_steps must be >= 2"),
        ({"batch_rows": 0}, ValueError, "batch_rows"),
        ({"batch_rows": 4, "internal_batch_size": 8}, ValueError, "same setting"),
        ({"baselines": [torch.zeros(3, 7, 3)]}, ValueError, "baselines has 1 entries"),
        (
            {"baselines": [torch.zeros(3, 7, 3), torch.zeros(2, 7, 3)]},
            ValueError,
            r"baselines\[1\] must match inputs\[1\]",
        ),
        ({"tolerance": 0.0}, ValueError, "tolerance"),
        ({"tolerance": 0.1, "method": "riemann_trapezoid"}, ValueError, "trapezoid"),
        ({"target": [0, 1, 2]}, ValueError, "target must be"),
    ],
)
def test_bad_inputs(kwargs: dict, error: type, match: str) -> None:
    kwargs = dict(kwargs)
    inputs = kwargs.pop("inputs", [torch.zeros(3, 7, 3), torch.ones(4, 7, 3)])
    with pytest.raises(error, match=match):
        IntegratedGradients(_sum_forward).attribute(inputs, **kwargs)


def test_bad_forward_output_is_named() -> None:
    ig = IntegratedGradients(lambda x, mask, rows: x.sum(dim=(2, 3)))
    with pytest.raises(ValueError, match=r"one value per row"):
        ig.attribute([torch.ones(2, 7, 3)], n_steps=2)
    with pytest.raises(ValueError, match="region_of_joint has 5 joints"):
        IntegratedGradients(_sum_forward, region_of_joint=[0] * 5).attribute([torch.ones(2, 7, 3)])


@pytest.mark.parametrize(
    "options",
    [
        {"n_steps": 4},
        {"n_steps": 4, "per_output": True},
        {"n_steps": 5, "method": "simpson", "tolerance": 1e-6, "max_steps": 9},
    ],
)
def test_nonfinite_gradients_name_their_samples(options: dict) -> None:
    # sqrt has an infinite slope at 0: the zero baseline's row and its neighbours blow up
    # for sample 1 only (sample 0 stays away from 0)
    def forward(x, mask, rows):
        values = (x.abs() + (rows == 0).to(x.dtype)[:, None, None, None]).sqrt()
        total = values.sum(dim=(1, 2, 3))
        return torch.stack([total, 2 * total], dim=1) if options.get("per_output") else total

    inputs = [torch.ones(3, 7, 3, dtype=F64), torch.zeros(2, 7, 3, dtype=F64)]
    with pytest.raises(ValueError, match=r"samples \[1\] came out NaN or inf"):
        IntegratedGradients(forward).attribute(inputs, **options)
