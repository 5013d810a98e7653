"""Dataset: normalisation and frame selection, repeat-last padding with masks, length buckets,
DDP sharding, and unusable samples skipped and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nmmfast.data.dataset import BucketBatchSampler, Corpus, PoseDataset, collate, target_of
from nmmfast.skeleton import normalize, select_frames


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from nmmfast.data import PoseStore
    from nmmfast.data.annotations import read_manifest, write_manifest
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus

    path = tmp_path_factory.mktemp("corpus")
    write_corpus(generate(24, 0), path)
    rows = read_manifest(path / "manifest.jsonl")
    parts = make_partitions(rows, 0)
    # A clip with no confident joint and one with an empty gloss, both in the control train split.
    store = PoseStore(path / "poses")
    store.append("empty_clip", np.zeros((5, 133, 3), np.float32), signer="01")
    store.append("no_gloss", store.get(rows[1]["id"], copy=True), signer="01")
    store.close()
    rows.append({**rows[0], "id": "empty_clip"})
    rows.append({**rows[1], "id": "no_gloss", "gloss": ""})
    write_manifest(path / "manifest.jsonl", rows)
    parts["control"]["train"] += ["empty_clip", "no_gloss", "missing_id"]
    write_partitions(path, {"control": parts["control"]})
    return path


def test_samples_are_normalised_after_frame_selection(corpus_dir):
    corpus = Corpus.open(corpus_dir)
    ids = corpus.partition("control")["dev"]
    dataset = PoseDataset(corpus, ids, "cslr", max_frames=40)
    sample_id, poses, target = dataset[0]
    raw = corpus.store[sample_id]
    frames = np.linspace(0, raw.shape[0] - 1, 40).round().astype(int)
    np.testing.assert_array_equal(poses.numpy(), normalize(raw[frames]))
    assert target == target_of(corpus.rows[sample_id], "cslr") == corpus.rows[sample_id]["gloss"]
    assert dataset[0][1].shape == (40, 69, 3)
    assert torch.equal(dataset[0][1], poses)  # evaluation is deterministic


def test_training_frames_are_random_sorted_and_reseeded_per_epoch(corpus_dir):
    corpus = Corpus.open(corpus_dir)
    ids = corpus.partition("control")["dev"]
    dataset = PoseDataset(corpus, ids, "slt", max_frames=16, train=True, seed=3)
    first = dataset[0][1]
    assert torch.equal(first, dataset[0][1])  # same seed and epoch: same frames
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0][1])
    raw = corpus.store[dataset.sample_ids[0]]
    frames = select_frames(raw.shape[0], 16, train=True, rng=np.random.default_rng([3, 1, 0]))
    assert (np.diff(frames) > 0).all() and raw.shape[0] > 16
    np.testing.assert_array_equal(dataset[0][1].numpy(), normalize(raw[frames]))


def test_unusable_samples_are_skipped_and_counted(corpus_dir):
    corpus = Corpus.open(corpus_dir)
    train_ids = corpus.partition("control")["train"]
    dataset = PoseDataset(corpus, train_ids, "cslr")
    assert dict(dataset.skipped) == {"no pose": 1, "empty gloss": 1, "not in manifest": 1}
    assert dataset.skipped_ids["no pose"] == ["empty_clip"]
    assert len(dataset) == len(train_ids) - 3
    slt = PoseDataset(corpus, train_ids, "slt")
    assert dict(slt.skipped) == {"no pose": 1, "not in manifest": 1}  # its text is fine


def test_collate_repeats_the_last_frame_and_masks_it():
    a = torch.arange(2 * 2 * 3, dtype=torch.float32).view(2, 2, 3)
    b = torch.ones(4, 2, 3)
    batch = collate([("a", a, "x"), ("b", b, "y")])
    assert batch.poses.shape == (2, 4, 2, 3)
    assert torch.equal(batch.poses[0, 2], a[1]) and torch.equal(batch.poses[0, 3], a[1])
    assert batch.mask.tolist() == [[True, True, False, False], [True] * 4]
    assert batch.ids == ["a", "b"] and batch.targets == ["x", "y"]


def test_buckets_group_similar_lengths_and_cover_every_sample():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    batches = list(BucketBatchSampler(lengths, 2))
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches:
        spread = [lengths[i] for i in batch]
        assert max(spread) - min(spread) <= 1
    capped = list(BucketBatchSampler(lengths, 4, max_tokens=110))
    assert all(len(b) * max(lengths[i] for i in b) <= 110 for b in capped)


def test_shuffled_buckets_depend_on_seed_and_epoch_and_shard_over_ranks():
    lengths = list(range(40))
    sampler = BucketBatchSampler(lengths, 3, shuffle=True, seed=1)
    first = list(sampler)
    assert first == list(BucketBatchSampler(lengths, 3, shuffle=True, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != first
    ranks = [
        list(BucketBatchSampler(lengths, 3, shuffle=True, seed=1, rank=r, world_size=2))
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) == 7  # 14 batches used: ranks step together
    seen = [i for rank in ranks for b in rank for i in b]
    assert len(seen) == len(set(seen))


def test_unknown_task_is_refused(corpus_dir):
    with pytest.raises(ValueError, match="unknown task"):
        target_of({"gloss": "A", "text": "a"}, "islr")
    assert json.loads((corpus_dir / "partitions" / "control.json").read_text())["train"]
