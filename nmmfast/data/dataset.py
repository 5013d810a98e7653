"""Torch dataset over a corpus (pose store + manifest + partition) for training and decoding.

Samples are normalised with `nmmfast.skeleton.normalize` after frame selection (≤ max_frames:
random sorted frames in training, deterministic uniform otherwise); batches are length-bucketed
and padded by repeating the last frame, with a [B, T] bool mask. Unusable samples (no poses, no
frames, no confident body so the clip normalises to zeros, empty target) are skipped and
counted by reason. A non-finite value in a sample's poses (a damaged store) stops the job with the
sample, frame and joint named, unless `skip_bad` leaves such samples out (listed by reason).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from nmmfast.errors import UserError, name_some
from nmmfast.skeleton import MAX_FRAMES, get_layout, normalize, select_frames

__all__ = [
    "TASK_TARGET_KEY",
    "BucketBatchSampler",
    "add_skip_bad_argument",
    "skipped_bad_line",
    "Corpus",
    "NON_FINITE",
    "PoseBatch",
    "PoseDataset",
    "collate",
    "target_of",
]

# Which manifest field a task learns to produce.
TASK_TARGET_KEY = {"cslr": "gloss", "slt": "text"}
# The skip reason of samples with non-finite poses (only with skip_bad).
NON_FINITE = "non-finite poses"


def target_of(row: Mapping[str, Any], task: str) -> str:
    """The target string of a manifest row for `task` ("cslr": gloss, "slt": text)."""
    try:
        key = TASK_TARGET_KEY[task]
    except KeyError:
        raise ValueError(
            f"unknown task {task!r}; expected one of {sorted(TASK_TARGET_KEY)}"
        ) from None
    return " ".join(str(row.get(key) or "").split())


@dataclass
class Corpus:
    """A corpus directory: `poses/` (PoseStore), `manifest.jsonl`, `partitions/<name>.json`."""

    path: Path
    store: Any
    rows: dict[str, dict[str, Any]]

    @classmethod
    def open(cls, path: str | os.PathLike) -> Corpus:
        from nmmfast.data import PoseStore
        from nmmfast.data.annotations import read_manifest

        path = Path(path)
        rows = {row["id"]: row for row in read_manifest(path / "manifest.jsonl")}
        return cls(path=path, store=PoseStore(path / "poses"), rows=rows)

    def partition(self, name: str) -> dict[str, list[str]]:
        from nmmfast.data.partitions import load_partition

        return load_partition(self.path, name)

    def samples_sha256(self, ids: Sequence[str], task: str) -> str:
        """sha256 over what a job reads of `ids`: each id, its poses' bytes and its `task`
        target. Equal digests mean equal inputs, wherever the corpus lives; a sample the store
        or manifest lacks counts as absent."""
        from nmmfast.data.store import sample_crc32

        digest = hashlib.sha256()
        for sample_id in ids:
            row = self.rows.get(sample_id)
            poses = (
                sample_crc32(self.store[sample_id]) if sample_id in self.store else "absent"
            )
            target = target_of(row, task) if row is not None else None
            digest.update(json.dumps([sample_id, poses, target]).encode())
        return digest.hexdigest()


def add_skip_bad_argument(parser: Any) -> None:
    """`--skip-bad` on the commands that read poses of a split."""
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out (and list) samples with non-finite poses instead of stopping",
    )


def skipped_bad_line(skipped_ids: Mapping[str, Sequence[str]]) -> str | None:
    """One line listing the samples `skip_bad` left out, or None if there were none."""
    ids = list(skipped_ids.get(NON_FINITE, ()))
    if not ids:
        return None
    return f"left out {len(ids)} samples with {NON_FINITE}: {name_some(ids)}"


@dataclass
class PoseBatch:
    """ids [B]; poses [B, T, J, 3] float32; mask [B, T] bool (True = real frame); targets [B]."""

    ids: list[str]
    poses: torch.Tensor
    mask: torch.Tensor
    targets: list[str]

    def to(self, device: torch.device | str) -> PoseBatch:
        return PoseBatch(self.ids, self.poses.to(device), self.mask.to(device), self.targets)


@dataclass
class PoseDataset(Dataset):
    """Normalised samples of one split. `skipped` counts the ids left out, by reason.

    corpus: an open `Corpus`; ids: the split's sample ids; task: "cslr" | "slt";
    train: random frame selection (seeded per sample, epoch and `seed`), else uniform.
    skip_bad: leave out samples with non-finite poses (reason `NON_FINITE`) instead of raising a
    `UserError` that names the first one.
    """

    corpus: Corpus
    ids: Sequence[str]
    task: str
    layout: str = "unisign69"
    max_frames: int = MAX_FRAMES
    train: bool = False
    seed: int = 0
    skip_bad: bool = False
    skipped: Counter = field(default_factory=Counter, init=False)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict, init=False)
    epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        get_layout(self.layout)  # fail early on an unknown layout
        kept: list[str] = []
        self.lengths: list[int] = []
        for sample_id in self.ids:
            reason = self._problem(sample_id)
            if reason:
                self.skipped[reason] += 1
                self.skipped_ids.setdefault(reason, []).append(sample_id)
                continue
            kept.append(sample_id)
            self.lengths.append(min(self.corpus.store.meta(sample_id)["frames"], self.max_frames))
        self.sample_ids = kept
        self.targets = [target_of(self.corpus.rows[i], self.task) for i in kept]

    def _problem(self, sample_id: str) -> str | None:
        if sample_id not in self.corpus.rows:
            return "not in manifest"
        if sample_id not in self.corpus.store:
            return "no poses"
        if self.corpus.store.meta(sample_id)["frames"] == 0:
            return "zero frames"
        raw = self.corpus.store[sample_id]
        bad = ~np.isfinite(raw)
        if bad.any():
            if self.skip_bad:
                return NON_FINITE
            frame, joint, _ = np.argwhere(bad)[0]
            raise UserError(
                f"{self.corpus.store.path}: sample {sample_id!r} has a non-finite value at frame "
                f"{frame}, joint {joint} ({int(bad.any(axis=(1, 2)).sum())} frames affected); "
                f"`nmmfast store check` lists every damaged sample, --skip-bad leaves them out"
            )
        if not np.any(normalize(raw, self.layout)):
            return "no pose"  # fewer than 4 confident body joints: normalises to all zeros
        if not target_of(self.corpus.rows[sample_id], self.task):
            return f"empty {TASK_TARGET_KEY[self.task]}"
        return None

    def set_epoch(self, epoch: int) -> None:
        """Reseed training frame selection (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, str]:
        sample_id = self.sample_ids[index]
        raw = self.corpus.store[sample_id]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        frames = select_frames(raw.shape[0], self.max_frames, train=self.train, rng=rng)
        if frames.shape[0] != raw.shape[0]:
            raw = raw[frames]
        poses = torch.from_numpy(np.ascontiguousarray(normalize(raw, self.layout)))
        return sample_id, poses, self.targets[index]


