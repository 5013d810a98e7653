"""Probes: tracking failure against SynNMM's planted veils, the counterfactual probe's mechanics on
a tiny untrained model, the signer-identity probe on features with a known answer, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nmmfast.cli import main
from nmmfast.data import PoseStore
from nmmfast.data.dataset import Corpus
from nmmfast.data.synth import generate, write_corpus
from nmmfast.probes import (
    CANONICAL_FACE,
    auroc,
    counterfactual_probe,
    estimate_canonical_face,
    face_coherence,
    face_coherence_parts,
    markers_of,
    neutralize,
    procrustes_distance,
    region_features,
    region_positions,
    signer_identity_probe,
    tracking_report,
)
from nmmfast.skeleton import get_layout

# frames and samples the model-based tests feed: the pose encoder is slow on shared CPU cores
MODEL_FRAMES = 12
MODEL_SAMPLES = 6


@pytest.fixture(scope="module")
def synnmm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """160 SynNMM clips by 8 signers, 2 of them veiled (one mistracked smoothly, one with noise),
    written as a corpus directory."""
    from nmmfast.data.partitions import make_partitions, write_partitions

    corpus = generate(160, seed=11, n_signers=8, n_veiled=2, veil="mistrack,noise")
    out = write_corpus(corpus, tmp_path_factory.mktemp("synnmm"))
    write_partitions(out, make_partitions(corpus.rows, seed=0, names=["control"]))
    return out, corpus.rows


@pytest.fixture(scope="module")
def tiny_model(synnmm: tuple[Path, list[dict]]) -> Any:
    from nmmfast.model import WordTokenizer, build_model
    from nmmfast.model.unisign import PROMPT_TEMPLATE

    _, rows = synnmm
    texts = [PROMPT_TEMPLATE.format(lang="English")] + [row["text"] for row in rows]
    torch.manual_seed(0)
    return build_model("tiny", tokenizer=WordTokenizer.build(texts)).eval()


def _probe_ids(rows: list[dict]) -> list[str]:
    """A few samples covering every NMM category (question, negation, intensifier, none)."""
    chosen: list[str] = []
    for category in ("question", "negation", "intensifier", "none"):
        for row in rows:
            types = {span["type"] for span in row["nmm"]} or {"none"}
            if category in types and row["id"] not in chosen:
                chosen.append(row["id"])
                break
    for row in rows:
        if len(chosen) >= MODEL_SAMPLES:
            break
        if row["id"] not in chosen:
            chosen.append(row["id"])
    return chosen


# ---- tracking ------------------------------------------------------------------------------


def _similar(
    shape: np.ndarray, angle: float, scale: float, shift: tuple[float, float]
) -> np.ndarray:
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return scale * shape @ rotation.T + np.array(shift)


def test_procrustes_distance_is_similarity_invariant() -> None:
    moved = _similar(CANONICAL_FACE, 0.4, 37.0, (5.0, -2.0))
    mirrored = CANONICAL_FACE * [-1.0, 1.0]
    rng = np.random.default_rng(0)
    distance = procrustes_distance(
        np.stack([moved, mirrored, rng.normal(size=(68, 2))]), CANONICAL_FACE
    )
    assert distance[0] == pytest.approx(0.0, abs=1e-12)
    assert distance[1] > 0.01  # a reflection is not a similarity
    assert distance[2] > 0.5
    weights = np.zeros((1, 68))
    weights[0, :2] = 1.0  # fewer than 3 points: undefined
    assert np.isnan(procrustes_distance(moved[None], CANONICAL_FACE, weights)[0])


def test_face_coherence_scores_faces_low_and_noise_high() -> None:
    frames = 10
    raw = np.zeros((frames, 133, 3))
    for t in range(frames):
        raw[t, 23:91, :2] = _similar(CANONICAL_FACE, 0.05 * t, 0.05, (0.5, 0.4))
    raw[:, 23:91, 2] = 0.9
    noisy = raw.copy()
    noisy[:, 23:91, :2] = np.random.default_rng(1).uniform(0.4, 0.6, (frames, 68, 2))
    raw[4, 23:91, 2] = 0.1  # an undetected face: no score
    scores = face_coherence(raw)
    assert np.isnan(scores[4])
    assert np.nanmax(scores) < 1e-6
    assert face_coherence(noisy).min() > 0.5
    parts = face_coherence_parts(noisy)
    assert set(parts) == {"score", "shape", "placement", "jitter"}
    assert np.isnan(parts["placement"]).all()  # no body nose and eyes to place the face by
    np.testing.assert_array_equal(parts["score"], np.fmax(parts["shape"], parts["jitter"]))
    with pytest.raises(ValueError, match="terms"):
        face_coherence(raw, terms=["shape", "blur"])
    with pytest.raises(ValueError, match=r"\[T, 133, 3\]"):
        face_coherence(np.zeros((4, 68, 3)))


def _face_on_body(face: np.ndarray, frames: int = 6) -> np.ndarray:
    """Raw frames [frames, 133, 3] whose body nose and eyes sit where `CANONICAL_FACE` at 0.05
    scale, centred at (0.5, 0.4), puts them, with `face` [68, 2] (frame units) as the face-68."""
    true_face = _similar(CANONICAL_FACE, 0.0, 0.05, (0.5, 0.4))
    raw = np.zeros((frames, 133, 3))
    raw[:, 0, :2] = true_face[30]
    raw[:, 1, :2] = true_face[42:48].mean(axis=0)  # left eye: face-42..47
    raw[:, 2, :2] = true_face[36:42].mean(axis=0)
    raw[:, 5:7, :2] = [[0.58, 0.55], [0.42, 0.55]]  # shoulders
    raw[:, 23:91, :2] = face
    raw[:, list(range(0, 3)) + [5, 6] + list(range(23, 91)), 2] = 0.9
    return raw


def test_placement_sees_a_face_shaped_face_in_the_wrong_place() -> None:
    """A perfect face shape has shape 0 and jitter 0 wherever it is drawn; only its placement
    against the body's nose and eyes says that it is collapsed, on the chest, upside down or
    mirrored."""
    right = _similar(CANONICAL_FACE, 0.0, 0.05, (0.5, 0.4))
    wrong = {
        "collapsed": _similar(CANONICAL_FACE, 0.0, 0.005, (0.5, 0.4)),
        "on the chest": _similar(CANONICAL_FACE, 0.0, 0.05, (0.5, 0.55)),
        "upside down": _similar(CANONICAL_FACE, np.pi, 0.05, (0.5, 0.4)),
        "mirrored": right * [-1.0, 1.0] + [1.0, 0.0],
    }
    parts = face_coherence_parts(_face_on_body(right))
    assert np.nanmax(parts["placement"]) < 1e-9 and np.nanmax(parts["score"]) < 1e-6
    for name, face in wrong.items():
        parts = face_coherence_parts(_face_on_body(face))
        if name != "mirrored":  # a similarity of the face: nothing else sees it
            assert np.nanmax(parts["shape"]) < 1e-9, name
            assert np.nanmax(parts["jitter"]) < 1e-9, name
        assert np.nanmin(parts["placement"]) > 0.5, name
        assert np.nanmin(parts["score"]) > 0.5, name
        only_shape = face_coherence(_face_on_body(face), terms=["shape", "jitter"])
        np.testing.assert_allclose(only_shape, np.fmax(parts["shape"], parts["jitter"]))
    body_hidden = _face_on_body(wrong["on the chest"])
    body_hidden[:, 0, 2] = 0.1  # no confident body nose: placement undefined
    assert np.isnan(face_coherence_parts(body_hidden)["placement"]).all()


def test_estimated_canonical_face_recovers_the_face() -> None:
    rng = np.random.default_rng(2)
    truth = CANONICAL_FACE * [1.0, 1.2] + rng.normal(0.0, 0.03, (68, 2))  # a longer face
    raws = []
    for sample in range(4):
        raw = np.zeros((30, 133, 3))
        for t in range(30):
            face = _similar(truth, rng.uniform(-0.3, 0.3), 0.05, (0.5, 0.4))
            raw[t, 23:91, :2] = face + rng.normal(0.0, 1e-4, (68, 2))
        raw[:, 23:91, 2] = 0.9
        if sample == 3:  # a veiled sample: a minority the median ignores
            raw[:, 23:91, :2] = rng.uniform(0.45, 0.55, (30, 68, 2))
        raws.append(raw)
    estimate = estimate_canonical_face(raws)
    assert procrustes_distance(estimate[None], truth)[0] < 1e-3
    assert procrustes_distance(CANONICAL_FACE[None], truth)[0] > 5e-3
    report = face_coherence(raws[0], template=estimate)
    assert np.nanmax(report) < 1e-3


def test_auroc_counts_ties_half() -> None:
    assert auroc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
    assert auroc([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert auroc([0.1, np.nan, 0.9], [0, 0, 1]) == 1.0
    assert np.isnan(auroc([0.1, 0.2], [1, 1]))


def test_tracking_separates_veiled_signers(synnmm: tuple[Path, list[dict]]) -> None:
    path, rows = synnmm
    report = tracking_report(PoseStore(path / "poses"), None, rows)
    assert report["auroc"]["frames"] >= 0.95
    assert report["auroc"]["samples"] >= 0.95
    assert report["auroc"]["veiled_samples"] > 0 and report["auroc"]["unveiled_samples"] > 0
    veiled = {row["signer"] for row in rows if row["veiled"]}
    for signer, summary in report["signers"].items():
        assert summary["veiled"] == (signer in veiled)
        assert (summary["flagged_samples"] == summary["samples"]) == (signer in veiled)
    assert report["overall"]["samples"] == len(rows)
    assert len(report["examples"]) == 8
    assert all(
        sample_id.split("_")[0] in veiled for sample_id in (e["id"] for e in report["examples"])
    )
    json.dumps(report, allow_nan=False)


def test_tracking_reports_auroc_per_veil_kind(synnmm: tuple[Path, list[dict]]) -> None:
    """Both kinds are measured apart, each against every unveiled sample. The jitter term alone
    finds the noise veil but not the smooth mistrack: the face's shape and placement must."""
    path, rows = synnmm
    report = tracking_report(PoseStore(path / "poses"), None, rows)
    by_kind = report["auroc_by_kind"]
    assert set(by_kind) == {"mistrack", "noise"}
    unveiled = sum(not row["veiled"] for row in rows)
    for kind, block in by_kind.items():
        assert block["veiled_samples"] == sum(row["veil_kind"] == kind for row in rows)
        assert block["unveiled_samples"] == unveiled
        assert block["frames"] >= 0.95 and block["samples"] >= 0.95, kind
        assert block["veiled_flagged_share"] == 1.0, kind
    assert sum(b["veiled_samples"] for b in by_kind.values()) == report["auroc"]["veiled_samples"]
    assert by_kind["noise"]["terms"]["jitter"] >= 0.95
    assert by_kind["mistrack"]["terms"]["jitter"] < 0.8
    for term in ("shape", "placement"):
        assert by_kind["mistrack"]["terms"][term] >= 0.95, term
    modes = {row["veil_mode"] for row in rows if row["veil_kind"] == "mistrack"}
    assert set(report["auroc_by_mode"]) == modes and len(modes) >= 3
    by_id = {row["id"]: row for row in rows}
    for record in report["samples"]:
        assert record["veil_kind"] == by_id[record["id"]]["veil_kind"]
        assert record["veil_mode"] == by_id[record["id"]]["veil_mode"]
    # a manifest that does not say how the veils were planted: one group, "unspecified"
    plain = [{k: v for k, v in row.items() if not k.startswith("veil_")} for row in rows]
    report = tracking_report(PoseStore(path / "poses"), None, plain)
    assert set(report["auroc_by_kind"]) == {"unspecified"} and "auroc_by_mode" not in report
    assert report["auroc_by_kind"]["unspecified"]["frames"] == report["auroc"]["frames"]


