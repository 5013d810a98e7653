"""The batch-norm-folded graph convolution ReLU(A · (x Wᵀ) + bias) as one fused host kernel.

`nmmfast._C.graph_conv` runs both products of a frame back to back, so the 1×1 conv's output
([V·K, C] per frame, twice the block's output) never leaves the cache, and adds the bias and the
ReLU on the way out; its backward does the same for the input gradient, masked by the saved
output. A spatial ST-GCN block's residual and last ReLU can ride along (`residual=`). Weights
and adjacency are constants: only the input gets a gradient, which is all the attribution engine
and decoding need. `nmmfast.kernels._reference.graph_conv_reference` is the plain-PyTorch
definition the kernel must match.
"""

from __future__ import annotations

import torch

from nmmfast import _native

__all__ = ["fused_graph_conv", "fused_graph_conv_usable", "kernel_isas"]

_DTYPES = {torch.float32: _native._C.DType.float32, torch.float64: _native._C.DType.float64}


def kernel_isas() -> list[str]:
    """The kernel's variants this build has that this CPU runs, widest (the default) first:
    "avx512", "avx2" (x86 builds) and "generic"."""
    return list(_native._C.graph_conv_isas())


def fused_graph_conv_usable(x: torch.Tensor) -> bool:
    """True where the fused kernel applies: host float32/float64 tensors outside autocast."""
    return (
        x.device.type == "cpu"
        and x.dtype in _DTYPES
        and not torch.is_autocast_enabled("cpu")
    )


