"""Partitions of a corpus (paper Table 1): `control` (random samples), `si` (dev and test signers
never in train) and `us` (dev and test sentences never in train), each with train/dev/test, built
from manifest metadata with a seed, verified disjoint, and saved as
`<corpus>/partitions/<name>.json`. A partition can also come from the user's own id lists
(`partition_from_lists`: official splits, any name). Also the `nmmfast split` command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nmmfast.errors import UserError

__all__ = [
    "PARTITIONS",
    "SPLITS",
    "load_partition",
    "make_partitions",
    "partition_from_lists",
    "partition_stats",
    "read_id_list",
    "verify_partition",
    "write_partitions",
]

SPLITS = ("train", "dev", "test")
# partition -> the manifest key whose values never cross splits (None: samples are the unit)
PARTITIONS: dict[str, str | None] = {"control": None, "si": "signer", "us": "sentence"}


def _order(units: Iterable[str], seed: int) -> list[str]:
    """Units in a seeded order that depends only on the set of units, not on input order, NumPy or
    Python versions: sorted by SHA-256 of (seed, unit)."""
    key = lambda u: hashlib.sha256(f"{seed}\x00{u}".encode()).digest()  # noqa: E731
    return sorted(set(units), key=key)


def _split_units(
    units: Sequence[str], dev_fraction: float, test_fraction: float
) -> dict[str, set[str]]:
    n = len(units)
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    n_dev = max(1, round(dev_fraction * n)) if dev_fraction > 0 else 0
    if n_test + n_dev >= n:
        raise ValueError(
            f"cannot split {n} units into train/dev/test with dev fraction "
            f"{dev_fraction} and test fraction {test_fraction}: train would be empty"
        )
    return {
        "test": set(units[:n_test]),
        "dev": set(units[n_test : n_test + n_dev]),
        "train": set(units[n_test + n_dev :]),
    }


def _unit_of(row: Mapping[str, Any], key: str | None, name: str) -> str:
    if key is None:
        return row["id"]
    value = row.get(key)
    if value is None or value == "":
        raise ValueError(
            f"partition {name!r} needs the {key!r} of every row; sample {row['id']!r} has none"
        )
    return str(value)


def make_partitions(
    rows: Iterable[Mapping[str, Any]],
    seed: int = 0,
    *,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.2,
    names: Sequence[str] = tuple(PARTITIONS),
) -> dict[str, dict[str, Any]]:
    """Build partitions from manifest rows (keys id, signer, sentence, gloss).

    Each partition splits its unit (samples for `control`, signers for `si`, sentences for `us`)
    into test/dev/train by the given fractions of units (at least one unit each), in a seeded
    order that does not depend on row order. Returns
    {name: {"train": [ids], "dev": [ids], "test": [ids], "seed": seed, "stats": {...}}}, ids in
    manifest order; every partition is verified (disjoint, complete) before it is returned.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("make_partitions: no rows")
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in PARTITIONS:
            raise ValueError(
                f"make_partitions: unknown partition {name!r}; known: {list(PARTITIONS)}"
            )
        key = PARTITIONS[name]
        units = [_unit_of(r, key, name) for r in rows]
        split_of = _split_units(_order(units, seed), dev_fraction, test_fraction)
        part: dict[str, Any] = {s: [] for s in SPLITS}
        for row, unit in zip(rows, units, strict=True):
            for split in SPLITS:
                if unit in split_of[split]:
                    part[split].append(row["id"])
        verify_partition(rows, part, name)
        part["seed"] = seed
        part["stats"] = partition_stats(rows, part)
        part["stats"]["fractions"] = {"dev": dev_fraction, "test": test_fraction}
        out[name] = part
    return out


