"""`nmmfast store check|repair`: find the damage in a pose store, and copy what is intact.

`check_store` reads a store the way `PoseStore` cannot once it is damaged: line by line, every
record on its own. It verifies each index line's checksum, each record's offset against the
records before it and the size of the data file, each sample's data checksum (stores written
since checksums were recorded) and that every value is finite. Problems are listed by sample id.

`repair_store` copies every intact sample, with its metadata, to a new store and never changes
the damaged one. A sample is intact when its index line passes its checksum, its frames lie
inside the data file without overlapping another sample's, its data checksum (if recorded)
matches and its values are finite. Samples of a line that fails its checksum are not copied even
where their data look right: the damaged byte may be in their metadata.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nmmfast.data.store import (
    _DATA,
    _FRAME_BYTES,
    _HEADER,
    _INDEX,
    CHANNELS,
    FORMAT,
    JOINTS,
    VERSION,
    PoseStore,
    StoreError,
    read_index,
    sample_crc32,
)

__all__ = ["Problem", "StoreCheck", "check_store", "repair_store"]


@dataclass(frozen=True)
class Problem:
    """One finding: `sample` is None where no sample can be named (the header, a line whose
    JSON is unreadable)."""

    where: str
    sample: str | None
    problem: str

    def __str__(self) -> str:
        name = f"sample {self.sample!r}: " if self.sample is not None else ""
        return f"{self.where}: {name}{self.problem}"


@dataclass
class StoreCheck:
    """What `check_store` found. `intact` holds the records that `repair_store` copies, in the
    store's order; `lost` the ids that cannot be recovered (where they can be named)."""

    path: Path
    records: int = 0
    intact: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    torn: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = f"{self.path}: {len(self.intact)} of {self.records} indexed samples intact"
        if self.torn:
            head += "; the last index line is an interrupted write (never committed)"
        if self.ok:
            return head + "; no problems"
        return "\n".join(
            [head + f"; {len(self.problems)} problems:"] + [f"  {p}" for p in self.problems]
        )


def _named_ids(raw: bytes) -> list[str]:
    """Ids in an index line that fails its checksum, where its JSON still reads."""
    try:
        payload = json.loads(raw.partition(b" ")[2])
        return [str(rec["id"]) for rec in payload["records"]]
    except (ValueError, KeyError, TypeError):
        return []


def _header_problem(path: Path) -> str | None:
    header_path = path / _HEADER
    try:
        header = json.loads(header_path.read_text())
    except (OSError, ValueError) as err:
        return f"unreadable store header ({err})"
    if not isinstance(header, dict):
        return "the store header is not a JSON object"
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        return (
            f"expected format {FORMAT!r} version {VERSION}, found {header.get('format')!r} "
            f"version {header.get('version')!r}"
        )
    return None


def _check_lines(path: Path, found: StoreCheck) -> Iterator[dict[str, Any]]:
    """Records of the index lines that pass their checksum; problems of the others."""
    index_path = path / _INDEX
    if not index_path.is_file():
        found.problems.append(Problem(str(index_path), None, "missing"))
        return
    lines = read_index(index_path)
    for line in lines:
        where = f"{index_path}: line {line.number}"
        if line.records is not None:
            if not line.terminated:
                lost = "lost its end of line" if line.newline_changed else "lacks its end of line"
                found.problems.append(Problem(where, None, lost))
            found.records += len(line.records)
            yield from line.records
            continue
        if not line.terminated:
            found.torn = True  # an interrupted write: its samples were never committed
            continue
        ids = _named_ids(line.raw)
        found.records += len(ids)
        if not ids:
            found.problems.append(
                Problem(where, None, "corrupt (checksum or JSON); its samples cannot be named")
            )
        for sample_id in ids:
            found.problems.append(
                Problem(where, sample_id, "its index line fails its checksum; not recoverable")
            )


