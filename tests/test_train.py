"""Training: checkpoints and logs, best-by-dev selection, exact resume, refusal of foreign runs,
and DDP (two gloo processes agree on the weights after a step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import nmmfast
from nmmfast.train import cosine_schedule, make_optimizer, train

FAST = {"batch_size": 4, "dev_beam": 1, "max_new_tokens": 6, "progress": False, "device": "cpu"}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from nmmfast.data.annotations import read_manifest
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus

    path = tmp_path_factory.mktemp("corpus")
    write_corpus(generate(24, 1), path)
    write_partitions(path, make_partitions(read_manifest(path / "manifest.jsonl"), 0))
    return path


def test_a_run_writes_checkpoints_logs_and_the_best_epoch(corpus_dir, tmp_path):
    summary = train(corpus_dir, "control", "slt", tmp_path / "run", epochs=2, **FAST)
    run = tmp_path / "run"
    for name in ("run.json", "model_config.json", "last.pt", "best.pt", "log.jsonl"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["start", "epoch", "epoch", "end"]
    assert all("bleu4" in r["dev"] and r["samples_per_s"] > 0 for r in records[1:3])
    best = max(records[1:3], key=lambda r: r["dev"]["bleu4"])
    assert summary["best"]["epoch"] == records[-1]["best"]["epoch"]
    assert summary["best"]["bleu4"] == best["dev"]["bleu4"]
    assert torch.load(run / "best.pt", weights_only=False)["epoch"] == summary["best"]["epoch"]
    assert summary["epochs_run"] == 2 and summary["skipped"]["train"] == {}


def test_resume_continues_exactly(corpus_dir, tmp_path):
    straight = train(corpus_dir, "control", "cslr", tmp_path / "a", epochs=2, **FAST)
    steps_per_epoch = straight["step"] // 2
    first = train(
        corpus_dir, "control", "cslr", tmp_path / "b", epochs=2, max_steps=steps_per_epoch, **FAST
    )
    assert first["epochs_run"] == 1  # "interrupted" after the first epoch's checkpoint
    resumed = train(corpus_dir, "control", "cslr", tmp_path / "b", epochs=2, resume=True, **FAST)
    assert resumed["epochs_run"] == 1 and resumed["step"] == straight["step"]
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert resumed["best"] == straight["best"]


def test_foreign_or_existing_runs_are_refused(corpus_dir, tmp_path):
    run = tmp_path / "run"
    train(corpus_dir, "control", "cslr", run, epochs=1, max_steps=1, **FAST)
    with pytest.raises(FileExistsError, match="pass --resume"):
        train(corpus_dir, "control", "cslr", run, epochs=1, **FAST)
    with pytest.raises(ValueError, match="checkpoint from config 'tiny'"):
        train(
            corpus_dir, "control", "cslr", run, config="unisign-base", epochs=1, resume=True, **FAST
        )
    with pytest.raises(ValueError, match="task='cslr'"):
        train(corpus_dir, "control", "slt", run, epochs=1, resume=True, **FAST)
    with pytest.raises(ValueError, match="label_smoothing=0.2"):
        train(corpus_dir, "control", "cslr", run, epochs=1, resume=True, label_smoothing=0.1,
              **FAST)
    with pytest.raises(ValueError, match="seed=42"):  # another batch order: not exact
        train(corpus_dir, "control", "cslr", run, epochs=1, resume=True, seed=7, **FAST)
    # max_steps stopped it inside its only epoch: the rest of that epoch cannot be replayed
    with pytest.raises(ValueError, match="stopped by max_steps inside epoch 1"):
        train(corpus_dir, "control", "cslr", run, epochs=1, resume=True, **FAST)
    # stopped before any epoch ended (no last.pt): --resume starts it afresh
    (run / "last.pt").unlink()
    summary = train(corpus_dir, "control", "cslr", run, epochs=1, resume=True, **FAST)
    assert summary["epochs_run"] == 1
    # a mistyped run directory is not a fresh run
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        train(corpus_dir, "control", "cslr", tmp_path / "rnu", epochs=1, resume=True, **FAST)
    assert not (tmp_path / "rnu").exists()


def test_optimizer_groups_and_cosine_schedule():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = make_optimizer(model)
    decay, no_decay = optimizer.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3)] and decay["weight_decay"] == 1e-4
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3
    assert optimizer.defaults["eps"] == 1e-9 and optimizer.defaults["lr"] == 3e-4
    schedule = cosine_schedule(optimizer, total_steps=4)
    rates = []
    for _ in range(4):
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates == pytest.approx([3e-4 * (1 + c) / 2 for c in (2**-0.5, 0.0, -(2**-0.5), -1.0)])


@pytest.mark.slow
def test_ddp_ranks_agree_after_a_step(corpus_dir, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, os, torch
        torch.set_num_threads(1)
        from nmmfast.train import train
        summary = train({str(corpus_dir)!r}, "control", "cslr", {str(tmp_path / "run")!r},
                        epochs=1, max_steps=1, batch_size=2, dev_beam=1, max_new_tokens=4,
                        progress=False, device="cpu")
        with open({str(tmp_path)!r} + f"/rank{{os.environ['RANK']}}.json", "w") as f:
            json.dump(summary, f)
    """)
    )
    # The children import nmmfast from wherever this process found it (installed or in-tree).
    package_root = str(Path(nmmfast.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(script),
    ]
    done = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 1
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["world_size"] == 2


def test_warm_start_matches_embedding_rows_by_token(corpus_dir, tmp_path):
    from nmmfast.model.unisign import load_model
    from nmmfast.train import warm_start

    train(corpus_dir, "control", "cslr", tmp_path / "cslr", epochs=1, **FAST)
    train(corpus_dir, "control", "slt", tmp_path / "slt", epochs=1, max_steps=1, **FAST)
    source = load_model(tmp_path / "cslr", tmp_path / "cslr" / "best.pt")
    target = load_model(tmp_path / "slt", tmp_path / "slt" / "best.pt")
    before = target.text_model.shared.weight.detach().clone()
    fresh = warm_start(target, tmp_path / "cslr")
    for name, value in source.pose_encoder.state_dict().items():
        assert torch.equal(target.pose_encoder.state_dict()[name], value), name
    src_vocab, dst_vocab = source.tokenizer.token_to_id, target.tokenizer.token_to_id
    table, src_table = target.text_model.shared.weight, source.text_model.shared.weight
    matched = 0
    for token, i in dst_vocab.items():
        j = src_vocab.get(token, src_vocab.get(token.upper()))
        if j is None:
            assert token in fresh and torch.equal(table[i], before[i])
        else:
            matched += 1
            assert torch.equal(table[i], src_table[j]), token
    assert matched > len(source.prompt_ids)  # prompt words and case-folded glosses
    assert target.text_model.lm_head.weight.data_ptr() == table.data_ptr()  # still tied


def test_warm_start_refuses_another_architecture(corpus_dir, tmp_path):
    from dataclasses import replace

    from nmmfast.model import CONFIGS, WordTokenizer, build_model
    from nmmfast.train import warm_start

    train(corpus_dir, "control", "cslr", tmp_path / "cslr", epochs=1, max_steps=1, **FAST)
    other = build_model(
        replace(CONFIGS["tiny"], pose_positions="none"), tokenizer=WordTokenizer.build(["a b"])
    )
    with pytest.raises(ValueError, match="cannot warm-start"):
        warm_start(other, tmp_path / "cslr")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        warm_start(other, tmp_path / "nowhere")


def test_init_from_starts_a_run_from_trained_weights(corpus_dir, tmp_path):
    train(corpus_dir, "control", "cslr", tmp_path / "cslr", epochs=1, **FAST)
    train(
        corpus_dir,
        "control",
        "slt",
        tmp_path / "slt",
        epochs=1,
        max_steps=0,
        init_from=tmp_path / "cslr",
        **FAST,
    )
    run = json.loads((tmp_path / "slt" / "run.json").read_text())
    assert run["init_from"] == str(tmp_path / "cslr")


def test_dev_from_skips_early_dev_scoring(corpus_dir, tmp_path):
    summary = train(corpus_dir, "control", "cslr", tmp_path / "run", epochs=2, dev_from=2, **FAST)
    records = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    ]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert epochs[0]["dev"] == {} and "wer" in epochs[1]["dev"]
    assert summary["best"]["epoch"] == 2
    with pytest.raises(ValueError, match="dev_from"):
        train(corpus_dir, "control", "cslr", tmp_path / "bad", epochs=2, dev_from=3, **FAST)


