"""Extract many videos into a pose store: one atomic write per video (id = file stem), resume by id,
failures (corrupt, truncated, empty, no person) reported and logged in `<store>/extract_log.jsonl`
while the run goes on; worker processes over videos, rank sharding over machines (one lock file).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.data import PoseStore
from nmmfast.extract.video import VIDEO_SUFFIXES, VideoError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: one writer process only
    fcntl = None  # type: ignore[assignment]

__all__ = ["ExtractReport", "LOG_NAME", "discover_videos", "extract_to_store", "shard"]

LOG_NAME = "extract_log.jsonl"
_LOCK_NAME = ".extract.lock"


@dataclass
class ExtractReport:
    """What a run did: ids written, skipped (already in the store), failed (id -> reason)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{len(self.done)} videos extracted ({self.frames} frames, "
            f"{self.frames_per_second:.1f} frames/s), {len(self.skipped)} already in the store, "
            f"{len(self.failed)} failed"
        )


def discover_videos(inputs: Sequence[str | os.PathLike[str]]) -> dict[str, Path]:
    """Sample id (file stem) -> video path, for files and directories (searched recursively for
    video suffixes). Raises FileNotFoundError for a missing input and ValueError when two videos
    share a stem."""
    found: dict[str, list[Path]] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
            )
        elif path.exists():
            videos = [path]
        else:
            raise FileNotFoundError(f"{path}: no such video file or directory")
        for video in videos:
            found.setdefault(video.stem, []).append(video)
    clashes = {k: v for k, v in found.items() if len(v) > 1}
    if clashes:
        shown = "; ".join(f"{k}: {[str(p) for p in v]}" for k, v in list(clashes.items())[:5])
        raise ValueError(
            f"{len(clashes)} sample ids are shared by several videos (ids are file stems): {shown}"
        )
    return {k: v[0] for k, v in sorted(found.items())}