def verify_partition(
    rows: Iterable[Mapping[str, Any]], part: Mapping[str, Sequence[str]], name: str
) -> None:
    """Raise ValueError unless the splits are disjoint, only hold manifest ids, and (for `si`/`us`)
    share no signer/sentence. Ids of the manifest absent from every split are allowed only when
    the partition says so (`excluded`)."""
    by_id = {r["id"]: r for r in rows}
    seen: dict[str, str] = {}
    for split in SPLITS:
        if split not in part:
            raise ValueError(f"partition {name!r}: no {split!r} split")
        for sample_id in part[split]:
            if sample_id in seen:
                raise ValueError(
                    f"partition {name!r}: sample {sample_id!r} is in both "
                    f"{seen[sample_id]!r} and {split!r}"
                )
            if sample_id not in by_id:
                raise ValueError(
                    f"partition {name!r}: {split} holds {sample_id!r}, not in the manifest"
                )
            seen[sample_id] = split
    excluded = set(part.get("excluded", ()))
    left_out = [i for i in by_id if i not in seen and i not in excluded]
    if left_out:
        raise ValueError(
            f"partition {name!r}: {len(left_out)} manifest ids in no split, e.g. {left_out[:5]}"
        )
    key = PARTITIONS.get(name)
    if key is None:
        return
    owner: dict[str, str] = {}
    for sample_id, split in seen.items():
        unit = by_id[sample_id].get(key)
        if owner.setdefault(unit, split) != split:
            raise ValueError(
                f"partition {name!r}: {key} {unit!r} is in both {owner[unit]!r} and "
                f"{split!r} (e.g. sample {sample_id!r})"
            )


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Sample ids from a text file, one per line; blank lines and lines starting with # are
    skipped, surrounding spaces dropped. An id listed twice raises ValueError naming both lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such id list")
    ids: list[str] = []
    line_of: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        sample_id = line.strip()
        if not sample_id or sample_id.startswith("#"):
            continue
        if sample_id in line_of:
            raise ValueError(
                f"{path}: {sample_id!r} listed twice (lines {line_of[sample_id]} and {number})"
            )
        line_of[sample_id] = number
        ids.append(sample_id)
    if not ids:
        raise ValueError(f"{path}: lists no ids")
    return ids


def partition_from_lists(
    rows: Iterable[Mapping[str, Any]],
    name: str,
    lists: Mapping[str, str | os.PathLike[str] | None],
) -> dict[str, Any]:
    """A partition named `name` from id-list files: `lists` maps "train", "test" and optionally
    "dev" to a file (`read_id_list`). Raises ValueError naming the file and the ids when an id is
    not in the manifest or is in two lists. Manifest ids in no list are kept out of every split
    and recorded (`excluded`)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"partition name {name!r}: use letters, digits, '_', '-', '.' (a file name)"
        )
    rows = list(rows)
    known = {r["id"] for r in rows}
    part: dict[str, Any] = {}
    source_of: dict[str, tuple[str, Path]] = {}
    for split in SPLITS:
        path = lists.get(split)
        if path is None:
            if split != "dev":
                raise ValueError(f"partition {name!r}: no {split} list")
            part[split] = []
            continue
        path = Path(path)
        ids = read_id_list(path)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} ids not in the manifest, e.g. {unknown[:10]}")
        both = [i for i in ids if i in source_of]
        if both:
            other_split, other = source_of[both[0]]
            raise ValueError(
                f"{path}: {len(both)} ids also in the {other_split} list {other}, "
                f"e.g. {both[:10]}; the lists must not overlap"
            )
        source_of.update({i: (split, path) for i in ids})
        part[split] = ids
    part["excluded"] = sorted(known - set(source_of))
    part["lists"] = {s: str(p) for s, p in lists.items() if p is not None}
    verify_partition(rows, part, name)
    part["stats"] = partition_stats(rows, part)
    return part


def _tokens(rows: Iterable[Mapping[str, Any]], key: str) -> list[str]:
    return [t for r in rows for t in str(r.get(key) or "").split()]


def partition_stats(
    rows: Iterable[Mapping[str, Any]], part: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Per split: rows, signers, sentences, gloss tokens and vocabulary; for dev and test, the
    share of gloss tokens (and text words) unseen in train (OOV rate) and the share of rows whose
    signer / sentence occurs in train."""
    by_id = {r["id"]: r for r in rows}
    split_rows = {s: [by_id[i] for i in part[s]] for s in SPLITS}
    train_glosses = set(_tokens(split_rows["train"], "gloss"))
    train_words = set(_tokens(split_rows["train"], "text"))
    train_signers = {r.get("signer") for r in split_rows["train"]}
    train_sentences = {r.get("sentence") for r in split_rows["train"]}
    stats: dict[str, Any] = {}
    for split, srows in split_rows.items():
        glosses = _tokens(srows, "gloss")
        entry: dict[str, Any] = {
            "rows": len(srows),
            "signers": len({r.get("signer") for r in srows if r.get("signer") is not None}),
            "sentences": len({r.get("sentence") for r in srows if r.get("sentence") is not None}),
            "gloss_tokens": len(glosses),
            "gloss_vocabulary": len(set(glosses)),
        }
        if split != "train":
            words = _tokens(srows, "text")
            entry["gloss_oov_rate"] = (
                (sum(g not in train_glosses for g in glosses) / len(glosses)) if glosses else 0.0
            )
            entry["text_oov_rate"] = (
                (sum(w not in train_words for w in words) / len(words)) if words else 0.0
            )
            entry["seen_signer_rate"] = (
                (sum(r.get("signer") in train_signers for r in srows) / len(srows))
                if srows
                else 0.0
            )
            entry["seen_sentence_rate"] = (
                (sum(r.get("sentence") in train_sentences for r in srows) / len(srows))
                if srows
                else 0.0
            )
        stats[split] = entry
    return stats