# ---- counterfactual -------------------------------------------------------------------------


def test_region_positions_follow_the_layout() -> None:
    layout = get_layout("unisign69")
    face = region_positions(layout, "face")
    assert np.array_equal(face, np.sort(layout.parts["face"]))
    head = [layout.names[p] for p in region_positions(layout, "head")]
    assert head == ["0:nose", "3:left_ear", "4:right_ear"]  # unisign69 has no eyes
    hands = region_positions(layout, "hands")
    assert np.array_equal(hands, np.concatenate([layout.parts["left"], layout.parts["right"]]))
    both = region_positions(layout, "face+head")
    assert len(both) == len(face) + len(head)
    assert len(region_positions(layout, "none")) == 0
    assert len(region_positions(layout, "all")) == layout.num_joints
    with pytest.raises(ValueError, match="unknown region 'mouth'"):
        region_positions(layout, "face+mouth")


def test_neutralize_modes() -> None:
    generator = torch.Generator().manual_seed(0)
    poses = torch.rand(2, 5, 69, 3, generator=generator) + 0.1
    poses[0, 1, 3] = 0.0  # undetected in one frame: left out of the mean
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    positions = np.array([3, 7])
    assert torch.equal(neutralize(poses, mask, [], "zero"), poses)
    zero = neutralize(poses, mask, positions, "zero")
    assert zero[:, :, positions].abs().sum() == 0
    keep = np.setdiff1d(np.arange(69), positions)
    assert torch.equal(zero[:, :, keep], poses[:, :, keep])
    mean = neutralize(poses, mask, positions, "clip_mean")
    expected = poses[0, [0, 2, 3, 4], 3].mean(0)
    assert torch.allclose(mean[0, :, 3], expected.expand(5, 3))
    assert torch.allclose(mean[1, :, 7], poses[1, :3, 7].mean(0).expand(5, 3))
    signer = torch.full((2, 69, 3), 0.25)
    frozen = neutralize(poses, mask, positions, "signer_mean", signer)
    assert (frozen[:, :, positions] == 0.25).all()
    with pytest.raises(ValueError, match="signer_means"):
        neutralize(poses, mask, positions, "signer_mean")


