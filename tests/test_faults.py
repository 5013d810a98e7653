"""Faults a hostile user or a crash can cause, one test each: nothing is lost, nothing is mixed,
every failure is named.

1. Data loss: a damaged pose store is refused by every writer, never truncated; `nmmfast store
   check` names the damage by sample and `nmmfast store repair` copies what is intact.
2. Silent mixing and partial results: a job resumed with other weights or samples is refused;
   evaluation refuses predictions outside the split and reports coverage; a mistyped run or
   study directory is an error.
3. Unusable failures: non-finite poses name the sample and frame (or are skipped with
   --skip-bad); bad numbers are refused when the arguments are parsed.
4. One error path: every command given a bad argument exits 2 with one line, no traceback.

Plus what already behaves and must not regress: kill -9 of `train` and `attribute` resumes to
the uninterrupted result, and sharded attribution equals one process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nmmfast.cli import main
from nmmfast.data import PoseStore, StoreError
from nmmfast.data.importers import write_npz

FRAME_BYTES = 133 * 3 * 4


def _raw(rng, frames):
    return rng.random((frames, 133, 3), dtype=np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small SynNMM corpus with the control partition."""
    path = tmp_path_factory.mktemp("faults") / "corpus"
    assert main(["synth", "--out", str(path), "--samples", "24", "--seed", "5"]) == 0
    assert main(["split", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    """A tiny SLT run, trained for a few steps."""
    out = tmp_path_factory.mktemp("faults-run") / "run"
    command = ["train", "--corpus", str(corpus), "--partition", "control", "--task", "slt"]
    command += ["--out", str(out), "--epochs", "1", "--batch-size", "8", "--dev-beam", "1"]
    command += ["--max-frames", "24", "--device", "cpu", "--no-progress"]
    assert main(command) == 0
    return out


def _copy(path: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(path, target)
    return target


# -- 1. data loss ---------------------------------------------------------------------------------


def _store(tmp_path, rng, samples=4) -> Path:
    path = tmp_path / "corpus" / "poses"
    with PoseStore.create(path) as store:
        for i in range(samples):
            store.append(f"s{i}", _raw(rng, 3 + i), signer=f"{i % 2}")
    return path


def _flip(path: Path, position: int) -> None:
    body = bytearray(path.read_bytes())
    body[position] ^= 0x01 if body[position] != 0x0A else 0x20  # "\n" -> "*"
    path.write_bytes(bytes(body))


def _index_lines(path: Path) -> list[int]:
    """Start offset of each index line."""
    starts, offset = [], 0
    for line in (path / "index.jsonl").read_bytes().split(b"\n")[:-1]:
        starts.append(offset)
        offset += len(line) + 1
    return starts


# position classes of one flipped byte: which file, where, and whether opening must refuse
FLIPS = {
    "header": ("store.json", lambda path: 14, True),
    "middle line": ("index.jsonl", lambda path: _index_lines(path)[1] + 30, True),
    "last line": ("index.jsonl", lambda path: _index_lines(path)[-1] + 30, True),
    "last newline": ("index.jsonl", lambda path: (path / "index.jsonl").stat().st_size - 1, True),
    "data file": ("poses.f32", lambda path: 3 * FRAME_BYTES + 101, False),
}


@pytest.mark.parametrize("where", list(FLIPS))
def test_a_flipped_byte_never_shrinks_the_store(tmp_path, rng, capsys, where):
    name, position, refused = FLIPS[where]
    path = _store(tmp_path, rng)
    _flip(path / name, position(path))
    data_size = (path / "poses.f32").stat().st_size
    index = (path / "index.jsonl").read_bytes()
    # every writer: the importer, the store's own append, a repair into a new store
    write_npz(tmp_path / "new.npz", {"new": _raw(rng, 2)})
    code = main(["import", str(tmp_path / "new.npz"), "--out", str(path.parent)])
    err = capsys.readouterr().err
    if refused:
        assert code == 2 and "Traceback" not in err and f"{path}" in err
        with pytest.raises(StoreError):
            PoseStore(path).append("more", _raw(rng, 2))
        assert (path / "index.jsonl").read_bytes() == index  # nothing rewritten
    else:
        assert code == 0  # a changed value is found by `store check`, not by opening
    assert (path / "poses.f32").stat().st_size >= data_size
    assert main(["store", "check", str(path)]) == 1
    report = capsys.readouterr().out
    if where == "data file":
        assert "sample 's1': its frames fail their checksum" in report
    assert main(["store", "repair", str(path), "--out", str(tmp_path / "repaired")]) == 0
    assert (path / "poses.f32").stat().st_size >= data_size


def test_store_check_names_the_damage_and_repair_copies_what_is_intact(tmp_path, rng, capsys):
    path = _store(tmp_path, rng, samples=5)
    original = {i: PoseStore(path).meta(i) for i in PoseStore(path).ids()}
    poses = {i: PoseStore(path).get(i, copy=True) for i in PoseStore(path).ids()}
    assert main(["store", "check", str(path)]) == 0
    assert "5 of 5 indexed samples intact; no problems" in capsys.readouterr().out
    # damage: s1's signer in its index line, s3's frames (a value that is no longer finite)
    line = _index_lines(path)[1]
    signer = (path / "index.jsonl").read_bytes().index(b'"signer":"', line) + len('"signer":"')
    _flip(path / "index.jsonl", signer)
    data = bytearray((path / "poses.f32").read_bytes())
    start = sum(3 + i for i in range(3)) * FRAME_BYTES + 8
    data[start : start + 4] = np.array([np.nan], np.float32).tobytes()
    (path / "poses.f32").write_bytes(bytes(data))
    before = {f: (path / f).read_bytes() for f in ("index.jsonl", "poses.f32", "store.json")}
    with pytest.raises(StoreError, match="line 2 of 5 is corrupt.*nmmfast store check"):
        PoseStore(path)
    assert main(["store", "check", str(path)]) == 1
    report = capsys.readouterr().out
    assert "3 of 5 indexed samples intact; 2 problems" in report
    assert "sample 's1': its index line fails its checksum" in report
    assert "sample 's3': its frames fail their checksum" in report
    assert main(["store", "repair", str(path), "--out", str(tmp_path / "new")]) == 0
    assert "3 samples copied; 2 not copied" in capsys.readouterr().out
    repaired = PoseStore(tmp_path / "new")
    assert repaired.ids() == ["s0", "s2", "s4"]
    for sample_id in repaired.ids():
        assert repaired.meta(sample_id) == original[sample_id]
        np.testing.assert_array_equal(repaired[sample_id], poses[sample_id])
    assert {f: (path / f).read_bytes() for f in before} == before  # the original is untouched
    # repair never writes into a store that exists, nor over the damaged one
    assert main(["store", "repair", str(path), "--out", str(tmp_path / "new")]) == 2
    assert main(["store", "repair", str(path), "--out", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_only_an_unterminated_last_line_is_a_torn_write(tmp_path, rng):
    path = _store(tmp_path, rng, samples=2)
    index = path / "index.jsonl"
    whole = index.read_bytes()
    # a complete line that lacks only its newline was committed: kept, and a writer ends it
    index.write_bytes(whole[:-1])
    store = PoseStore(path)
    assert store.ids() == ["s0", "s1"]
    store.append("s2", _raw(rng, 2))
    store.close()
    assert PoseStore(path).ids() == ["s0", "s1", "s2"]
    assert index.read_bytes().startswith(whole)
    # a line cut short is an interrupted write: never committed, dropped by the next writer
    size = (path / "poses.f32").stat().st_size
    last = _index_lines(path)[-1]
    index.write_bytes(index.read_bytes()[: last + 20])
    store = PoseStore(path)
    assert store.ids() == ["s0", "s1"]
    store.append("s2b", _raw(rng, 2))  # the explicit case where a writer truncates
    store.close()
    assert (path / "poses.f32").stat().st_size == size


def test_an_index_that_fails_everywhere_or_is_missing_is_corruption(tmp_path, rng):
    path = _store(tmp_path, rng, samples=1)
    _flip(path / "index.jsonl", 20)
    with pytest.raises(StoreError, match="line 1 of 1 is corrupt"):
        PoseStore(path)
    (path / "index.jsonl").unlink()
    with pytest.raises(StoreError, match="missing beside 3 frames"):
        PoseStore(path)
    assert (path / "poses.f32").stat().st_size == 3 * FRAME_BYTES


# -- 2. silent mixing, silent partial results -----------------------------------------------------


def _attribute(run, corpus, out, *extra):
    command = ["attribute", "--run", str(run), "--corpus", str(corpus), "--partition", "control"]
    command += ["--out", str(out), "--steps", "3", "--max-samples", "2", "--no-progress"]
    return main([*command, *extra])


def test_a_job_resumed_with_other_weights_is_refused(run, corpus, tmp_path, capsys):
    run = _copy(run, tmp_path, "run")
    out = tmp_path / "job"
    assert _attribute(run, corpus, out, "--limit", "1") == 0
    job = json.loads((out / "job.json").read_text())
    assert len(job["weights_sha256"]) == 64 and len(job["samples_sha256"]) == 64
    state = torch.load(run / "best.pt", weights_only=True)
    weights = state["model"]
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name] + 1
    torch.save(state, run / "best.pt")
    capsys.readouterr()
    assert _attribute(run, corpus, out) == 2
    err = capsys.readouterr().err
    assert "the model's weights changed since this job started" in err and "Traceback" not in err
    assert len(list((out / "samples").glob("*.npz"))) == 1  # nothing mixed in


def test_a_job_resumed_on_changed_samples_is_refused(run, corpus, tmp_path, capsys):
    corpus = _copy(corpus, tmp_path, "corpus")
    out = tmp_path / "job"
    assert _attribute(run, corpus, out, "--limit", "1") == 0
    manifest = corpus / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    test_id = json.loads((corpus / "partitions" / "control.json").read_text())["test"][0]
    for row in rows:
        if row["id"] == test_id:
            row["text"] = "another sentence ."
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert _attribute(run, corpus, out) == 2
    assert "poses or targets of these samples changed" in capsys.readouterr().err


def test_evaluate_refuses_foreign_ids_and_partial_coverage(run, corpus, tmp_path, capsys):
    predictions = tmp_path / "p.jsonl"
    decode = ["decode", "--run", str(run), "--corpus", str(corpus), "--partition", "control"]
    assert main([*decode, "--out", str(predictions), "--beam", "1", "--no-progress"]) == 0
    rows = predictions.read_text().splitlines()
    evaluate = ["evaluate", "--corpus", str(corpus), "--partition", "control", "--json"]
    assert main([*evaluate, "--predictions", str(predictions)]) == 0
    whole = json.loads(capsys.readouterr().out)["scores"]["slt"]["signature"]
    assert whole.endswith(f"|coverage:{len(rows)}/{len(rows)}")
    (tmp_path / "part.jsonl").write_text("\n".join(rows[:3]) + "\n")
    assert main([*evaluate, "--predictions", str(tmp_path / "part.jsonl")]) == 2
    assert f"cover 3 of {len(rows)} test clips" in capsys.readouterr().err
    assert main([*evaluate, "--predictions", str(tmp_path / "part.jsonl"), "--allow-partial"]) == 0
    assert f"coverage:3/{len(rows)}" in capsys.readouterr().out
    foreign = json.loads(rows[0]) | {"id": json.loads((corpus / "partitions" / "control.json")
                                                      .read_text())["train"][0]}  # fmt: skip
    (tmp_path / "foreign.jsonl").write_text("\n".join([*rows, json.dumps(foreign)]) + "\n")
    assert main([*evaluate, "--predictions", str(tmp_path / "foreign.jsonl")]) == 2
    assert "1 predictions are not in the test split" in capsys.readouterr().err


def test_mistyped_directories_are_errors(corpus, tmp_path, capsys):
    train = ["train", "--corpus", str(corpus), "--partition", "control", "--task", "slt"]
    assert main([*train, "--out", str(tmp_path / "rnu"), "--resume", "--no-progress"]) == 2
    assert "no run to resume" in capsys.readouterr().err
    assert not (tmp_path / "rnu").exists()
    assert main(["report", str(tmp_path / "no-study")]) == 2
    assert "no study directory" in capsys.readouterr().err
    assert not (tmp_path / "no-study").exists()


# -- 3. unusable failures -------------------------------------------------------------------------


def _poison(corpus: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the corpus whose first test clip holds a NaN at frame 2 (a damaged data file)."""
    corpus = _copy(corpus, tmp_path, "poisoned")
    sample_id = json.loads((corpus / "partitions" / "control.json").read_text())["test"][0]
    offset = PoseStore(corpus / "poses")._record(sample_id)["offset"]
    data = bytearray((corpus / "poses" / "poses.f32").read_bytes())
    start = (offset + 2) * FRAME_BYTES + 5 * 12
    data[start : start + 4] = np.array([np.nan], np.float32).tobytes()
    (corpus / "poses" / "poses.f32").write_bytes(bytes(data))
    return corpus, sample_id


def test_non_finite_poses_name_the_sample_or_are_skipped(run, corpus, tmp_path, capsys):
    corpus, bad = _poison(corpus, tmp_path)
    where = ["--corpus", str(corpus), "--partition", "control"]
    commands = {
        "decode": ["decode", "--run", str(run), *where, "--out", str(tmp_path / "p.jsonl")],
        "attribute": ["attribute", "--run", str(run), *where, "--out", str(tmp_path / "a")],
    }
    commands["attribute"] += ["--steps", "3", "--max-samples", "2"]
    for command in commands.values():
        assert main([*command, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"sample {bad!r} has a non-finite value at frame 2, joint 5" in err
        assert "Traceback" not in err
        assert main([*command, "--no-progress", "--skip-bad"]) == 0
        assert f"left out 1 samples with non-finite poses: {bad}" in capsys.readouterr().err
    rows = {
        row["id"]: row for row in map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())
    }
    assert rows[bad]["prediction"] is None and rows[bad]["skipped"] == "non-finite poses"
    assert all(row["prediction"] is not None for i, row in rows.items() if i != bad)
    done = json.loads((tmp_path / "a" / "done-0-of-1.json").read_text())
    assert done["skipped"] == {"non-finite poses": [bad]}
    train = ["train", *where, "--task", "slt", "--epochs", "1", "--max-frames", "8"]
    train += ["--dev-beam", "1", "--device", "cpu", "--no-progress"]
    # the poisoned clip is a test clip: training reads only train and dev, and is unaffected
    assert main([*train, "--out", str(tmp_path / "r")]) == 0


@pytest.mark.parametrize(
    "command, option, value, message",
    [
        ("decode", "--beam", "0", "must be >= 1, got 0"),
        ("attribute", "--steps", "0", "must be >= 1, got 0"),
        ("attribute", "--tolerance", "-0.1", "must be > 0, got -0.1"),
        ("attribute", "--tolerance", "nan", "must be finite"),
        ("train", "--lr", "0", "must be > 0, got 0"),
        ("train", "--batch-size", "0", "must be >= 1, got 0"),
        ("train", "--epochs", "-1", "must be >= 1, got -1"),
        ("train", "--label-smoothing", "1", "must be in [0, 1), got 1"),
    ],
)
def test_bad_numbers_are_refused_before_any_file_is_written(
    tmp_path, capsys, command, option, value, message
):
    out = tmp_path / "out"
    args = [command, "--corpus", str(tmp_path), "--partition", "p", "--out", str(out)]
    args += ["--task", "slt"] if command == "train" else ["--run", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_code:
        main([*args, option, value])
    assert exit_code.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_steps_the_rule_cannot_take_write_no_job_file(run, corpus, tmp_path, capsys):
    out = tmp_path / "job"
    assert _attribute(run, corpus, out, "--method", "simpson", "--steps", "4") == 2
    assert "odd n_steps" in capsys.readouterr().err
    assert not (out / "job.json").exists()
    assert _attribute(run, corpus, out, "--method", "simpson", "--steps", "5") == 0


# -- 4. one error path ----------------------------------------------------------------------------


def test_every_command_reports_a_user_error_in_one_line(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    out = str(tmp_path / "out")
    where = ["--corpus", missing, "--partition", "control"]
    commands = {
        "synth": ["--out", str(tmp_path / "file.txt"), "--samples", "4"],
        "import": [missing, "--out", out],
        "store": ["check", missing],
        "split": [missing],
        "train": [*where, "--task", "slt", "--out", out],
        "convert-checkpoint": [missing, "--text-model", missing, "--task", "slt", "--out", out],
        "export": ["--run", missing, "--out", str(tmp_path / "e.onnx")],
        "decode": ["--run", missing, *where, "--out", str(tmp_path / "p.jsonl")],
        "evaluate": ["--predictions", missing],
        "attribute": ["--run", missing, *where, "--out", out],
        "probe": ["counterfactual", "--run", missing, *where, "--out", out],
        "extract": [missing, "--out", out],
        "study": ["--corpus", missing, "--out", out, f"control:slt={missing}"],
        "report": [missing],
    }
    (tmp_path / "file.txt").write_text("not a directory")
    for name, args in commands.items():
        code = main([name, *args])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith(f"nmmfast {name}")]
        assert code == 2, (name, err)
        assert "Traceback" not in err and len(lines) == 1, (name, err)
    # --debug shows the traceback instead
    with pytest.raises(Exception, match="missing"):
        main(["--debug", "report", missing])


# -- what already behaves: kill -9 resumes exactly, shards equal one process ----------------------


def _cli(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from nmmfast.cli import main; sys.exit(main())",
        *args,
    ]


def _kill_when(command: list[str], ready, cwd: Path, timeout: float = 120.0) -> None:
    """Run `command` and SIGKILL it once `ready()`. It imports the nmmfast this test imports
    (installed, or a checkout with its extension built in place), whatever the directory."""
    import nmmfast

    package_root = str(Path(nmmfast.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_kill_9_then_resume_equals_an_uninterrupted_attribution(run, corpus, tmp_path):
    args = ["attribute", "--run", str(run), "--corpus", str(corpus), "--partition", "control"]
    args += ["--steps", "5", "--samples-per-call", "1", "--batch-rows", "5", "--no-progress"]
    killed = tmp_path / "killed"
    _kill_when(
        _cli(*args, "--out", str(killed)),
        lambda: len(list(killed.glob("samples/*.npz"))),
        cwd=tmp_path,
    )
    assert not (killed / "summary.json").exists()
    assert main([*args, "--out", str(killed)]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    from nmmfast.attribution.summary import load_samples

    got, expected = load_samples(killed), load_samples(tmp_path / "whole")
    assert [s["id"] for s in got] == [s["id"] for s in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a["joint_abs"], b["joint_abs"], rtol=1e-5, atol=1e-9)
    # two shards into one directory equal the single process too
    for rank in ("0", "1"):
        shard = [*args, "--out", str(tmp_path / "sharded"), "--rank", rank, "--world-size", "2"]
        assert main(shard) == 0
    sharded = load_samples(tmp_path / "sharded")
    for a, b in zip(sharded, expected, strict=True):
        np.testing.assert_allclose(a["joint_abs"], b["joint_abs"], rtol=1e-5, atol=1e-9)


def test_kill_9_then_resume_equals_an_uninterrupted_training(corpus, tmp_path):
    args = ["train", "--corpus", str(corpus), "--partition", "control", "--task", "cslr"]
    args += ["--epochs", "3", "--batch-size", "4", "--dev-beam", "1", "--max-frames", "16"]
    args += ["--device", "cpu", "--no-progress"]
    killed = tmp_path / "killed"

    def one_epoch_logged() -> bool:
        log = killed / "log.jsonl"
        return log.is_file() and '"event": "epoch"' in log.read_text()

    _kill_when(_cli(*args, "--out", str(killed)), one_epoch_logged, cwd=tmp_path)
    assert main([*args, "--out", str(killed), "--resume"]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    from nmmfast.model.checkpoint import read_checkpoint

    resumed = read_checkpoint(killed / "last.pt")["model"]
    whole = read_checkpoint(tmp_path / "whole" / "last.pt")["model"]
    for name, value in whole.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_damaged_result_files_are_named_by_the_report(tmp_path, capsys):
    study = tmp_path / "study"
    (study / "metrics").mkdir(parents=True)
    (study / "study.json").write_text(
        json.dumps({"pairs": [{"partition": "control", "task": "slt"}]})
    )
    metrics = study / "metrics" / "control-slt.json"
    for content, problem in (
        ("{not json", "not valid JSON"),
        ('{"partition": "control"}', "lacks scores"),
        ("[1, 2]", "expected a JSON object"),
    ):
        metrics.write_text(content)
        assert main(["report", str(study)]) == 2
        err = capsys.readouterr().err
        assert f"{metrics}: " in err and problem in err and "Traceback" not in err
    metrics.unlink()
    summary = study / "attribution" / "control-slt" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text('{"region_shares": {}}')
    assert main(["report", str(study)]) == 2
    err = capsys.readouterr().err
    assert f"{summary}: lacks samples, table" in err and "Traceback" not in err
