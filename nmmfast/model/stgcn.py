"""ST-GCN building blocks of the Uni-Sign pose encoder: part graphs and channels-last blocks.

Features flow as [N, T, V, C] (channels last), so the 1×1 graph convolution is one GEMM, the
aggregation over neighbours one batched matmul, and the temporal convolution runs on oneDNN's
channels-last path; no 5-D einsum and no layout copies between blocks. In eval mode a block can
fold its batch norms into the layers before them (`STGCNBlock.fold_batch_norm`): the graph
convolution then becomes a `FoldedGraphConv` with its constants precomputed, which runs as one
fused kernel per frame on the host (`nmmfast.kernels.fused_graph_conv`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nmmfast.kernels import fused_graph_conv, fused_graph_conv_usable
from nmmfast.kernels._reference import graph_conv_reference

__all__ = [
    "FoldedGraphConv",
    "GraphConv",
    "STGCNBlock",
    "STGCNChain",
    "part_adjacency",
]


def part_adjacency(num_nodes: int, edges: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Uni-Sign's part graph: ST-GCN "distance" partition with max_hop 1, column-normalised.

    Returns A [2, V, V] float32: A[0] the self (hop-0) kernel, A[1] the neighbour (hop-1) kernel,
    both taken from (I + adjacency) · D⁻¹ where D holds the column sums.
    """
    if num_nodes <= 0:
        raise ValueError(f"part_adjacency: num_nodes must be positive, got {num_nodes}")
    adjacency = torch.eye(num_nodes, dtype=torch.float64)
    for i, j in edges:
        if not (0 <= i < num_nodes and 0 <= j < num_nodes):
            raise ValueError(
                f"part_adjacency: edge ({i}, {j}) outside a graph of {num_nodes} nodes"
            )
        adjacency[i, j] = adjacency[j, i] = 1.0
    column_sum = adjacency.sum(0)
    normalized = adjacency / column_sum[None, :]
    self_mask = torch.eye(num_nodes, dtype=torch.bool)
    neighbour_mask = (adjacency > 0) & ~self_mask
    kernels = torch.stack([normalized * self_mask, normalized * neighbour_mask])
    return kernels.float()