def test_markers_of() -> None:
    assert markers_of("Does my father not buy the very red shirt?") == {
        "question": True,
        "negation": True,
        "intensifier": True,
    }
    assert markers_of("My father buys the shirt.") == {
        "question": False,
        "negation": False,
        "intensifier": False,
    }
    assert markers_of("She doesn't like it very much")["negation"]


def test_counterfactual_mechanics(synnmm: tuple[Path, list[dict]], tiny_model: Any) -> None:
    path, rows = synnmm
    ids = _probe_ids(rows)
    result = counterfactual_probe(
        tiny_model,
        Corpus.open(path),
        ids,
        regions=["none", "all"],
        num_beams=1,
        max_new_tokens=4,
        max_frames=MODEL_FRAMES,
        batch_size=MODEL_SAMPLES,
    )
    assert result["n"] == len(ids)
    control = result["regions"]["none"]
    assert control["change_rate"] == 0.0
    assert all(s["regions"]["none"]["delta_log_p"] == 0.0 for s in result["samples"])
    assert all(s["regions"]["none"]["prediction"] == s["prediction"] for s in result["samples"])
    everything = result["regions"]["all"]
    assert any(abs(s["regions"]["all"]["delta_log_p"]) > 1e-6 for s in result["samples"])
    assert everything["delta_log_p_mean"] != 0.0
    for region in ("none", "all"):
        categories = result["regions"][region]["by_category"]
        assert set(categories) == {"question", "negation", "intensifier", "none"}
        assert sum(c["n"] for c in categories.values()) >= len(ids)
        assert set(result["regions"][region]["marking"]) == {"question", "negation", "intensifier"}
        assert result["regions"][region]["marking"]["question"]["category_n"] >= 1
    assert result["settings"]["max_frames"] == MODEL_FRAMES
    json.dumps(result, allow_nan=False)


