"""Merging pose stores: the union copied exactly, conflicts named before anything is written, bad
inputs refused by the command line with exit 2 and one line; `extract` over two ranks writes one
shard each and the last rank merges them into the store a single process would have written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _tiny_pose_models import make_detector, make_pose_model, write_video

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.data.merge import merge_stores
from nmmfast.errors import UserError
from nmmfast.extract import extract_to_store
from nmmfast.extract.runner import DONE_NAME, LOG_NAME, shard_store, shards_dir


def _raw(rng: np.random.Generator, frames: int) -> np.ndarray:
    raw = rng.random((frames, 133, 3), dtype=np.float32)
    raw[0, 0, 0] = -0.0  # a value whose bytes differ from an equal one (0.0)
    return raw


def _make_store(path: Path, samples: dict[str, tuple[np.ndarray, dict]]) -> Path:
    store = PoseStore.create(path, fsync=False)
    store.extend([(sample_id, raw, meta) for sample_id, (raw, meta) in samples.items()])
    store.close()
    return path


def _digest(path: Path) -> dict[str, str]:
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.iterdir())
        if f.is_file()
    }


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    first = {
        "a": (_raw(rng, 5), {"signer": "01", "fps": 25.0, "source": "a.mp4"}),
        "b": (_raw(rng, 1), {"sentence": "ÖSTERREICH ✓", "extract": {"det_every": 8}}),
    }
    second = {
        "c": (_raw(rng, 3), {"width": 640, "height": 480, "nmm": [1, None, 2.5]}),
        "d": (_raw(rng, 7), {}),
        "e": (_raw(rng, 2), {"flag": True}),
    }
    return [
        _make_store(tmp_path / "s0", first),
        _make_store(tmp_path / "s1", second),
        _make_store(tmp_path / "empty", {}),
    ]


def _assert_same_samples(got: PoseStore, want: PoseStore, ids: list[str]) -> None:
    for sample_id in ids:
        assert got[sample_id].tobytes() == want[sample_id].tobytes(), sample_id
        assert got[sample_id].shape == want[sample_id].shape
        assert got.meta(sample_id) == want.meta(sample_id), sample_id


# -- the merge -------------------------------------------------------------------------------------


def test_merge_is_the_exact_union_and_leaves_the_shards_alone(tmp_path, shards) -> None:
    before = [_digest(path) for path in shards]
    report = merge_stores(shards, tmp_path / "out", batch_frames=6)  # several batches
    assert (report.added, report.frames, report.already, report.stores) == (5, 18, 0, 3)
    merged = PoseStore(tmp_path / "out")
    assert merged.ids() == ["a", "b", "c", "d", "e"]  # shard order, then commit order
    for path in shards:
        shard = PoseStore(path)
        _assert_same_samples(merged, shard, shard.ids())
    assert merged.meta("b")["sentence"] == "ÖSTERREICH ✓" and merged.meta("c")["nmm"] == [
        1,
        None,
        2.5,
    ]
    assert merged["a"][0, 0, 0].tobytes() == np.float32(-0.0).tobytes()
    assert [_digest(path) for path in shards] == before


def test_conflicting_ids_are_named_and_nothing_is_written(tmp_path, shards, capsys) -> None:
    rng = np.random.default_rng(1)
    clash = _make_store(tmp_path / "clash", {"z": (_raw(rng, 2), {}), "c": (_raw(rng, 2), {})})
    with pytest.raises(UserError, match=r"'c' in .*s1 and .*clash") as caught:
        merge_stores([*shards, clash], tmp_path / "out")
    assert "nothing was written" in str(caught.value)
    assert not (tmp_path / "out").exists()
    code = main(["merge-stores", str(shards[1]), str(clash), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "'c'" in err and str(clash) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_out_with_samples_is_refused_unless_update(tmp_path, shards) -> None:
    out = _make_store(tmp_path / "out", {})
    merge_stores(shards[:1], out)  # an empty store is fine
    held = _digest(out)
    with pytest.raises(UserError, match="already holds 2 samples.*--update"):
        merge_stores(shards, out)
    assert _digest(out) == held
    # update: the samples it holds are checked and kept, the missing ones added
    report = merge_stores(shards, out, update=True)
    assert (report.added, report.already) == (3, 2)
    assert PoseStore(out).ids() == ["a", "b", "c", "d", "e"]
    again = merge_stores(shards, out, update=True)  # a repeated merge adds nothing
    assert (again.added, again.already) == (0, 5)
    # a different sample under a held id: named, and nothing written
    rng = np.random.default_rng(3)
    other = _make_store(tmp_path / "other", {"new": (_raw(rng, 1), {}), "a": (_raw(rng, 5), {})})
    renamed = _make_store(tmp_path / "meta", {"new2": (_raw(rng, 1), {})})
    held = _digest(out)
    with pytest.raises(UserError, match=r"'a' \(poses\) in .*other"):
        merge_stores([other, renamed], out, update=True)
    same_poses = PoseStore(shards[0])["b"]
    other_meta = _make_store(tmp_path / "meta2", {"b": (same_poses, {"signer": "99"})})
    with pytest.raises(UserError, match=r"'b' \(metadata\)"):
        merge_stores([other_meta], out, update=True)
    assert _digest(out) == held


def test_cli_merges_and_names_bad_inputs(tmp_path, shards, capsys) -> None:
    out = tmp_path / "out"
    assert main(["merge-stores", *map(str, shards), "--out", str(out)]) == 0
    assert "5 samples (18 frames) added from 3 stores" in capsys.readouterr().out
    not_store = tmp_path / "notes"
    not_store.mkdir()
    (not_store / "readme.txt").write_text("not a store")
    a_file = tmp_path / "poses.pkl"
    a_file.write_bytes(b"\x80")
    new = tmp_path / "new"
    cases = [
        ([str(tmp_path / "missing")], "missing: no such pose store"),
        ([str(not_store)], f"{not_store}: not a pose store"),
        ([str(a_file)], f"{a_file}: not a pose store"),
        ([str(shards[0]), str(shards[0])], "given twice"),
    ]
    for given, message in cases:
        assert main(["merge-stores", *given, "--out", str(new)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and not new.exists()
    assert main(["merge-stores", str(shards[0]), "--out", str(shards[0])]) == 2
    assert "also the output store" in capsys.readouterr().err
    assert main(["merge-stores", str(shards[0]), "--out", str(not_store)]) == 2
    assert "not empty and is not a pose store" in capsys.readouterr().err
    assert main(["merge-stores", str(shards[0]), "--out", str(out)]) == 2
    assert "already holds 5 samples" in capsys.readouterr().err


# -- extraction over ranks -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "det": make_detector(root / "yolox_tiny.onnx", size=320),
        "pose": make_pose_model(root / "rtmw_tiny.onnx", input_hw=(64, 48)),
    }


def test_extract_over_two_ranks_merges_into_the_single_process_store(tmp_path, models) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"s_{i}.mp4", frames=6, seed=20 + i)
    (videos / "s_3.mp4").write_bytes(b"\x00" * 64)  # a failure, recorded by its rank
    common = dict(det_model=models["det"], pose_model=models["pose"], progress=False)
    single = extract_to_store([videos], tmp_path / "single", **common)
    assert sorted(single.done) == ["s_0", "s_1", "s_2"] and list(single.failed) == ["s_3"]
    assert not shards_dir(tmp_path / "single").exists()  # one process writes the store itself

    out = tmp_path / "ranks"
    first = extract_to_store([videos], out, rank=0, world_size=2, **common)
    assert sorted(first.done) == ["s_0", "s_2"] and first.merged is None
    assert first.store == str(shard_store(out, 0, 2))
    assert shard_store(out, 0, 2) == tmp_path / "ranks.shards" / "rank-00000-of-00002"
    assert "waiting for rank(s) 1 of 2" in first.merge_status and not out.exists()
    assert PoseStore(shard_store(out, 0, 2)).ids() == ["s_0", "s_2"]

    second = extract_to_store([videos], out, rank=1, world_size=2, **common)
    assert second.done == ["s_1"] and list(second.failed) == ["s_3"]
    assert second.merged is not None and second.merged.added == 3
    log = shard_store(out, 1, 2) / LOG_NAME
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == [
        "ok",
        "failed",
    ]
    done = json.loads((shard_store(out, 1, 2) / DONE_NAME).read_text())
    assert (done["videos"], done["failed"]) == (2, ["s_3"])

    merged, reference = PoseStore(out), PoseStore(tmp_path / "single")
    assert sorted(merged.ids()) == sorted(reference.ids())
    _assert_same_samples(merged, reference, reference.ids())
    assert not list(shards_dir(out).glob("merging-*"))  # the merge claim is released

    # a rerun of a rank skips what its shard holds, retries its failure, and merges again
    again = extract_to_store([videos], out, rank=0, world_size=2, **common)
    assert sorted(again.skipped) == ["s_0", "s_2"] and not again.done
    assert again.merged is not None and (again.merged.added, again.merged.already) == (0, 3)
    quiet = extract_to_store([videos], out, rank=1, world_size=2, retry_failed=False, **common)
    assert sorted(quiet.skipped) == ["s_1", "s_3"] and not quiet.failed


def test_extract_cli_reports_the_shard_and_a_merge_held_by_another(tmp_path, models, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        (videos / f"{name}.mp4").write_bytes(b"\x00" * 64)  # fast failures: only the ranks matter
    out = tmp_path / "poses"
    common = ["--det-model", str(models["det"]), "--pose-model", str(models["pose"])]
    args = ["extract", str(videos), "--out", str(out), "--world-size", "2", "--no-progress"]
    assert main([*args, "--rank", "0", *common]) == 1
    printed = capsys.readouterr().out
    assert f"shard {shard_store(out, 0, 2)}" in printed and "waiting for rank(s) 1" in printed
    claim = shards_dir(out) / "merging-00002.json"
    claim.write_text('{"host": "elsewhere", "pid": 1}\n')  # another process is merging
    assert main([*args, "--rank", "1", *common]) == 1
    printed = capsys.readouterr().out
    assert "another process is merging" in printed and "elsewhere" in printed
    assert "nmmfast merge-stores" in printed and claim.exists() and not out.exists()
    claim.unlink()
    assert main([*args, "--rank", "1", *common]) == 1
    assert "merged 2 rank shards" in capsys.readouterr().out
    assert len(PoseStore(out)) == 0  # both videos failed: an empty, merged store
