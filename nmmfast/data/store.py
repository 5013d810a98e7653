"""The pose store: raw COCO-WholeBody poses [T, 133, 3] float32 (x / width, y / height, score) of
many samples in one memory-mapped file, plus a JSON-lines index of sample metadata.

Writes are atomic per call (`append`, `extend`): data first, then one checksummed index line; a
store interrupted anywhere reopens with every committed sample and none half-written. Each record
carries a crc32 of its frames. Damage other than an interrupted write is refused, never repaired
in place: `nmmfast.data.integrity` checks a store record by record and copies its intact samples.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.errors import UserError

try:  # POSIX advisory lock: one writer per store
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms write without the lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["PoseStore", "StoreError", "META_KEYS", "IndexLine", "read_index", "sample_crc32"]

FORMAT = "nmmfast-posestore"
VERSION = 1
JOINTS, CHANNELS = 133, 3
_FRAME_BYTES = JOINTS * CHANNELS * 4
_HEADER, _DATA, _INDEX, _LOCK = "store.json", "poses.f32", "index.jsonl", ".lock"
# Standard metadata, always present in `meta(id)` (None when unknown).
META_KEYS = ("signer", "sentence", "fps", "width", "height", "source")
_RESERVED = ("id", "offset", "frames", "crc32")
# Where a damaged store's owner is sent: both commands leave the store as it is.
REPAIR_HINT = (
    "`nmmfast store check {path}` lists the damage by sample; "
    "`nmmfast store repair {path} --out NEW` copies every intact sample to a new store"
)


class StoreError(RuntimeError, UserError):
    """A pose store on disk is missing, corrupt, or locked by another writer."""


def sample_crc32(raw: np.ndarray) -> int:
    """Checksum of one sample's frames as stored (float32, C order): recorded at write time and
    verified by `nmmfast store check`."""
    return zlib.crc32(memoryview(np.ascontiguousarray(raw, dtype=np.float32)).cast("B"))


@dataclass(frozen=True)
class IndexLine:
    """One line of `index.jsonl`. `records` is None where the line fails its checksum or is not
    an index line; `terminated` is False only for a last line without its newline.
    `newline_changed`: that last line is whole but its final byte, the newline, was changed
    (`records` then holds its records); an unterminated line with `records` None is a write
    cut short."""

    number: int
    raw: bytes
    terminated: bool
    records: list[dict[str, Any]] | None
    newline_changed: bool = False


def _parse_line(line: bytes) -> list[dict[str, Any]] | None:
    crc_hex, _, payload = line.partition(b" ")
    try:
        if len(crc_hex) != 8 or int(crc_hex, 16) != zlib.crc32(payload):
            return None
        batch = json.loads(payload)["records"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(batch, list) or not all(
        isinstance(rec, dict) and {"id", "offset", "frames"} <= rec.keys() for rec in batch
    ):
        return None
    return batch


def read_index(index_path: Path) -> list[IndexLine]:
    """Every line of an index file, parsed and checked but not interpreted."""
    lines = index_path.read_bytes().split(b"\n")
    parsed = [
        IndexLine(number, line, True, _parse_line(line))
        for number, line in enumerate(lines[:-1], start=1)
    ]
    if lines[-1]:
        last = lines[-1]
        records = _parse_line(last)
        changed = records is None and (records := _parse_line(last[:-1])) is not None
        parsed.append(IndexLine(len(lines), last, False, records, changed))
    return parsed


def _json_value(value: Any, where: str) -> Any:
    """Metadata as plain JSON types (numpy scalars converted); rejects what JSON cannot hold."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: metadata value {value!r} is not finite")
    try:
        json.dumps(value)
    except TypeError:
        raise ValueError(f"{where}: metadata value {value!r} is not JSON-serialisable") from None
    return value


