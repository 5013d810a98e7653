"""log p(target) of many decoder positions through a vocabulary projection, in chunks.

For a vocabulary of V words, `log_softmax(h Wᵀ + b)[y]` over N positions would hold an [N, V]
tensor for the backward pass (mT5: V = 250,112, so 1 GB per 1,000 positions in float32).
`target_log_probs` keeps only [N] values: each chunk's logits live during its own forward and
are computed again in the backward, where the gradient of `logit_y − logsumexp(logits)` with
respect to the logits is `onehot(y) − softmax(logits)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["target_log_probs"]


def target_log_probs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk: int = 4096,
) -> torch.Tensor:
    """log softmax(hidden · weightᵀ + bias)[targets], [N], without keeping any [N, V] tensor.

    hidden [N, D]; weight [V, D]; bias [V] or None; targets [N] int64. Computed in float32, or
    float64 when hidden is float64; differentiable in hidden, weight and bias.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"target_log_probs: hidden must be [N, D] and targets [N], got "
            f"{tuple(hidden.shape)} and {tuple(targets.shape)}"
        )
    if chunk < 1:
        raise ValueError(f"target_log_probs: chunk must be >= 1, got {chunk}")
    return _TargetLogProbs.apply(hidden, weight, bias, targets, chunk)


def _dtype(hidden: torch.Tensor) -> torch.dtype:
    return torch.float64 if hidden.dtype == torch.float64 else torch.float32


def _logits(hidden, weight, bias, dtype):
    return F.linear(hidden, weight, bias).to(dtype)


class _TargetLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):
        dtype = _dtype(hidden)
        out = torch.empty(hidden.shape[0], dtype=dtype, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            logits = _logits(hidden[start : start + chunk], weight, bias, dtype)
            target = logits.gather(1, targets[start : start + chunk, None])[:, 0]
            out[start : start + chunk] = target - torch.logsumexp(logits, dim=1)
        ctx.save_for_backward(hidden, weight, bias, targets)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets = ctx.saved_tensors
        want_hidden, want_weight, want_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight) if want_weight else None
        grad_bias = torch.zeros_like(bias) if want_bias else None
        dtype = _dtype(hidden)
        for start in range(0, hidden.shape[0], ctx.chunk):
            rows = hidden[start : start + ctx.chunk]
            logits = _logits(rows, weight, bias, dtype)
            # d(logit_y − logsumexp)/d logits = onehot(y) − softmax, times the incoming gradient
            grad_logits = torch.softmax(logits, dim=1).neg_()
            grad_logits.scatter_add_(
                1,
                targets[start : start + ctx.chunk, None],
                torch.ones(rows.shape[0], 1, dtype=dtype, device=rows.device),
            )
            grad_logits.mul_(grad_out[start : start + ctx.chunk, None].to(dtype))
            grad_logits = grad_logits.to(weight.dtype)
            if want_hidden:
                grad_hidden[start : start + ctx.chunk] = grad_logits @ weight
            if want_weight:
                grad_weight += grad_logits.t() @ rows
            if want_bias:
                grad_bias += grad_logits.sum(0)
        return grad_hidden, grad_weight, grad_bias, None, None
