"""ig_scale / ig_reduce against the plain-PyTorch reference over random ragged batches."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
import torch

from nmmfast.kernels import IgReduceResult, ig_reduce, ig_scale
from nmmfast.kernels._reference import ig_reduce_reference, ig_scale_reference
from nmmfast.testing import assert_within_plain_error, grad_dtypes, out_dtypes, pose_dtypes

BASELINES = ["zero", "shared", "packed"]
SHAPES = list(itertools.product([1, 69, 87], [2, 3], [1, 7, 32, 50]))  # J, C, m


def make_batch(
    seed: int,
    joints: int,
    channels: int,
    steps: int,
    *,
    baseline: str,
    per_sample: bool,
    dtype=torch.float32,
    device="cpu",
    max_len: int = 300,
    max_samples: int = 9,
    budget: int = 1_500_000,
):
    """Random ragged batch; sizes drawn so the step batch stays under `budget` elements."""
    gen = torch.Generator().manual_seed(seed)
    n_samples = int(torch.randint(1, max_samples + 1, (1,), generator=gen))
    cap = max(1, min(max_len, budget // max(1, n_samples * steps * joints * channels)))
    lengths = torch.randint(1, cap + 1, (n_samples,), generator=gen)
    lengths[0] = 1  # always include a one-frame sample
    if n_samples > 1:
        lengths[-1] = cap
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    total = int(offsets[-1])
    packed = torch.randn(total, joints, channels, generator=gen, dtype=torch.float64)
    shape = (n_samples, steps) if per_sample else (steps,)
    alphas = torch.rand(shape, generator=gen, dtype=torch.float64)
    base = {
        "zero": None,
        "shared": torch.randn(joints, channels, generator=gen, dtype=torch.float64),
        "packed": torch.randn(total, joints, channels, generator=gen, dtype=torch.float64),
    }[baseline]
    to = lambda t: None if t is None else t.to(device, dtype)  # noqa: E731
    return to(packed), offsets, to(alphas), to(base)


def abs_scales(truth: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor | None]:
    """Per output, the magnitude its rounding error is relative to (Σ|terms| for signed sums)."""
    attributions, joint_abs, _, region_abs, _, _ = truth
    return {
        "attributions": None,
        "joint_abs": None,
        "joint_signed": joint_abs,
        "region_abs": None,
        "region_signed": region_abs,
        "total": region_abs.sum(1),
    }


def stable_seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode()) % 10_000


def case_id(seed: int) -> dict:
    """Rotate dtypes and alpha kinds across the shape grid so every combination is covered."""
    return {
        "out_dtype": out_dtypes[seed % len(out_dtypes)],
        "grad_dtype": grad_dtypes[(seed // 2) % len(grad_dtypes)],
        "per_sample": bool(seed % 3 == 0),
    }


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize(("joints", "channels", "steps"), SHAPES)
def test_ig_scale_matches_reference(device, joints, channels, steps, baseline) -> None:
    seed = stable_seed(joints, channels, steps, baseline)
    opts = case_id(seed)
    packed, offsets, alphas, base = make_batch(
        seed,
        joints,
        channels,
        steps,
        baseline=baseline,
        per_sample=opts["per_sample"],
        device=device,
    )
    scaled, mask = ig_scale(packed, offsets, alphas, base, out_dtype=opts["out_dtype"])
    plain, plain_mask = ig_scale_reference(
        packed, offsets, alphas, base, out_dtype=opts["out_dtype"]
    )
    truth, _ = ig_scale_reference(
        packed.double(), offsets, alphas.double(), None if base is None else base.double()
    )
    assert scaled.dtype == opts["out_dtype"] and scaled.device.type == device
    assert torch.equal(mask.cpu(), plain_mask.cpu())
    assert_within_plain_error(scaled, plain, truth, name="scaled")


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize(("joints", "channels", "steps"), SHAPES)
def test_ig_reduce_matches_reference(device, joints, channels, steps, baseline) -> None:
    seed = stable_seed(joints, channels, steps, baseline, "reduce")
    opts = case_id(seed)
    packed, offsets, weights, base = make_batch(
        seed,
        joints,
        channels,
        steps,
        baseline=baseline,
        per_sample=opts["per_sample"],
        device=device,
    )
    n_samples = offsets.numel() - 1
    t_max = int(offsets.diff().max()) + seed % 3  # extra padded frames must be ignored
    gen = torch.Generator().manual_seed(seed + 1)
    grads = torch.randn(n_samples * steps, t_max, joints, channels, generator=gen)
    grads = grads.to(device, opts["grad_dtype"])
    regions = torch.randint(0, 3, (joints,), generator=gen)
    result = ig_reduce(grads, packed, offsets, weights, base, region_of_joint=regions, n_regions=3)
    plain = ig_reduce_reference(
        grads, packed, offsets, weights, base, region_of_joint=regions, n_regions=3
    )
    truth = ig_reduce_reference(
        grads.double(),
        packed.double(),
        offsets,
        weights.double(),
        None if base is None else base.double(),
        region_of_joint=regions,
        n_regions=3,
    )
    scales = abs_scales(truth)
    for name, got, p, t in zip(result._fields, result, plain, truth, strict=True):
        assert got.dtype == packed.dtype and got.device.type == device, name
        # Sequential accumulation over frames vs PyTorch's pairwise sums: allow 4x the plain error.
        assert_within_plain_error(got, p, t, factor=4.0, scale=scales[name], name=name)


@pytest.mark.parametrize("pose_dtype", pose_dtypes)
@pytest.mark.parametrize("out_dtype", out_dtypes)
def test_ig_scale_dtypes(device, pose_dtype, out_dtype) -> None:
    packed, offsets, alphas, base = make_batch(
        7, 69, 3, 7, baseline="shared", per_sample=True, dtype=pose_dtype, device=device
    )
    scaled, _ = ig_scale(packed, offsets, alphas, base, out_dtype=out_dtype)
    plain, _ = ig_scale_reference(packed, offsets, alphas, base, out_dtype=out_dtype)
    truth, _ = ig_scale_reference(packed.double(), offsets, alphas.double(), base.double())
    assert scaled.dtype == out_dtype
    assert_within_plain_error(scaled, plain, truth, name=f"{pose_dtype}->{out_dtype}")


@pytest.mark.parametrize("pose_dtype", pose_dtypes)
@pytest.mark.parametrize("grad_dtype", grad_dtypes)
def test_ig_reduce_dtypes(device, pose_dtype, grad_dtype) -> None:
    packed, offsets, weights, base = make_batch(
        11, 87, 2, 32, baseline="packed", per_sample=False, dtype=pose_dtype, device=device
    )
    t_max = int(offsets.diff().max())
    grads = torch.randn(
        (offsets.numel() - 1) * 32, t_max, 87, 2, generator=torch.Generator().manual_seed(3)
    ).to(device, grad_dtype)
    regions = torch.arange(87) % 3
    got = ig_reduce(grads, packed, offsets, weights, base, region_of_joint=regions)
    plain = ig_reduce_reference(grads, packed, offsets, weights, base, region_of_joint=regions)
    truth = ig_reduce_reference(
        grads.double(),
        packed.double(),
        offsets,
        weights.double(),
        base.double(),
        region_of_joint=regions,
    )
    scales = abs_scales(truth)
    for name, g, p, t in zip(got._fields, got, plain, truth, strict=True):
        assert_within_plain_error(g, p, t, factor=4.0, scale=scales[name], name=name)


def test_half_conversion_matches_torch_bit_for_bit(device) -> None:
    # Values around every rounding hazard: ties, subnormals, overflow, signed zeros, inf.
    special = torch.tensor(
        [
            0.0,
            -0.0,
            65504.0,
            65519.0,
            65520.0,
            1e-8,
            -6e-8,
            2.0**-24,
            3 * 2.0**-25,
            1 + 2.0**-11,
            1 + 3 * 2.0**-11,
            float("inf"),
            -float("inf"),
            1e30,
        ]
    )
    values = torch.cat([special, torch.randn(5000) * torch.logspace(-9, 5, 5000)])
    packed = values.view(-1, 1, 1).to(device)
    offsets = torch.tensor([0, values.numel()])
    ones = torch.ones(1, device=device)
    for dtype in (torch.float16, torch.bfloat16):
        scaled, _ = ig_scale(packed, offsets, ones, out_dtype=dtype, check_finite=False)
        expected = values.to(dtype)
        got = scaled.view(-1).cpu()
        assert torch.equal(got.view(torch.int16), expected.view(torch.int16)), dtype


def test_numpy_in_numpy_out_and_threads_agree() -> None:
    packed, offsets, alphas, base = make_batch(5, 69, 3, 32, baseline="packed", per_sample=True)
    np_scaled, np_mask = ig_scale(packed.numpy(), offsets.numpy(), alphas.numpy(), base.numpy())
    assert isinstance(np_scaled, np.ndarray) and isinstance(np_mask, np.ndarray)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = ig_scale(packed, offsets, alphas, base)
        grads = torch.randn(one.shape)
        reduced_one = ig_reduce(
            grads, packed, offsets, alphas, base, region_of_joint=torch.arange(69) % 3
        )
        torch.set_num_threads(2)
        two, _ = ig_scale(packed, offsets, alphas, base)
        reduced_two = ig_reduce(
            grads, packed, offsets, alphas, base, region_of_joint=torch.arange(69) % 3
        )
    finally:
        torch.set_num_threads(previous)
    assert np.array_equal(np_scaled, one.numpy()) and torch.equal(one, two)
    for a, b in zip(reduced_one, reduced_two, strict=True):
        assert torch.equal(a, b), "results must not depend on the thread count"
    np_result = ig_reduce(
        grads.numpy(),
        packed.numpy(),
        offsets.numpy(),
        alphas.numpy(),
        base.numpy(),
        region_of_joint=(np.arange(69) % 3),
    )
    assert all(isinstance(a, np.ndarray) for a in np_result)
    assert np.array_equal(np_result.total, reduced_one.total.numpy())


def test_padding_repeats_last_frame_and_mask(device) -> None:
    packed = torch.arange(2 * 3 * 2 + 0.0).view(6, 1, 2)[:5].to(device)  # lengths 2 and 3
    offsets = torch.tensor([0, 2, 5])
    scaled, mask = ig_scale(packed, offsets, torch.tensor([1.0, 0.5], device=device), t_max=4)
    assert scaled.shape == (4, 4, 1, 2)
    assert torch.equal(scaled[0, 2], packed[1]) and torch.equal(scaled[0, 3], packed[1])
    assert torch.equal(scaled[3, 3], 0.5 * packed[4])
    assert mask.cpu().tolist() == [[True, True, False, False]] * 2 + [[True, True, True, False]] * 2


def test_hand_computed_reduce(device) -> None:
    # Two samples (lengths 1 and 2), J=2, C=1, m=2 with weights (0.25, 0.75), baseline 1.
    packed = torch.tensor([[[3.0], [1.0]], [[2.0], [0.0]], [[-1.0], [5.0]]], device=device)
    offsets = torch.tensor([0, 1, 3])
    grads = torch.zeros(4, 2, 2, 1, device=device)
    grads[0, 0] = torch.tensor([[4.0], [8.0]])
    grads[1, 0] = torch.tensor([[0.0], [4.0]])
    grads[2:, :, :, 0] = 2.0
    grads[1, 1] = 1000.0  # padding frame of sample 0: must be ignored
    result = ig_reduce(
        grads,
        packed,
        offsets,
        torch.tensor([0.25, 0.75], device=device),
        torch.ones(2, 1, device=device),
        region_of_joint=torch.tensor([1, 0]),
    )
    # sample 0: weighted grads (1, 5); x - b = (2, 0) -> attributions (2, 0)
    # sample 1: weighted grads 2 everywhere; x - b = (1, -1), (-2, 4) -> (2, -2), (-4, 8)
    expected = torch.tensor([[[2.0], [0.0]], [[2.0], [-2.0]], [[-4.0], [8.0]]])
    assert torch.equal(result.attributions.cpu(), expected)
    assert result.joint_abs.cpu().tolist() == [[2.0, 0.0], [6.0, 10.0]]
    assert result.joint_signed.cpu().tolist() == [[2.0, 0.0], [-2.0, 6.0]]
    assert result.region_abs.cpu().tolist() == [[0.0, 2.0], [10.0, 6.0]]
    assert result.region_signed.cpu().tolist() == [[0.0, 2.0], [6.0, -2.0]]
    assert result.total.cpu().tolist() == [2.0, 4.0]


def test_out_buffers_and_noncontiguous_inputs(device) -> None:
    packed, offsets, alphas, _ = make_batch(
        9, 69, 3, 7, baseline="zero", per_sample=False, device=device
    )
    transposed = packed.transpose(1, 2).contiguous().transpose(1, 2)  # same values, non-contiguous
    assert not transposed.is_contiguous()
    t_max = int(offsets.diff().max())
    rows = (offsets.numel() - 1) * 7
    out = (
        torch.empty(rows, t_max, 69, 3, device=device),
        torch.empty(rows, t_max, dtype=torch.bool, device=device),
    )
    scaled, mask = ig_scale(transposed, offsets, alphas, out=out)
    assert scaled.data_ptr() == out[0].data_ptr() and mask.data_ptr() == out[1].data_ptr()
    expected, _ = ig_scale_reference(packed, offsets, alphas)
    assert torch.allclose(scaled, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="out\\[0\\]"):
        ig_scale(packed, offsets, alphas, out=(out[0][:, :-1], out[1]))


def test_reduce_out_buffers_are_overwritten_and_reused(device) -> None:
    packed, offsets, alphas, base = make_batch(
        10, 69, 3, 7, baseline="packed", per_sample=True, device=device
    )
    regions = torch.arange(69) % 3
    t_max = int(offsets.diff().max())
    grads = torch.randn((offsets.numel() - 1) * 7, t_max, 69, 3, device=device)
    fresh = ig_reduce(grads, packed, offsets, alphas, base, region_of_joint=regions)
    # garbage in the buffers: the kernel overwrites, never accumulates
    out = IgReduceResult(*(torch.full_like(t, 7.0) for t in fresh))
    for _ in range(2):
        got = ig_reduce(grads, packed, offsets, alphas, base, region_of_joint=regions, out=out)
        for name, g, o, f in zip(got._fields, got, out, fresh, strict=True):
            assert g.data_ptr() == o.data_ptr(), name
            assert torch.equal(g, f), name
    with pytest.raises(ValueError, match="out.total"):
        bad = out._replace(total=out.total[:-1] if out.total.numel() > 1 else out.total[:0])
        ig_reduce(grads, packed, offsets, alphas, base, region_of_joint=regions, out=bad)
    with pytest.raises(ValueError, match="out.attributions must be contiguous"):
        wide = torch.empty(*out.attributions.shape[:2], 6, device=device)[..., ::2]
        ig_reduce(grads, packed, offsets, alphas, base, region_of_joint=regions,
                  out=out._replace(attributions=wide))


def test_odd_lengths_97_and_1025(device) -> None:
    offsets = torch.tensor([0, 97, 97 + 1025])
    packed = torch.randn(97 + 1025, 69, 3, device=device)
    alphas = torch.rand(2, 3, device=device)
    scaled, _ = ig_scale(packed, offsets, alphas)
    plain, _ = ig_scale_reference(packed, offsets, alphas)
    assert torch.allclose(scaled, plain, rtol=0, atol=1e-6)
    grads = torch.randn_like(scaled)
    got = ig_reduce(grads, packed, offsets, alphas, region_of_joint=torch.arange(69) % 3)
    want = ig_reduce_reference(grads, packed, offsets, alphas, region_of_joint=torch.arange(69) % 3)
    for name, g, w in zip(got._fields, got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-3), name


def test_empty_batch() -> None:
    packed = torch.zeros(0, 69, 3)
    offsets = torch.zeros(1, dtype=torch.int64)
    scaled, mask = ig_scale(packed, offsets, torch.rand(5))
    assert scaled.shape == (0, 0, 69, 3) and mask.shape == (0, 0)
    result = ig_reduce(
        torch.zeros(0, 0, 69, 3),
        packed,
        offsets,
        torch.rand(5),
        region_of_joint=torch.arange(69) % 3,
    )
    assert result.attributions.shape == (0, 69, 3) and result.joint_abs.shape == (0, 69)
    assert result.region_abs.shape == (0, 3) and result.total.shape == (0,)


def _valid():
    packed = torch.randn(5, 4, 3)
    return packed, torch.tensor([0, 2, 5]), torch.rand(3)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, o, a: (p[0], o, a), "packed must be \\[total_frames, J, C\\]"),
        (lambda p, o, a: (p.to(torch.int32), o, a), "packed must be float32 or float64"),
        (
            lambda p, o, a: (p, torch.tensor([0, 3, 2, 5]), a),
            "offsets .*sample 1 a negative-length",
        ),
        (lambda p, o, a: (p, torch.tensor([0, 2, 2, 5]), a), "offsets .*sample 1 a zero-length"),
        (lambda p, o, a: (p, torch.tensor([1, 2, 5]), a), "offsets\\[0\\] must be 0"),
        (lambda p, o, a: (p, torch.tensor([0, 2, 4]), a), "offsets\\[-1\\] = 4 but packed holds 5"),
        (lambda p, o, a: (p, o.float(), a), "offsets must be an integer vector"),
        (lambda p, o, a: (p, o, torch.rand(3, 3)), "alphas is \\[N, m\\] with N=3"),
        (lambda p, o, a: (p, o, torch.rand(2, 2, 2)), "alphas must be \\[m\\] or \\[N, m\\]"),
        (lambda p, o, a: (p, o, torch.rand(0)), "alphas needs at least one step point"),
        (
            lambda p, o, a: (p.index_put_((torch.tensor([3]),), torch.tensor(float("nan"))), o, a),
            "packed contains NaN",
        ),
        (
            lambda p, o, a: (p, o, torch.tensor([0.5, float("inf"), 0.1])),
            "alphas contains NaN or inf",
        ),
        (lambda p, o, a: ("poses", o, a), "packed must be a NumPy array or a torch tensor"),
    ],
)
def test_ig_scale_rejects_bad_input(mutate, message) -> None:
    packed, offsets, alphas = mutate(*_valid())
    with pytest.raises((ValueError, TypeError), match=message):
        ig_scale(packed, offsets, alphas)


def test_ig_scale_rejects_bad_baseline_and_options() -> None:
    packed, offsets, alphas = _valid()
    with pytest.raises(ValueError, match="baseline must be None, \\[J, C\\]"):
        ig_scale(packed, offsets, alphas, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="baseline contains NaN"):
        ig_scale(packed, offsets, alphas, torch.full((4, 3), float("nan")))
    with pytest.raises(
        ValueError, match="t_max=2 is shorter than the longest sample \\(3 frames\\)"
    ):
        ig_scale(packed, offsets, alphas, t_max=2)
    with pytest.raises(ValueError, match="out_dtype must be"):
        ig_scale(packed, offsets, alphas, out_dtype="int8")
    with pytest.raises(ValueError, match="bfloat16 needs torch inputs"):
        ig_scale(packed.numpy(), offsets.numpy(), alphas.numpy(), out_dtype="bfloat16")


def test_ig_reduce_rejects_bad_input() -> None:
    packed, offsets, weights = _valid()
    grads = torch.randn(6, 3, 4, 3)
    regions = torch.tensor([0, 0, 1, 2])
    ok = dict(region_of_joint=regions)
    with pytest.raises(ValueError, match="grads must be \\[N\\*m, t_max, J, C\\]"):
        ig_reduce(grads[0], packed, offsets, weights, **ok)
    with pytest.raises(ValueError, match="grads has J, C = \\(4, 2\\)"):
        ig_reduce(grads[..., :2], packed, offsets, weights, **ok)
    with pytest.raises(ValueError, match="grads has 5 rows but N \\* m = 2 \\* 3 = 6"):
        ig_reduce(grads[:5], packed, offsets, weights, **ok)
    with pytest.raises(ValueError, match="grads has t_max=2 < the longest sample"):
        ig_reduce(grads[:, :2], packed, offsets, weights, **ok)
    with pytest.raises(ValueError, match="region_of_joint must be an integer vector of length J=4"):
        ig_reduce(grads, packed, offsets, weights, region_of_joint=regions[:3])
    with pytest.raises(ValueError, match="negative region"):
        ig_reduce(grads, packed, offsets, weights, region_of_joint=regions - 1)
    with pytest.raises(ValueError, match="uses region 2 but n_regions=2"):
        ig_reduce(grads, packed, offsets, weights, region_of_joint=regions, n_regions=2)
    bad = grads.clone()
    bad[4, 1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="grads contains NaN or inf"):
        ig_reduce(bad, packed, offsets, weights, **ok)
    with pytest.raises(ValueError, match="weights contains NaN or inf"):
        ig_reduce(grads, packed, offsets, torch.tensor([1.0, float("nan"), 0.0]), **ok)
    # a caller's flag: set by a bad call, left alone by good ones, checked once by the caller
    flag = torch.zeros(1, dtype=torch.int32)
    ig_reduce(grads, packed, offsets, weights, check_finite=False, nonfinite=flag, **ok)
    assert int(flag) == 0
    ig_reduce(bad, packed, offsets, weights, check_finite=False, nonfinite=flag, **ok)
    ig_reduce(grads, packed, offsets, weights, check_finite=False, nonfinite=flag, **ok)
    assert int(flag) == 1
    with pytest.raises(ValueError, match="nonfinite must be an int32 tensor of one element"):
        ig_reduce(grads, packed, offsets, weights, nonfinite=torch.zeros(1), **ok)
