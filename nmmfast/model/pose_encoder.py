"""Uni-Sign's pose encoder: four part graphs → spatial and temporal ST-GCN chains → d_model.

Body, hands (one set of weights for both) and face each run Linear(3→C0), a spatial chain
(temporal kernel 1) and a temporal chain (temporal kernel 5); hands and face add the body feature
at their anchor joint in between (stop-gradient, liftable); node means are concatenated, biased
and projected to the text model's width.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nmmfast.model.stgcn import STGCNBlock, STGCNChain, part_adjacency

__all__ = ["PART_ORDER", "PoseEncoder", "PoseEncoderConfig", "PoseGraph", "pose_graph_from_layout"]

# Order of the parts along the joint axis of a normalised pose and in the concatenated feature.
PART_ORDER = ("body", "left", "right", "face")
# COCO-WholeBody body joints whose spatial feature is added to each non-body part.
_ANCHOR_COCO = {"left": 9, "right": 10, "face": 0}  # left wrist, right wrist, nose


@dataclass(frozen=True)
class PoseGraph:
    """Where each part sits on the joint axis and how its joints are connected.

    positions: part -> indices into the J axis of a pose [T, J, 3];
    edges: "body" | "hand" | "face" -> local (i, j) pairs; anchors: part -> body-local joint index.
    """

    positions: Mapping[str, tuple[int, ...]]
    edges: Mapping[str, tuple[tuple[int, int], ...]]
    anchors: Mapping[str, int]

    @property
    def num_joints(self) -> int:
        return sum(len(p) for p in self.positions.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": {k: list(v) for k, v in self.positions.items()},
            "edges": {k: [list(e) for e in v] for k, v in self.edges.items()},
            "anchors": dict(self.anchors),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoseGraph:
        return cls(
            positions={k: tuple(int(i) for i in v) for k, v in data["positions"].items()},
            edges={k: tuple((int(a), int(b)) for a, b in v) for k, v in data["edges"].items()},
            anchors={k: int(v) for k, v in data["anchors"].items()},
        )


def _local_edges(edges: Sequence[Sequence[int]], positions: Sequence[int]) -> tuple:
    """Edges in part-local indices; accepts them local or as positions on the joint axis."""
    pairs = [(int(a), int(b)) for a, b in edges]
    size = len(positions)
    if all(0 <= a < size and 0 <= b < size for a, b in pairs):
        return tuple(pairs)
    where = {p: i for i, p in enumerate(positions)}
    try:
        return tuple((where[a], where[b]) for a, b in pairs)
    except KeyError as missing:
        raise ValueError(f"edge joint {missing} is not part of the part's joints") from None


def pose_graph_from_layout(layout: Any) -> PoseGraph:
    """Build the encoder's part graphs from a skeleton layout (object or name).

    The layout must have parts body/left/right/face and part edges; each non-body part's anchor
    is the layout's `part_roots[part].body_joint`, else found by COCO index (left wrist, right
    wrist, nose) in the body part.
    """
    if isinstance(layout, str):
        from nmmfast.skeleton import get_layout

        layout = get_layout(layout)
    parts = {name: tuple(int(i) for i in layout.parts[name]) for name in PART_ORDER}
    coco = [int(c) for c in layout.coco_indices]
    edges = {
        "body": _local_edges(layout.part_edges["body"], parts["body"]),
        "hand": _local_edges(layout.part_edges["right"], parts["right"]),
        "face": _local_edges(layout.part_edges["face"], parts["face"]),
    }
    left_hand = _local_edges(layout.part_edges["left"], parts["left"])
    if len(parts["left"]) != len(parts["right"]) or sorted(left_hand) != sorted(edges["hand"]):
        raise ValueError("pose_graph_from_layout: left and right hands must have the same graph")
    body_coco = [coco[p] for p in parts["body"]]
    roots = getattr(layout, "part_roots", {}) or {}
    anchors = {}
    for part, coco_index in _ANCHOR_COCO.items():
        body_joint = getattr(roots.get(part), "body_joint", None)
        if body_joint is not None:
            anchors[part] = int(body_joint)
        elif coco_index in body_coco:
            anchors[part] = body_coco.index(coco_index)
        else:
            raise ValueError(
                f"pose_graph_from_layout: no body anchor for the {part} part (the layout names "
                f"none and the body part lacks COCO joint {coco_index})"
            )
    return PoseGraph(positions=parts, edges=edges, anchors=anchors)


def _every_frame_real(mask: torch.Tensor) -> bool:
    """Whether mask [B, T] has no padded frame, asked only where asking is free: on the CPU
    (on a GPU it would wait for the device) and outside tracing and export (a traced graph
    must keep the mask for the inputs that do have padding)."""
    if mask.device.type != "cpu" or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    return bool(mask.all())


@dataclass(frozen=True)
class PoseEncoderConfig:
    """Sizes of the pose side; the defaults are Uni-Sign's."""

    input_channels: int = 3
    embed_channels: int = 64
    spatial_channels: tuple[int, ...] = (64, 128, 256)
    temporal_channels: tuple[int, ...] = (256, 256, 256)
    temporal_kernel: int = 5
    # Zero padded frames before every temporal convolution (batch-invariant outputs on real
    # frames); False reproduces Uni-Sign, where the repeated last frame leaks into real ones.
    pad_invariant: bool = True
    # Std of the final 1024→d_model projection's init; None keeps Uni-Sign's 0.02 (right for a
    # pretrained mT5). A small T5 trained from scratch, with unit-scale prompt embeddings and
    # frame positions, starts its pose embeddings ~250× below both at 0.02 and spends its first
    # epochs growing them.
    projection_init_std: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PoseEncoder(nn.Module):
    """poses [B, T, J, 3] float, mask [B, T] bool -> embeddings [B, T, d_model]."""

    def __init__(self, graph: PoseGraph, config: PoseEncoderConfig, d_model: int) -> None:
        super().__init__()
        self.graph = graph
        self.config = config
        self.stop_gradient = True
        self.batch_norm_is_folded = False
        width = config.spatial_channels[-1]
        if config.temporal_channels and config.temporal_channels[-1] != width:
            raise ValueError("PoseEncoder: the temporal chain must keep the spatial output width")
        self.input_proj = nn.ModuleDict()
        self.spatial = nn.ModuleDict()
        self.temporal = nn.ModuleDict()
        for group in ("body", "hand", "face"):
            num_nodes = len(graph.positions["right" if group == "hand" else group])
            adjacency = part_adjacency(num_nodes, graph.edges[group])
            self.input_proj[group] = nn.Linear(config.input_channels, config.embed_channels)
            self.spatial[group] = STGCNChain(
                config.embed_channels, config.spatial_channels, adjacency, temporal_kernel=1
            )
            self.temporal[group] = STGCNChain(
                width, config.temporal_channels, adjacency, temporal_kernel=config.temporal_kernel
            )
        self.part_bias = nn.Parameter(torch.zeros(len(PART_ORDER) * width))
        self.proj = nn.Linear(len(PART_ORDER) * width, d_model)
        for name, positions in graph.positions.items():
            self.register_buffer(f"_index_{name}", torch.tensor(positions), persistent=False)
        self.reset_linear_parameters()

    def reset_linear_parameters(self) -> None:
        """Uni-Sign's init: every Linear truncated-normal(std 0.02) with zero bias (the final
        projection with `config.projection_init_std` where set)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        std = self.config.projection_init_std
        if std is not None:
            nn.init.trunc_normal_(self.proj.weight, std=std, a=-2 * std, b=2 * std)

    @contextlib.contextmanager
    def stop_gradient_lifted(self) -> Iterator[None]:
        """Let gradients flow through the body-context paths; forward values are unchanged."""
        previous = self.stop_gradient
        self.stop_gradient = False
        try:
            yield
        finally:
            self.stop_gradient = previous

    def folded_copy(self) -> PoseEncoder:
        """An eval-mode copy with every batch norm folded into the layer before it: the same
        function (equal up to rounding) without the batch norms' passes over the activations,
        forward and backward. The copy owns its weights; this encoder is left untouched."""
        if self.training:
            raise RuntimeError("PoseEncoder.folded_copy: batch norms fold in eval mode only")
        if self.batch_norm_is_folded:
            return self
        folded = copy.deepcopy(self)
        for module in folded.modules():
            if isinstance(module, STGCNBlock):
                module.fold_batch_norm()
        folded.batch_norm_is_folded = True
        return folded

    def _part(self, poses: torch.Tensor, name: str) -> torch.Tensor:
        positions = self.graph.positions[name]
        start = positions[0]
        if list(positions) == list(range(start, start + len(positions))):
            return poses[:, :, start : start + len(positions)]
        return poses.index_select(2, getattr(self, f"_index_{name}"))

    def part_features(
        self, poses: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-part node features after the temporal chain: part -> [B, T, V_part, C]."""
        frame_mask = mask if (mask is not None and self.config.pad_invariant) else None
        if frame_mask is not None and _every_frame_real(frame_mask):
            frame_mask = None  # the blocks' masking would be a no-op pass over every activation
        features: dict[str, torch.Tensor] = {}
        body = self.spatial["body"](self.input_proj["body"](self._part(poses, "body")))
        context = body if not self.stop_gradient else body.detach()
        features["body"] = self.temporal["body"](body, frame_mask)
        for name, group in (("left", "hand"), ("right", "hand"), ("face", "face")):
            x = self.spatial[group](self.input_proj[group](self._part(poses, name)))
            anchor = self.graph.anchors[name]
            x = x + context[:, :, anchor : anchor + 1]
            features[name] = self.temporal[group](x, frame_mask)
        return features

    def forward(self, poses: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if poses.dim() != 4 or poses.shape[-1] != self.config.input_channels:
            raise ValueError(
                f"PoseEncoder: poses must be [B, T, J, {self.config.input_channels}], "
                f"got {tuple(poses.shape)}"
            )
        if poses.shape[2] != self.graph.num_joints:
            raise ValueError(
                f"PoseEncoder: the layout has {self.graph.num_joints} joints, poses have "
                f"{poses.shape[2]}"
            )
        if mask is not None and mask.shape != poses.shape[:2]:
            raise ValueError(
                f"PoseEncoder: mask must be [B, T] = {tuple(poses.shape[:2])}, "
                f"got {tuple(mask.shape)}"
            )
        features = self.part_features(poses, mask)
        pooled = torch.cat([features[name].mean(2) for name in PART_ORDER], dim=-1)
        return self.proj(pooled + self.part_bias)