def shard(ids: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The ids rank `rank` of `world_size` handles: every world_size-th of the sorted ids."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return sorted(ids)[rank::world_size]


class _Writer:
    """Appends samples and log lines to a store under a lock file. `shared` (several ranks writing
    one store): the store is reopened, and so re-indexed, for every write, since it admits one
    writer at a time; otherwise it stays open for the whole run."""

    def __init__(self, store_path: Path, *, shared: bool = False) -> None:
        self.path = store_path
        self.shared = shared
        self._store: PoseStore | None = None
        for attempt in range(50):  # several ranks may race to create the store
            try:
                PoseStore.create(store_path, exist_ok=True).close()
                break
            except FileExistsError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def _locked(self) -> Any:
        handle = open(self.path / _LOCK_NAME, "a+b")  # noqa: SIM115 - closed by the caller
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        return handle

    def ids(self) -> set[str]:
        store = PoseStore(self.path)
        try:
            return set(store.ids())
        finally:
            store.close()

    def failed(self) -> set[str]:
        log = self.path / LOG_NAME
        if not log.exists():
            return set()
        state: dict[str, str] = {}
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
                state[record["id"]] = record["status"]
            except (ValueError, KeyError):
                continue  # a torn last line from an interrupted run
        return {k for k, v in state.items() if v == "failed"}

    def write(
        self, sample_id: str, raw: np.ndarray | None, meta: dict[str, Any], log: dict[str, Any]
    ) -> None:
        handle = self._locked()
        try:
            if raw is not None:
                if self._store is None:
                    self._store = PoseStore(self.path)
                try:
                    self._store.append(sample_id, raw, **meta)
                finally:
                    if self.shared:
                        self._store.close()
                        self._store = None
            with open(self.path / LOG_NAME, "a") as out:
                out.write(json.dumps(log, ensure_ascii=False) + "\n")
        finally:
            handle.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


# -- per-video work (runs in the parent or in worker processes) ------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(config: dict[str, Any]) -> None:
    from nmmfast.extract.solution import Wholebody

    _WORKER["solution"] = Wholebody(**config)


def _extract_one(item: tuple[str, str], on_frames: Any = None) -> dict[str, Any]:
    from nmmfast.extract.solution import ExtractionError

    sample_id, path = item
    solution = _WORKER["solution"]
    began = time.perf_counter()
    try:
        result = solution.extract(path, on_frames=on_frames)
    except (VideoError, ExtractionError) as err:
        return {"id": sample_id, "path": path, "status": "failed", "reason": str(err)}
    except Exception as err:  # a model/runtime failure on this video: report it, keep going
        return {
            "id": sample_id,
            "path": path,
            "status": "failed",
            "reason": f"{path}: {type(err).__name__}: {err}",
        }
    meta = {
        "fps": result.fps,
        "width": result.width,
        "height": result.height,
        "source": str(path),
        "frames_detected": int(result.detected.sum()),
        "frames_expected": int(result.frames_expected),
        "extract": result.settings,
    }
    return {
        "id": sample_id,
        "path": path,
        "status": "ok",
        "raw": result.raw(),
        "meta": meta,
        "frames": result.frames,
        "seconds": time.perf_counter() - began,
    }


def _env_rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def extract_to_store(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    det_model: str | os.PathLike[str],
    pose_model: str | os.PathLike[str],
    *,
    det_every: int = 1,
    score: str = "mean",
    color: str = "bgr",
    backend: str = "onnxruntime",
    device: str = "cpu",
    batch_size: int | None = None,
    session_options: dict[str, Any] | None = None,
    workers: int = 1,
    rank: int | None = None,
    world_size: int | None = None,
    retry_failed: bool = True,
    progress: bool = True,
) -> ExtractReport:
    """Extract every video of `inputs` (files or directories) into the pose store `out` (created if
    absent) and return an `ExtractReport`.

    Poses are stored as [T, 133, 3] (x / width, y / height, score) with metadata fps, width, height,
    source, frames_detected, frames_expected and `extract` (the settings). session_options go to
    both models' sessions (TensorRT: fp16, max_batch, cache_dir). workers: processes over
    videos (ONNX Runtime threads split between them). rank/world_size: this process's share of the
    videos (default: $RANK/$WORLD_SIZE as set by torchrun, else all). retry_failed=False skips
    videos the log records as failed.
    """
    from nmmfast.extract.models import model_hint
    from nmmfast.runtime import ModelNotFoundError

    began = time.perf_counter()
    for path, kind in ((det_model, "detector"), (pose_model, "pose")):
        if not Path(path).is_file():
            raise ModelNotFoundError(f"{path}: {kind} model file not found. {model_hint(kind)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    videos = discover_videos(inputs)
    env_rank, env_world = _env_rank()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    mine = shard(list(videos), rank, world_size)
    if device == "auto":
        from nmmfast.runtime.base import _auto_device

        device = _auto_device(backend)
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per local process
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    writer = _Writer(Path(out), shared=world_size > 1)
    present = writer.ids()
    skip = present | (set() if retry_failed else writer.failed())
    report = ExtractReport(skipped=[i for i in mine if i in skip])
    todo = [(i, str(videos[i])) for i in mine if i not in skip]
    if not todo:
        report.seconds = time.perf_counter() - began
        return report

    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    config = dict(
        det_model=str(det_model),
        pose_model=str(pose_model),
        det_every=det_every,
        score=score,
        color=color,
        backend=backend,
        device=device,
        batch_size=batch_size,
        threads=threads,
        session_options=session_options,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="video", desc="extract", dynamic_ncols=True)

    def record(result: dict[str, Any]) -> None:
        sample_id = result["id"]
        if result["status"] == "ok":
            log = {k: result[k] for k in ("id", "path", "status", "frames", "seconds")}
            writer.write(sample_id, result["raw"], result["meta"], log)
            report.done.append(sample_id)
            report.frames += result["frames"]
        else:
            writer.write(
                sample_id, None, {}, {k: result[k] for k in ("id", "path", "status", "reason")}
            )
            report.failed[sample_id] = result["reason"]
            message = f"extract: FAILED {sample_id}: {result['reason']}"
            if bar is not None:
                bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)
        if bar is not None:
            bar.update(1)
            elapsed = time.perf_counter() - began
            bar.set_postfix_str(
                f"{report.frames / max(elapsed, 1e-9):.1f} frames/s, {len(report.failed)} failed"
            )

    try:
        if workers == 1:
            _init_worker(config)
            for item in todo:
                record(_extract_one(item))
        else:
            context = multiprocessing.get_context(
                "spawn"
            )  # ONNX Runtime threads do not survive fork
            with context.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
                results: Iterator[dict[str, Any]] = pool.imap_unordered(_extract_one, todo)
                for result in results:
                    record(result)
    finally:
        _WORKER.clear()
        writer.close()
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - began
    return report