def write_partitions(
    corpus_dir: str | os.PathLike[str], parts: Mapping[str, Mapping[str, Any]]
) -> list[Path]:
    """Write each partition to `<corpus_dir>/partitions/<name>.json` (keys train, dev, test, seed,
    stats and any others given), atomically. Returns the paths written."""
    out_dir = Path(corpus_dir) / "partitions"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, part in parts.items():
        missing = [s for s in SPLITS if s not in part]
        if missing:
            raise ValueError(f"write_partitions: partition {name!r} lacks splits {missing}")
        doc = {s: list(part[s]) for s in SPLITS}
        doc["seed"] = part.get("seed")
        doc["stats"] = part.get("stats", {})
        doc.update({k: v for k, v in part.items() if k not in doc})
        path = out_dir / f"{name}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def load_partition(corpus_dir: str | os.PathLike[str], name: str) -> dict[str, list[str]]:
    """{"train": [ids], "dev": [ids], "test": [ids]} from `<corpus_dir>/partitions/<name>.json`."""
    path = Path(corpus_dir) / "partitions" / f"{name}.json"
    if not path.is_file():
        available = (
            sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        )
        raise FileNotFoundError(
            f"{path}: no partition {name!r} (available: {available or 'none'}; "
            f"run `nmmfast split {corpus_dir}`)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg})") from None
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for split in SPLITS:
        ids = doc.get(split)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"{path}: {split!r} must be a list of sample ids")
        for sample_id in ids:
            if sample_id in seen:
                raise ValueError(
                    f"{path}: sample {sample_id!r} is in both {seen[sample_id]!r} and {split!r}"
                )
            seen[sample_id] = split
        out[split] = ids
    return out


# -- command line ----------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="DIR", help="corpus directory (manifest.jsonl, poses/)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument(
        "--dev-fraction",
        type=float,
        default=0.1,
        help="share of units (samples, signers, sentences) for dev (default 0.1)",
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of units for test (default 0.2)"
    )
    parser.add_argument(
        "--partitions",
        nargs="+",
        default=list(PARTITIONS),
        choices=list(PARTITIONS),
        help="which partitions to build (default: all)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail when manifest rows lack poses (default: leave them out, listed)",
    )
    own = parser.add_argument_group(
        "a partition from your own id lists (one id per line; instead of control/si/us)"
    )
    own.add_argument(
        "--name", help="partition name, e.g. official (written to partitions/NAME.json)"
    )
    own.add_argument("--train", metavar="FILE", help="ids of the train split")
    own.add_argument("--dev", metavar="FILE", help="ids of the dev split (optional)")
    own.add_argument("--test", metavar="FILE", help="ids of the test split")
    own.add_argument(
        "--overwrite", action="store_true", help="replace an existing partition of that name"
    )