def test_label_smoothing_is_recorded_and_checked(corpus_dir, tmp_path):
    train(corpus_dir, "control", "cslr", tmp_path / "run", epochs=1, max_steps=1,
          label_smoothing=0.0, **FAST)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["label_smoothing"] == 0.0
    with pytest.raises(ValueError, match="label_smoothing"):
        train(corpus_dir, "control", "cslr", tmp_path / "bad", epochs=1, label_smoothing=1.0,
              **FAST)


def test_max_frames_reaches_the_model_config_and_is_checked(corpus_dir, tmp_path):
    from nmmfast.cli import main as cli_main
    from nmmfast.model.unisign import load_run

    run = tmp_path / "run"
    code = cli_main([
        "train", "--corpus", str(corpus_dir), "--partition", "control", "--task", "cslr",
        "--out", str(run), "--epochs", "1", "--batch-size", "8", "--dev-beam", "1",
        "--max-frames", "12", "--device", "cpu", "--no-progress",
    ])
    assert code == 0
    assert json.loads((run / "run.json").read_text())["max_frames"] == 12
    model, _, _ = load_run(run, device="cpu")
    assert model.config.max_frames == 12  # decoding, attribution and probes read it from here
    with pytest.raises(ValueError, match="max_frames=12"):
        train(corpus_dir, "control", "cslr", run, epochs=1, resume=True, max_frames=16,
              **dict(FAST, batch_size=8))  # the run's own batch size: only the frames differ
    with pytest.raises(ValueError, match="max_frames"):
        train(corpus_dir, "control", "cslr", tmp_path / "bad", epochs=1, max_frames=0, **FAST)


def test_runs_load_on_the_local_ranks_gpu_under_torchrun(monkeypatch):
    from nmmfast.model.unisign import default_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert default_device() == "cuda:3"  # each attribute/decode rank on its own GPU
