"""ig_scale / ig_reduce vs the same computation written plainly in PyTorch (per-sample loop with
padding, as `nmmfast.kernels._reference` does), on the same inputs, checked equal before timing.

    python benchmarks/bench_kernels.py [--device cpu|cuda] [--quick] [--json out.json]

On CUDA it also reports achieved memory bandwidth against a device-to-device copy measured in the
same run and against the card's nominal peak where known.
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

from nmmfast.kernels import ig_reduce, ig_scale  # noqa: E402
from nmmfast.kernels._reference import ig_reduce_reference, ig_scale_reference  # noqa: E402

# Nominal HBM bandwidth (bytes/s) of cards this is likely run on, by name fragment.
NOMINAL_BANDWIDTH = {
    "H200": 4.8e12,
    "H100 SXM": 3.35e12,
    "H100 PCIe": 2.0e12,
    "H100": 3.35e12,
    "A100-SXM4-80GB": 2.04e12,
    "A100": 1.56e12,
    "L4": 0.3e12,
    "T4": 0.32e12,
}


def make_inputs(n_samples: int, steps: int, min_len: int, max_len: int, device: str, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n_samples,), generator=gen)
    lengths[0] = max_len
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    packed = torch.randn(int(offsets[-1]), 69, 3, generator=gen).to(device)
    alphas = torch.rand(steps, generator=gen).to(device)
    weights = torch.rand(steps, generator=gen).to(device)
    regions = (torch.arange(69) % 3).to(device)
    return packed, offsets, alphas, weights, regions


def timed(fn, device: str, repeats: int) -> float:
    if device == "cuda":

        def run():
            fn()
            torch.cuda.synchronize()

        return timeit(run, warmup=2, repeats=repeats)
    return timeit(fn, warmup=1, repeats=repeats)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    device = args.device
    n_samples, steps, repeats = (4, 16, 3) if args.quick else (8, 32, 5)
    packed, offsets, alphas, weights, regions = make_inputs(n_samples, steps, 60, 256, device)
    t_max = int(offsets.diff().max())

    # Correctness first: same inputs, same answers.
    scaled, mask = ig_scale(packed, offsets, alphas)
    ref_scaled, ref_mask = ig_scale_reference(packed, offsets, alphas)
    assert torch.equal(mask, ref_mask) and torch.allclose(scaled, ref_scaled, rtol=0, atol=1e-6)
    grads = torch.randn(scaled.shape, device=device)
    ours = ig_reduce(grads, packed, offsets, weights, region_of_joint=regions)
    ref = ig_reduce_reference(grads, packed, offsets, weights, region_of_joint=regions)
    for name, a, b in zip(ours._fields, ours, ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-3), (
            f"ig_reduce {name} differs from the reference"
        )

    rows = []
    real_frames = int(offsets[-1])
    jc = 69 * 3
    bytes_scale = n_samples * steps * t_max * (jc * 4 + 1) + real_frames * jc * 4
    bytes_reduce = real_frames * steps * jc * 4 + 2 * real_frames * jc * 4
    cases = [
        (
            "ig_scale",
            lambda: ig_scale(packed, offsets, alphas, check_finite=device == "cpu"),
            lambda: ig_scale_reference(packed, offsets, alphas),
            bytes_scale,
        ),
        (
            "ig_reduce",
            lambda: ig_reduce(
                grads,
                packed,
                offsets,
                weights,
                region_of_joint=regions,
                check_finite=device == "cpu",
            ),
            lambda: ig_reduce_reference(grads, packed, offsets, weights, region_of_joint=regions),
            bytes_reduce,
        ),
    ]
    copy_bandwidth = None
    if device == "cuda":
        big = torch.empty(256 * 1024 * 1024 // 4, device=device)
        dst = torch.empty_like(big)
        copy_bandwidth = 2 * big.numel() * 4 / timed(lambda: dst.copy_(big), device, repeats)
    nominal = None
    if device == "cuda":
        name = torch.cuda.get_device_name()
        nominal = next((bw for key, bw in NOMINAL_BANDWIDTH.items() if key in name), None)
    for name, ours_fn, plain_fn, moved in cases:
        t_ours = timed(ours_fn, device, repeats)
        t_plain = timed(plain_fn, device, repeats)
        row = {
            "kernel": name,
            "device": device,
            "ours_ms": 1e3 * t_ours,
            "plain_pytorch_ms": 1e3 * t_plain,
            "speedup": t_plain / t_ours,
            "ours_GBps": moved / t_ours / 1e9,
            "rows_per_s": n_samples * steps / t_ours,
        }
        if copy_bandwidth:
            row["fraction_of_copy_bandwidth"] = moved / t_ours / copy_bandwidth
        if nominal:
            row["fraction_of_nominal_bandwidth"] = moved / t_ours / nominal
        rows.append(row)

    machine = {
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "copy_GBps": copy_bandwidth / 1e9 if copy_bandwidth else None,
        "shape": {"N": n_samples, "m": steps, "lengths": "60-256", "J": 69, "C": 3},
    }
    print(
        f"bench_kernels on {device} ({machine['gpu'] or machine['cpu']}, "
        f"{machine['threads']} threads)"
        f", N={n_samples} m={steps} lengths 60-256 J=69 C=3"
    )
    print(f"{'kernel':<10} {'ours ms':>9} {'plain ms':>9} {'ratio':>7} {'GB/s':>8}")
    for row in rows:
        extra = ""
        if "fraction_of_copy_bandwidth" in row:
            extra = f"  {100 * row['fraction_of_copy_bandwidth']:.0f}% of copy"
        if "fraction_of_nominal_bandwidth" in row:
            extra += f", {100 * row['fraction_of_nominal_bandwidth']:.0f}% of nominal"
        print(
            f"{row['kernel']:<10} {row['ours_ms']:9.2f} {row['plain_pytorch_ms']:9.2f} "
            f"{row['speedup']:6.1f}x {row['ours_GBps']:8.1f}{extra}"
        )
    goal = "≥ 3x" if device == "cpu" else "≥ 80% of bandwidth"
    summary = [
        {
            "claim": f"{row['kernel']} vs plain PyTorch ({device})",
            "ours": f"{row['ours_ms']:.2f} ms",
            "peer": f"{row['plain_pytorch_ms']:.2f} ms",
            "ratio": row["speedup"],
            "goal": goal,
        }
        for row in rows
    ]
    result = {"benchmark": "kernels", "machine": machine, "results": rows, "summary": summary}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