def batch_norm_channels_last(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm2d over the last axis of x [N, T, V, C]; same statistics as on [N, C, T, V]."""
    y = bn(x.permute(0, 3, 1, 2))  # a channels_last view: no copy, native NHWC kernel
    return y.permute(0, 2, 3, 1)


def batch_norm_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as y = x·scale + shift per channel: (scale [C], shift [C])."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.bias
    return scale, shift


class GraphConv(nn.Module):
    """Spatial graph convolution with a learnable adjacency, then BatchNorm and ReLU.

    Parameters match Uni-Sign's GCN unit (a 1×1 conv to K·C_out channels, adjacency A [K, V, V],
    BatchNorm2d(C_out)), with the conv stored as a Linear of the same weights.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.kernels = adjacency.shape[0]
        self.conv = nn.Linear(in_channels, out_channels * self.kernels)
        self.A = nn.Parameter(adjacency.clone())
        self.bn = nn.BatchNorm2d(out_channels)

    def folded_adjacency(self) -> torch.Tensor:
        """A as one matrix [W, V*K]: column (v, k) holds A[k, v, :], the order in which the 1×1
        conv's output [.., V, K*C_out] lists (joint, kernel) rows."""
        v = self.A.shape[1]
        return self.A.permute(2, 1, 0).reshape(v, v * self.kernels)

    def aggregated_bias(self) -> torch.Tensor:
        """[W, C_out]: the 1×1 conv's bias summed over each joint's neighbours,
        Σ_k (Σ_v A[k, v, w]) b_k; added once after the aggregation instead of to every row of
        the conv's output (which costs addmm a copy of the whole output)."""
        bias = self.conv.bias.view(self.kernels, self.out_channels)
        return self.A.sum(1).t() @ bias

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, T, V, C_in] -> Σ_k A_kᵀ (x W_k + b_k), shape [N, T, V, C_out], before BN."""
        n, t, v, _ = x.shape
        y = F.linear(x, self.conv.weight)  # [N, T, V, K*C_out], channel k*C_out + c
        y = y.reshape(n * t, v * self.kernels, self.out_channels)
        # An explicit bmm with a stride-0 batch of the small adjacency: torch.matmul would fold
        # this product through transposed copies of y.
        rows = n * t
        y = torch.baddbmm(
            self.aggregated_bias().expand(rows, v, self.out_channels),
            self.folded_adjacency().expand(rows, v, v * self.kernels),
            y,
        )
        return y.view(n, t, v, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLU in place on the batch norm's own output, before the permute back: in place on
        # the permuted view, autograd would copy the whole activation back in the backward.
        y = self.bn(self.aggregate(x).permute(0, 3, 1, 2))
        return F.relu(y, inplace=True).permute(0, 2, 3, 1)


class FoldedGraphConv(nn.Module):
    """An eval-mode `GraphConv` with its batch norm folded in: ReLU(A-aggregated (x W') + c).

    The batch norm's scale goes into the 1×1 conv (it commutes with the aggregation over
    joints); its shift and the conv's aggregated bias make one [V, C_out] constant that the
    aggregation adds, so no pass of its own touches the activations. Weights are buffers: the
    block computes gradients for its input only. On the host (float32/float64, no autocast) it
    runs as one fused kernel per frame (`fused_graph_conv`); elsewhere as a GEMM plus one
    batched matmul (`graph_conv_reference`).
    """

    def __init__(self, gcn: GraphConv) -> None:
        super().__init__()
        if gcn.training:
            raise RuntimeError("FoldedGraphConv: batch norms fold in eval mode only")
        self.kernels, self.out_channels = gcn.kernels, gcn.out_channels
        with torch.no_grad():
            scale, shift = batch_norm_affine(gcn.bn)
            scale, shift = scale.to(gcn.conv.weight.dtype), shift.to(gcn.conv.weight.dtype)
            weight = gcn.conv.weight.view(self.kernels, self.out_channels, -1) * scale[:, None]
            self.register_buffer("weight", weight.flatten(0, 1).contiguous())
            self.register_buffer("adjacency", gcn.folded_adjacency().contiguous())
            self.register_buffer("bias", (gcn.aggregated_bias() * scale + shift).contiguous())
            # the transposes the fused kernel reads
            self.register_buffer("weight_t", self.weight.t().contiguous())
            self.register_buffer("adjacency_t", self.adjacency.t().contiguous())

    def forward(
        self, x: torch.Tensor, residual: str | tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """ReLU(graph convolution); with `residual` (host only, see `fused_graph_conv`) a
        spatial block's ReLU(that + residual) in the same kernel."""
        if fused_graph_conv_usable(x):
            return fused_graph_conv(x, self.weight, self.adjacency, self.bias, self.weight_t,
                                    self.adjacency_t, residual=residual)
        if residual is not None:
            raise ValueError("FoldedGraphConv: a fused residual needs a host float tensor")
        return graph_conv_reference(x, self.weight.to(x.dtype), self.adjacency.to(x.dtype),
                                    self.bias.to(x.dtype))


class STGCNBlock(nn.Module):
    """ReLU(TCN(GCN(x)) + residual(x)); the TCN is Conv(kt×1) + BN, or the identity when kt = 1.

    x [N, T, V, C_in] -> [N, T, V, C_out]. With `frame_mask` [N, T] (True for real frames), padded
    frames are zeroed before the temporal convolution, so real frames see exactly the zero
    padding they would see unbatched: outputs on real frames do not depend on batch composition.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        temporal_kernel: int = 1,
    ) -> None:
        super().__init__()
        if temporal_kernel % 2 != 1:
            raise ValueError(f"STGCNBlock: temporal_kernel must be odd, got {temporal_kernel}")
        self.gcn: GraphConv | FoldedGraphConv = GraphConv(in_channels, out_channels, adjacency)
        self.temporal_kernel = temporal_kernel
        if temporal_kernel > 1:
            self.tcn_conv = nn.Conv2d(
                out_channels,
                out_channels,
                kernel_size=(temporal_kernel, 1),
                padding=((temporal_kernel - 1) // 2, 0),
            )
            self.tcn_bn = nn.BatchNorm2d(out_channels)
        if in_channels != out_channels:
            self.residual_conv = nn.Linear(in_channels, out_channels)
            self.residual_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        if (
            self.temporal_kernel == 1
            and isinstance(self.gcn, FoldedGraphConv)
            and fused_graph_conv_usable(x)
        ):  # a folded spatial block: graph convolution, residual and ReLU in one kernel
            return self.gcn(x, residual=self._folded_residual())
        if hasattr(self, "residual_conv"):
            residual = batch_norm_channels_last(self.residual_bn, self.residual_conv(x))
        else:
            residual = x
        y = self.gcn(x)
        if self.temporal_kernel > 1:
            if frame_mask is not None:
                y = y * frame_mask[:, :, None, None].to(y.dtype)
            y = self.tcn_conv(y.permute(0, 3, 1, 2))  # channels_last view in and out
            y = self.tcn_bn(y).permute(0, 2, 3, 1)
        return torch.add(y, residual).relu_()

    def _folded_residual(self) -> str | tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self, "residual_conv"):  # its batch norm is folded in
            return self.residual_conv.weight, self.residual_conv.bias
        return "identity"

    @torch.no_grad()
    def fold_batch_norm(self) -> None:
        """Eval only: fold every batch norm of the block into the layer before it (see
        `PoseEncoder.folded_copy`); forward values stay equal up to rounding."""
        self.gcn = FoldedGraphConv(self.gcn)
        if self.temporal_kernel > 1:
            _fold_into(self.tcn_conv, self.tcn_bn)
            self.tcn_bn = nn.Identity()
        if hasattr(self, "residual_conv"):
            _fold_into(self.residual_conv, self.residual_bn)
            self.residual_bn = nn.Identity()


def _fold_into(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d) -> None:
    """layer's output channels (dim 0 of its weight) followed by bn -> one affine layer."""
    scale, shift = batch_norm_affine(bn)
    weight = layer.weight
    weight.mul_(scale.view(-1, *([1] * (weight.dim() - 1))).to(weight.dtype))
    layer.bias.mul_(scale.to(weight.dtype)).add_(shift.to(weight.dtype))


class STGCNChain(nn.Module):
    """A sequence of ST-GCN blocks on one part graph; every block holds its own copy of A."""

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        adjacency: torch.Tensor,
        temporal_kernel: int,
    ) -> None:
        super().__init__()
        blocks = []
        last = in_channels
        for width in channels:
            blocks.append(STGCNBlock(last, width, adjacency, temporal_kernel))
            last = width
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = last

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, frame_mask)
        return x