class PoseStore:
    """A directory holding raw poses of many samples (see the module docstring).

    Layout on disk: `store.json` (format header), `poses.f32` (all frames back to back, float32
    [N, 133, 3]), `index.jsonl` (one line per committed write: `<crc32 hex> <json>`).
    Reading returns read-only views into a memory map; a writer holds an exclusive lock from its
    first write until `close()`.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        header_path = self.path / _HEADER
        if not header_path.is_file():
            raise StoreError(
                f"{self.path}: not a pose store (expected {header_path}); "
                f"create one with PoseStore.create(path)"
            )
        try:
            header = json.loads(header_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise StoreError(f"{header_path}: unreadable store header ({err})") from None
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise StoreError(
                f"{header_path}: expected format {FORMAT!r} version {VERSION}, "
                f"found {header.get('format')!r} version {header.get('version')!r}"
            )
        self._records: dict[str, dict[str, Any]] = {}
        self._frames = 0  # committed frames
        self._index_bytes = 0  # committed length of index.jsonl
        self._map: np.ndarray | None = None
        self._lock_file: Any = None
        self._unterminated = False
        self.refresh()

    # -- creation, lifetime ----------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, exist_ok: bool = False, fsync: bool = True
    ) -> PoseStore:
        """Create an empty store in directory `path` (made if absent; must be empty unless it is
        already a store and `exist_ok`)."""
        path = Path(path)
        if (path / _HEADER).exists():
            if exist_ok:
                return cls(path, fsync=fsync)
            raise FileExistsError(f"{path}: a pose store already exists (pass exist_ok=True)")
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path}: directory is not empty and is not a pose store")
        path.mkdir(parents=True, exist_ok=True)
        (path / _DATA).touch()
        (path / _INDEX).touch()
        header = {
            "format": FORMAT,
            "version": VERSION,
            "dtype": "float32",
            "joints": JOINTS,
            "channels": CHANNELS,
            "coordinates": "x / frame width, y / frame height, score",
        }
        tmp = path / (_HEADER + ".tmp")
        tmp.write_text(json.dumps(header, indent=1) + "\n")
        os.replace(tmp, path / _HEADER)  # the header appears last: its presence marks a store
        return cls(path, fsync=fsync)

    def close(self) -> None:
        """Release the write lock and the memory map."""
        self._map = None
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    def __enter__(self) -> PoseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        lock = getattr(self, "_lock_file", None)
        if lock is not None:
            lock.close()

    # -- reading ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the index (to see samples another process has committed since)."""
        index_path = self.path / _INDEX
        data_path = self.path / _DATA
        have = data_path.stat().st_size if data_path.exists() else 0
        hint = REPAIR_HINT.format(path=self.path)
        if not index_path.exists() and have:
            raise StoreError(
                f"{index_path}: missing beside {have // _FRAME_BYTES} frames in {data_path}; "
                f"the store's index was lost (nothing was changed)"
            )
        lines = read_index(index_path) if index_path.exists() else []
        records: dict[str, dict[str, Any]] = {}
        frames = 0
        good_bytes = 0
        self._unterminated = False
        for line in lines:
            batch = line.records
            if line.newline_changed:  # committed whole: dropping it would drop its samples
                raise StoreError(
                    f"{index_path}: line {line.number} lost its end of line; the store was "
                    f"not changed; {hint}"
                )
            if not line.terminated and batch is None:
                break  # the one kind of damage a writer leaves: a last line cut short
            if batch is None:
                raise StoreError(
                    f"{index_path}: line {line.number} of {len(lines)} is corrupt (checksum or "
                    f"JSON); the store was not changed; {hint}"
                )
            for rec in batch:
                if rec["id"] in records:
                    raise StoreError(
                        f"{index_path}: line {line.number}: sample id {rec['id']!r} committed "
                        f"twice; {hint}"
                    )
                if rec["offset"] != frames:
                    raise StoreError(
                        f"{index_path}: line {line.number}: sample {rec['id']!r} starts "
                        f"at frame {rec['offset']}, expected {frames}; {hint}"
                    )
                frames += rec["frames"]
                records[rec["id"]] = rec
            # A complete line that only lacks its newline (the write stopped right before it)
            # is committed: its data were synced first. A writer adds the newline.
            good_bytes += len(line.raw) + line.terminated
            self._unterminated = not line.terminated
        if have < frames * _FRAME_BYTES:
            raise StoreError(
                f"{data_path}: holds {have // _FRAME_BYTES} frames but the index "
                f"commits {frames}; the data file was truncated; {hint}"
            )
        self._records, self._frames, self._index_bytes = records, frames, good_bytes
        self._map = None

    def _mapped(self) -> np.ndarray:
        if self._map is None or self._map.shape[0] < self._frames:
            self._map = np.memmap(
                self.path / _DATA,
                dtype=np.float32,
                mode="r",
                shape=(self._frames, JOINTS, CHANNELS),
            )
        return self._map

    def _record(self, sample_id: str) -> dict[str, Any]:
        try:
            return self._records[sample_id]
        except KeyError:
            raise KeyError(f"{self.path}: no sample {sample_id!r} in the store") from None

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def ids(self) -> list[str]:
        """Sample ids in the order they were committed."""
        return list(self._records)

    @property
    def total_frames(self) -> int:
        return self._frames

    def __getitem__(self, sample_id: str) -> np.ndarray:
        """Raw pose of one sample: float32 [T, 133, 3], a read-only view into the memory map."""
        rec = self._record(sample_id)
        if rec["frames"] == 0:
            return np.zeros((0, JOINTS, CHANNELS), np.float32)
        start = rec["offset"]
        return np.asarray(self._mapped()[start : start + rec["frames"]])

    def get(self, sample_id: str, *, copy: bool = False) -> np.ndarray:
        """`store[sample_id]`, optionally as a writable copy."""
        view = self[sample_id]
        return view.copy() if copy else view

    def meta(self, sample_id: str) -> dict[str, Any]:
        """Metadata of one sample: id, frames, signer, sentence, fps, width, height, source and
        any extra keys given at write time."""
        rec = self._record(sample_id)
        meta = {k: v for k, v in rec.items() if k not in ("offset", "crc32")}
        for key in META_KEYS:
            meta.setdefault(key, None)
        return meta

    def read_packed(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Several samples back to back: (float32 [sum T_i, 133, 3], int64 lengths [len(ids)]),
        the input of `nmmfast.skeleton.normalize_packed`."""
        recs = [self._record(i) for i in ids]
        lengths = np.array([r["frames"] for r in recs], dtype=np.int64)
        if not recs or lengths.sum() == 0:
            return np.zeros((0, JOINTS, CHANNELS), np.float32), lengths
        mapped = self._mapped()
        starts = np.array([r["offset"] for r in recs], dtype=np.int64)
        if (starts[1:] == starts[:-1] + lengths[:-1]).all():  # contiguous: one slice
            return np.array(mapped[starts[0] : starts[0] + lengths.sum()]), lengths
        slices = [mapped[s : s + n] for s, n in zip(starts, lengths, strict=True)]
        return np.concatenate(slices), lengths

    def batches(
        self,
        batch_size: int,
        ids: Iterable[str] | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        max_frames: int | None = None,
    ) -> list[list[str]]:
        """Length-bucketed batches of ids: samples sorted by frame count, cut into batches of at
        most `batch_size` (and, if given, at most `max_frames` padded frames = size x longest).
        With `shuffle`, ties are broken and the batch order drawn from `seed`."""
        if batch_size < 1:
            raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
        chosen = self.ids() if ids is None else list(ids)
        missing = [i for i in chosen if i not in self._records]
        if missing:
            raise KeyError(f"{self.path}: {len(missing)} ids not in the store, e.g. {missing[:5]}")
        frames = np.array([self._records[i]["frames"] for i in chosen], dtype=np.int64)
        rng = np.random.default_rng(seed)
        if shuffle:
            perm = rng.permutation(len(chosen))
            order = perm[np.argsort(frames[perm], kind="stable")]
        else:
            order = np.argsort(frames, kind="stable")
        batches: list[list[str]] = []
        current: list[str] = []
        for position in order:
            longest = int(frames[position])  # sorted ascending: the newcomer is the longest
            too_many = len(current) >= batch_size
            too_long = max_frames is not None and (len(current) + 1) * longest > max_frames
            if current and (too_many or too_long):
                batches.append(current)
                current = []
            current.append(chosen[position])
        if current:
            batches.append(current)
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    # -- writing ---------------------------------------------------------------------------------

    def append(
        self,
        sample_id: str,
        raw: Any,
        *,
        signer: str | None = None,
        sentence: str | None = None,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        source: str | None = None,
        **extra: Any,
    ) -> None:
        """Add one sample atomically. raw: float [T, 133, 3] (x / width, y / height, score), T >= 1,
        finite. Extra keyword metadata must be JSON-serialisable."""
        meta = dict(
            signer=signer,
            sentence=sentence,
            fps=fps,
            width=width,
            height=height,
            source=source,
            **extra,
        )
        self.extend([(sample_id, raw, meta)])

    def extend(self, records: Iterable[tuple[str, Any, Mapping[str, Any]]]) -> int:
        """Add many samples as one atomic commit: either all of `records` ((id, raw, meta) triples)
        are in the store afterwards, or none. Returns the number added."""
        self._acquire_writer()
        data_path = self.path / _DATA
        batch: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = self._frames
        committed = False
        with open(data_path, "r+b") as data:
            data.seek(self._frames * _FRAME_BYTES)
            try:
                for sample_id, raw, meta in records:
                    arr, rec = self._validate(sample_id, raw, meta, seen)
                    rec["offset"] = offset
                    data.write(memoryview(arr).cast("B"))
                    offset += arr.shape[0]
                    batch.append(rec)
                if not batch:
                    return 0
                data.flush()
                if self.fsync:
                    os.fsync(data.fileno())
                self._commit_index(batch)
                committed = True
            finally:
                if not committed:  # drop what this failed call wrote past the committed end
                    data.truncate(self._frames * _FRAME_BYTES)
        for rec in batch:
            self._records[rec["id"]] = rec
        self._frames = offset
        return len(batch)

    def _validate(
        self, sample_id: Any, raw: Any, meta: Mapping[str, Any], seen: set[str]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        where = f"{self.path}: sample {sample_id!r}"
        if not isinstance(sample_id, str) or not sample_id:
            raise ValueError(f"{where}: the sample id must be a non-empty string")
        if sample_id in self._records or sample_id in seen:
            raise ValueError(
                f"{where}: id already in the store"
                if sample_id in self._records
                else f"{where}: id given twice in one write"
            )
        seen.add(sample_id)
        arr = np.asarray(raw)
        if arr.ndim != 3 or arr.shape[1:] != (JOINTS, CHANNELS):
            raise ValueError(
                f"{where}: expected raw pose [T, 133, 3] (x/W, y/H, score), got shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{where}: empty sequence (0 frames)")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{where}: expected a float array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            t, j, c = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(f"{where}: non-finite value at frame {t}, joint {j}, channel {c}")
        rec: dict[str, Any] = {
            "id": sample_id,
            "offset": 0,
            "frames": int(arr.shape[0]),
            "crc32": sample_crc32(arr),
        }
        for key, value in meta.items():
            if key in _RESERVED:
                raise ValueError(f"{where}: metadata key {key!r} is reserved")
            rec[key] = _json_value(value, where)
        for key in META_KEYS:
            rec.setdefault(key, None)
        return arr, rec

    def _commit_index(self, batch: list[dict[str, Any]]) -> None:
        """The commit point: one checksummed line, written with one call and synced."""
        payload = json.dumps({"records": batch}, separators=(",", ":"), ensure_ascii=False)
        body = payload.encode()
        line = b"%08x " % zlib.crc32(body) + body + b"\n"
        with open(self.path / _INDEX, "r+b") as index:
            try:
                index.seek(self._index_bytes)
                index.write(line)
                index.truncate()
                index.flush()
                if self.fsync:
                    os.fsync(index.fileno())
            except BaseException:
                index.truncate(self._index_bytes)
                raise
        self._index_bytes += len(line)

    def _acquire_writer(self) -> None:
        """Take the writer lock and discard what an interrupted writer left uncommitted."""
        if self._lock_file is not None:
            return
        lock = open(self.path / _LOCK, "a+b")  # noqa: SIM115 - held until close()
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise StoreError(f"{self.path}: another process is writing to this store") from None
        self._lock_file = lock
        self.refresh()  # under the lock: the committed state is final
        with open(self.path / _INDEX, "r+b") as index:
            index.truncate(self._index_bytes)  # a torn final line
            if self._unterminated:  # a committed last line that lacks only its newline
                index.seek(self._index_bytes)
                index.write(b"\n")
                self._index_bytes += 1
                self._unterminated = False
        with open(self.path / _DATA, "r+b") as data:
            data.truncate(self._frames * _FRAME_BYTES)  # frames of an uncommitted write

    def __repr__(self) -> str:
        return f"PoseStore({str(self.path)!r}, samples={len(self)}, frames={self._frames})"
