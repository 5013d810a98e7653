"""A researcher's own assets through the command line: Uni-Sign pose pkl files and an Isharah
CSV imported, an official split from id lists, a Uni-Sign checkpoint converted into a run
against a local MT5 directory, and the study of `official:slt` with a marker-word list (no
planted NMM labels survive the import); plus the error paths."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from _text_models import save_text_model, sentencepiece_model

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.data.annotations import read_manifest, write_isharah_csv
from nmmfast.data.importers import write_unisign_pkl
from nmmfast.model import CONFIGS, build_model, load_unisign_checkpoint
from nmmfast.model._reference import ReferencePoseEncoder


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Pose pkls + Isharah CSV (from a small SynNMM corpus), id lists, an MT5 directory and a
    Uni-Sign checkpoint `{'model': sd}` (pose side random, text side that MT5's)."""
    root = tmp_path_factory.mktemp("assets")
    synth = root / "synth"
    assert main(["synth", "--out", str(synth), "--samples", "24", "--seed", "3"]) == 0
    store, rows = PoseStore(synth / "poses"), read_manifest(synth / "manifest.jsonl")
    (root / "pkl").mkdir()
    for row in rows:
        write_unisign_pkl(root / "pkl" / f"{row['id']}.pkl", store[row["id"]])
    write_isharah_csv(root / "labels.csv", rows)
    ids = [row["id"] for row in rows]
    for name, part in (("train", ids[:14]), ("dev", ids[14:17]), ("test", ids[17:])):
        (root / f"{name}.txt").write_text("# official split\n" + "\n".join(part) + "\n")
    text_dir = root / "mt5"
    text_dir.mkdir()
    save_text_model(text_dir, "mt5-untied", sentencepiece_model([r["text"] for r in rows]))
    torch.manual_seed(0)
    model = build_model("unisign-base", text_model=text_dir)
    reference = ReferencePoseEncoder(model.graph, model.config.pose, model.d_model)
    with torch.no_grad():
        for param in reference.parameters():
            param.normal_(0, 0.2)
    state = {
        "mt5_model." + k[len("text_model.") :]: v
        for k, v in model.state_dict().items()
        if k.startswith("text_model.")
    }
    state.update(reference.state_dict())
    torch.save({"model": state}, root / "unisign.pth")
    return {"root": root, "text": text_dir, "checkpoint": root / "unisign.pth"}


@pytest.fixture(scope="module")
def study(assets) -> dict[str, Path]:
    root = assets["root"]
    corpus, run, out = root / "corpus", root / "run", root / "study"
    assert (
        main(
            [
                "import",
                str(root / "pkl"),
                "--out",
                str(corpus),
                "--labels",
                str(root / "labels.csv"),
            ]
        )
        == 0
    )
    split = ["split", str(corpus), "--name", "official"]
    split += [f"--{s}={root / f'{s}.txt'}" for s in ("train", "dev", "test")]
    assert main(split) == 0
    convert = ["convert-checkpoint", str(assets["checkpoint"]), "--text-model", str(assets["text"])]
    assert main(convert + ["--task", "slt", "--out", str(run), "--max-frames", "32"]) == 0
    markers = root / "markers.txt"
    markers.write_text(MARKER_FILE)
    command = ["study", "--corpus", str(corpus), "--out", str(out), f"official:slt={run}"]
    command += ["--attribution-samples", "2", "--beam", "2", "--max-new-tokens", "6"]
    command += ["--probe-samples", "3", "--tolerance", "0.2", "--no-progress"]
    command += ["--marker-words", str(markers), "--marker-steps", "3"]
    assert main(command) == 0
    return {"corpus": corpus, "run": run, "out": out, "command": command, "markers": markers}


# question and negation words of SynNMM's sentences, as a user would list them
MARKER_FILE = "# questions\nDO   # the fronted auxiliary\n\n# negation\nnot\ndoes not\n"
MARKER_ENTRIES = ("do", "not", "does not")


def test_predictions_equal_the_model_run_directly(assets, study):
    from nmmfast.data.dataset import Corpus, PoseDataset, collate

    config = dataclasses.replace(CONFIGS["unisign-base"], max_frames=32)
    model = build_model(config, text_model=assets["text"])
    load_unisign_checkpoint(assets["checkpoint"], model)
    model.eval()
    data = Corpus.open(study["corpus"])
    test_ids = (assets["root"] / "test.txt").read_text().splitlines()[1:]
    dataset = PoseDataset(data, test_ids, "slt", layout="unisign69", max_frames=32)
    expected = {}
    for index in range(len(dataset)):
        batch = collate([dataset[index]])
        tokens = model.generate(batch.poses, batch.mask, num_beams=2, max_new_tokens=6)
        expected[batch.ids[0]] = model.decode(tokens)[0]
    predictions = study["out"] / "predictions" / "official-slt.jsonl"
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["id"] for row in rows] == test_ids
    assert {row["id"]: row["prediction"] for row in rows} == expected


