"""Attribution jobs over a partition (streaming, resume, shards, CLI) and the share functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nmmfast.attribution.job import run_attribution
from nmmfast.attribution.shares import (
    attribution_shares,
    bootstrap_region_intervals,
    completeness_stats,
    format_share_table,
    frame_region_curves,
    share_difference,
    share_table,
    token_region_shares,
)
from nmmfast.attribution.summary import load_samples, summarize


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from nmmfast.data.partitions import write_partitions
    from nmmfast.data.synth import generate, write_corpus

    path = tmp_path_factory.mktemp("corpus")
    data = generate(n_samples=8, seed=0, n_signers=4, n_veiled=1, n_left_handed=1)
    write_corpus(data, path, overwrite=True)
    ids = [row["id"] for row in data.rows]
    write_partitions(path, {"control": {"train": ids[:3], "dev": [], "test": ids[3:]}})
    return path


@pytest.fixture(scope="module")
def model(corpus):
    from nmmfast.data.annotations import read_manifest
    from nmmfast.model import WordTokenizer, build_model

    texts = [row["text"] for row in read_manifest(corpus / "manifest.jsonl")]
    torch.manual_seed(0)
    return build_model("tiny", tokenizer=WordTokenizer.build(texts)).eval()


OPTIONS = dict(task="slt", target="reference", n_steps=3, max_frames=6, samples_per_call=2)


def _numbers(out) -> dict:
    return {s["id"]: (s["joint_abs"], float(s["delta"])) for s in load_samples(out)}


def test_job_resumes_and_shards_match_one_process(model, corpus, tmp_path) -> None:
    whole = run_attribution(model, corpus, "control", tmp_path / "whole", **OPTIONS)
    assert whole["computed"] == 5 and whole["summary"]["samples"] == 5
    assert whole["batch_rows"] in (4, 8, 16, 32)  # calibrated: more samples than one call
    # interrupted after two samples, then resumed: nothing is recomputed
    part = run_attribution(model, corpus, "control", tmp_path / "resumed", limit=2, **OPTIONS)
    assert part["computed"] == 2 and part["summary"] is None
    assert part["batch_rows"] is None  # one call's worth of samples: not worth calibrating
    rest = run_attribution(model, corpus, "control", tmp_path / "resumed", **OPTIONS)
    assert rest["computed"] == 3 and rest["skipped_existing"] == 2
    # two shards into one directory
    first = run_attribution(
        model, corpus, "control", tmp_path / "sharded", rank=0, world_size=2, **OPTIONS
    )
    assert first["summary"] is None and first["shard"] == 3
    second = run_attribution(
        model, corpus, "control", tmp_path / "sharded", rank=1, world_size=2, **OPTIONS
    )
    assert second["shard"] == 2 and second["summary"] is not None
    expected = _numbers(tmp_path / "whole")
    for directory in ("resumed", "sharded"):
        got = _numbers(tmp_path / directory)
        assert sorted(got) == sorted(expected)
        for sample_id, (joint_abs, delta) in expected.items():
            np.testing.assert_allclose(got[sample_id][0], joint_abs, rtol=1e-5, atol=1e-9)
            assert got[sample_id][1] == pytest.approx(delta, rel=1e-4, abs=1e-6)
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert sum(summary["region_shares"].values()) == pytest.approx(100.0)
    # a crash between writing a result and renaming it leaves a temporary file: not a result
    samples_dir = tmp_path / "whole" / "samples"
    (samples_dir / f".{sorted(expected)[0]}.999.tmp").write_bytes(b"PK\x03\x04 half written")
    assert sorted(_numbers(tmp_path / "whole")) == sorted(expected)
    (samples_dir / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="broken.npz: unreadable sample result"):
        load_samples(tmp_path / "whole")
    (samples_dir / "broken.npz").unlink()
    assert (tmp_path / "whole" / "table.md").read_text().startswith("| region | rank |")
    sample = load_samples(tmp_path / "whole")[0]
    assert sample["frame_region_abs"].shape == (6, 3)
    assert sample["tokens"][-1] == "</s>" and sample["reference"]


def test_adaptive_simpson_job_meets_its_tolerance(model, corpus, tmp_path) -> None:
    options = dict(OPTIONS, method="simpson", n_steps=5, tolerance=0.02, max_steps=257)
    result = run_attribution(model, corpus, "control", tmp_path, **options)
    assert result["batch_rows"] in (4, 8, 16, 32)  # calibrated with an odd Simpson step count
    samples = load_samples(tmp_path)
    assert all(bool(s["converged"]) for s in samples)
    assert result["summary"]["converged"] == len(samples)
    for sample in samples:
        gap = abs(float(sample["f_input"]) - float(sample["f_baseline"]))
        assert abs(float(sample["delta"])) <= 0.02 * gap
        assert int(sample["n_steps"]) % 2 == 1 and int(sample["n_steps"]) >= 5


def test_job_refuses_other_settings_in_the_same_directory(model, corpus, tmp_path) -> None:
    run_attribution(model, corpus, "control", tmp_path, limit=1, **OPTIONS)
    changed = dict(OPTIONS, n_steps=4)
    with pytest.raises(ValueError, match="n_steps=3, not 4"):
        run_attribution(model, corpus, "control", tmp_path, **changed)


def test_per_token_job_writes_token_shares(model, corpus, tmp_path) -> None:
    options = dict(OPTIONS, per_token=True, n_steps=2)
    result = run_attribution(model, corpus, "control", tmp_path, **options)
    tokens = json.loads((tmp_path / "token_shares.json").read_text())
    assert result["summary"]["token_shares"] == "token_shares.json"
    assert all(sum(v.values()) == pytest.approx(100.0) for v in tokens.values() if any(v.values()))
    sample = load_samples(tmp_path)[0]
    assert sample["token_region_abs"].shape == (len(sample["tokens"]), 3)


def test_cli_attribute_runs_a_training_run(model, corpus, tmp_path) -> None:
    from nmmfast.cli import main
    from nmmfast.model import save_model

    run = tmp_path / "run"
    save_model(model, run)
    torch.save(model.state_dict(), run / "best.pt")
    (run / "run.json").write_text(json.dumps({"task": "slt"}))
    out = tmp_path / "job"
    job = ["attribute", "--run", str(run), "--corpus", str(corpus), "--partition", "control"]
    options = ["--target", "reference", "--steps", "2", "--max-frames", "5", "--no-progress"]
    code = main([*job, "--out", str(out), *options, "--device", "cpu"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["samples"] == 5
    subset = tmp_path / "subset"
    assert main([*job, "--out", str(subset), *options, "--max-samples", "2"]) == 0
    assert json.loads((subset / "summary.json").read_text())["samples"] == 2
    assert main([*job, "--out", str(out), "--summarize-only"]) == 0


# ---- shares -------------------------------------------------------------------------------------


def test_shares_pool_over_samples_and_name_joints_by_coco_index() -> None:
    from nmmfast.skeleton import get_layout

    layout = get_layout("unisign69")
    joint_abs = np.zeros((2, 69))
    joint_abs[0, 8] = 3.0  # 10:right_wrist (body)
    joint_abs[1, 8] = 1.0
    joint_abs[1, 60] = 4.0  # a face joint
    shares = attribution_shares(joint_abs, layout)
    assert shares.region_share("body") == pytest.approx(50.0)
    assert shares.region_share("face") == pytest.approx(50.0)
    assert shares.joint.sum() == pytest.approx(100.0)
    table = share_table(shares, top=2, study_labels=True)
    body = [r for r in table if r["region"] == "body"]
    assert body[0] == {"region": "body", "rank": 0, "joint": "", "share": 50.0}
    assert body[1]["anchored"] is False
    assert body[1]["joint"] == "10:right_wrist" and body[1]["study_label"] == "8:right_elbow"
    text = format_share_table({"control/slt": table})
    assert "10:right_wrist" in text and "(total)" in text
    with pytest.raises(ValueError, match="J=5 joints"):
        attribution_shares(np.ones((1, 5)), layout)


def test_frame_curves_tokens_and_completeness() -> None:
    curves = frame_region_curves(
        [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, 2.0]])], n_bins=2
    )
    np.testing.assert_allclose(curves, [[60.0, 40.0], [0.0, 100.0]])
    shares = token_region_shares(
        [np.array([[1.0, 3.0], [2.0, 2.0]]), np.array([[1.0, 1.0]])], [["not", "</s>"], ["not"]]
    )
    np.testing.assert_allclose(shares["not"], [100 * 2 / 6, 100 * 4 / 6])
    stats = completeness_stats([0.01, -0.2, float("nan")], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0])
    assert stats["samples"] == 2
    assert stats["median"] == pytest.approx((0.01 + 0.1) / 2)
    assert stats["max"] == pytest.approx(0.1)


# ---- settings of the reference study and beyond: stop-gradients, baselines, channels ----------


def test_stop_gradients_keep_attributes_the_model_as_it_is(model, corpus, tmp_path) -> None:
    lifted = run_attribution(model, corpus, "control", tmp_path / "lift", **OPTIONS)["summary"]
    kept = run_attribution(
        model, corpus, "control", tmp_path / "keep", stop_gradients="keep", **OPTIONS
    )["summary"]
    assert lifted["job"]["stop_gradients"] == "lift" and kept["job"]["stop_gradients"] == "keep"
    assert "stop_gradients:keep" in kept["signature"]
    assert "note" in kept["completeness"] and "note" not in lifted["completeness"]
    a, b = _numbers(tmp_path / "lift"), _numbers(tmp_path / "keep")
    # the body context no longer carries gradient into the hands and face: shares move
    assert any(not np.allclose(a[i][0], b[i][0], rtol=1e-4) for i in a)
    with pytest.raises(ValueError, match="stop_gradients must be one of"):
        run_attribution(model, corpus, "control", tmp_path / "x", stop_gradients="no", **OPTIONS)


def test_baselines_and_the_channel_split(model, corpus, tmp_path) -> None:
    from nmmfast.skeleton import get_layout

    layout = get_layout(model.config.layout)
    anchored = layout.anchored_joints
    zero = run_attribution(model, corpus, "control", tmp_path / "zero", **OPTIONS)["summary"]
    for sample in load_samples(tmp_path / "zero"):
        # hand roots and face anchor: x = y = 0 on input and baseline, so no coords attribution
        assert np.all(sample["joint_abs_coords"][anchored] == 0)
        assert np.all(sample["joint_abs"][anchored] > 0)  # ... but the score channel draws some
    total = {
        r: zero["region_coords"][r] + zero["region_confidence"][r] for r in zero["region_shares"]
    }
    assert total == pytest.approx(zero["region_shares"])
    assert zero["anchored_joints"] == [layout.names[j] for j in anchored]
    keep = run_attribution(
        model, corpus, "control", tmp_path / "kc", baseline="keep-confidence", **OPTIONS
    )["summary"]
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in keep["region_confidence"].values())
    mean = run_attribution(
        model, corpus, "control", tmp_path / "mean", baseline="mean-pose", **OPTIONS
    )["summary"]
    assert len(mean["job"]["baseline_sha256"]) == 64 and "baseline:mean-pose" in mean["signature"]
    for sample in load_samples(tmp_path / "mean"):
        gap = float(sample["f_input"]) - float(sample["f_baseline"])
        assert float(sample["total"]) == pytest.approx(gap, abs=0.5 * abs(gap) + 1e-3)
    # the headline over x, y only: anchored joints drop to 0 and regions renormalise
    coords = summarize(tmp_path / "zero", channels="coords")
    assert coords["channels"] == "coords" and "channels:coords" in coords["signature"]
    assert sum(coords["region_shares"].values()) == pytest.approx(100.0)
    face = [r for r in coords["table"] if r["region"] == "face" and r["rank"] == 1][0]
    assert not face["anchored"]
    table = (tmp_path / "zero" / "table.md").read_text()
    assert "study label" in table and "coords %" in table and "channels:coords" in table
    header = (tmp_path / "zero" / "table.csv").read_text().splitlines()[0]
    assert "control/slt study label" in header and header.endswith("control/slt signature")


def test_bootstrap_intervals_cover_a_known_share() -> None:
    """Clips whose face fraction is Beta(3, 7) and total Gamma-distributed, independent: the
    pooled face share's expectation is 30 %. The 95 % intervals over 40 clips cover it in about
    95 of 100 independent corpora."""
    rng = np.random.default_rng(1)
    covered, trials = 0, 300
    for trial in range(trials):
        total = rng.gamma(2.0, 1.0, size=40)
        face = rng.beta(3.0, 7.0, size=40)
        region_abs = np.stack([total * face, total * (1 - face)], axis=1)
        (low, high), _ = bootstrap_region_intervals(region_abs, n_resamples=400, seed=trial)
        covered += low <= 30.0 <= high
    assert 0.88 <= covered / trials <= 0.99


def test_share_difference_interval_and_permutation_test() -> None:
    rng = np.random.default_rng(2)

    def clips(fraction: float, n: int = 40) -> np.ndarray:
        total = rng.gamma(2.0, 1.0, size=n)
        face = rng.beta(20 * fraction, 20 * (1 - fraction), size=n)
        return np.stack([total * face, total * (1 - face)], axis=1)

    apart = share_difference(clips(0.5), clips(0.3), 0, seed=0)
    assert apart["low"] > 0 and apart["p_value"] < 0.01
    assert apart["low"] <= 20.0 <= apart["high"] + 5.0
    same = [share_difference(clips(0.4), clips(0.4), 0, seed=s)["p_value"] for s in range(20)]
    assert sum(p < 0.05 for p in same) <= 3  # about 1 in 20 by chance
    assert np.isnan(share_difference(clips(0.4, 1), clips(0.4), 0)["p_value"])
