"""`nmmfast evaluate`: scores a decoder's predictions files with `nmmfast.metrics`, per task.

Reads the JSON Lines predictions (one file, or several, each tagged with its partition), the
training targets (a file, or a corpus manifest + partition), prints each task's scores with their
signature and writes them as JSON (atomically); with several partitions × tasks it also lays them
out as the reference study's Table 2 (`nmmfast.metrics.format_table2`, Markdown and CSV).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmmfast._io import atomic_write_text, file_sha256, write_json_atomic
from nmmfast.errors import name_some, positive_int
from nmmfast.metrics import TASKS, ScoreReport, compute_scores, format_table2

# The manifest column that holds each task's target.
TARGET_FIELD = {"cslr": "gloss", "slt": "text"}

# What `--out-dir` writes besides one `<partition>-<task>.json` per partition × task.
TABLE2_FILES = {"markdown": "table2.md", "csv": "table2.csv"}

_PARTITION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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
    return file_sha256(path)[:length]


def split_coverage(
    rows: list[dict],
    corpus: str | os.PathLike[str],
    partition: str,
    split: str,
    *,
    allow_partial: bool = False,
    where: str | os.PathLike[str] = "predictions",
) -> str:
    """Check that prediction rows are the whole `split` of `partition`: ids outside the split
    are refused (a few named); fewer rows than the split are refused unless `allow_partial`.
    Returns the coverage, "covered/total", for the signature."""
    from nmmfast.data.partitions import load_partition

    split_ids = load_partition(corpus, partition)[split]
    wanted = set(split_ids)
    foreign = [str(row["id"]) for row in rows if str(row["id"]) not in wanted]
    if foreign:
        raise ValueError(
            f"{where}: {len(foreign)} predictions are not in the {split} split of partition "
            f"{partition!r} ({name_some(foreign, 5, quote=True)}); score them against their own "
            f"partition"
        )
    have = {str(row["id"]) for row in rows}
    missing = [i for i in split_ids if i not in have]
    coverage = f"{len(split_ids) - len(missing)}/{len(split_ids)}"
    if missing and not allow_partial:
        raise ValueError(
            f"{where}: predictions cover {len(split_ids) - len(missing)} of {len(split_ids)} "
            f"{split} clips of partition {partition!r} (missing "
            f"{name_some(missing, 5, quote=True)}); decode the rest, or pass --allow-partial to "
            f"score these (the coverage enters the signature)"
        )
    return coverage


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
    split: str = "test",
    allow_partial: bool = False,
) -> dict[str, ScoreReport]:
    """Score a predictions file: task → ScoreReport. Arguments mirror `nmmfast evaluate`.

    With `corpus` and `partition` the predictions must be the whole `split` of the partition
    (`split_coverage`); their coverage is part of each report's signature."""
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
        row_settings = dict(settings)
        if corpus is not None:
            assert partition is not None
            targets = read_corpus_train_targets(corpus, partition, row_task)
            row_settings["coverage"] = split_coverage(
                rows, corpus, partition, split, allow_partial=allow_partial, where=predictions
            )
        reports[row_task] = compute_scores(
            [row["prediction"] for row in rows],
            [row["reference"] for row in rows],
            task=row_task,
            train_targets=targets,
            lowercase=lowercase,
            settings=row_settings,
        )
    return reports


@dataclass(frozen=True)
class PredictionsFile:
    """One predictions file and the partition its samples come from (None: not given)."""

    path: Path
    partition: str | None = None


def parse_predictions_arg(text: str, default_partition: str | None = None) -> PredictionsFile:
    """`PARTITION=PATH` or `PATH` (partition: `default_partition`).

    An argument naming an existing file is always a path, even when it holds a '='.
    """
    if "=" in text and not Path(text).exists():
        partition, _, path = text.partition("=")
        if not partition or not path:
            raise ValueError(f"--predictions {text!r}: expected PARTITION=PATH or PATH")
        return PredictionsFile(Path(path), partition)
    return PredictionsFile(Path(text), default_partition)


def evaluate_files(
    files: list[PredictionsFile],
    *,
    task: str | None = None,
    train_targets: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    lowercase: bool = False,
    beam: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    split: str = "test",
    allow_partial: bool = False,
) -> list[tuple[PredictionsFile, dict[str, ScoreReport]]]:
    """Score several predictions files (each with its own partition): per file, task → report.

    With more than one file every file needs a partition, no partition × task may come from two
    files, `--checkpoint` (one file's weights) is refused, and so is `--train-targets` when the
    files span several partitions (each partition has its own training set; use `--corpus`).
    """
    if not files:
        raise ValueError("no predictions file given")
    if len(files) > 1:
        unnamed = [str(f.path) for f in files if f.partition is None]
        if unnamed:
            raise ValueError(
                f"with several predictions files each needs its partition (PARTITION=PATH); "
                f"none for {', '.join(unnamed)}"
            )
        if checkpoint is not None:
            raise ValueError(
                "--checkpoint names the weights of one predictions file; give one file with it"
            )
        if train_targets is not None and len({f.partition for f in files}) > 1:
            raise ValueError(
                "--train-targets holds one partition's training targets, but the files span "
                "several partitions; use --corpus DIR"
            )
    evaluated = []
    source: dict[tuple[str | None, str], Path] = {}
    for predictions in files:
        reports = evaluate_file(
            predictions.path,
            task=task,
            train_targets=train_targets,
            corpus=corpus,
            partition=predictions.partition,
            lowercase=lowercase,
            beam=beam,
            checkpoint=checkpoint,
            split=split,
            allow_partial=allow_partial,
        )
        for row_task in reports:
            key = (predictions.partition, row_task)
            if key in source:
                raise ValueError(
                    f"partition {predictions.partition!r}, task {row_task!r} comes from both "
                    f"{source[key]} and {predictions.path}"
                )
            source[key] = predictions.path
        evaluated.append((predictions, reports))
    return evaluated


