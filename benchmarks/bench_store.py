"""Cost of one extraction write against the size of the store, for the two ways ranks can share
the work of `nmmfast extract`:

- shared store (the former design, the peer): every rank appends to one store under a lock file,
  so each write takes the lock, opens the store (reading its whole index), appends the sample
  (taking the store's writer lock re-reads the index), closes it and appends a log line;
- own shard (the current design): each rank keeps its shard store open and appends the sample and
  a log line; the shards are merged once at the end (`merge_stores`), timed here per sample.

Samples are small (1-4 frames, extraction's metadata) so that store size, not pose bytes,
dominates. Stores are built by appending one sample per index line, as extraction writes them.
The two designs are checked to write identical stores (and the merge an identical copy) before
anything is timed. Without --fsync the store does not fsync (`PoseStore(fsync=False)`), so the
table shows the index cost rather than the disk's sync latency, which both designs pay alike.

Run: python benchmarks/bench_store.py [--sizes 1000,10000,100000] [--fsync] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # the source tree, if not installed
from _timing import timeit  # noqa: E402

from nmmfast.data import PoseStore  # noqa: E402
from nmmfast.data.merge import merge_stores  # noqa: E402
from nmmfast.extract.runner import LOG_NAME  # noqa: E402

try:
    import fcntl
except ImportError:  # pragma: no cover - the shared design needs a POSIX lock
    fcntl = None  # type: ignore[assignment]

_LOCK_NAME = ".extract.lock"  # the shared design's lock file
# What extraction stores with every sample (`nmmfast.extract.runner._extract_one`).
_SETTINGS = {
    "det_model": "yolox_m_8xb8-300e_humanart-c2c7a14a.onnx",
    "det_sha256": "0123456789abcdef",
    "pose_model": "rtmw-dw-x-l_simcc-cocktail14_270e-384x288_20231122.onnx",
    "pose_sha256": "fedcba9876543210",
    "det_every": 1,
    "score": "mean",
    "color": "bgr",
    "backend": "onnxruntime",
    "device": "cuda:0",
    "kpt_thr": 0.3,
    "redetect_below": 0.3,
    "carry_expand": 1.25,
    "pose_batch": 16,
}


class _Samples:
    """An endless supply of (id, raw [T, 133, 3], meta, log line) as extraction writes them."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self._poses = [rng.random((t, 133, 3), dtype=np.float32) for t in (1, 2, 3, 4)]
        self._count = itertools.count()

    def next(self) -> tuple[str, np.ndarray, dict[str, Any], dict[str, Any]]:
        k = next(self._count)
        sample_id = f"{k // 1000:04d}_{k % 1000:04d}"
        raw = self._poses[k % 4]
        source = f"/data/videos/signer{k % 37:02d}/{sample_id}.mp4"
        meta = {
            "fps": 25.0,
            "width": 1280,
            "height": 720,
            "source": source,
            "frames_detected": raw.shape[0],
            "frames_expected": raw.shape[0],
            "extract": _SETTINGS,
        }
        log = {"id": sample_id, "path": source, "status": "ok", "frames": raw.shape[0]}
        return sample_id, raw, meta, {**log, "seconds": 0.5}