def _data_map(path: Path) -> np.ndarray:
    """The whole frames of the data file, read-only (its size decides how many)."""
    data_path = path / _DATA
    have = (data_path.stat().st_size // _FRAME_BYTES) if data_path.is_file() else 0
    if not have:
        return np.zeros((0, JOINTS, CHANNELS), np.float32)
    return np.memmap(data_path, dtype=np.float32, mode="r", shape=(have, JOINTS, CHANNELS))


def check_store(path: str | Path, *, progress: bool = False) -> StoreCheck:
    """Verify every record of the store at `path` without changing anything (module docstring)."""
    path = Path(path)
    if not (path / _HEADER).is_file():
        raise StoreError(f"{path}: not a pose store (no {_HEADER})")
    found = StoreCheck(path)
    header = _header_problem(path)
    if header is not None:
        found.problems.append(Problem(str(path / _HEADER), None, header))
    data_path = path / _DATA
    data = _data_map(path)
    have = data.shape[0]
    seen: set[str] = set()
    claimed = np.zeros(have, dtype=bool)
    records = list(_check_lines(path, found))
    for rec in tqdm(records, desc="checking samples", unit="sample", disable=not progress):
        sample_id, where = str(rec["id"]), str(data_path)
        start, frames = rec.get("offset"), rec.get("frames")
        if sample_id in seen:
            found.problems.append(Problem(str(path / _INDEX), sample_id, "indexed twice"))
            continue
        seen.add(sample_id)
        if not (isinstance(start, int) and isinstance(frames, int) and start >= 0 and frames > 0):
            found.problems.append(
                Problem(where, sample_id, f"bad offset/frames ({start!r}, {frames!r})")
            )
            continue
        if start + frames > have:
            found.problems.append(
                Problem(
                    where,
                    sample_id,
                    f"frames {start}..{start + frames} lie past the end of the data "
                    f"({have} frames): the data file was truncated",
                )
            )
            continue
        if claimed[start : start + frames].any():
            found.problems.append(Problem(where, sample_id, "its frames overlap another sample's"))
            continue
        claimed[start : start + frames] = True
        pose = np.asarray(data[start : start + frames])
        if "crc32" in rec and sample_crc32(pose) != rec["crc32"]:
            found.problems.append(
                Problem(where, sample_id, "its frames fail their checksum (the data changed)")
            )
            continue
        bad = ~np.isfinite(pose)
        if bad.any():
            t, j, c = np.argwhere(bad)[0]
            found.problems.append(
                Problem(where, sample_id, f"non-finite value at frame {t}, joint {j}, channel {c}")
            )
            continue
        found.intact.append(rec)
    return found


def repair_store(
    path: str | Path, out: str | Path, *, progress: bool = False
) -> tuple[StoreCheck, PoseStore]:
    """Copy every intact sample of the store at `path` to a new store at `out` (which must not
    exist or be empty). The damaged store is only read. Returns the check and the new store."""
    path, out = Path(path), Path(out)
    if out.resolve() == path.resolve():
        raise StoreError(f"{out}: repair writes a new store; give another directory than {path}")
    found = check_store(path)
    data = _data_map(path)
    new = PoseStore.create(out)
    chunk: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for rec in tqdm(found.intact, desc="copying samples", unit="sample", disable=not progress):
        pose = np.asarray(data[rec["offset"] : rec["offset"] + rec["frames"]])
        meta = {k: v for k, v in rec.items() if k not in ("id", "offset", "frames", "crc32")}
        chunk.append((str(rec["id"]), pose, meta))
        if sum(len(c[1]) for c in chunk) >= 4096:
            new.extend(chunk)
            chunk = []
    if chunk:
        new.extend(chunk)
    return found, new


def configure_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="verify every record; list problems by sample id (exit 1 if any)"
    )
    check.add_argument("store", help="the pose store directory")
    repair = actions.add_parser(
        "repair", help="copy every intact sample to a new store; the original is only read"
    )
    repair.add_argument("store", help="the damaged pose store directory")
    repair.add_argument("--out", required=True, help="the new store (must not exist or be empty)")


def run_cli(args: argparse.Namespace) -> int:
    if args.action == "check":
        found = check_store(args.store, progress=True)
        print(found.summary())
        return 0 if found.ok else 1
    found, new = repair_store(args.store, args.out, progress=True)
    print(found.summary())
    lost = found.records - len(found.intact)
    print(f"{new.path}: {len(new)} samples copied; {lost} not copied; {args.store} unchanged")
    new.close()
    return 0
