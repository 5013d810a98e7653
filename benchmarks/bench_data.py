"""Data-path throughput, each measured side by side with its baseline in one run:

1. Uni-Sign normalisation: vectorised ragged batch (`normalize_batch`, `normalize_packed`) vs a
   direct per-sample, per-frame port of Uni-Sign's `load_part_kp` + `crop_scale` (outputs checked
   bit-identical first).
2. Pose store: writing N samples with one `extend`; reading every sample (copied out of the memory
   map) and length-bucketed packed batches vs loading one Uni-Sign pkl per sample.
3. SynNMM generation time (`nmmfast.data.synth.generate`), when that module is present.

Run: python benchmarks/bench_data.py [--samples 2000] [--frames 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timeit  # noqa: E402

from nmmfast.data import PoseStore  # noqa: E402
from nmmfast.data.importers import read_unisign_pkl, write_unisign_pkl  # noqa: E402
from nmmfast.skeleton import _normalize_reference, normalize_batch, normalize_packed  # noqa: E402


def _samples(n: int, mean_frames: int, seed: int) -> list[np.ndarray]:
    """Random raw poses with realistic score spread (some joints below the 0.3 threshold)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(mean_frames // 2, mean_frames * 3 // 2 + 1, size=n)
    out = []
    for t in lengths:
        raw = rng.random((int(t), 133, 3), dtype=np.float32)
        raw[..., 2] = rng.uniform(0.0, 1.1, size=(int(t), 133)).astype(np.float32)
        out.append(raw)
    return out


def _claim(claim: str, ours: float, peer: float, frames: int) -> dict:
    return {
        "claim": claim,
        "ours": f"{frames / ours:,.0f} frames/s",
        "peer": f"{frames / peer:,.0f} frames/s",
        "ratio": peer / ours,
        "goal": "faster",
    }


def _row(name: str, seconds: float, unit_count: float, unit: str, baseline: float | None) -> str:
    ratio = f"{baseline / seconds:8.1f}x" if baseline else "  (base)"
    return f"  {name:<44}{seconds * 1e3:10.1f} ms{unit_count / seconds:14,.0f} {unit}/s {ratio}"


def bench_normalize(samples: list[np.ndarray], repeats: int) -> list[dict]:
    frames = sum(s.shape[0] for s in samples)
    print(f"normalisation, unisign69: {len(samples)} samples, {frames} frames (float32)")
    vectorised = normalize_batch(samples)
    for raw, out in zip(samples, vectorised, strict=True):  # correctness before timing
        if not np.array_equal(out, _normalize_reference(raw)):
            raise SystemExit("normalize_batch disagrees with the reference port")
    lengths = np.array([s.shape[0] for s in samples])
    packed = np.concatenate(samples)
    t_ref = timeit(lambda: [_normalize_reference(s) for s in samples], warmup=1, repeats=repeats)
    t_batch = timeit(lambda: normalize_batch(samples), repeats=repeats)
    t_packed = timeit(lambda: normalize_packed(packed, lengths), repeats=repeats)
    print(_row("reference port, per sample and frame", t_ref, frames, "frames", None))
    print(_row("normalize_batch (list of ragged samples)", t_batch, frames, "frames", t_ref))
    print(_row("normalize_packed (already packed)", t_packed, frames, "frames", t_ref))
    return [
        _claim(
            "Uni-Sign normalisation, normalize_batch vs per-sample port", t_batch, t_ref, frames
        ),
        _claim(
            "Uni-Sign normalisation, normalize_packed vs per-sample port", t_packed, t_ref, frames
        ),
    ]


def bench_store(samples: list[np.ndarray], pkl_samples: int, repeats: int) -> list[dict]:
    frames = sum(s.shape[0] for s in samples)
    mb = frames * 133 * 3 * 4 / 1e6
    root = Path(tempfile.mkdtemp(prefix="nmmfast-bench-"))
    try:
        print(f"pose store: {len(samples)} samples, {frames} frames ({mb:.0f} MB float32)")
        counter = iter(range(10**9))

        def write() -> None:
            store = PoseStore.create(root / f"w{next(counter)}")
            store.extend((f"s{i}", raw, {"signer": "01"}) for i, raw in enumerate(samples))
            store.close()

        t_write = timeit(write, warmup=0, repeats=max(1, min(repeats, 3)))
        print(_row("extend (one atomic commit, fsync)", t_write, len(samples), "samples", None))
        store = PoseStore(root / "w0")
        ids = store.ids()
        if not all(np.array_equal(store[i], s) for i, s in zip(ids, samples, strict=True)):
            raise SystemExit("store round trip failed")
        pkl_dir = root / "pkl"
        pkl_dir.mkdir()
        subset = ids[:pkl_samples]
        for i in subset:
            write_unisign_pkl(pkl_dir / f"{i}.pkl", store[i])
        sub_frames = sum(store.meta(i)["frames"] for i in subset)
        t_pkl = timeit(lambda: [read_unisign_pkl(pkl_dir / f"{i}.pkl") for i in subset], 1, repeats)
        t_get = timeit(lambda: [np.array(store[i]) for i in subset], repeats=repeats)
        batches = store.batches(32, ids=subset)
        t_batch = timeit(lambda: [store.read_packed(b) for b in batches], repeats=repeats)
        print(f"  reading {len(subset)} samples ({sub_frames} frames):")
        print(_row("Uni-Sign pkl per sample (read_unisign_pkl)", t_pkl, sub_frames, "frames", None))
        print(_row("store[id], copied out of the memory map", t_get, sub_frames, "frames", t_pkl))
        print(_row("store.read_packed, 32-sample buckets", t_batch, sub_frames, "frames", t_pkl))
        return [
            _claim(
                "store read, store[id] vs one Uni-Sign pkl per sample", t_get, t_pkl, sub_frames
            ),
            _claim("store read, read_packed buckets vs Uni-Sign pkl", t_batch, t_pkl, sub_frames),
        ]
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_synth(n: int) -> list[dict]:
    try:
        from nmmfast.data.synth import generate
    except ImportError as err:
        print(f"SynNMM: skipped ({err})")
        return []
    began = time.perf_counter()
    corpus = generate(n, seed=0)
    seconds = time.perf_counter() - began
    frames = sum(p.shape[0] for p in corpus.poses)
    rate = frames / seconds
    print(f"SynNMM: generate({n}) in {seconds:.2f} s ({frames} frames, {rate:,.0f} frames/s)")
    return [
        {
            "claim": f"SynNMM generate({n})",
            "ours": f"{seconds:.1f} s",
            "peer": "-",
            "ratio": None,
            "goal": "≤ 10 s for 2,000 samples",
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="samples written to the store")
    parser.add_argument("--frames", type=int, default=100, help="mean frames per sample")
    parser.add_argument("--normalize-samples", type=int, default=200)
    parser.add_argument("--pkl-samples", type=int, default=500, help="samples read back per method")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-synth", action="store_true", help="skip SynNMM generation")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 20 s)")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.normalize_samples, args.pkl_samples, args.repeats = 400, 60, 100, 3
    print(f"nmmfast data benchmark; {os.cpu_count()} CPUs, NumPy {np.__version__}")
    samples = _samples(args.samples, args.frames, seed=0)
    summary = bench_normalize(samples[: args.normalize_samples], args.repeats)
    summary += bench_store(samples, min(args.pkl_samples, args.samples), args.repeats)
    if not args.no_synth:
        summary += bench_synth(args.samples)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "data", "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