def shared_write(path: Path, sample: tuple, fsync: bool) -> None:
    """One write of the former shared-store runner (`_Writer.write` with shared=True)."""
    sample_id, raw, meta, log = sample
    with open(path / _LOCK_NAME, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        store = PoseStore(path, fsync=fsync)  # reads the whole index
        try:
            store.append(sample_id, raw, **meta)  # the writer lock reads it again
        finally:
            store.close()
        with open(path / LOG_NAME, "a") as out:
            out.write(json.dumps(log, ensure_ascii=False) + "\n")


def shard_write(store: PoseStore, sample: tuple) -> None:
    """One write of the current runner: the rank's own store stays open."""
    sample_id, raw, meta, log = sample
    store.append(sample_id, raw, **meta)
    with open(store.path / LOG_NAME, "a") as out:
        out.write(json.dumps(log, ensure_ascii=False) + "\n")


def correctness(root: Path, fsync: bool) -> None:
    """Both designs write the same store, and merging it copies it exactly."""
    shared_path, shard_path = root / "check-shared", root / "check-shard"
    PoseStore.create(shared_path, fsync=fsync).close()
    shard = PoseStore.create(shard_path, fsync=fsync)
    first, second = _Samples(1), _Samples(1)
    for _ in range(50):
        shared_write(shared_path, first.next(), fsync)
        shard_write(shard, second.next())
    shard.close()
    merge_stores([shard_path], root / "check-merged")
    stores = [PoseStore(p) for p in (shared_path, shard_path, root / "check-merged")]
    ids = stores[0].ids()
    for other in stores[1:]:
        if other.ids() != ids or any(
            other[i].tobytes() != stores[0][i].tobytes() or other.meta(i) != stores[0].meta(i)
            for i in ids
        ):
            raise SystemExit(f"{other.path} differs from {stores[0].path}")
    if (shared_path / LOG_NAME).read_bytes() != (shard_path / LOG_NAME).read_bytes():
        raise SystemExit("the two designs wrote different logs")
    for store in stores:
        store.close()


def _per_call(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median seconds per call of `fn`, timed in blocks of `calls` calls."""

    def block() -> None:
        for _ in range(calls):
            fn()

    return timeit(block, warmup=1, repeats=repeats) / calls


def bench(sizes: list[int], fsync: bool, repeats: int, root: Path) -> list[dict[str, Any]]:
    samples = _Samples(0)
    path = root / "store"
    store = PoseStore.create(path, fsync=fsync)
    rows = []
    for size in sizes:
        began = time.perf_counter()
        while len(store) < size:  # grown with the current design's writes
            shard_write(store, samples.next())
        fill = time.perf_counter() - began
        index_mb = (path / "index.jsonl").stat().st_size / 1e6
        shard = _per_call(lambda s=store: shard_write(s, samples.next()), 50, repeats)
        store.close()  # the shared design opens the store for every write
        shared_repeats = repeats if size < 50_000 else 3
        shared = _per_call(lambda: shared_write(path, samples.next(), fsync), 1, shared_repeats)
        store = PoseStore(path, fsync=fsync)
        merged = root / "merged"
        began = time.perf_counter()
        report = merge_stores([path], merged)
        merge = (time.perf_counter() - began) / report.added
        shutil.rmtree(merged)
        rows.append(
            {
                "samples": size,
                "index_mb": index_mb,
                "shared_ms": shared * 1e3,
                "shard_ms": shard * 1e3,
                "merge_ms": merge * 1e3,
                "ratio": shared / shard,
                "fill_s": fill,
            }
        )
        print(
            f"{size:>9,} {index_mb:9.1f} {shared * 1e3:14.3f} {shard * 1e3:12.3f} "
            f"{shared / shard:9.1f}x {merge * 1e3:12.3f}",
            flush=True,
        )
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="store sizes (samples), comma-separated"
    )
    parser.add_argument("--fsync", action="store_true", help="sync every write, as by default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="where to build the stores (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="sizes 1000 and 10000 (seconds)")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    args = parser.parse_args()
    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    print(
        f"nmmfast store-append benchmark; {os.cpu_count()} CPUs ({cpu}), fsync {args.fsync}, "
        f"samples of 1-4 frames"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        correctness(Path(tmp), args.fsync)
        print(
            f"{'samples':>9} {'index MB':>9} {'shared ms/app':>14} {'shard ms/app':>12} "
            f"{'ratio':>10} {'merge ms/smp':>12}"
        )
        rows = bench(sorted(sizes), args.fsync, args.repeats, Path(tmp))
    largest = rows[-1]
    summary = [
        {
            "claim": f"append to a store of {largest['samples']:,} samples, own shard vs shared",
            "ours": f"{largest['shard_ms']:.3f} ms",
            "peer": f"{largest['shared_ms']:.3f} ms",
            "ratio": largest["ratio"],
            "goal": "faster",
        }
    ]
    if args.json:
        payload = {"benchmark": "store", "cpu": cpu, "fsync": args.fsync, "rows": rows}
        args.json.write_text(json.dumps({**payload, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
