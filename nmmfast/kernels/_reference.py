"""Plain-PyTorch twins of the compiled kernels (`ig_scale`, `ig_reduce`, `graph_conv`): the oracle
the tests compare against, the straightforward formulation the benchmarks measure, and the path the
model takes where the fused kernel does not apply (`graph_conv_reference` on GPUs and under
autocast). Written for clarity; the IG twins go one sample at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sample_baseline(
    baseline: torch.Tensor | None, x: torch.Tensor, start: int, end: int
) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if baseline.dim() == 2:
        return baseline.expand_as(x)
    return baseline[start:end]


def ig_scale_reference(
    packed: torch.Tensor,
    offsets: torch.Tensor,
    alphas: torch.Tensor,
    baseline: torch.Tensor | None = None,
    *,
    t_max: int | None = None,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference `nmmfast.kernels.ig_scale` (same arguments, torch tensors only)."""
    bounds = offsets.tolist()
    n_samples = len(bounds) - 1
    lengths = [bounds[n + 1] - bounds[n] for n in range(n_samples)]
    t_max = max(lengths, default=0) if t_max is None else t_max
    rows, masks = [], []
    for n in range(n_samples):
        start, end = bounds[n], bounds[n + 1]
        x = packed[start:end]
        b = _sample_baseline(baseline, x, start, end)
        a = alphas[n] if alphas.dim() == 2 else alphas
        scaled = b + a.to(x.dtype).view(-1, 1, 1, 1) * (x - b)  # [m, len, J, C]
        padding = scaled[:, -1:].expand(-1, t_max - (end - start), -1, -1)
        rows.append(torch.cat([scaled, padding], dim=1))
        mask = torch.arange(t_max) < (end - start)
        masks.append(mask.expand(a.shape[-1], -1))
    if not rows:
        m = alphas.shape[-1]
        return (
            packed.new_empty((0, t_max, *packed.shape[1:])).to(out_dtype or packed.dtype),
            torch.zeros((0 * m, t_max), dtype=torch.bool),
        )
    return torch.cat(rows).to(out_dtype or packed.dtype), torch.cat(masks).to(packed.device)


def ig_reduce_reference(
    grads: torch.Tensor,
    packed: torch.Tensor,
    offsets: torch.Tensor,
    weights: torch.Tensor,
    baseline: torch.Tensor | None = None,
    *,
    region_of_joint: torch.Tensor,
    n_regions: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Reference `nmmfast.kernels.ig_reduce`; returns the six outputs in `IgReduceResult` order."""
    bounds = offsets.tolist()
    n_samples = len(bounds) - 1
    n_steps = weights.shape[-1]
    dtype = packed.dtype
    regions = region_of_joint.to(torch.int64)
    n_regions = int(regions.max()) + 1 if n_regions is None else n_regions
    one_hot = torch.nn.functional.one_hot(regions, n_regions).to(dtype)  # [J, R]
    attributions = torch.empty_like(packed)
    joint_abs = packed.new_zeros(n_samples, packed.shape[1])
    joint_signed = packed.new_zeros(n_samples, packed.shape[1])
    for n in range(n_samples):
        start, end = bounds[n], bounds[n + 1]
        w = weights[n] if weights.dim() == 2 else weights
        g = grads[n * n_steps : (n + 1) * n_steps, : end - start].to(dtype)
        summed = (w.to(dtype).view(-1, 1, 1, 1) * g).sum(0)
        x = packed[start:end]
        attr = (x - _sample_baseline(baseline, x, start, end)) * summed
        attributions[start:end] = attr
        joint_abs[n] = attr.abs().sum(dim=(0, 2))
        joint_signed[n] = attr.sum(dim=(0, 2))
    return (
        attributions,
        joint_abs,
        joint_signed,
        joint_abs @ one_hot,
        joint_signed @ one_hot,
        joint_signed.sum(1),
    )


def graph_conv_reference(
    x: torch.Tensor, weight: torch.Tensor, adjacency: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Reference `nmmfast.kernels.fused_graph_conv` without a residual (any device and dtype).

    x [N, T, V, C_in], weight [K·C, C_in], adjacency [V, V·K], bias [V, C] -> [N, T, V, C]:
    out[w, c] = ReLU(Σ_{u,k} adjacency[w, u·K + k] (x[u] · weight[k·C + c]) + bias[w, c])."""
    n, t, v, _ = x.shape
    out_channels = bias.shape[1]
    y = F.linear(x, weight).reshape(n * t, -1, out_channels)
    y = torch.baddbmm(bias.expand(n * t, -1, -1), adjacency.expand(n * t, -1, -1), y)
    return y.relu_().view(n, t, v, out_channels)