def test_the_study_names_its_partition_and_its_sources(assets, study):
    out = study["out"]
    record = json.loads((out / "study.json").read_text())
    assert record["corpus"] == str(study["corpus"].resolve())
    assert list(record["runs"]) == ["official:slt"]
    for name in (
        "metrics/official-slt.json",
        "attribution/official-slt/summary.json",
        "probes/counterfactual-official-slt.json",
        "probes/tracking.json",
    ):
        assert (out / name).is_file(), name
    html = (out / "report" / "index.html").read_text()
    assert "official" in html
    run = json.loads((study["run"] / "run.json").read_text())
    digest = hashlib.sha256(assets["checkpoint"].read_bytes()).hexdigest()
    assert run["source_sha256"] == digest and run["task"] == "slt"
    # a rerun reuses every stage; another setting into the same directory is refused
    assert main(study["command"]) == 0
    changed = [a if a != "0.2" else "0.1" for a in study["command"]]
    assert main(changed) == 2


def test_user_errors_exit_2_with_one_line(assets, study, tmp_path, capsys):
    root = assets["root"]
    convert = ["convert-checkpoint", "--text-model", str(assets["text"]), "--task", "slt"]
    # a run directory is never overwritten
    assert (
        main([*convert[:1], str(assets["checkpoint"]), *convert[1:], "--out", str(study["run"])])
        == 2
    )
    assert "holds a run already" in capsys.readouterr().err
    # a file that is not a checkpoint, and one that does not fit the layout
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    assert (
        main([convert[0], str(tmp_path / "junk.pth"), *convert[1:], "--out", str(tmp_path / "r1")])
        == 2
    )
    err = capsys.readouterr().err
    assert "junk.pth: not a PyTorch checkpoint" in err and "Traceback" not in err
    state = torch.load(assets["checkpoint"], weights_only=True)["model"]
    torch.save({"model": state}, tmp_path / "nmm87.pth")
    layout = ["--layout", "nmm87", "--out", str(tmp_path / "r2")]
    assert main([convert[0], str(tmp_path / "nmm87.pth"), *convert[1:], *layout]) == 2
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("nmmfast ")]
    assert len(ours) == 1 and "does not fit the model" in ours[0] and "Traceback" not in err
    # DDP's module. prefix and a bare state dict are accepted
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    assert (
        main([convert[0], str(tmp_path / "ddp.pth"), *convert[1:], "--out", str(tmp_path / "r3")])
        == 0
    )
    # split: unknown ids named, overlapping lists refused
    (tmp_path / "bad.txt").write_text("01_9999\n")
    split = ["split", str(study["corpus"]), "--name", "other", f"--train={root / 'train.txt'}"]
    assert main([*split, f"--test={tmp_path / 'bad.txt'}"]) == 2
    assert "01_9999" in capsys.readouterr().err
    assert main([*split, f"--test={root / 'train.txt'}"]) == 2
    assert "must not overlap" in capsys.readouterr().err
    assert (
        main(
            [
                "split",
                str(study["corpus"]),
                "--name",
                "official",
                f"--train={root / 'train.txt'}",
                f"--test={root / 'test.txt'}",
            ]
        )
        == 2
    )
    assert "exists; pass --overwrite" in capsys.readouterr().err
    # study: unknown partition, a run of the other task, a malformed pair
    base = ["study", "--corpus", str(study["corpus"]), "--out", str(tmp_path / "s")]
    assert main([*base, f"nope:slt={study['run']}"]) == 2
    assert "no partition 'nope'" in capsys.readouterr().err
    assert main([*base, f"official:cslr={study['run']}"]) == 2
    assert "a slt model, given as official:cslr" in capsys.readouterr().err
    assert main([*base, "official=run"]) == 2
    assert "PARTITION:TASK=RUN" in capsys.readouterr().err
    # a report of a directory that does not exist creates nothing
    assert main(["report", str(tmp_path / "no-study")]) == 2
    assert "no study directory" in capsys.readouterr().err and not (tmp_path / "no-study").exists()
    # decode and attribute on a missing run
    for command in ("decode", "attribute"):
        args = [command, "--run", str(tmp_path / "none"), "--corpus", str(study["corpus"])]
        args += ["--partition", "official", "--out", str(tmp_path / f"{command}.out")]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nmmfast {command}: ") and "Traceback" not in err


