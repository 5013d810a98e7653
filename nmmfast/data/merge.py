"""`nmmfast merge-stores`: several pose stores (e.g. the per-rank shards of `nmmfast extract`) into
one. Every check runs before anything is written: each input must be a store, no sample id may
appear in two of them, and `--out` must hold no samples (or, with `--update`, only samples equal
to theirs). Poses and metadata are copied exactly, in atomic batches; the inputs are only read.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.data.store import _HEADER, PoseStore
from nmmfast.errors import UserError, name_some

__all__ = ["MergeReport", "configure_parser", "merge_stores", "run_cli"]

# frames per `extend` call: one atomic commit of about 25 MB of poses
_BATCH_FRAMES = 16384
_SHOWN = 10  # conflicts listed in an error message


@dataclass
class MergeReport:
    """What a merge did: samples and frames added to the output, samples it already held."""

    out: Path
    stores: int
    added: int
    frames: int
    already: int

    def summary(self) -> str:
        kept = f", {self.already} already there" if self.already else ""
        return (
            f"{self.out}: {self.added} samples ({self.frames} frames) added from "
            f"{self.stores} stores{kept}"
        )


def merge_stores(
    shards: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    update: bool = False,
    batch_frames: int = _BATCH_FRAMES,
) -> MergeReport:
    """Copy every sample of the stores `shards`, in the order given, into the store `out` (created
    if absent) and return a `MergeReport`.

    Raw poses (float32 [T, 133, 3]) are copied byte for byte and metadata key for key, with
    `PoseStore.extend` in batches of at most `batch_frames` frames; the shards are only read.
    Refused before anything is written (`UserError`, `OSError` or `ValueError` naming the store
    and the sample id): a missing shard or one that is not a pose store, a shard given twice or
    equal to `out`, a sample id held by two shards, and an `out` that is not a store or already
    holds samples. With `update`, `out` may hold samples: each must equal the shards' sample of
    the same id (poses and metadata), and only the samples it lacks are added, so a merge that
    was interrupted, or repeated after the shards grew, finishes the job.
    """
    if not shards:
        raise ValueError("merge-stores: give at least one store to merge")
    if batch_frames < 1:
        raise ValueError(f"merge-stores: batch_frames must be >= 1, got {batch_frames}")
    out = Path(out)
    stores = _open_shards(shards, out)
    target: PoseStore | None = None
    try:
        owner = _owners(stores)
        target = _open_target(out, update)
        already = _check_target(target, stores, owner) if target is not None else set()
        if target is None:
            target = PoseStore.create(out)
        added = frames = 0
        for batch in _batches(stores, already, batch_frames):
            added += target.extend(batch)
            frames += sum(raw.shape[0] for _, raw, _ in batch)
        return MergeReport(out, len(stores), added, frames, len(already))
    finally:
        for store in stores:
            store.close()
        if target is not None:
            target.close()


def _open_shards(shards: Sequence[str | os.PathLike[str]], out: Path) -> list[PoseStore]:
    seen: dict[Path, Path] = {}
    out_key = out.resolve()
    stores: list[PoseStore] = []
    try:
        for shard in shards:
            path = Path(shard)
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such pose store")
            key = path.resolve()
            if key == out_key:
                raise ValueError(f"{path}: is also the output store; merge into a new one")
            if key in seen:
                raise ValueError(f"{path}: given twice (also as {seen[key]})")
            seen[key] = path
            stores.append(PoseStore(path))  # StoreError (a UserError) names a non-store
    except BaseException:
        for store in stores:
            store.close()
        raise
    return stores


def _owners(stores: list[PoseStore]) -> dict[str, PoseStore]:
    """Sample id -> the store holding it; refuses ids held by two stores, naming both."""
    owner: dict[str, PoseStore] = {}
    clashes: list[str] = []
    for store in stores:
        for sample_id in store.ids():
            first = owner.setdefault(sample_id, store)
            if first is not store:
                clashes.append(f"{sample_id!r} in {first.path} and {store.path}")
    if clashes:
        raise UserError(
            f"{len(clashes)} sample ids are in more than one store, nothing was written: "
            f"{name_some(clashes, _SHOWN, sep='; ')}"
        )
    return owner


def _open_target(out: Path, update: bool) -> PoseStore | None:
    """The existing output store, or None where it is still to be created (checked here: a file,
    or a directory holding anything but a store, is refused)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; give a new store directory")
    if not (out / _HEADER).exists():
        if any(out.iterdir()):
            raise UserError(f"{out}: directory is not empty and is not a pose store")
        return None
    target = PoseStore(out)
    if len(target) and not update:
        target.close()
        raise UserError(
            f"{out}: already holds {len(target)} samples; merge into a new store, or pass "
            f"--update to add only the samples it lacks"
        )
    return target


def _check_target(
    target: PoseStore, stores: list[PoseStore], owner: dict[str, PoseStore]
) -> set[str]:
    """Ids that `target` already holds, after checking each equals its shard's sample."""
    already = {sample_id for sample_id in target.ids() if sample_id in owner}
    differ: list[str] = []
    for sample_id in sorted(already):
        store = owner[sample_id]
        what = _difference(store, target, sample_id)
        if what:
            differ.append(f"{sample_id!r} ({what}) in {store.path}")
    if differ:
        raise UserError(
            f"{target.path}: {len(differ)} samples differ from the stores' samples of the same "
            f"id, nothing was written: {name_some(differ, _SHOWN, sep='; ')}"
        )
    return already


def _difference(store: PoseStore, target: PoseStore, sample_id: str) -> str:
    ours, theirs = store[sample_id], target[sample_id]
    if ours.shape != theirs.shape or ours.tobytes() != theirs.tobytes():
        return "poses"
    if store.meta(sample_id) != target.meta(sample_id):
        return "metadata"
    return ""


def _batches(
    stores: list[PoseStore], skip: set[str], batch_frames: int
) -> Iterator[list[tuple[str, np.ndarray, dict[str, Any]]]]:
    """(id, raw, meta) triples of every sample not in `skip`, cut into batches of at most
    `batch_frames` frames (a longer sample goes alone)."""
    batch: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    frames = 0
    for store in stores:
        for sample_id in store.ids():
            if sample_id in skip:
                continue
            raw = store[sample_id]
            if batch and frames + raw.shape[0] > batch_frames:
                yield batch
                batch, frames = [], 0
            meta = store.meta(sample_id)
            del meta["id"], meta["frames"]  # set by the store itself
            batch.append((sample_id, raw, meta))
            frames += raw.shape[0]
    if batch:
        yield batch


# -- command line ----------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", metavar="SHARD", help="pose stores to merge")
    parser.add_argument(
        "--out",
        required=True,
        metavar="STORE",
        help="the merged store (created if absent; must hold no samples unless --update)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="STORE may hold samples already: those must equal the shards' samples of the same "
        "id; only the missing ones are added (finishes an interrupted or repeated merge)",
    )


def run_cli(args: argparse.Namespace) -> int:
    report = merge_stores(args.shards, args.out, update=args.update)
    print(report.summary())
    return 0
