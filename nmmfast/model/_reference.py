"""A straightforward port of Uni-Sign's pose encoder: channels-first, 1×1 Conv2d + 5-D einsum GCN.

It is the oracle for the fast encoder (tests) and the peer in benchmarks/bench_train.py. Module
names follow Uni-Sign's state dict (`proj_linear.*`, `gcn_modules.*.layer0_0.gcn.conv.*`, ...), so
its state dict is an original-format checkpoint for the key-map tests.
"""

from __future__ import annotations

import torch
from torch import nn

from nmmfast.model.pose_encoder import PART_ORDER, PoseEncoderConfig, PoseGraph
from nmmfast.model.stgcn import part_adjacency

__all__ = ["ReferencePoseEncoder", "UNISIGN_PART_NAMES"]

# Our part name -> Uni-Sign's mode name.
UNISIGN_PART_NAMES = {"body": "body", "left": "left", "right": "right", "face": "face_all"}


class _EinsumGCN(nn.Module):
    def __init__(self, c_in: int, c_out: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.kernel_size = adjacency.shape[0]
        self.conv = nn.Conv2d(c_in, c_out * self.kernel_size, kernel_size=1)
        self.A = nn.Parameter(adjacency.clone())
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, T, V]
        x = self.conv(x)
        n, kc, t, v = x.shape
        x = x.view(n, self.kernel_size, kc // self.kernel_size, t, v)
        x = torch.einsum("nkctv,kvw->nctw", x, self.A).contiguous()
        return self.act(self.bn(x))


class _EinsumBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, adjacency: torch.Tensor, kt: int) -> None:
        super().__init__()
        self.gcn = _EinsumGCN(c_in, c_out, adjacency)
        if kt > 1:
            self.tcn = nn.Sequential(
                nn.Conv2d(c_out, c_out, kernel_size=(kt, 1), padding=((kt - 1) // 2, 0)),
                nn.BatchNorm2d(c_out),
                nn.Dropout(0.0),
            )
        else:
            self.tcn = nn.Identity()
        if c_in == c_out:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1), nn.BatchNorm2d(c_out)
            )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.tcn(self.gcn(x)) + self.residual(x))


def _chain(c_in: int, channels: tuple[int, ...], adjacency: torch.Tensor, kt: int) -> nn.Sequential:
    chain = nn.Sequential()
    last = c_in
    for i, width in enumerate(channels):
        # Uni-Sign names blocks layer{i}_{j}: spatial widths differ (j = 0), temporal repeat one.
        name = f"layer{i}_0" if kt == 1 else f"layer0_{i}"
        chain.add_module(name, _EinsumBlock(last, width, adjacency, kt))
        last = width
    return chain


class ReferencePoseEncoder(nn.Module):
    """Same function as `PoseEncoder` with `pad_invariant=False`; poses [B,T,J,3] -> [B,T,d]."""

    def __init__(self, graph: PoseGraph, config: PoseEncoderConfig, d_model: int) -> None:
        super().__init__()
        self.graph = graph
        self.proj_linear = nn.ModuleDict()
        self.gcn_modules = nn.ModuleDict()
        self.fusion_gcn_modules = nn.ModuleDict()
        for part in PART_ORDER:
            group = "hand" if part in ("left", "right") else part
            adjacency = part_adjacency(len(graph.positions[part]), graph.edges[group])
            mode = UNISIGN_PART_NAMES[part]
            self.proj_linear[mode] = nn.Linear(config.input_channels, config.embed_channels)
            self.gcn_modules[mode] = _chain(
                config.embed_channels, config.spatial_channels, adjacency, 1
            )
            self.fusion_gcn_modules[mode] = _chain(
                config.spatial_channels[-1],
                config.temporal_channels,
                adjacency,
                config.temporal_kernel,
            )
        # The hands share every weight, as in Uni-Sign.
        self.proj_linear["left"] = self.proj_linear["right"]
        self.gcn_modules["left"] = self.gcn_modules["right"]
        self.fusion_gcn_modules["left"] = self.fusion_gcn_modules["right"]
        width = config.spatial_channels[-1]
        self.part_para = nn.Parameter(torch.zeros(len(PART_ORDER) * width))
        self.pose_proj = nn.Linear(len(PART_ORDER) * width, d_model)

    def forward(self, poses: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        del mask  # Uni-Sign's encoder does not look at the mask
        features = []
        body_feat = None
        for part in PART_ORDER:
            mode = UNISIGN_PART_NAMES[part]
            x = poses[:, :, list(self.graph.positions[part])]
            x = self.proj_linear[mode](x).permute(0, 3, 1, 2)  # [B, C, T, V]
            x = self.gcn_modules[mode](x)
            if part == "body":
                body_feat = x
            else:
                anchor = self.graph.anchors[part]
                x = x + body_feat[..., anchor : anchor + 1].detach()
            x = self.fusion_gcn_modules[mode](x)
            features.append(x.mean(-1).transpose(1, 2))
        return self.pose_proj(torch.cat(features, dim=-1) + self.part_para)