def collate(items: Sequence[tuple[str, torch.Tensor, str]]) -> PoseBatch:
    """Pad to the longest sample by repeating each sample's last frame; mask marks real frames."""
    longest = max(poses.shape[0] for _, poses, _ in items)
    joints = items[0][1].shape[1:]
    padded = torch.empty((len(items), longest, *joints), dtype=torch.float32)
    mask = torch.zeros((len(items), longest), dtype=torch.bool)
    for row, (_, poses, _) in enumerate(items):
        length = poses.shape[0]
        padded[row, :length] = poses
        padded[row, length:] = poses[length - 1]
        mask[row, :length] = True
    return PoseBatch([i for i, _, _ in items], padded, mask, [t for _, _, t in items])


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices with similar lengths (little padding).

    Indices are sorted by length (ties and, with `shuffle`, batch order drawn from seed + epoch)
    and cut into batches of ≤ batch_size samples and ≤ max_tokens padded frames. Under DDP each
    rank takes every world_size-th batch of the same global order (the batch count is cut to a
    multiple of world_size so ranks step together).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        max_tokens: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"BucketBatchSampler: batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.shuffle:
            perm = rng.permutation(len(self.lengths))
            order = perm[np.argsort(self.lengths[perm], kind="stable")]
        else:
            order = np.argsort(self.lengths, kind="stable")
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = int(self.lengths[index])
            full = len(current) >= self.batch_size
            too_long = (
                self.max_tokens is not None and (len(current) + 1) * longest > self.max_tokens
            )
            if current and (full or too_long):
                batches.append(current)
                current = []
            current.append(int(index))
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            usable = len(batches) - len(batches) % self.world_size
            batches = batches[:usable][self.rank :: self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
