"""Training-step throughput: our pose encoder vs a straightforward Uni-Sign port (fp32, 1×1
Conv2d + 5-D einsum GCN), both at unisign-base pose size with the tiny text side.

Both models hold the same weights; the script first checks that they compute the same loss and
gradients, then times forward + backward + AdamW step and prints samples/s and the ratio.
Usage: python benchmarks/bench_train.py [--batch 4] [--frames 64] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timeit  # noqa: E402

from nmmfast.model import (  # noqa: E402
    CONFIGS,
    ModelConfig,
    PoseEncoderConfig,
    WordTokenizer,
    build_model,
    load_unisign_checkpoint,
)
from nmmfast.model._reference import ReferencePoseEncoder  # noqa: E402
from nmmfast.model.checkpoint import map_unisign_key  # noqa: E402


class _Holder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.pose_encoder = encoder


def build_pair(seed: int = 0):
    """(ours, port): UniSignModels with identical weights; the port's pose encoder is the einsum
    reference. pad_invariant is off so both see exactly Uni-Sign's computation."""
    torch.manual_seed(seed)
    words = [f"w{i}" for i in range(60)]
    tokenizer = WordTokenizer.build(["Translate sign language video to English: ", *words])
    config = ModelConfig(
        name="bench", pose=PoseEncoderConfig(pad_invariant=False), text=CONFIGS["tiny"].text
    )
    ours = build_model(config, tokenizer=tokenizer)
    reference = ReferencePoseEncoder(ours.graph, config.pose, ours.d_model)
    load_unisign_checkpoint(reference.state_dict(), _Holder(ours.pose_encoder))
    port = copy.deepcopy(ours)
    port.pose_encoder = reference
    return ours, port, words


def check_equal(ours, port, poses, mask, targets) -> float:
    """Max relative difference of loss and pose-side gradients between the two models, computed
    in float64 (in float32 the train-mode BatchNorm backward amplifies rounding to ~1e-3)."""
    worst = 0.0
    results = []
    poses = poses.double()
    for model in (copy.deepcopy(ours).double(), copy.deepcopy(port).double()):
        model.train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout masks in the shared text side
        loss = model(poses, mask, targets)
        loss.backward()
        results.append((loss.detach(), model.pose_encoder))
    (loss_a, enc_a), (loss_b, enc_b) = results
    worst = max(worst, float((loss_a - loss_b).abs() / loss_b.abs()))
    # every pose-side gradient, paired through the checkpoint key map (a Uni-Sign name may be
    # an alias of a shared tensor: the hands, or a block's adjacency)
    ours = dict(enc_a.named_parameters())
    theirs = [(n, p) for n, p in enc_b.named_parameters() if p.grad is not None]
    # the bias of a layer that feeds a train-mode batch norm has a zero gradient up to rounding:
    # such tensors are compared against the gradients' overall scale, not their own
    floor = 1e-3 * max(float(p.grad.abs().max()) for _, p in theirs)
    compared = set()
    for name, param in theirs:
        key = map_unisign_key(name)
        if key is None:
            continue
        mine = ours[key.removeprefix("pose_encoder.")]
        grad = param.grad.reshape(mine.shape)  # 1×1 conv weights are Linear weights here
        scale = max(float(grad.abs().max()), floor)
        worst = max(worst, float((mine.grad - grad).abs().max()) / scale)
        compared.add(key)
    missing = {f"pose_encoder.{k}" for k in ours} - compared
    if missing:
        raise AssertionError(f"pose-side gradients not compared with the port: {sorted(missing)}")
    return worst


def step_flops(model, poses, mask, targets) -> int:
    """FLOPs of one forward + backward (GEMMs and convolutions, as torch counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        model(poses, mask, targets).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def gemm_peak(size: int = 4096, inner: int = 1280, width: int = 256, repeats: int = 10) -> float:
    """fp32 FLOP/s of one large matmul on the current threads: the arithmetic ceiling."""
    a, b = torch.randn(size, inner), torch.randn(inner, width)
    seconds = timeit(lambda: a @ b, warmup=2, repeats=repeats)
    return 2 * size * inner * width / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, < 30 s")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time bf16 autocast (default: when the CPU has native bf16)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch, args.frames, args.repeats = 2, 32, 3
    if args.bf16 is None:
        args.bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    ours, port, words = build_pair()
    generator = torch.Generator().manual_seed(0)
    poses = torch.rand(args.batch, args.frames, 69, 3, generator=generator) * 2 - 1
    mask = torch.ones(args.batch, args.frames, dtype=torch.bool)
    targets = ours.tokenize_targets([" ".join(words[i : i + 6]) for i in range(args.batch)])
    error = check_equal(ours, port, poses, mask, targets)
    print(
        f"equality check (float64): max relative difference of loss and pose-side gradients "
        f"{error:.1e}"
    )
    if error > 1e-9:
        print("FAILED: the two implementations disagree", file=sys.stderr)
        return 1

    contenders = [("port (einsum GCN), fp32", port, False), ("nmmfast, fp32", ours, False)]
    if args.bf16:
        ours.eval()
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = ours(poses, mask, targets)
            full = ours(poses, mask, targets)
        print(f"bf16 autocast: eval loss {float(low):.4f} vs fp32 {float(full):.4f}")
        contenders.append(("nmmfast, bf16 autocast", ours, True))
    rates = {}
    for name, model, bf16 in contenders:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

        def step(model=model, optimizer=optimizer, bf16=bf16):
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(poses, mask, targets)
            else:
                loss = model(poses, mask, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = timeit(step, warmup=1 if args.quick else 2, repeats=args.repeats)
        rates[name] = args.batch / seconds
        print(f"{name:20s} {seconds * 1e3:9.1f} ms/step  {rates[name]:8.2f} samples/s")
    base = rates["port (einsum GCN), fp32"]
    print(f"batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} threads:")
    for name, rate in rates.items():
        if name != "port (einsum GCN), fp32":
            print(f"  {name} / port fp32 = {rate / base:.2f}x")
    # Both models do the same arithmetic: at the GEMM peak with nothing else costing time, a
    # step could not beat flops / peak, which bounds any fp32 speed-up over the port.
    flops = step_flops(ours, poses, mask, targets)
    if flops != step_flops(port, poses, mask, targets):
        print("note: the two models count different FLOPs")
    peak = gemm_peak()
    floor = flops / peak
    print(
        f"fp32 arithmetic: {flops / 1e9:.1f} GFLOP per step, GEMM peak {peak / 1e9:.0f} GFLOP/s "
        f"-> at least {floor * 1e3:.0f} ms/step, at most {args.batch / base / floor:.2f}x the port"
    )
    if args.json:
        summary = [
            {
                "claim": f"training step, {name} vs einsum-GCN port (fp32)",
                "ours": f"{rate:.2f} samples/s",
                "peer": f"{base:.2f} samples/s",
                "ratio": rate / base,
                "goal": "≥ 1.5x" if name.endswith("fp32") else "–",
            }
            for name, rate in rates.items()
            if name != "port (einsum GCN), fp32"
        ]
        args.json.write_text(json.dumps({"benchmark": "train", "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
