from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nmmfast
from nmmfast.data import PoseStore, StoreError


def _raw(rng, frames):
    return rng.random((frames, 133, 3), dtype=np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_roundtrip_append_extend(tmp_path, rng):
    store = PoseStore.create(tmp_path / "poses")
    a, b, c = _raw(rng, 5), _raw(rng, 1), _raw(rng, 12)
    store.append("a", a, signer="01", sentence="0001", fps=30.0, width=640, height=480, source="x")
    assert (
        store.extend([("b", b, {"signer": "02"}), ("c", c.astype(np.float64), {"nmm": [1, 2]})])
        == 2
    )
    assert store.extend([]) == 0
    reopened = PoseStore(tmp_path / "poses")
    for s in (store, reopened):
        assert s.ids() == ["a", "b", "c"] and len(s) == 3 and "b" in s and "z" not in s
        np.testing.assert_array_equal(s["a"], a)
        np.testing.assert_array_equal(s["c"], c)
        assert s["b"].dtype == np.float32 and s["b"].shape == (1, 133, 3)
        assert s.meta("a") == {
            "id": "a",
            "frames": 5,
            "signer": "01",
            "sentence": "0001",
            "fps": 30.0,
            "width": 640,
            "height": 480,
            "source": "x",
        }
        assert s.meta("c")["nmm"] == [1, 2] and s.meta("c")["signer"] is None
        assert s.total_frames == 18
    view = reopened["a"]
    with pytest.raises(ValueError):
        view[0, 0, 0] = 1.0  # read-only view into the memory map
    copy = reopened.get("a", copy=True)
    copy[0, 0, 0] = 7.0
    assert reopened["a"][0, 0, 0] == a[0, 0, 0]
    with pytest.raises(KeyError, match="'zz'"):
        reopened["zz"]


def test_reader_sees_later_commits_after_refresh(tmp_path, rng):
    writer = PoseStore.create(tmp_path / "s")
    writer.append("a", _raw(rng, 3))
    reader = PoseStore(tmp_path / "s")
    writer.append("b", _raw(rng, 4))
    assert "b" not in reader
    reader.refresh()
    assert reader.ids() == ["a", "b"] and reader["b"].shape[0] == 4


@pytest.mark.parametrize(
    "sample_id, raw, meta, message",
    [
        ("", np.zeros((2, 133, 3)), {}, "non-empty string"),
        ("x", np.zeros((2, 69, 3)), {}, r"\[T, 133, 3\]"),
        ("x", np.zeros((0, 133, 3)), {}, "empty sequence"),
        ("x", np.full((2, 133, 3), np.inf), {}, "frame 0, joint 0"),
        ("x", np.zeros((2, 133, 3)), {"when": object()}, "JSON"),
        ("x", np.zeros((2, 133, 3)), {"frames": 3}, "reserved"),
        ("x", np.zeros((2, 133, 3)), {"fps": float("nan")}, "not finite"),
        ("a", np.zeros((2, 133, 3)), {}, "already in the store"),
    ],
)
def test_append_rejects_bad_samples_and_names_them(tmp_path, rng, sample_id, raw, meta, message):
    store = PoseStore.create(tmp_path / "s")
    store.append("a", _raw(rng, 2))
    with pytest.raises(ValueError, match=message) as err:
        store.extend([(sample_id, raw, meta)])
    assert str(tmp_path / "s") in str(err.value)
    assert PoseStore(tmp_path / "s").ids() == ["a"]


def test_extend_is_all_or_nothing(tmp_path, rng):
    store = PoseStore.create(tmp_path / "s")
    store.append("a", _raw(rng, 2))
    size = (tmp_path / "s" / "poses.f32").stat().st_size
    records = [("b", _raw(rng, 3), {}), ("c", _raw(rng, 3), {}), ("b", _raw(rng, 3), {})]
    with pytest.raises(ValueError, match="twice in one write"):
        store.extend(records)
    assert store.ids() == ["a"] and PoseStore(tmp_path / "s").ids() == ["a"]
    assert (tmp_path / "s" / "poses.f32").stat().st_size == size
    store.extend(records[:2])
    assert PoseStore(tmp_path / "s").ids() == ["a", "b", "c"]


def _crash_script(store_path: Path, when: str) -> str:
    """A child process that commits "a", then dies (os._exit) while writing "b"."""
    return textwrap.dedent(f"""
        import os, numpy as np
        from nmmfast.data.store import PoseStore
        store = PoseStore.create({str(store_path)!r})
        store.append("a", np.full((4, 133, 3), 0.5, np.float32))
        real_commit = PoseStore._commit_index
        def crash(self, batch):
            if {when!r} == "torn":  # half of the index line reaches the disk
                with open(self.path / "index.jsonl", "ab") as f:
                    f.write(b'0badc0de {{"records": [{{"id": "b", "off')
            os._exit(3)
        PoseStore._commit_index = crash
        store.extend([("b", np.full((6, 133, 3), 0.25, np.float32), {{}}),
                      ("c", np.full((2, 133, 3), 0.75, np.float32), {{}})])
    """)


@pytest.mark.parametrize("when", ["before-index", "torn"])
def test_interrupted_write_leaves_every_committed_sample(tmp_path, when):
    path = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(Path(nmmfast.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", _crash_script(path, when)], env=env)
    assert done.returncode == 3
    # the data of "b" and "c" reached the data file, their index line did not (or only half)
    assert (path / "poses.f32").stat().st_size == (4 + 6 + 2) * 133 * 3 * 4
    store = PoseStore(path)
    assert store.ids() == ["a"]
    np.testing.assert_array_equal(store["a"], np.full((4, 133, 3), 0.5, np.float32))
    # the next writer discards the uncommitted bytes and carries on
    store.append("b", np.full((1, 133, 3), 0.125, np.float32))
    assert (path / "poses.f32").stat().st_size == 5 * 133 * 3 * 4
    again = PoseStore(path)
    assert again.ids() == ["a", "b"]
    np.testing.assert_array_equal(again["b"], np.full((1, 133, 3), 0.125, np.float32))
    np.testing.assert_array_equal(again["a"], np.full((4, 133, 3), 0.5, np.float32))


def test_corruption_is_reported_not_skipped(tmp_path, rng):
    path = tmp_path / "s"
    store = PoseStore.create(path)
    store.append("a", _raw(rng, 2))
    store.append("b", _raw(rng, 2))
    store.close()
    index = path / "index.jsonl"
    lines = index.read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"a"', b'"A"')  # checksum no longer matches
    index.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match="line 1 of 2 is corrupt"):
        PoseStore(path)
    with pytest.raises(StoreError, match="not a pose store"):
        PoseStore(tmp_path)


@pytest.mark.parametrize("samples", [1, 3])
def test_a_corrupt_last_line_is_corruption_and_no_writer_shrinks_the_store(
    tmp_path, rng, samples, capsys
):
    """A final index line that ends with a newline was committed whole: a bad checksum there is
    corruption, not a torn write. Opening refuses; no writer truncates the data file."""
    from nmmfast.cli import main
    from nmmfast.data.importers import write_npz

    path = tmp_path / "corpus" / "poses"
    with PoseStore.create(path) as store:
        for i in range(samples):
            store.append(f"x{i}", _raw(rng, 5))
    index = path / "index.jsonl"
    body = bytearray(index.read_bytes())
    body[-5] ^= 0x01  # inside the last line's JSON, before its newline
    index.write_bytes(bytes(body))
    size = (path / "poses.f32").stat().st_size
    with pytest.raises(StoreError, match=f"line {samples} of {samples} is corrupt"):
        PoseStore(path)
    write_npz(tmp_path / "new.npz", {"y": _raw(rng, 2)})
    assert main(["import", str(tmp_path / "new.npz"), "--out", str(tmp_path / "corpus")]) == 2
    assert "is corrupt" in capsys.readouterr().err
    assert (path / "poses.f32").stat().st_size == size
    assert index.read_bytes() == bytes(body)


def test_a_missing_index_beside_data_is_an_error(tmp_path, rng):
    path = tmp_path / "s"
    with PoseStore.create(path) as store:
        store.append("a", _raw(rng, 3))
    (path / "index.jsonl").unlink()
    with pytest.raises(StoreError, match="missing beside 3 frames"):
        PoseStore(path)
    assert (path / "poses.f32").stat().st_size == 3 * 133 * 3 * 4


def test_truncated_data_file_is_an_error(tmp_path, rng):
    store = PoseStore.create(tmp_path / "s")
    store.append("a", _raw(rng, 3))
    store.close()
    with open(tmp_path / "s" / "poses.f32", "r+b") as f:
        f.truncate(133 * 3 * 4)
    with pytest.raises(StoreError, match="truncated"):
        PoseStore(tmp_path / "s")


def test_one_writer_at_a_time(tmp_path, rng):
    first = PoseStore.create(tmp_path / "s")
    first.append("a", _raw(rng, 1))
    second = PoseStore(tmp_path / "s")
    with pytest.raises(StoreError, match="another process"):
        second.append("b", _raw(rng, 1))
    first.close()
    second.append("b", _raw(rng, 1))
    assert PoseStore(tmp_path / "s").ids() == ["a", "b"]


def test_create_refuses_to_clobber(tmp_path, rng):
    PoseStore.create(tmp_path / "s").append("a", _raw(rng, 1))
    with pytest.raises(FileExistsError, match="already exists"):
        PoseStore.create(tmp_path / "s")
    assert PoseStore.create(tmp_path / "s", exist_ok=True).ids() == ["a"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        PoseStore.create(tmp_path / "other")


def test_batches_are_length_bucketed(tmp_path, rng):
    store = PoseStore.create(tmp_path / "s")
    lengths = [9, 3, 7, 1, 5, 3, 8, 2]
    store.extend((f"s{i}", _raw(rng, t), {}) for i, t in enumerate(lengths))
    frames = {f"s{i}": t for i, t in enumerate(lengths)}
    batches = store.batches(3)
    assert [len(b) for b in batches] == [3, 3, 2]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == sorted(frames) and [frames[i] for i in flat] == sorted(lengths)
    capped = store.batches(8, max_frames=16)
    assert all(len(b) * max(frames[i] for i in b) <= 16 for b in capped if len(b) > 1)
    shuffled = store.batches(3, shuffle=True, seed=5)
    assert shuffled == store.batches(3, shuffle=True, seed=5)
    assert sorted(i for b in shuffled for i in b) == sorted(frames)
    for b in shuffled:  # each batch is still a run of similar lengths
        assert max(frames[i] for i in b) - min(frames[i] for i in b) <= 4
    assert store.batches(2, ids=["s0", "s3"]) == [["s3", "s0"]]
    with pytest.raises(KeyError, match="nope"):
        store.batches(2, ids=["nope"])


def test_read_packed(tmp_path, rng):
    store = PoseStore.create(tmp_path / "s")
    raws = {f"s{i}": _raw(rng, t) for i, t in enumerate([2, 5, 3])}
    store.extend((k, v, {}) for k, v in raws.items())
    for ids in (["s0", "s1", "s2"], ["s2", "s0"], ["s1"]):
        packed, lengths = store.read_packed(ids)
        np.testing.assert_array_equal(packed, np.concatenate([raws[i] for i in ids]))
        assert lengths.tolist() == [raws[i].shape[0] for i in ids]
