"""Export a run's pose encoder (poses, mask -> embeddings) to ONNX and check it:
`nmmfast export --run RUN [--checkpoint best|last] [--out RUN/pose_encoder.onnx] [--opset 17]`.

The graph takes poses [B, T, J, 3] float32 and mask [B, T] bool (B and T dynamic) and returns
embeddings [B, T, d_model]; the export is verified under ONNX Runtime (CPU) against PyTorch.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["export_pose_encoder", "max_abs_error"]


class _PoseEncoderGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, poses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.pose_embeddings(poses, mask)


def export_pose_encoder(
    model: nn.Module, out: str | os.PathLike, *, opset: int = 17, frames: int = 16
) -> Path:
    """Write `model`'s pose encoder (a `UniSignModel`, eval mode) to `out` as ONNX."""
    model = model.eval()
    joints = model.graph.num_joints
    example = (torch.zeros(2, frames, joints, 3), torch.ones(2, frames, dtype=torch.bool))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) needs no package beyond torch and onnx;
        # the dynamo exporter needs onnxscript. It announces its own deprecation, which says
        # nothing about this graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            _PoseEncoderGraph(model),
            example,
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["poses", "mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "poses": {0: "batch", 1: "frames"},
                "mask": {0: "batch", 1: "frames"},
                "embeddings": {0: "batch", 1: "frames"},
            },
        )
    os.replace(tmp, out)
    return out


def max_abs_error(model: nn.Module, onnx_path: str | os.PathLike, *, seed: int = 0) -> float:
    """Largest |ONNX Runtime − PyTorch| over a padded random batch (two lengths)."""
    from nmmfast.decode import PoseEncoderSession

    generator = torch.Generator().manual_seed(seed)
    joints = model.graph.num_joints
    poses = torch.rand(3, 23, joints, 3, generator=generator) * 2 - 1
    mask = torch.ones(3, 23, dtype=torch.bool)
    mask[1, 17:] = False
    poses[1, 17:] = poses[1, 16]
    with torch.no_grad():
        expected = model.eval().pose_embeddings(poses, mask)
    got = PoseEncoderSession(onnx_path)(poses, mask)
    return float((got - expected).abs().max())


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--out", metavar="FILE.onnx", help="default RUN_DIR/pose_encoder.onnx")
    parser.add_argument("--opset", type=int, default=17)


def run_cli(args: argparse.Namespace) -> int:
    from nmmfast.model import load_run

    model, _, _ = load_run(args.run, args.checkpoint, "cpu")
    out = export_pose_encoder(
        model, args.out or Path(args.run) / "pose_encoder.onnx", opset=args.opset
    )
    error = max_abs_error(model, out)
    print(f"{out}: max abs error vs PyTorch {error:.2e}", file=sys.stderr)
    if not np.isfinite(error) or error > 1e-4:
        print("nmmfast export: check failed: error above 1e-4", file=sys.stderr)
        return 1
    return 0