# ---- identity -------------------------------------------------------------------------------


def test_identity_probe_finds_the_region_that_carries_the_signer() -> None:
    rng = np.random.default_rng(0)
    signers = np.repeat(np.arange(6), 12)
    centroids = rng.normal(0.0, 1.0, (6, 16))
    features = {
        "carries": centroids[signers] + rng.normal(0.0, 0.3, (len(signers), 16)),
        "blind": rng.normal(0.0, 1.0, (len(signers), 16)),
    }
    result = signer_identity_probe(features, [f"s{s}" for s in signers], folds=4)
    assert result["classes"] == 6 and result["samples"] == 72
    assert result["chance"] == pytest.approx(1 / 6)
    assert result["regions"]["carries"]["accuracy"] >= 0.9
    assert result["regions"]["blind"]["accuracy"] <= result["chance"] + 0.15
    assert len(result["regions"]["carries"]["fold_accuracies"]) == 4
    with pytest.raises(ValueError, match="rows"):
        signer_identity_probe({"short": np.zeros((3, 2))}, ["a", "b", "a", "b"], folds=2)


def test_region_features_shapes(synnmm: tuple[Path, list[dict]], tiny_model: Any) -> None:
    path, rows = synnmm
    ids = _probe_ids(rows)
    pooled = region_features(
        tiny_model, Corpus.open(path), ids, max_frames=MODEL_FRAMES, batch_size=MODEL_SAMPLES
    )
    width = tiny_model.config.pose.spatial_channels[-1]
    assert pooled["ids"] == ids
    assert pooled["signers"] == [row["signer"] for i in ids for row in rows if row["id"] == i]
    shapes = {region: f.shape for region, f in pooled["features"].items()}
    assert shapes == {
        "body": (len(ids), width),
        "hands": (len(ids), 2 * width),
        "face": (len(ids), width),
        "all": (len(ids), tiny_model.d_model),
    }


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_tracking(synnmm: tuple[Path, list[dict]], tmp_path: Path) -> None:
    path, _ = synnmm
    out = tmp_path / "tracking.json"
    assert (
        main(["probe", "tracking", "--corpus", str(path), "--out", str(out), "--limit", "40"]) == 0
    )
    report = json.loads(out.read_text())
    assert report["probe"] == "tracking" and report["overall"]["samples"] == 40
    assert report["settings"]["corpus"] == str(path)
    assert report["settings"]["terms"] == ["shape", "placement", "jitter"]
    assert (
        main(["probe", "tracking", "--corpus", str(path), "--out", str(out), "--terms", "jitter"])
        == 0
    )
    report = json.loads(out.read_text())
    assert (
        report["settings"]["terms"] == ["jitter"]
        and "terms:jitter|" in (report["settings"]["signature"])
    )
    assert report["auroc_by_kind"]["mistrack"]["frames"] < 0.8  # jitter alone misses it
    assert report["auroc_by_kind"]["noise"]["frames"] >= 0.95
    test_ids = json.loads((path / "partitions" / "control.json").read_text())["test"]
    assert (
        main(
            [
                "probe",
                "tracking",
                "--corpus",
                str(path),
                "--partition",
                "control",
                "--template",
                "corpus",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert [s["id"] for s in report["samples"]] == test_ids
    assert report["settings"]["split"] == "test" and report["settings"]["template"] == "corpus"
    assert report["auroc"]["frames"] >= 0.95
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_model_probes(synnmm: tuple[Path, list[dict]], tiny_model: Any, tmp_path: Path) -> None:
    from nmmfast.model import save_model

    path, _ = synnmm
    run = tmp_path / "run"
    save_model(tiny_model, run, weights=False)
    torch.save({"model": tiny_model.state_dict()}, run / "best.pt")
    (run / "run.json").write_text(json.dumps({"task": "slt"}))
    common = [
        "--corpus",
        str(path),
        "--run",
        str(run),
        "--limit",
        "4",
        "--max-frames",
        str(MODEL_FRAMES),
        "--no-progress",
    ]
    out = tmp_path / "counterfactual.json"
    assert (
        main(
            [
                "probe",
                "counterfactual",
                *common,
                "--regions",
                "none,face",
                "--beam",
                "1",
                "--max-new-tokens",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result["regions"]) == {"none", "face"} and result["n"] == 4
    assert result["settings"]["run"] == str(run)
    out = tmp_path / "identity.json"
    assert main(["probe", "identity", *common, "--folds", "2", "--out", str(out)]) == 0
    assert set(json.loads(out.read_text())["regions"]) == {"body", "hands", "face", "all"}
    with pytest.raises(SystemExit, match="needs --run"):
        main(["probe", "identity", "--corpus", str(path), "--out", str(out)])