def _expected_marker_tokens(tokenizer, text: str) -> tuple[int, int]:
    """(marker, other) token counts of a reference, counted word by word (SentencePiece
    tokenises each whitespace-separated word on its own; the marker words of the attributed
    samples carry no punctuation)."""
    words = text.split()
    listed: set[int] = set()
    for entry in MARKER_ENTRIES:
        parts = entry.split()
        for k in range(len(words)):
            if [w.lower() for w in words[k : k + len(parts)]] == parts:
                listed.update(range(k, k + len(parts)))
    pieces = [len(tokenizer(word)["input_ids"]) - 1 for word in words]  # without </s>
    marker = sum(pieces[k] for k in listed)
    return marker, sum(pieces) - marker


def test_marker_words_without_planted_labels(assets, study):
    from transformers import AutoTokenizer

    out = study["out"]
    record = json.loads((out / "study.json").read_text())
    assert record["settings"]["marker_words"] == list(MARKER_ENTRIES)
    assert record["marker_words_file"] == str(study["markers"].resolve())
    result = json.loads((out / "probes" / "marker-words-official-slt.json").read_text())
    assert not (out / "probes" / "marker-words-official-slt.partial.json").exists()
    rows = {row["id"]: row for row in read_manifest(study["corpus"] / "manifest.jsonl")}
    assert not any("nmm" in row for row in rows.values())  # no planted labels
    test_ids = (assets["root"] / "test.txt").read_text().splitlines()[1:]
    texts = {i: rows[i]["text"] for i in test_ids}

    def holds(entry: str, text: str) -> bool:
        return re.search(rf"\b{entry}\b", text, flags=re.IGNORECASE) is not None

    matched = [i for i in test_ids if any(holds(e, texts[i]) for e in MARKER_ENTRIES)]
    assert len(matched) == 4  # of the 7 test samples: "Do", "not", "does not"
    assert result["matched_samples"] == len(matched)
    assert result["matched_by_word"] == {
        e: n for e in MARKER_ENTRIES if (n := sum(holds(e, texts[i]) for i in test_ids))
    }
    attributed = matched[:2]  # --attribution-samples 2
    assert result["samples"] == 2 and [r["id"] for r in result["records"]] == attributed
    tokenizer = AutoTokenizer.from_pretrained(str(assets["text"]))
    counts = [_expected_marker_tokens(tokenizer, texts[i]) for i in attributed]
    assert result["marker"]["tokens"] == sum(c[0] for c in counts) > 0
    assert result["other"]["tokens"] == sum(c[1] for c in counts) > 0
    assert result["marker"]["samples"] == result["other"]["samples"] == 2
    for group in ("marker", "other"):
        shares = result[group]["shares"]
        assert shares["face+head"] == pytest.approx(shares["face"] + shares["head"])
        total = shares["face+head"] + shares["hands"] + shares["body"]
        assert total == pytest.approx(100.0)
    for record in result["records"]:
        # the attributed tokens are the model's targets; marker positions spell the words
        ids = tokenizer([record["reference"]])["input_ids"][0]
        assert record["tokens"] == tokenizer.convert_ids_to_tokens(ids)
        for entry, positions in record["positions"].items():
            spelled = "".join(record["tokens"][p] for p in positions).replace("▁", " ").strip()
            assert spelled.lower() == entry
    assert len(result["records"][0]["token_region_abs"][0]) == 4  # face, head, hands, body
    # the report: the NMM section without planted labels, for partition "official"
    html = (out / "report" / "index.html").read_text()
    assert "Non-manual markers without planted labels" in html
    assert "Do the tokens of marker words draw face and head attribution?" in html
    assert "Neutralise the face, the head, or both" in html
    report = out / "report"
    shares = json.loads((report / "marker_word_shares.json").read_text())
    assert [(r["partition"], r["tokens of"]) for r in shares] == [
        ("official / SLT", "listed words"),
        ("official / SLT", "other words"),
    ]
    assert shares[0]["tokens"] == result["marker"]["tokens"]
    counterfactual = json.loads((report / "nmm_counterfactual.json").read_text())
    assert {r["neutralised"] for r in counterfactual} == {
        "nothing (control)",
        "face",
        "head",
        "face+head",
    }
    assert all(r["partition"] == "official / SLT" and r["samples"] == 3 for r in counterfactual)


def test_marker_word_lists_afterwards_and_on_resume(study, tmp_path, capsys):
    out = study["out"]
    path = out / "probes" / "marker-words-official-slt.json"
    before = json.loads(path.read_text())
    # a resumed study with another list is refused, naming the setting
    other = tmp_path / "other.txt"
    other.write_text("Door  # one test sample says it\n")
    command = [a if a != str(study["markers"]) else str(other) for a in study["command"]]
    assert main(command) == 2
    assert "other settings (marker_words)" in capsys.readouterr().err
    # the report attributes another list afterwards with the study's run and settings ...
    assert main(["report", str(out), "--marker-words", str(other), "--no-progress"]) == 0
    after = json.loads(path.read_text())
    assert after["settings"]["words"] == ["door"] and after["job"]["words"] == ["door"]
    assert after["settings"]["n_steps"] == 3  # the study's --marker-steps
    assert after["matched_samples"] == after["samples"] == 1
    assert [r["reference"] for r in after["records"]] == ["My friend opens the new door now."]
    assert "door" in (out / "report" / "index.html").read_text()
    assert json.loads((out / "study.json").read_text())["settings"]["marker_words"] == list(
        MARKER_ENTRIES
    )
    # ... and the study's own list comes back on its resume
    assert main(study["command"]) == 0
    again = json.loads(path.read_text())
    assert again["job"] == before["job"] and again["marker"] == before["marker"]


