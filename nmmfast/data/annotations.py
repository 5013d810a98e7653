"""Annotations: read label files (Isharah CSV, Uni-Sign gzip-pickle labels, our JSON-lines manifest)
into manifest rows, write them back, and report samples that lack poses or labels.

A manifest row is a dict with the required keys `id, signer, sentence, gloss, text` (gloss: glosses
joined by single spaces; signer/sentence may be None when unknown); other keys are kept as they are.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmmfast.errors import name_some

__all__ = [
    "REQUIRED_KEYS",
    "Coverage",
    "check_coverage",
    "parse_isharah_id",
    "read_isharah_csv",
    "read_labels",
    "read_manifest",
    "read_unisign_labels",
    "validate_rows",
    "write_isharah_csv",
    "write_manifest",
    "write_unisign_labels",
]

REQUIRED_KEYS = ("id", "signer", "sentence", "gloss", "text")
_ISHARAH_ID = re.compile(r"^(\d+)_(\d+)$")
_CSL_DAILY_VIDEO = re.compile(r"^(S\d+)_(P\d+)_T\d+")


def _words(value: str) -> str:
    return " ".join(value.split())


def validate_rows(rows: Iterable[Mapping[str, Any]], where: str = "rows") -> list[dict[str, Any]]:
    """Check manifest rows (required keys, types, unique non-empty ids); return them as dicts."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}: row {number} is {type(row).__name__}, expected a mapping")
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise ValueError(f"{where}: row {number} (id {row.get('id')!r}) lacks keys {missing}")
        sample_id = row["id"]
        if not isinstance(sample_id, str) or not sample_id:
            raise ValueError(
                f"{where}: row {number}: id must be a non-empty string, got {sample_id!r}"
            )
        if sample_id in seen:
            raise ValueError(f"{where}: sample id {sample_id!r} appears twice")
        seen.add(sample_id)
        for key in ("gloss", "text"):
            if not isinstance(row[key], str):
                raise ValueError(
                    f"{where}: sample {sample_id!r}: {key} must be a string, "
                    f"got {type(row[key]).__name__}"
                )
        for key in ("signer", "sentence"):
            if row[key] is not None and not isinstance(row[key], str):
                raise ValueError(
                    f"{where}: sample {sample_id!r}: {key} must be a string or null, "
                    f"got {row[key]!r}"
                )
        out.append(dict(row))
    return out


# -- our manifest --------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a JSON-lines manifest (one object per line; blank lines ignored)."""
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON object ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
                )
            rows.append(row)
    return validate_rows(rows, str(path))


def write_manifest(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write rows as a JSON-lines manifest, atomically (a temporary file renamed into place)."""
    path = Path(path)
    checked = validate_rows(rows, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in checked:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


# -- Isharah CSV ---------------------------------------------------------------------------------


def parse_isharah_id(sample_id: str) -> tuple[str, str]:
    """`SS_NNNN` -> (signer "SS", sentence "NNNN")."""
    match = _ISHARAH_ID.match(sample_id)
    if not match:
        raise ValueError(f"Isharah id {sample_id!r} is not of the form SS_NNNN (signer_sentence)")
    return match.group(1), match.group(2)


def read_isharah_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of an Isharah annotation file: pipe-delimited with header `id|gloss|text`, `id|gloss`
    or `id` (challenge test files); id `SS_NNNN` gives signer SS and sentence NNNN."""
    path = Path(path)
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f"{path}: empty file, expected a header `id|gloss` or `id|gloss|text`")
    header = [h.strip() for h in lines[0].split("|")]
    if header not in (["id"], ["id", "gloss"], ["id", "gloss", "text"]):
        raise ValueError(f"{path}:1: header {lines[0]!r}, expected `id|gloss` or `id|gloss|text`")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != len(header):
            raise ValueError(
                f"{path}:{number}: {len(fields)} fields, expected {len(header)} "
                f"({'|'.join(header)})"
            )
        values = dict(zip(header, fields, strict=True))
        sample_id = values["id"].strip()
        try:
            signer, sentence = parse_isharah_id(sample_id)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        rows.append(
            {
                "id": sample_id,
                "signer": signer,
                "sentence": sentence,
                "gloss": _words(values.get("gloss", "")),
                "text": values.get("text", "").strip(),
            }
        )
    return validate_rows(rows, str(path))