def table2_results(
    evaluated: list[tuple[PredictionsFile, dict[str, ScoreReport]]],
) -> dict[str, dict[str, ScoreReport]]:
    """partition → task → report, the input of `format_table2` (every file needs a partition)."""
    results: dict[str, dict[str, ScoreReport]] = {}
    for predictions, reports in evaluated:
        if predictions.partition is None:
            raise ValueError(
                f"{predictions.path}: Table 2 rows are partitions; pass --partition "
                "(or PARTITION=PATH)"
            )
        results.setdefault(predictions.partition, {}).update(reports)
    return results


def write_results_dir(
    out_dir: str | os.PathLike[str],
    evaluated: list[tuple[PredictionsFile, dict[str, ScoreReport]]],
    *,
    wide: bool = False,
) -> list[Path]:
    """Write `<partition>-<task>.json` per partition × task and Table 2 as Markdown and CSV.

    Each JSON is `{"predictions", "partition", "task", "scores"}` (the layout of a study's
    `metrics/` directory, which `nmmfast report` reads). Returns the paths written.
    """
    results = table2_results(evaluated)
    for partition in results:
        if not _PARTITION_NAME.fullmatch(partition):
            raise ValueError(
                f"partition {partition!r} cannot name a file: use letters, digits, '_', '-', '.'"
            )
    out_dir = Path(out_dir)
    written = []
    for predictions, reports in evaluated:
        for row_task, report in reports.items():
            payload = {
                "predictions": str(predictions.path),
                "partition": predictions.partition,
                "task": row_task,
                "scores": report.as_dict(),
            }
            path = out_dir / f"{predictions.partition}-{row_task}.json"
            written.append(write_json_atomic(path, payload))
    for fmt, name in TABLE2_FILES.items():
        text = format_table2(results, fmt=fmt, wide=wide)
        written.append(atomic_write_text(out_dir / name, text))
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        required=True,
        nargs="+",
        metavar="[PARTITION=]P.jsonl",
        help="JSON Lines from the decoder: id, prediction, reference, task. Several files are "
        "scored together, each tagged with its partition (control=a.jsonl si=b.jsonl); a file "
        "without a tag takes --partition",
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
        "(training targets of each file's partition)",
    )
    parser.add_argument(
        "--partition",
        metavar="NAME",
        help="partition name (control, si, us, ...) of predictions files given without "
        "PARTITION=; recorded in the signature",
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "dev", "test"],
        help="with --corpus: the split the predictions must cover (default test)",
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="with --corpus: score predictions that cover only part of the split (the "
        "coverage, e.g. 3/8, enters the signature)",
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
        type=positive_int,
        metavar="N",
        help="decoding beam that produced the predictions (signature only)",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="checkpoint that produced the predictions; its SHA-256 prefix goes into the signature",
    )
    parser.add_argument(
        "--out",
        metavar="results.json",
        help="write the scores of the (one) predictions file as JSON here",
    )
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write <partition>-<task>.json per partition × task, and Table 2 as "
        f"{TABLE2_FILES['markdown']} and {TABLE2_FILES['csv']}",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="Table 2 with every metric of both tasks, not only CSLR WER and SLT BLEU-4",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print JSON instead of text (a list, one entry per file, with several files)",
    )


def _payload(predictions: PredictionsFile, reports: dict[str, ScoreReport]) -> dict[str, Any]:
    return {
        "predictions": str(predictions.path),
        "partition": predictions.partition,
        "scores": {task: report.as_dict() for task, report in reports.items()},
    }


def run_cli(args: argparse.Namespace) -> int:
    try:
        files = [parse_predictions_arg(text, args.partition) for text in args.predictions]
        if args.out and len(files) > 1:
            raise ValueError("--out takes one predictions file; with several use --out-dir DIR")
        evaluated = evaluate_files(
            files,
            task=args.task,
            train_targets=args.train_targets,
            corpus=args.corpus,
            lowercase=args.lowercase,
            beam=args.beam,
            checkpoint=args.checkpoint,
            split=args.split,
            allow_partial=args.allow_partial,
        )
        table = format_table2(table2_results(evaluated), wide=args.wide) if len(files) > 1 else None
        written = write_results_dir(args.out_dir, evaluated, wide=args.wide) if args.out_dir else []
    except (OSError, ValueError, TypeError) as error:
        print(f"nmmfast evaluate: error: {error}", file=sys.stderr)
        return 2
    payloads = [_payload(predictions, reports) for predictions, reports in evaluated]
    if args.json:
        shown: Any = payloads[0] if len(payloads) == 1 else payloads
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    else:
        for predictions, reports in evaluated:
            where = f" — partition {predictions.partition}" if predictions.partition else ""
            print(f"{predictions.path}{where}")
            for report in reports.values():
                print(report.format_text())
        if table is not None:
            print()
            print(table, end="")
    if args.out:
        write_json_atomic(args.out, payloads[0])
        if not args.json:
            print(f"wrote {args.out}")
    if written and not args.json:
        print(f"wrote {len(written)} files to {args.out_dir}")
    return 0
