"""The fused host graph convolution vs the same function in plain PyTorch (1×1 conv GEMM, batched
matmul over joints, ReLU; autograd's backward), on every block shape of the `tiny` and
`unisign-base` pose encoders, checked equal first.

    python benchmarks/bench_graph_conv.py [--threads N] [--rows R] [--quick] [--json out.json]

Forward alone (what decoding runs) and forward + input gradient (what every IG step runs), one
batch of R rows × 64 frames per block.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timeit  # noqa: E402

from nmmfast.kernels import (  # noqa: E402
    fused_graph_conv,
    kernel_isas,
)
from nmmfast.kernels._reference import graph_conv_reference  # noqa: E402
from nmmfast.model import CONFIGS, pose_graph_from_layout  # noqa: E402
from nmmfast.model.pose_encoder import PoseEncoderConfig  # noqa: E402

FRAMES = 64


def block_shapes(config: PoseEncoderConfig) -> list[tuple[int, int]]:
    """(C_in, C_out) of every block of a chain pair, in order, without repeats."""
    widths = [config.embed_channels, *config.spatial_channels, *config.temporal_channels]
    return list(dict.fromkeys(zip(widths[:-1], widths[1:], strict=True)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--rows", type=int, help="batch rows (default 25; 8 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = args.rows or (8 if args.quick else 25)
    repeats = 3 if args.quick else 7
    graph = pose_graph_from_layout("unisign69")
    joints = {"body": len(graph.positions["body"]), "hand": len(graph.positions["right"]),
              "face": len(graph.positions["face"])}
    generator = torch.Generator().manual_seed(0)
    results = []
    for model, config in (("tiny", CONFIGS["tiny"].pose), ("unisign-base", PoseEncoderConfig())):
        for c_in, c_out in block_shapes(config):
            for part, v in joints.items():
                weight = torch.randn(2 * c_out, c_in, generator=generator) / c_in**0.5
                adjacency = torch.randn(v, 2 * v, generator=generator) / v**0.5
                bias = torch.randn(v, c_out, generator=generator) * 0.1
                x = torch.randn(rows, FRAMES, v, c_in, generator=generator).requires_grad_(True)
                grad = torch.randn(rows, FRAMES, v, c_out, generator=generator)
                weight_t, adjacency_t = weight.t().contiguous(), adjacency.t().contiguous()

                def ours(x=x, weight=weight, adjacency=adjacency, bias=bias, weight_t=weight_t,
                         adjacency_t=adjacency_t):
                    return fused_graph_conv(x, weight, adjacency, bias, weight_t, adjacency_t)

                def plain(x=x, weight=weight, adjacency=adjacency, bias=bias):
                    return graph_conv_reference(x, weight, adjacency, bias)

                out, ref = ours(), plain()
                same = (out > 0) == (ref > 0)  # a ReLU input within rounding of 0 may flip
                assert float(same.float().mean()) > 0.999, "fused and plain ReLU masks differ"
                scale = float(ref.detach().abs().max())
                assert float((out - ref).detach().abs().max()) <= 1e-4 * scale, "outputs differ"
                # input gradients, through the outputs whose ReLU side agrees
                agreed = grad * same
                (g_ours,), (g_ref,) = (torch.autograd.grad(o, x, agreed) for o in (out, ref))
                g_scale = float(g_ref.abs().max())
                assert float((g_ours - g_ref).abs().max()) <= 1e-4 * g_scale, "gradients differ"
                timings = {}
                for name, fn in (("ours", ours), ("plain", plain)):
                    with torch.no_grad():
                        timings[f"{name}_forward_ms"] = 1e3 * timeit(fn, 1, repeats)
                    timings[f"{name}_step_ms"] = 1e3 * timeit(
                        lambda fn=fn, x=x, grad=grad: torch.autograd.grad(fn(), x, grad), 1, repeats
                    )
                results.append({"model": model, "part": part, "joints": v, "c_in": c_in,
                                "c_out": c_out, **timings})
    totals = {}
    for model in ("tiny", "unisign-base"):
        picked = [r for r in results if r["model"] == model]
        for key in ("forward", "step"):
            ours_ms = sum(r[f"ours_{key}_ms"] for r in picked)
            plain_ms = sum(r[f"plain_{key}_ms"] for r in picked)
            totals[(model, key)] = (ours_ms, plain_ms)
    machine = {"cpu": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "isa": kernel_isas()[0],
               "torch": torch.__version__, "rows": rows, "frames": FRAMES}
    print(f"bench_graph_conv ({machine['cpu']}, {machine['threads']} threads, kernel "
          f"{machine['isa']}), {rows} rows × {FRAMES} frames per block, K = 2")
    print(f"{'model':<13} {'part':<5} {'C_in→C_out':>11} {'fwd ours':>9} {'plain':>7} "
          f"{'f+b ours':>9} {'plain':>7}  ms")
    for r in results:
        print(f"{r['model']:<13} {r['part']:<5} {r['c_in']:>5}→{r['c_out']:<5} "
              f"{r['ours_forward_ms']:9.2f} {r['plain_forward_ms']:7.2f} "
              f"{r['ours_step_ms']:9.2f} {r['plain_step_ms']:7.2f}")
    summary = []
    for (model, key), (ours_ms, plain_ms) in totals.items():
        label = "forward" if key == "forward" else "forward + input gradient"
        print(f"{model} all blocks, {label}: {ours_ms:.1f} vs {plain_ms:.1f} ms, "
              f"{plain_ms / ours_ms:.2f}x")
        summary.append({"claim": f"graph convolutions of {model}, {label}, vs plain PyTorch",
                        "ours": f"{ours_ms:.1f} ms", "peer": f"{plain_ms:.1f} ms",
                        "ratio": plain_ms / ours_ms, "goal": "≥ 1x"})
    result = {"benchmark": "graph_conv", "machine": machine, "results": results,
              "summary": summary}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