def test_an_interrupted_marker_word_probe_resumes(study, tmp_path, monkeypatch):
    """Samples in the checkpoint of the same job are not attributed again; another job's are."""
    from nmmfast.attribution.sequence import SequenceAttributor
    from nmmfast.data.partitions import load_partition
    from nmmfast.model import load_model
    from nmmfast.probes.marker_words import marker_word_probe

    stored = json.loads((study["out"] / "probes" / "marker-words-official-slt.json").read_text())
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(json.dumps({"job": stored["job"], "records": stored["records"]}))

    def refuse(*args, **kwargs):
        raise AssertionError("a finished sample was attributed again")

    monkeypatch.setattr(SequenceAttributor, "attribute", refuse)
    model = load_model(study["run"], weights=study["run"] / "best.pt")
    ids = load_partition(study["corpus"], "official")["test"]
    options = dict(task="slt", method="simpson", n_steps=3, max_samples=2, checkpoint=checkpoint)
    resumed = marker_word_probe(
        model, study["corpus"], ids, MARKER_ENTRIES, job=stored["job"], **options
    )
    assert resumed["marker"] == stored["marker"] and resumed["other"] == stored["other"]
    with pytest.raises(AssertionError, match="attributed again"):
        marker_word_probe(model, study["corpus"], ids, MARKER_ENTRIES, job={"other": 1}, **options)


def test_bad_marker_word_files_exit_2_with_one_line(study, tmp_path, capsys):
    empty, malformed = tmp_path / "empty.txt", tmp_path / "malformed.txt"
    empty.write_text("# nothing listed\n\n")
    malformed.write_text("not\nwhere, what\n")
    study_command = [
        "study",
        "--corpus",
        str(study["corpus"]),
        "--out",
        str(tmp_path / "s"),
        f"official:slt={study['run']}",
    ]
    cases = {
        empty: "no marker words",
        malformed: "line 2: 'where, what' is not a word or phrase",
        tmp_path / "absent.txt": "no such marker-word file",
    }
    for path, problem in cases.items():
        for command in (
            [*study_command, "--marker-words", str(path)],
            ["report", str(study["out"]), "--marker-words", str(path)],
        ):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err
            assert err.startswith(f"nmmfast {command[0]}: {path}: ") and problem in err
    assert not (tmp_path / "s").exists()


class _NotATensor:
    pass


def test_damaged_checkpoints_are_named(study, tmp_path, capsys):
    """Every checkpoint load says which file and what is wrong, and never runs code from it."""
    import shutil

    from nmmfast.errors import UserError
    from nmmfast.model.checkpoint import read_checkpoint

    run = tmp_path / "run"
    shutil.copytree(study["run"], run)
    whole = (run / "best.pt").read_bytes()
    torch.save({"model": _NotATensor()}, tmp_path / "object.pt")
    cases = {
        "truncated or damaged": whole[: len(whole) // 2],
        "not a PyTorch checkpoint": b"random bytes, not a checkpoint" * 20,
        "empty checkpoint file": b"",
        "objects other than tensors": (tmp_path / "object.pt").read_bytes(),
    }
    decode = ["decode", "--run", str(run), "--corpus", str(study["corpus"])]
    decode += ["--partition", "official", "--out", str(tmp_path / "p.jsonl")]
    for problem, content in cases.items():
        (run / "best.pt").write_bytes(content)
        with pytest.raises(UserError, match=problem):
            read_checkpoint(run / "best.pt")
        assert main(decode) == 2
        err = capsys.readouterr().err
        assert f"{run / 'best.pt'}: " in err and problem in err and "weights_only" not in err


def test_counts_below_one_are_refused_before_any_work(study, tmp_path, capsys):
    base = ["--run", str(study["run"]), "--corpus", str(study["corpus"]), "--partition", "official"]
    for command, option in (("decode", "--beam"), ("attribute", "--steps")):
        out = tmp_path / command
        with pytest.raises(SystemExit) as exit_code:
            main([command, *base, "--out", str(out), option, "0"])
        assert exit_code.value.code == 2
        assert "must be >= 1, got 0" in capsys.readouterr().err
        assert not out.exists()  # no job.json, no predictions
