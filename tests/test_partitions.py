from __future__ import annotations

import json

import numpy as np
import pytest

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.data.annotations import write_manifest
from nmmfast.data.partitions import (
    load_partition,
    make_partitions,
    partition_stats,
    verify_partition,
    write_partitions,
)


def _rows(signers=10, sentences=20):
    return [
        {
            "id": f"{s:02d}_{n:04d}",
            "signer": f"{s:02d}",
            "sentence": f"{n:04d}",
            "gloss": " ".join(f"g{(n + k) % 25}" for k in range(3)),
            "text": f"text {n}",
        }
        for s in range(signers)
        for n in range(sentences)
    ]


def _units(rows, ids, key):
    by_id = {r["id"]: r for r in rows}
    return {by_id[i][key] for i in ids}


def test_partitions_are_disjoint_and_complete():
    rows = _rows()
    parts = make_partitions(rows, seed=1)
    assert list(parts) == ["control", "si", "us"]
    for name, part in parts.items():
        ids = part["train"] + part["dev"] + part["test"]
        assert sorted(ids) == sorted(r["id"] for r in rows), name
        assert part["seed"] == 1 and part["dev"] and part["test"]
    si, us = parts["si"], parts["us"]
    train_signers = _units(rows, si["train"], "signer")
    assert not train_signers & _units(rows, si["test"], "signer")
    assert not train_signers & _units(rows, si["dev"], "signer")
    assert (
        len(_units(rows, si["test"], "signer")) == 2 and len(_units(rows, si["dev"], "signer")) == 1
    )
    train_sentences = _units(rows, us["train"], "sentence")
    assert not train_sentences & _units(rows, us["test"], "sentence")
    assert not _units(rows, us["dev"], "sentence") & _units(rows, us["test"], "sentence")
    control = parts["control"]
    assert (len(control["train"]), len(control["dev"]), len(control["test"])) == (140, 20, 40)
    # a random split of samples: test shares signers and sentences with train
    assert parts["control"]["stats"]["test"]["seen_signer_rate"] == 1.0
    assert parts["si"]["stats"]["test"]["seen_signer_rate"] == 0.0
    assert parts["us"]["stats"]["test"]["seen_sentence_rate"] == 0.0


def test_partitions_depend_on_seed_not_row_order():
    rows = _rows()
    a = make_partitions(rows, seed=7)
    b = make_partitions(rows[::-1], seed=7)
    c = make_partitions(rows, seed=8)
    for name in a:
        for split in ("train", "dev", "test"):
            assert set(a[name][split]) == set(b[name][split])
    assert set(a["si"]["test"]) != set(c["si"]["test"]) or set(a["us"]["test"]) != set(
        c["us"]["test"]
    )
    ids = [r["id"] for r in rows]
    assert a["control"]["train"] == [i for i in ids if i in set(a["control"]["train"])]


def test_partition_errors():
    rows = _rows(signers=2)
    with pytest.raises(ValueError, match="train would be empty"):
        make_partitions(rows, names=["si"])
    rows = _rows()
    rows[3] = dict(rows[3], signer=None)
    with pytest.raises(ValueError, match=r"'signer'.*'00_0003'"):
        make_partitions(rows, names=["si"])
    with pytest.raises(ValueError, match="unknown partition"):
        make_partitions(_rows(), names=["random"])
    with pytest.raises(ValueError, match="no rows"):
        make_partitions([])


def test_verify_partition_catches_leaks():
    rows = _rows()
    part = make_partitions(rows, seed=0, names=["si"])["si"]
    leaked = dict(part, test=part["test"] + [part["train"][0]])
    with pytest.raises(ValueError, match="in both 'train' and 'test'"):
        verify_partition(rows, leaked, "si")
    moved = dict(part, train=part["train"][1:], test=part["test"] + part["train"][:1])
    with pytest.raises(ValueError, match="signer .* is in both"):
        verify_partition(rows, moved, "si")
    dropped = dict(part, train=part["train"][1:])
    with pytest.raises(ValueError, match="1 manifest ids in no split"):
        verify_partition(rows, dropped, "si")
    verify_partition(rows, dict(dropped, excluded=part["train"][:1]), "si")


def test_stats_hand_computed():
    rows = [
        {"id": "a", "signer": "1", "sentence": "x", "gloss": "A B", "text": "one two"},
        {"id": "b", "signer": "2", "sentence": "y", "gloss": "B C", "text": "two"},
        {"id": "c", "signer": "3", "sentence": "z", "gloss": "C D D E", "text": "three two"},
    ]
    stats = partition_stats(rows, {"train": ["a", "b"], "dev": [], "test": ["c"]})
    assert stats["train"] == {
        "rows": 2,
        "signers": 2,
        "sentences": 2,
        "gloss_tokens": 4,
        "gloss_vocabulary": 3,
    }
    assert stats["test"]["gloss_oov_rate"] == 3 / 4  # D, D, E unseen; C seen
    assert stats["test"]["text_oov_rate"] == 1 / 2
    assert stats["dev"]["rows"] == 0 and stats["dev"]["gloss_oov_rate"] == 0.0


def test_write_and_load(tmp_path):
    parts = make_partitions(_rows(), seed=2)
    paths = write_partitions(tmp_path, parts)
    assert [p.name for p in paths] == ["control.json", "si.json", "us.json"]
    doc = json.loads((tmp_path / "partitions" / "si.json").read_text())
    assert {"train", "dev", "test", "seed", "stats"} <= doc.keys() and doc["seed"] == 2
    loaded = load_partition(tmp_path, "si")
    assert loaded == {s: parts["si"][s] for s in ("train", "dev", "test")}
    with pytest.raises(FileNotFoundError, match=r"available: \['control', 'si', 'us'\]"):
        load_partition(tmp_path, "xx")
    doc["test"].append(doc["train"][0])
    (tmp_path / "partitions" / "si.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="si.json: sample .* in both"):
        load_partition(tmp_path, "si")


def test_split_cli(tmp_path, capsys):
    rows = _rows(signers=6, sentences=10)
    write_manifest(tmp_path / "manifest.jsonl", rows)
    store = PoseStore.create(tmp_path / "poses")
    raw = np.full((2, 133, 3), 0.5, np.float32)
    store.extend((r["id"], raw, {}) for r in rows[1:])  # the first row has no poses
    store.append("orphan", raw)
    store.close()
    assert main(["split", str(tmp_path), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 manifest rows without poses: 00_0000" in out
    assert "1 poses without manifest rows: orphan" in out
    assert "59 rows, 6 signers, 10 sentences" in out and "gloss OOV" in out
    for name in ("control", "si", "us"):
        part = load_partition(tmp_path, name)
        assert "00_0000" not in part["train"] + part["dev"] + part["test"]
    doc = json.loads((tmp_path / "partitions" / "us.json").read_text())
    assert doc["excluded"] == ["00_0000"]
    assert main(["split", str(tmp_path), "--strict"]) == 2
    assert main(["split", str(tmp_path / "nothing")]) == 2
