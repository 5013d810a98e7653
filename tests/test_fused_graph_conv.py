"""The fused host graph convolution against its plain-PyTorch definition: every compiled variant,
random shapes with vector tails, both dtypes, exact on integer data, threads, errors."""

from __future__ import annotations

import pytest
import torch

from nmmfast.kernels import (
    fused_graph_conv,
    fused_graph_conv_usable,
    kernel_isas,
)
from nmmfast.kernels._reference import graph_conv_reference
from nmmfast.model.stgcn import FoldedGraphConv, GraphConv, part_adjacency

ISAS = kernel_isas()


def _operands(v, c_in, c_out, k, dtype, generator, integer=False):
    """x-independent constants of one block; integer=True draws small integers and halves, so
    every product and sum below 2**24 is exact in float32 and any summation order agrees."""

    def draw(*shape, scale=1.0):
        if integer:
            return torch.randint(-2, 3, shape, generator=generator).to(dtype) * scale
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype) * scale

    return draw(k * c_out, c_in), draw(v, v * k, scale=0.5), draw(v, c_out, scale=0.5), draw


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(6))
def test_fused_matches_the_reference_on_random_shapes(isa, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    v, c_in, c_out = (int(torch.randint(1, hi, (1,), generator=generator)) for hi in (26, 70, 70))
    k = 1 + seed % 3
    n, t = 1 + seed % 2, int(torch.randint(1, 9, (1,), generator=generator))
    weight, adjacency, bias, draw = _operands(v, c_in, c_out, k, dtype, generator)
    x = draw(n, t, v, c_in).requires_grad_(True)
    grad = draw(n, t, v, c_out)
    ours = fused_graph_conv(x, weight, adjacency, bias, isa=isa)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    # float64 reference; its ReLU mask is ours, so a pre-activation within float32 rounding of
    # zero cannot flip one gradient term
    xd = x.detach().double().requires_grad_(True)
    n_t = n * t
    pre = torch.baddbmm(
        bias.double().expand(n_t, -1, -1), adjacency.double().expand(n_t, -1, -1),
        torch.nn.functional.linear(xd, weight.double()).reshape(n_t, v * k, c_out),
    ).view(n, t, v, c_out)
    mask = (ours.detach() > 0).double()
    (expected_grad,) = torch.autograd.grad(pre, xd, grad.double() * mask)
    expected = pre.detach().clamp_min(0)
    rel = 1e-12 if dtype == torch.float64 else 1e-5
    for got, want in ((ours, expected), (ours_grad, expected_grad)):
        atol = rel * (float(want.abs().max()) + 1e-30)
        torch.testing.assert_close(got.detach().double(), want, rtol=0, atol=atol)
    assert ours.dtype == dtype and ours_grad.dtype == dtype


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(21, 32, 32, 2), (9, 16, 32, 2), (18, 32, 16, 3), (5, 3, 1, 1)])
def test_fused_is_exact_on_integer_data(isa, shape):
    """Integer data: every order of summation gives the same float32, so the kernel must agree
    with PyTorch bit for bit, forward and backward."""
    v, c_in, c_out, k = shape
    generator = torch.Generator().manual_seed(sum(shape))
    weight, adjacency, bias, draw = _operands(v, c_in, c_out, k, torch.float32, generator, True)
    x = draw(3, 5, v, c_in).requires_grad_(True)
    grad = draw(3, 5, v, c_out)
    ours = fused_graph_conv(x, weight, adjacency, bias, isa=isa)
    expected = graph_conv_reference(x, weight, adjacency, bias)
    assert torch.equal(ours, expected)
    assert (expected > 0).any() and (expected == 0).any()  # both sides of the ReLU exercised
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    assert torch.equal(ours_grad, expected_grad)


def test_fused_gradcheck():
    generator = torch.Generator().manual_seed(7)
    weight, adjacency, bias, draw = _operands(4, 3, 5, 2, torch.float64, generator)
    x = draw(2, 3, 4, 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fused_graph_conv(x, weight, adjacency, bias), (x,))


