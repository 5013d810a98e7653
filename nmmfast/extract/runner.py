"""Extract many videos into a pose store: one atomic write per video (id = file stem), resume by id,
failures (corrupt, truncated, empty, no person) reported and logged in `<store>/extract_log.jsonl`
while the run goes on; worker processes over videos. Ranks (machines) each write a shard store of
their own, `<out>.shards/rank-RRRRR-of-WWWWW/`, and the last rank to finish merges them into `out`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import write_json_atomic
from nmmfast.data import PoseStore
from nmmfast.data.merge import MergeReport, merge_stores
from nmmfast.errors import UserError
from nmmfast.extract.video import VIDEO_SUFFIXES, VideoError

__all__ = [
    "DONE_NAME",
    "ExtractReport",
    "LOG_NAME",
    "discover_videos",
    "extract_to_store",
    "shard",
    "shard_store",
    "shards_dir",
]

LOG_NAME = "extract_log.jsonl"
DONE_NAME = "done.json"  # in a rank's shard: the rank went through all of its videos


@dataclass
class ExtractReport:
    """What a run did: ids written, skipped (already in the store), failed (id -> reason); where
    it wrote (`store`: the output store, or this rank's shard), and the merge of the rank shards
    this run did (`merged`) or why it did none (`merge_status`)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    store: str = ""
    merged: MergeReport | None = None
    merge_status: str = ""

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


def shards_dir(out: str | os.PathLike[str]) -> Path:
    """Where the ranks of an extraction into `out` keep their shards: `<out>.shards/` beside it."""
    out = Path(out)
    if not out.name:  # "." names no directory to sit beside
        out = out.absolute()
    return out.with_name(out.name + ".shards")


def shard_store(out: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """The shard store rank `rank` of `world_size` writes: `<out>.shards/rank-RRRRR-of-WWWWW/`."""
    return shards_dir(out) / f"rank-{rank:05d}-of-{world_size:05d}"


def _stored_ids(path: Path) -> set[str]:
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return set()
    store = PoseStore(path)
    try:
        return set(store.ids())
    finally:
        store.close()


def _failed_ids(log: Path) -> set[str]:
    """Ids whose last record in an extraction log says failed."""
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


class _Writer:
    """Appends samples to one store, kept open (and so indexed once) for the whole run, and a
    line per video to the store's log. Only this process writes there: each rank has its own."""

    def __init__(self, store_path: Path) -> None:
        self.path = store_path
        self._store = PoseStore.create(store_path, exist_ok=True)

    def ids(self) -> set[str]:
        return set(self._store.ids())

    def write(
        self, sample_id: str, raw: np.ndarray | None, meta: dict[str, Any], log: dict[str, Any]
    ) -> None:
        if raw is not None:
            self._store.append(sample_id, raw, **meta)
        with open(self.path / LOG_NAME, "a") as out:
            out.write(json.dumps(log, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._store.close()


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
    videos (default: $RANK/$WORLD_SIZE as set by torchrun, else all). With world_size > 1 the
    rank writes its own store, `shard_store(out, rank, world_size)`, and its log; once it has
    gone through its videos it leaves `done.json` there, and the rank that finds every rank done
    merges all shards into `out` (`nmmfast.data.merge.merge_stores`, update mode: samples
    already in `out` are kept, so a rerun merges only what is new). Videos already in `out` or
    in any shard are skipped. retry_failed=False skips videos the log records as failed.
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

    out = Path(out)
    target = out if world_size == 1 else shard_store(out, rank, world_size)
    writer = _Writer(target)
    skip = _already_done(out, writer, world_size, retry_failed)
    report = ExtractReport(skipped=[i for i in mine if i in skip], store=str(target))
    todo = [(i, str(videos[i])) for i in mine if i not in skip]
    if world_size > 1 and todo:
        (target / DONE_NAME).unlink(missing_ok=True)  # this rank is not done until it is
    config = dict(
        det_model=str(det_model),
        pose_model=str(pose_model),
        det_every=det_every,
        score=score,
        color=color,
        backend=backend,
        device=device,
        batch_size=batch_size,
        threads=max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None,
        session_options=session_options,
    )
    try:
        if todo:
            label = "extract" if world_size == 1 else f"extract rank {rank}/{world_size}"
            _extract_all(todo, config, workers, writer, report, label if progress else None, began)
    finally:
        writer.close()
    report.seconds = time.perf_counter() - began
    if world_size > 1:
        write_json_atomic(
            target / DONE_NAME,
            {
                "rank": rank,
                "world_size": world_size,
                "videos": len(mine),
                "failed": sorted(report.failed),
            },
        )
        _merge_when_all_done(out, world_size, report)
    return report


def _already_done(out: Path, writer: _Writer, world_size: int, retry_failed: bool) -> set[str]:
    """Ids to skip: those in the store written and, for a rank, in `out` and in the other shards
    of this world size (a changed video list moves ids between ranks); with retry_failed=False,
    also those the logs of `out` and of the store written record as failed."""
    skip = writer.ids()
    if world_size > 1:
        others = [out] + [shard_store(out, r, world_size) for r in range(world_size)]
        skip = skip.union(*(_stored_ids(path) for path in others if path != writer.path))
    if not retry_failed:
        skip |= _failed_ids(out / LOG_NAME) | _failed_ids(writer.path / LOG_NAME)
    return skip


def _extract_all(
    todo: list[tuple[str, str]],
    config: dict[str, Any],
    workers: int,
    writer: _Writer,
    report: ExtractReport,
    label: str | None,
    began: float,
) -> None:
    """Extract the (id, path) pairs of `todo`, writing and reporting each as it finishes; a
    progress bar named `label` unless None."""
    bar = None
    if label is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="video", desc=label, dynamic_ncols=True)

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
        if bar is not None:
            bar.close()


def _merge_when_all_done(out: Path, world_size: int, report: ExtractReport) -> None:
    """Merge the shards of every rank into `out` once each has left its done marker (attribute's
    convention). One process merges: it claims the merge by creating a file exclusively, which
    holds on network filesystems where a lock may not."""
    shards = [shard_store(out, r, world_size) for r in range(world_size)]
    waiting = [r for r, path in enumerate(shards) if not (path / DONE_NAME).is_file()]
    if waiting:
        report.merge_status = (
            f"{out}: not merged yet, waiting for rank(s) {', '.join(map(str, waiting))} "
            f"of {world_size}"
        )
        return
    claim = shards_dir(out) / f"merging-{world_size:05d}.json"
    try:
        handle = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        report.merge_status = (
            f"{out}: not merged by this rank: {claim} says another process is merging "
            f"({_read_text(claim)}); if none is, delete {claim} and run `nmmfast merge-stores "
            f"{shards_dir(out)}/rank-*-of-{world_size:05d} --out {out} --update`"
        )
        return
    try:
        with os.fdopen(handle, "w") as note:
            note.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n")
        try:
            report.merged = merge_stores(shards, out, update=True)
        except (UserError, OSError, ValueError) as err:
            raise UserError(f"merging the {world_size} rank shards into {out}: {err}") from err
        report.merge_status = f"merged {world_size} rank shards: {report.merged.summary()}"
    finally:
        claim.unlink(missing_ok=True)


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return "unreadable"
