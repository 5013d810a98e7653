"""A researcher's own assets through the command line: Uni-Sign pose pkl files and an Isharah
CSV imported, an official split from id lists, a Uni-Sign checkpoint converted into a run
against a local MT5 directory, and the study of `official:slt`; plus the error paths."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
    command = ["study", "--corpus", str(corpus), "--out", str(out), f"official:slt={run}"]
    command += ["--attribution-samples", "2", "--beam", "2", "--max-new-tokens", "6"]
    command += ["--probe-samples", "3", "--tolerance", "0.2", "--no-progress"]
    assert main(command) == 0
    return {"corpus": corpus, "run": run, "out": out, "command": command}


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