def test_fused_threads_split_frames_without_changing_bits():
    generator = torch.Generator().manual_seed(1)
    weight, adjacency, bias, draw = _operands(21, 32, 32, 2, torch.float32, generator)
    x = draw(4, 64, 21, 32).requires_grad_(True)
    grad = draw(4, 64, 21, 32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            out = fused_graph_conv(x, weight, adjacency, bias)
            results.append((out, *torch.autograd.grad(out, x, grad)))
    finally:
        torch.set_num_threads(threads)
    for one, many in zip(*results, strict=True):
        assert torch.equal(one, many)


def test_fused_takes_strided_inputs_and_empty_batches():
    generator = torch.Generator().manual_seed(2)
    weight, adjacency, bias, draw = _operands(6, 8, 16, 2, torch.float64, generator)
    x = draw(3, 8, 6, 5).permute(0, 3, 2, 1).requires_grad_(True)  # [3, 5, 6, 8], not contiguous
    assert not x.is_contiguous()
    expected = graph_conv_reference(x, weight, adjacency, bias)
    torch.testing.assert_close(fused_graph_conv(x, weight, adjacency, bias), expected)
    empty = torch.zeros(0, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    out = fused_graph_conv(empty, weight, adjacency, bias)
    assert out.shape == (0, 4, 6, 16)
    (grad,) = torch.autograd.grad(out.sum(), empty)
    assert grad.shape == empty.shape


def test_fused_rejects_what_it_cannot_run():
    weight, adjacency, bias = torch.zeros(8, 3), torch.zeros(5, 10), torch.zeros(5, 4)
    x = torch.zeros(1, 2, 5, 3)
    with pytest.raises(ValueError, match="weight must be"):
        fused_graph_conv(x, torch.zeros(8, 4), adjacency, bias)
    with pytest.raises(ValueError, match="adjacency columns"):
        fused_graph_conv(x, weight, torch.zeros(5, 15), bias)
    with pytest.raises(ValueError, match="bias must be"):
        fused_graph_conv(x, weight, adjacency, torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"\[N, T, V, C_in\]"):
        fused_graph_conv(x[0], weight, adjacency, bias)
    with pytest.raises(ValueError, match="isa 'sse9'"):
        fused_graph_conv(x, weight, adjacency, bias, isa="sse9")
    with pytest.raises(ValueError, match="bfloat16"):
        fused_graph_conv(x.bfloat16(), weight, adjacency, bias)
    assert not fused_graph_conv_usable(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_graph_conv_usable(x)
    assert ISAS[-1] == "generic"


def _gcn(c_in, c_out, seed):
    generator = torch.Generator().manual_seed(seed)
    adjacency = part_adjacency(5, [(0, 1), (1, 2), (2, 3), (3, 4)])
    gcn = GraphConv(c_in, c_out, adjacency + 0.1 * torch.rand(2, 5, 5, generator=generator))
    with torch.no_grad():
        for tensor in (gcn.conv.weight, gcn.conv.bias, gcn.bn.bias, gcn.bn.running_mean):
            tensor.normal_(generator=generator)
        gcn.bn.running_var.uniform_(0.5, 2.0, generator=generator)
    return gcn.eval()


def test_folded_block_runs_fused_on_the_host_and_plainly_under_autocast():
    for c_in, c_out, seed in ((8, 16, 0), (64, 128, 1)):
        gcn = _gcn(c_in, c_out, seed)
        block = FoldedGraphConv(gcn)
        x = torch.randn(2, 3, 5, c_in, requires_grad=True)
        out = block(x)
        assert type(out.grad_fn).__name__ == "ViewBackward0"
        assert "_FusedGraphConvBackward" in type(out.grad_fn.next_functions[0][0]).__name__
        scale = float(out.detach().abs().max())
        torch.testing.assert_close(out, gcn(x), rtol=1e-5, atol=1e-5 * scale)
    x = torch.randn(2, 3, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = FoldedGraphConv(_gcn(8, 16, 0))(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), _gcn(8, 16, 0)(x), rtol=0.05, atol=0.05)


def _with_residual(x, weight, adjacency, bias, residual):
    gcn = graph_conv_reference(x, weight, adjacency, bias)
    skip = x if residual == "identity" else torch.nn.functional.linear(x, *residual)
    return (gcn + skip).relu()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kind", ["identity", "linear"])
@pytest.mark.parametrize("integer", [False, True])
def test_fused_spatial_block_tail_matches_the_reference(isa, kind, integer):
    """The residual and last ReLU of a spatial block inside the kernel: float64 to 1e-12 on
    random data, float32 bit for bit on integer data, forward and input gradient."""
    dtype = torch.float32 if integer else torch.float64
    generator = torch.Generator().manual_seed(11)
    v, c_in, c_out, k = (21, 32, 32, 2) if kind == "identity" else (9, 16, 33, 2)
    weight, adjacency, bias, draw = _operands(v, c_in, c_out, k, dtype, generator, integer)
    residual = "identity" if kind == "identity" else (draw(c_out, c_in), draw(c_out))
    x = draw(2, 6, v, c_in).requires_grad_(True)
    grad = draw(2, 6, v, c_out)
    ours = fused_graph_conv(x, weight, adjacency, bias, residual=residual, isa=isa)
    expected = _with_residual(x, weight, adjacency, bias, residual)
    assert (expected > 0).any() and (expected == 0).any()
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    if integer:
        assert torch.equal(ours, expected) and torch.equal(ours_grad, expected_grad)
    else:
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours_grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_fused_residual_is_checked():
    weight, adjacency, bias = torch.zeros(8, 3), torch.zeros(5, 10), torch.zeros(5, 4)
    x = torch.zeros(1, 2, 5, 3)
    with pytest.raises(ValueError, match="C_in == C"):
        fused_graph_conv(x, weight, adjacency, bias, residual="identity")
    with pytest.raises(ValueError, match="the residual must be weight"):
        fused_graph_conv(x, weight, adjacency, bias, residual=(torch.zeros(4, 4), torch.zeros(4)))