def _format_stats(name: str, part: Mapping[str, Any]) -> list[str]:
    stats = part["stats"]
    lines = [
        f"{name}:",
        f"  {'split':<6}{'rows':>8}{'signers':>9}{'sentences':>11}{'vocab':>8}"
        f"{'gloss OOV':>11}{'text OOV':>10}{'seen signer':>13}{'seen sent.':>12}",
    ]

    def pct(entry: Mapping[str, Any], key: str) -> str:
        return f"{100 * entry[key]:.2f}%" if key in entry else "-"

    for split in SPLITS:
        s = stats[split]
        lines.append(
            f"  {split:<6}{s['rows']:>8}{s['signers']:>9}{s['sentences']:>11}"
            f"{s['gloss_vocabulary']:>8}{pct(s, 'gloss_oov_rate'):>11}{pct(s, 'text_oov_rate'):>10}"
            f"{pct(s, 'seen_signer_rate'):>13}{pct(s, 'seen_sentence_rate'):>12}"
        )
    return lines


def _run_named(args: argparse.Namespace, corpus: Path) -> int:
    """`split DIR --name NAME --train FILE --test FILE [--dev FILE]`."""
    from nmmfast.data.annotations import check_coverage, read_manifest
    from nmmfast.data.store import PoseStore

    if not args.train or not args.test:
        raise ValueError(f"--name {args.name}: give --train FILE and --test FILE (--dev optional)")
    manifest = corpus / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: not found (a corpus holds manifest.jsonl, poses/)")
    target = corpus / "partitions" / f"{args.name}.json"
    if target.exists() and not args.overwrite:
        raise FileExistsError(f"{target}: partition {args.name!r} exists; pass --overwrite")
    rows = read_manifest(manifest)
    part = partition_from_lists(
        rows, args.name, {"train": args.train, "dev": args.dev, "test": args.test}
    )
    if (corpus / "poses").exists():
        listed = [i for s in SPLITS for i in part[s]]
        coverage = check_coverage(
            [r for r in rows if r["id"] in set(listed)], PoseStore(corpus / "poses").ids()
        )
        if coverage.without_poses:
            print(
                f"warning: {len(coverage.without_poses)} listed ids have no poses in "
                f"{corpus / 'poses'} (e.g. {coverage.without_poses[:5]}); they are skipped "
                f"and counted wherever the partition is used",
                file=sys.stderr,
            )
    (path,) = write_partitions(corpus, {args.name: part})
    print("\n".join(_format_stats(args.name, part)))
    if part["excluded"]:
        print(f"  {len(part['excluded'])} manifest ids are in no list (recorded as excluded)")
    print(f"  -> {path}")
    return 0


def run_cli(args: argparse.Namespace) -> int:
    from nmmfast.data.annotations import check_coverage, read_manifest
    from nmmfast.data.store import PoseStore

    corpus = Path(args.corpus)
    if args.name is not None:
        return _run_named(args, corpus)
    if args.train or args.dev or args.test:
        raise ValueError("--train/--dev/--test define a partition of your own: add --name NAME")
    manifest_path = corpus / "manifest.jsonl"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path}: not found (a corpus directory holds manifest.jsonl and poses/)"
        )
    rows = read_manifest(manifest_path)
    excluded: list[str] = []
    poses_dir = corpus / "poses"
    if poses_dir.exists():
        store = PoseStore(poses_dir)
        coverage = check_coverage(rows, store.ids())
        print(coverage.report())
        if coverage.without_poses:
            if args.strict:
                raise UserError(
                    f"{manifest_path}: {len(coverage.without_poses)} rows have no poses in "
                    f"{poses_dir} and --strict was given"
                )
            excluded = coverage.without_poses
            print(f"leaving {len(excluded)} rows without poses out of every partition")
    else:
        print(f"note: {poses_dir} does not exist; splitting the manifest without checking poses")
    kept = [r for r in rows if r["id"] not in set(excluded)]
    parts = make_partitions(
        kept,
        args.seed,
        dev_fraction=args.dev_fraction,
        test_fraction=args.test_fraction,
        names=args.partitions,
    )
    for part in parts.values():
        if excluded:
            part["excluded"] = excluded
    signers = {r["signer"] for r in kept if r["signer"] is not None}
    sentences = {r["sentence"] for r in kept if r["sentence"] is not None}
    vocab = {g for r in kept for g in r["gloss"].split()}
    print(
        f"{len(kept)} rows, {len(signers)} signers, {len(sentences)} sentences, "
        f"gloss vocabulary {len(vocab)}, seed {args.seed}"
    )
    for path, (name, part) in zip(write_partitions(corpus, parts), parts.items(), strict=True):
        print("\n".join(_format_stats(name, part)))
        print(f"  -> {path}")
    return 0
