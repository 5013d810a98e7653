"""Chunked target log-probabilities with a recomputing backward."""

from __future__ import annotations

import pytest
import torch

from nmmfast.model.log_probs import target_log_probs

F64 = torch.float64


def _reference(hidden, weight, bias, targets):
    logits = torch.nn.functional.linear(hidden, weight, bias)
    return torch.log_softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
@pytest.mark.parametrize("with_bias", [False, True])
def test_values_and_gradients_match_log_softmax(chunk: int, with_bias: bool) -> None:
    gen = torch.Generator().manual_seed(chunk)
    n, d, v = 7, 5, 11
    hidden = torch.randn(n, d, dtype=F64, generator=gen, requires_grad=True)
    weight = torch.randn(v, d, dtype=F64, generator=gen, requires_grad=True)
    bias = torch.randn(v, dtype=F64, generator=gen, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,), generator=gen)
    inputs = (hidden, weight) + ((bias,) if with_bias else ())
    ours = target_log_probs(hidden, weight, bias, targets, chunk)
    ref = _reference(hidden, weight, bias, targets)
    assert ours.dtype == F64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    seed = torch.randn(n, dtype=F64, generator=gen)
    got = torch.autograd.grad(ours, inputs, seed)
    want = torch.autograd.grad(ref, inputs, seed)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda *xs: target_log_probs(xs[0], xs[1], xs[2] if with_bias else None, targets, chunk),
        inputs,
    )


def test_float32_and_frozen_weights_and_bad_shapes() -> None:
    hidden = torch.randn(4, 3, requires_grad=True)
    weight = torch.randn(6, 3)  # frozen, as during attribution
    targets = torch.tensor([0, 5, 2, 2])
    ours = target_log_probs(hidden, weight, None, targets, chunk=2)
    assert ours.dtype == torch.float32
    (grad,) = torch.autograd.grad(ours.sum(), hidden)
    (want,) = torch.autograd.grad(_reference(hidden, weight, None, targets).sum(), hidden)
    torch.testing.assert_close(grad, want)
    with pytest.raises(ValueError, match="hidden must be"):
        target_log_probs(hidden[0], weight, None, targets)
    with pytest.raises(ValueError, match="chunk"):
        target_log_probs(hidden, weight, None, targets, chunk=0)