def fused_graph_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    adjacency: torch.Tensor,
    bias: torch.Tensor,
    weight_t: torch.Tensor | None = None,
    adjacency_t: torch.Tensor | None = None,
    *,
    residual: str | tuple[torch.Tensor, torch.Tensor] | None = None,
    isa: str | None = None,
) -> torch.Tensor:
    """`_reference.graph_conv_reference` on the fused host kernel; differentiable in x only.

    `residual` fuses a spatial ST-GCN block's tail as well: "identity" gives ReLU(gcn + x), a
    pair (R [C, C_in], r [C]) ReLU(gcn + x Rᵀ + r).

    weight_t [C_in, K·C] and adjacency_t [V·K, V] are the contiguous transposes the kernel reads;
    pass them precomputed to save two small copies per call. `isa` picks one of `kernel_isas()`
    (default: the widest).
    """
    if isa is not None and isa not in kernel_isas():
        raise ValueError(f"fused_graph_conv: isa {isa!r} is not one of {kernel_isas()} here")
    if not fused_graph_conv_usable(x):
        raise ValueError(
            f"fused_graph_conv: host float32/float64 tensors outside autocast only, got "
            f"{x.dtype} on {x.device}"
        )
    if x.dim() != 4:
        raise ValueError(f"fused_graph_conv: x must be [N, T, V, C_in], got {tuple(x.shape)}")
    n, t, v, c_in = x.shape
    kc = weight.shape[0]
    out_channels = bias.shape[-1]
    expected = {
        "weight": (weight, (kc, c_in)),
        "adjacency": (adjacency, (v, adjacency.shape[1])),
        "bias": (bias, (v, out_channels)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"fused_graph_conv: {name} must be {shape} for x {tuple(x.shape)}, "
                f"got {tuple(tensor.shape)}"
            )
    if kc % out_channels or adjacency.shape[1] != v * (kc // out_channels):
        raise ValueError(
            f"fused_graph_conv: weight rows ({kc}) must be K·C and adjacency columns "
            f"({adjacency.shape[1]}) V·K for C = {out_channels}, V = {v}"
        )
    if weight_t is None:
        weight_t = weight.t()
    if adjacency_t is None:
        adjacency_t = adjacency.t()
    constants = [
        c.detach().to(x.dtype).contiguous()
        for c in (weight, weight_t, adjacency, adjacency_t, bias)
    ]
    isa_code = getattr(_native._C.GraphConvIsa, isa or "auto")
    kind = _native._C.GraphConvResidual.none
    residual_weight = residual_weight_t = residual_bias = None
    if isinstance(residual, str):
        if residual != "identity" or c_in != out_channels:
            raise ValueError(
                f"fused_graph_conv: residual must be 'identity' (with C_in == C), a pair "
                f"(weight [C, C_in], bias [C]) or None, got {residual!r} for C_in = {c_in}, "
                f"C = {out_channels}"
            )
        kind = _native._C.GraphConvResidual.identity
    elif residual is not None:
        residual_weight, residual_bias = (r.detach().to(x.dtype) for r in residual)
        if tuple(residual_weight.shape) != (out_channels, c_in) or tuple(
            residual_bias.shape
        ) != (out_channels,):
            raise ValueError(
                f"fused_graph_conv: the residual must be weight {(out_channels, c_in)} and "
                f"bias ({out_channels},), got {tuple(residual_weight.shape)} and "
                f"{tuple(residual_bias.shape)}"
            )
        kind = _native._C.GraphConvResidual.linear
        residual_weight_t = residual_weight.t().contiguous()
        residual_weight, residual_bias = residual_weight.contiguous(), residual_bias.contiguous()
    out = _FusedGraphConv.apply(x, isa_code, kind, *constants, residual_weight,
                                residual_weight_t, residual_bias)
    return out.view(n, t, v, out_channels)


def _params(cls, x: torch.Tensor, rows: int, shape: tuple[int, int, int, int], isa):
    joints, in_channels, kernels, out_channels = shape
    params = cls()
    params.rows = rows
    params.joints = joints
    params.in_channels = in_channels
    params.kernels = kernels
    params.out_channels = out_channels
    params.dtype = _DTYPES[x.dtype]
    params.isa = isa
    params.num_threads = torch.get_num_threads()
    return params


class _FusedGraphConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, isa, kind, weight, weight_t, adjacency, adjacency_t, bias,  # noqa: D102
                residual_weight, residual_weight_t, residual_bias):
        x = x.detach().contiguous()
        n, t, v, c_in = x.shape
        out_channels = bias.shape[1]
        shape = (v, c_in, weight.shape[0] // out_channels, out_channels)
        out = torch.empty(n * t, v, out_channels, dtype=x.dtype)
        has_residual = kind != _native._C.GraphConvResidual.none
        gcn_out = torch.empty_like(out) if has_residual else out
        params = _params(_native._C.GraphConvParams, x, n * t, shape, isa)
        params.x = x.data_ptr()
        params.weight_t = weight_t.data_ptr()
        params.adjacency = adjacency.data_ptr()
        params.bias = bias.data_ptr()
        params.out = out.data_ptr()
        params.residual = kind
        if has_residual:
            params.gcn_out = gcn_out.data_ptr()
        if residual_weight_t is not None:
            params.residual_weight_t = residual_weight_t.data_ptr()
            params.residual_bias = residual_bias.data_ptr()
        _native._C.graph_conv(params)
        ctx.save_for_backward(out, gcn_out, weight, adjacency_t, residual_weight)
        ctx.shape = shape
        ctx.isa = isa
        ctx.kind = kind
        ctx.input_shape = x.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        out, gcn_out, weight, adjacency_t, residual_weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = torch.empty(ctx.input_shape, dtype=out.dtype)
        params = _params(_native._C.GraphConvBackwardParams, out, out.shape[0], ctx.shape,
                         ctx.isa)
        params.grad_out = grad_out.data_ptr()
        params.out = out.data_ptr()
        params.weight = weight.data_ptr()
        params.adjacency_t = adjacency_t.data_ptr()
        params.grad_x = grad_x.data_ptr()
        params.residual = ctx.kind
        if ctx.kind != _native._C.GraphConvResidual.none:
            params.gcn_out = gcn_out.data_ptr()
        if residual_weight is not None:
            params.residual_weight = residual_weight.data_ptr()
        _native._C.graph_conv_backward(params)
        return (grad_x,) + (None,) * 10
