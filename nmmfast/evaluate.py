"""`nmmfast evaluate`: scores a decoder's predictions file with `nmmfast.metrics`, per task.

Reads the JSON Lines predictions, the training targets (a file, or a corpus manifest + partition),
prints each task's scores with their signature and writes them as JSON (atomically).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from nmmfast._io import write_json_atomic
from nmmfast.metrics import TASKS, ScoreReport, compute_scores

# The manifest column that holds each task's target.
TARGET_FIELD = {"cslr": "gloss", "slt": "text"}


def read_predictions(
    path: str | os.PathLike[str], task: str | None = None
) -> dict[str, list[dict]]:
    """Rows of a predictions file grouped by task, in file order.

    Each non-blank line is `{"id": ..., "prediction": ..., "reference": ..., "task": ...}`;
    `prediction` may be null (a failed decode, scored as empty). With `task`, only rows of that
    task (or rows without a task) are kept; without it, every row must name its task.
    """
    path = Path(path)
    by_task: dict[str, list[dict]] = {}
    seen_ids: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in ("id", "prediction", "reference"):
                if key not in row:
                    raise ValueError(f"{where}: row has no {key!r} (keys: {sorted(row)})")
            row_task = row.get("task", task)
            if row_task is None:
                raise ValueError(f"{where}: sample {row['id']!r} has no 'task'; pass --task")
            if row_task not in TASKS:
                raise ValueError(
                    f"{where}: sample {row['id']!r} has task {row_task!r}, expected one of {TASKS}"
                )
            if task is not None and row_task != task:
                continue
            prediction, reference = row["prediction"], row["reference"]
            if prediction is not None and not isinstance(prediction, str):
                raise ValueError(
                    f"{where}: sample {row['id']!r}: 'prediction' must be a string or null"
                )
            if not isinstance(reference, str):
                raise ValueError(f"{where}: sample {row['id']!r}: 'reference' must be a string")
            key = (row_task, str(row["id"]))
            if key in seen_ids:
                raise ValueError(
                    f"{where}: sample {row['id']!r} ({row_task}) repeats line {seen_ids[key]}"
                )
            seen_ids[key] = line_number
            by_task.setdefault(row_task, []).append(row)
    if not by_task:
        only = f" for task {task!r}" if task else ""
        raise ValueError(f"{path}: no predictions{only}")
    return by_task


def read_target_lines(path: str | os.PathLike[str]) -> list[str]:
    """Training targets from a text file, one per line (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def read_corpus_train_targets(
    corpus: str | os.PathLike[str], partition: str, task: str
) -> list[str]:
    """The `task` targets of the training ids of `partition` in a corpus directory.

    Reads `<corpus>/manifest.jsonl` (rows with `id`, `gloss`, `text`) and
    `<corpus>/partitions/<partition>.json` (`{"train": [...], "dev": [...], "test": [...]}`).
    """
    corpus = Path(corpus)
    manifest_path = corpus / "manifest.jsonl"
    partition_path = corpus / "partitions" / f"{partition}.json"
    field = TARGET_FIELD[task]
    targets_by_id: dict[str, Any] = {}
    with manifest_path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{manifest_path}:{line_number}: not valid JSON ({error.msg})"
                ) from None
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError(f"{manifest_path}:{line_number}: expected an object with an 'id'")
            targets_by_id[str(row["id"])] = row.get(field)
    with partition_path.open(encoding="utf-8") as handle:
        split = json.load(handle)
    if not isinstance(split, dict) or not isinstance(split.get("train"), list):
        raise ValueError(f"{partition_path}: expected an object with a 'train' list of ids")
    targets = []
    for sample_id in split["train"]:
        if str(sample_id) not in targets_by_id:
            raise ValueError(
                f"{partition_path}: training id {sample_id!r} is not in {manifest_path}"
            )
        target = targets_by_id[str(sample_id)]
        if not isinstance(target, str):
            raise ValueError(
                f"{manifest_path}: sample {sample_id!r} has no {field!r} string "
                f"(needed for {task} training targets)"
            )
        targets.append(target)
    return targets


def file_digest(path: str | os.PathLike[str], length: int = 12) -> str:
    """The first `length` hex digits of a file's SHA-256 (identifies a checkpoint)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def evaluate_file(
    predictions: str | os.PathLike[str],
    *,
    task: str | None = None,
    train_targets: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    partition: str | None = None,
    lowercase: bool = False,
    beam: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> dict[str, ScoreReport]:
    """Score a predictions file: task → ScoreReport. Arguments mirror `nmmfast evaluate`."""
    if corpus is not None and partition is None:
        raise ValueError("--corpus needs --partition (which partition's training ids to use)")
    if corpus is not None and train_targets is not None:
        raise ValueError("give either --train-targets or --corpus/--partition, not both")
    rows_by_task = read_predictions(predictions, task)
    settings: dict[str, object] = {}
    if partition is not None:
        settings["partition"] = partition
    if beam is not None:
        settings["beam"] = beam
    if checkpoint is not None:
        settings["checkpoint"] = file_digest(checkpoint)
    file_targets = read_target_lines(train_targets) if train_targets is not None else None
    reports = {}
    for row_task in sorted(rows_by_task, key=TASKS.index):
        rows = rows_by_task[row_task]
        targets = file_targets
        if corpus is not None:
            targets = read_corpus_train_targets(corpus, partition, row_task)  # type: ignore[arg-type]
        reports[row_task] = compute_scores(
            [row["prediction"] for row in rows],
            [row["reference"] for row in rows],
            task=row_task,
            train_targets=targets,
            lowercase=lowercase,
            settings=settings,
        )
    return reports


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        required=True,
        metavar="P.jsonl",
        help="JSON Lines from the decoder: id, prediction, reference, task",
    )
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument(
        "--train-targets",
        metavar="FILE",
        help="training targets, one per line (enables the seen rate)",
    )
    targets.add_argument(
        "--corpus",
        metavar="DIR",
        help="corpus directory with manifest.jsonl and partitions/ "
        "(training targets of --partition)",
    )
    parser.add_argument(
        "--partition",
        metavar="NAME",
        help="partition name (control, si, us, ...); recorded in the signature",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="score only this task (rows without a task are taken as this one)",
    )
    parser.add_argument(
        "--lowercase",
        action="store_true",
        help="lower-case predictions, references and targets before scoring",
    )
    parser.add_argument(
        "--beam",
        type=int,
        metavar="N",
        help="decoding beam that produced the predictions (signature only)",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint that produced the predictions; its SHA-256 prefix goes into the signature",
    )
    parser.add_argument("--out", metavar="results.json", help="write the scores as JSON here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_cli(args: argparse.Namespace) -> int:
    try:
        reports = evaluate_file(
            args.predictions,
            task=args.task,
            train_targets=args.train_targets,
            corpus=args.corpus,
            partition=args.partition,
            lowercase=args.lowercase,
            beam=args.beam,
            checkpoint=args.checkpoint,
        )
    except (OSError, ValueError, TypeError) as error:
        print(f"nmmfast evaluate: error: {error}", file=sys.stderr)
        return 2
    payload = {
        "predictions": str(args.predictions),
        "partition": args.partition,
        "scores": {task: report.as_dict() for task, report in reports.items()},
    }
    if args.json:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        where = f" — partition {args.partition}" if args.partition else ""
        print(f"{args.predictions}{where}")
        for report in reports.values():
            print(report.format_text())
    if args.out:
        write_json_atomic(args.out, payload)
        if not args.json:
            print(f"wrote {args.out}")
    return 0