def write_isharah_csv(
    path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], *, with_text: bool = True
) -> None:
    """Write rows as an Isharah annotation file (`id|gloss|text`, or `id|gloss`)."""
    path = Path(path)
    checked = validate_rows(rows, str(path))
    lines = ["id|gloss|text" if with_text else "id|gloss"]
    for row in checked:
        fields = [row["id"], row["gloss"]] + ([row["text"]] if with_text else [])
        if any("|" in v or "\n" in v for v in fields):
            raise ValueError(f"{path}: sample {row['id']!r} has '|' or a newline in a field")
        lines.append("|".join(fields))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- Uni-Sign labels ------------------------------------------------------------------------------


def _load_pickle(path: Path) -> Any:
    """Gzip-compressed or plain pickle. Pickles run code when loaded: read only trusted files."""
    with open(path, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            return pickle.load(f)
    except (EOFError, pickle.UnpicklingError, gzip.BadGzipFile, ValueError, OSError) as err:
        raise ValueError(
            f"{path}: unreadable or truncated pickle ({type(err).__name__}: {err})"
        ) from None


def read_unisign_labels(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a Uni-Sign label file: a gzip pickle {name: {name, gloss, text, video_path}}.

    gloss (a list of glosses or a string) is joined by spaces; `video_path` is kept. Signer and
    sentence come from CSL-Daily video names `S<sentence>_P<signer>_T<take>`, else None.
    """
    path = Path(path)
    data = _load_pickle(path)
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{path}: expected a dict name -> {{name, gloss, text, video_path}}, "
            f"got {type(data).__name__}"
        )
    rows = []
    for key, value in data.items():
        if not isinstance(value, Mapping) or "text" not in value:
            raise ValueError(f"{path}: entry {key!r} is not a dict with at least 'text'")
        gloss = value.get("gloss", "")
        if isinstance(gloss, list | tuple):
            gloss = " ".join(str(g) for g in gloss)
        elif not isinstance(gloss, str):
            raise ValueError(f"{path}: entry {key!r}: gloss must be a list or a string")
        video_path = value.get("video_path")
        signer = sentence = None
        if video_path:
            match = _CSL_DAILY_VIDEO.match(Path(str(video_path)).name)
            if match:
                sentence, signer = match.group(1), match.group(2)
        row = {
            "id": str(value.get("name", key)),
            "signer": signer,
            "sentence": sentence,
            "gloss": _words(gloss),
            "text": str(value["text"]),
        }
        if video_path is not None:
            row["video_path"] = str(video_path)
        rows.append(row)
    return validate_rows(rows, str(path))


def write_unisign_labels(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write rows as a Uni-Sign label file (gzip pickle; gloss as a list of glosses)."""
    path = Path(path)
    checked = validate_rows(rows, str(path))
    data = {
        row["id"]: {
            "name": row["id"],
            "gloss": row["gloss"].split(),
            "text": row["text"],
            "video_path": row.get("video_path", row["id"] + ".mp4"),
        }
        for row in checked
    }
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f)


def read_labels(path: str | os.PathLike[str], fmt: str = "auto") -> list[dict[str, Any]]:
    """Read any supported label file. fmt: "isharah", "unisign", "manifest" or "auto" (by suffix:
    .csv/.txt -> Isharah, .jsonl -> manifest, otherwise Uni-Sign)."""
    path = Path(path)
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {".csv": "isharah", ".txt": "isharah", ".jsonl": "manifest"}.get(suffix, "unisign")
    readers = {
        "isharah": read_isharah_csv,
        "unisign": read_unisign_labels,
        "manifest": read_manifest,
    }
    if fmt not in readers:
        raise ValueError(f"read_labels: unknown format {fmt!r}, expected one of {sorted(readers)}")
    return readers[fmt](path)


# -- coverage --------------------------------------------------------------------------------------


@dataclass
class Coverage:
    """Which labelled samples lack poses and which poses lack labels (ids, in input order)."""

    without_poses: list[str] = field(default_factory=list)
    without_rows: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.without_poses and not self.without_rows

    def report(self, limit: int = 10) -> str:
        """Human-readable summary, listing up to `limit` ids of each kind."""
        lines = []
        for what, ids in (
            ("manifest rows without poses", self.without_poses),
            ("poses without manifest rows", self.without_rows),
        ):
            if ids:
                lines.append(f"{len(ids)} {what}: {name_some(ids, limit)}")
        return "\n".join(lines) if lines else "every manifest row has poses and every pose a row"


def check_coverage(rows: Iterable[Mapping[str, Any]], pose_ids: Iterable[str]) -> Coverage:
    """Compare manifest rows with the ids of a pose store."""
    row_ids = [r["id"] for r in rows]
    pose_list = list(pose_ids)
    poses, labelled = set(pose_list), set(row_ids)
    return Coverage(
        without_poses=[i for i in row_ids if i not in poses],
        without_rows=[i for i in pose_list if i not in labelled],
    )
