"""SynNMM: determinism, shapes and ranges, the corpus design, and that every planted marker and
signer trait is measurably present in the raw keypoints."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from nmmfast.data.synth import MISTRACK_MODES, NMM_TYPES, Corpus, generate, write_corpus
from nmmfast.data.synth.language import render_text

FACE0 = 23


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate(192, seed=5)


def _pixels(raw: np.ndarray, row: dict) -> np.ndarray:
    """[T, 133, 2] pixel coordinates; dropped frames (all zeros) become NaN."""
    px = raw[:, :, :2] * np.array([row["width"], row["height"]], dtype=np.float32)
    px[~_valid_frames(raw)] = np.nan
    return px


def _valid_frames(raw: np.ndarray) -> np.ndarray:
    return raw[:, :, 2].max(axis=1) > 0


def _span(row: dict, kind: str) -> tuple[int, int] | None:
    for m in row["nmm"]:
        if m["type"] == kind:
            return m["start"], m["end"]
    return None


def _inside_outside(row: dict, kind: str, values: np.ndarray, valid: np.ndarray):
    """Values in the fully-on middle of the marker's span and outside the span."""
    start, end = _span(row, kind)
    frames = np.arange(len(values))
    margin = 4
    inside = valid & (frames >= start + margin) & (frames < end - margin)
    outside = valid & ((frames < start) | (frames >= end))
    return values[inside], values[outside]


def _aligned_shape(points: np.ndarray) -> np.ndarray:
    """[..., P, 2] -> centred, unit-RMS shapes (similarity up to rotation)."""
    centred = points - points.mean(axis=-2, keepdims=True)
    return centred / np.sqrt((centred**2).sum(axis=(-2, -1), keepdims=True) / points.shape[-2])


# ------------------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_differs():
    first, second, other = generate(24, seed=3), generate(24, seed=3), generate(24, seed=4)
    assert first.rows == second.rows
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first.poses, second.poses, strict=True))
    assert any(
        a.shape != b.shape or a.tobytes() != b.tobytes()
        for a, b in zip(first.poses, other.poses, strict=True)
    )


def test_threaded_rendering_matches_serial(monkeypatch):
    import nmmfast.data.synth.render as synth

    monkeypatch.setattr(synth, "_CHUNK_FRAMES", 256)  # many chunks
    monkeypatch.setattr(synth, "_RENDER_THREADS", 3)
    threaded = generate(16, seed=8)
    monkeypatch.setattr(synth, "_RENDER_THREADS", 1)
    serial = generate(16, seed=8)
    pairs = zip(threaded.poses, serial.poses, strict=True)
    assert all(a.tobytes() == b.tobytes() for a, b in pairs)


def test_sample_count_does_not_change_lexicon_or_signers():
    small, large = generate(16, seed=9), generate(40, seed=9)
    assert small.lexicon.glosses == large.lexicon.glosses
    assert [s.gloss for s in small.sentences] == [s.gloss for s in large.sentences]
    assert [s.describe() for s in small.signers] == [s.describe() for s in large.signers]


# ------------------------------------------------------------------------------ shapes, ranges


def test_shapes_ranges_and_scores(corpus: Corpus):
    assert len(corpus.poses) == len(corpus.rows) == 192
    lengths = []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        assert raw.dtype == np.float32 and raw.ndim == 3 and raw.shape[1:] == (133, 3)
        assert raw.shape[0] == row["frames"]
        assert np.isfinite(raw).all()
        assert raw.min() >= 0.0 and raw.max() <= 1.0
        assert row["fps"] in (25, 30)
        lengths.append(row["frames"])
    lengths = np.array(lengths)
    assert 50 <= lengths.min() and lengths.max() <= 260
    assert 0.8 <= np.mean((lengths >= 60) & (lengths <= 200))
    scores = np.concatenate([raw[_valid_frames(raw)] for raw in corpus.poses])[:, :, 2]
    upper = np.r_[0:11, 23:133]  # the joints a signing video shows
    assert np.mean((scores[:, upper] >= 0.6) & (scores[:, upper] <= 1.0)) > 0.9
    assert np.median(scores[:, 13:23]) < 0.3  # legs and feet are out of the frame


def test_dropped_frames_and_hand_occlusion(corpus: Corpus):
    dropped = sum(int((~_valid_frames(raw)).sum()) for raw in corpus.poses)
    frames = sum(row["frames"] for row in corpus.rows)
    assert 0.002 < dropped / frames < 0.03
    longest = []
    for raw in corpus.poses:
        valid = _valid_frames(raw)
        for first in (91, 112):
            low = valid & (raw[:, first : first + 21, 2].max(axis=1) <= 0.3)
            run = best = 0
            for flag in low:
                run = run + 1 if flag else 0
                best = max(best, run)
            longest.append(best)
    assert sum(n >= 8 for n in longest) >= 0.1 * len(corpus.rows)
    # missing frames: clips are shorter than their plan
    assert (
        generate(8, seed=1, missing_frame_rate=0.0).rows[0]["frames"]
        >= generate(8, seed=1, missing_frame_rate=0.3).rows[0]["frames"]
    )


def test_ids_and_manifest_rows(corpus: Corpus):
    ids = corpus.ids()
    assert len(set(ids)) == len(ids)
    for row in corpus.rows:
        match = re.fullmatch(r"(\d\d)_(\d{4})(?:_(\d+))?", row["id"])
        assert match, row["id"]
        assert match.group(1) == row["signer"] and match.group(2) == row["sentence"]
        for key in ("gloss", "text", "width", "height", "handedness", "veiled", "nmm", "signs"):
            assert key in row
        assert row["gloss"] == " ".join(s["gloss"] for s in row["signs"])
        starts = [s["start"] for s in row["signs"]]
        assert starts == sorted(starts)
    json.dumps(corpus.rows)
    json.dumps(corpus.describe())
    repeated = generate(
        80, seed=2, n_signers=2, n_veiled=1, n_left_handed=0, n_sentences=30, n_glosses=20
    )
    assert any(re.fullmatch(r"\d\d_\d{4}_\d+", i) for i in repeated.ids())


# ------------------------------------------------------------------------------ corpus design


def test_signers_lexicon_and_sentences(corpus: Corpus):
    signers = corpus.signers
    assert len(signers) >= 12
    assert sum(s.veiled for s in signers) >= 3
    assert {s.handedness for s in signers} == {"left", "right"}
    assert len({round(s.shoulder_half, 4) for s in signers}) == len(signers)
    assert len({round(s.speed, 4) for s in signers}) == len(signers)
    assert len(corpus.lexicon) >= 60
    signs = {(g.handshape, g.location, g.movement) for g in corpus.lexicon.glosses}
    assert len(signs) == len(corpus.lexicon)
    assert len(corpus.sentences) >= 200
    assert len({s.gloss for s in corpus.sentences}) == len(corpus.sentences)
    for sentence in corpus.sentences:
        assert 3 <= len(sentence.glosses) <= 7
        assert all(re.fullmatch(r"[A-Z]+", g) for g in sentence.glosses)
        assert re.fullmatch(r"[A-Z][a-z I]+[.?]", sentence.text())


def test_unseen_sentence_split_exists(corpus: Corpus):
    """A fifth of the sentences can be held out so that every held-out gloss occurs in training."""
    rng = np.random.default_rng(0)
    uses: dict[str, int] = {}
    for sentence in corpus.sentences:
        for gloss in set(sentence.glosses):
            uses[gloss] = uses.get(gloss, 0) + 1
    test = []
    for index in rng.permutation(len(corpus.sentences)):
        glosses = set(corpus.sentences[index].glosses)
        if all(uses[g] > 1 for g in glosses):
            test.append(int(index))
            for g in glosses:
                uses[g] -= 1
        if len(test) == len(corpus.sentences) // 5:
            break
    assert len(test) == len(corpus.sentences) // 5
    train_glosses = {
        g for i, s in enumerate(corpus.sentences) if i not in set(test) for g in s.glosses
    }
    test_strings = {corpus.sentences[i].gloss for i in test}
    for i in test:
        assert set(corpus.sentences[i].glosses) <= train_glosses
    assert not test_strings & {s.gloss for i, s in enumerate(corpus.sentences) if i not in test}


def test_markers_change_text_not_glosses(corpus: Corpus):
    texts: dict[str, set[str]] = {}
    for row in corpus.rows:
        texts.setdefault(row["gloss"], set()).add(row["text"])
        kinds = {m["type"] for m in row["nmm"]}
        sentence = corpus.sentences[int(row["sentence"]) - 1]
        assert row["gloss"] == sentence.gloss
        expected = render_text(
            sentence,
            question="question" in kinds,
            negation="negation" in kinds,
            intensifier="intensifier" in kinds,
        )
        assert row["text"] == expected
        words = row["text"].rstrip(".?").lower().split()
        assert row["text"].endswith("?") == ("question" in kinds)
        if "question" in kinds:
            assert words[0] in ("do", "does", "did", "will")
        assert ("not" in words) == ("negation" in kinds)
        assert ("very" in words) == ("intensifier" in kinds)
    counts = {k: sum(any(m["type"] == k for m in r["nmm"]) for r in corpus.rows) for k in NMM_TYPES}
    assert all(n >= 0.1 * len(corpus.rows) for n in counts.values()), counts


def test_same_gloss_string_appears_with_different_texts():
    repeated = generate(150, seed=6, n_sentences=30, n_glosses=30)
    texts: dict[str, set[str]] = {}
    for row in repeated.rows:
        texts.setdefault(row["gloss"], set()).add(row["text"])
    assert sum(len(t) > 1 for t in texts.values()) >= 15


def test_marker_metadata_names_carrier_joints(corpus: Corpus):
    mouth_unisign = set(range(83, 91))
    for row in corpus.rows:
        for m in row["nmm"]:
            assert 0 <= m["start"] < m["end"] <= row["frames"]
            joints = set(m["joints"])
            assert joints == {j for js in m["carriers"].values() for j in js}
            if m["type"] in ("question", "negation"):
                assert {0, 3, 4} <= joints  # nose and ears follow the head
            if row["veiled"]:
                assert joints <= {0, 1, 2, 3, 4} | set(range(FACE0 + 36, FACE0 + 48))
            elif m["type"] == "intensifier":
                assert mouth_unisign <= joints
            elif m["type"] == "question":
                assert set(range(FACE0 + 17, FACE0 + 27)) <= joints  # eyebrows


# ------------------------------------------------------------------------------ planted markers


def test_question_tilts_head_forward_and_raises_brows(corpus: Corpus):
    shifts, brow_shifts, control = [], [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        px, valid = _pixels(raw, row), _valid_frames(raw)
        shoulders = np.linalg.norm(px[:, 5] - px[:, 6], axis=1)
        pitch = (px[:, 0, 1] - px[:, 3:5, 1].mean(axis=1)) / np.median(shoulders[valid])
        if _span(row, "question") is None:
            signs = row["signs"]
            start, end = signs[0]["start"], signs[-1]["end"]
            frames = np.arange(len(pitch))
            inside = valid & (frames >= start + 4) & (frames < end - 4)
            outside = valid & ((frames < start) | (frames >= end))
            control.append(pitch[inside].mean() - pitch[outside].mean())
            continue
        inside, outside = _inside_outside(row, "question", pitch, valid)
        shifts.append(inside.mean() - outside.mean())
        if not row["veiled"]:
            brow = px[:, FACE0 + 17 : FACE0 + 27, 1].mean(axis=1)
            eyes = px[:, FACE0 + 36 : FACE0 + 48, 1].mean(axis=1)
            jaw = np.linalg.norm(px[:, FACE0] - px[:, FACE0 + 16], axis=1)
            inside, outside = _inside_outside(row, "question", (eyes - brow) / jaw, valid)
            brow_shifts.append(inside.mean() - outside.mean())
    shifts, control = np.array(shifts), np.array(control)
    assert len(shifts) >= 20
    # the nose drops against the ears in every question, far beyond the idle head motion
    assert shifts.min() > 0.03
    assert shifts.min() > 2 * np.abs(control).max(), (shifts.min(), np.abs(control).max())
    assert np.min(brow_shifts) > 0.03


def test_negation_shakes_head(corpus: Corpus):
    ratios, crossings = [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        if _span(row, "negation") is None:
            continue
        px, valid = _pixels(raw, row), _valid_frames(raw)
        ears = px[:, 3:5]
        yaw = (px[:, 0, 0] - ears[:, :, 0].mean(axis=1)) / np.abs(ears[:, 0, 0] - ears[:, 1, 0])
        inside, outside = _inside_outside(row, "negation", yaw, valid)
        if len(inside) < 8 or len(outside) < 8:
            continue
        ratios.append(inside.std() / outside.std())
        centred = inside - inside.mean()
        crossings.append(int(np.sum(np.diff(np.sign(centred)) != 0)))
    assert len(ratios) >= 20
    assert np.median(ratios) > 4 and np.min(ratios) > 1.5
    assert np.median(crossings) >= 4  # side to side, several times


def test_intensifier_turns_mouth_down_and_squints(corpus: Corpus):
    mouth_shifts, eye_shifts = [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        if _span(row, "intensifier") is None or row["veiled"]:
            continue
        px, valid = _pixels(raw, row), _valid_frames(raw)
        jaw = np.linalg.norm(px[:, FACE0] - px[:, FACE0 + 16], axis=1)
        # inner-lip corners (face-60, face-64) against the upper inner lip: seen by unisign69
        corners = px[:, [FACE0 + 60, FACE0 + 64], 1].mean(axis=1)
        upper_lip = px[:, FACE0 + 62, 1]
        inside, outside = _inside_outside(row, "intensifier", (corners - upper_lip) / jaw, valid)
        mouth_shifts.append(inside.mean() - outside.mean())
        lids = px[:, [FACE0 + k for k in (40, 41, 46, 47)], 1].mean(axis=1) - px[
            :, [FACE0 + k for k in (37, 38, 43, 44)], 1
        ].mean(axis=1)
        inside, outside = _inside_outside(row, "intensifier", lids / jaw, valid)
        eye_shifts.append(inside.mean() - outside.mean())
    assert len(mouth_shifts) >= 10
    assert np.min(mouth_shifts) > 0.03
    assert np.max(eye_shifts) < -0.01


def test_face_shape_identifies_signer(corpus: Corpus):
    shapes, labels = [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        if row["veiled"]:
            continue
        valid = _valid_frames(raw)
        face = _aligned_shape(_pixels(raw, row)[valid][:, FACE0 : FACE0 + 68])
        shapes.append(face.mean(axis=0).ravel())
        labels.append(row["signer"])
    shapes, labels = np.array(shapes), np.array(labels)
    train = np.zeros(len(labels), dtype=bool)
    for signer in np.unique(labels):
        train[np.flatnonzero(labels == signer)[::2]] = True
    names = np.unique(labels)
    centroids = np.stack([shapes[train & (labels == s)].mean(axis=0) for s in names])
    distances = np.linalg.norm(shapes[~train, None] - centroids[None], axis=-1)
    accuracy = np.mean(names[distances.argmin(axis=1)] == labels[~train])
    assert len(names) >= 9
    assert accuracy > 0.9  # chance is 1 / len(names)


VEILED = [FACE0 + k for k in range(68) if not 36 <= k <= 47]  # a veil shows only the eyes


def _face_frame(px: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame [T, ...] of pixel keypoints: eye centres, inter-ocular distance (the true eyes
    stay visible under a veil, so they give the face's true size), the veiled points."""
    right_eye = px[:, FACE0 + 36 : FACE0 + 42].mean(axis=1)
    left_eye = px[:, FACE0 + 42 : FACE0 + 48].mean(axis=1)
    return {
        "left_eye": left_eye,
        "right_eye": right_eye,
        "iod": np.linalg.norm(left_eye - right_eye, axis=1),
        "veiled": px[:, VEILED],
    }


def _veil_step(raw: np.ndarray, row: dict) -> float:
    """Median frame-to-frame displacement of the veiled points, in inter-ocular distances."""
    face = _face_frame(_pixels(raw, row)[_valid_frames(raw)])
    steps = np.linalg.norm(np.diff(face["veiled"], axis=0), axis=-1).mean(axis=-1)
    return float(np.median(steps / face["iod"][1:]))


@pytest.fixture(scope="module")
def noise_corpus() -> Corpus:
    return generate(96, seed=5, veil="noise")


def test_noise_veil_is_confident_but_incoherent(noise_corpus: Corpus):
    face_change = {True: [], False: []}
    eye_change = {True: [], False: []}
    veiled_scores = []
    for raw, row in zip(noise_corpus.poses, noise_corpus.rows, strict=True):
        assert row["veil_kind"] == ("noise" if row["veiled"] else None)
        assert row["veil_mode"] is None
        valid = _valid_frames(raw)
        px = _pixels(raw, row)[valid]
        face = _aligned_shape(px[:, VEILED])
        eyes = _aligned_shape(px[:, FACE0 + 36 : FACE0 + 48])
        face_change[row["veiled"]].append(np.median(np.linalg.norm(np.diff(face, axis=0), axis=-1)))
        eye_change[row["veiled"]].append(np.median(np.linalg.norm(np.diff(eyes, axis=0), axis=-1)))
        if row["veiled"]:
            veiled_scores.append(np.median(raw[valid][:, VEILED, 2]))
    assert np.min(face_change[True]) > 5 * np.max(face_change[False])
    assert np.median(eye_change[True]) < 2 * np.median(eye_change[False])
    assert np.min(veiled_scores) > 0.7


def test_mistrack_veil_is_smooth_and_confident(corpus: Corpus, noise_corpus: Corpus):
    """The mistracked face moves like a tracked face (recording jitter and slow drift), some thirty
    times less from frame to frame than the noise veil, at the scores of a real face."""
    steps: dict[str, list[float]] = {"mistrack": [], "noise": [], "none": []}
    scores, eye_change, plain_eye_change = [], [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        assert row["veil_kind"] == ("mistrack" if row["veiled"] else None)
        assert (row["veil_mode"] in MISTRACK_MODES) == row["veiled"]
        steps[row["veil_kind"] or "none"].append(_veil_step(raw, row))
        valid = _valid_frames(raw)
        eyes = _aligned_shape(_pixels(raw, row)[valid][:, FACE0 + 36 : FACE0 + 48])
        change = np.median(np.linalg.norm(np.diff(eyes, axis=0), axis=-1))
        (eye_change if row["veiled"] else plain_eye_change).append(change)
        if row["veiled"]:
            scores.append(np.median(raw[valid][:, VEILED, 2]))
    for raw, row in zip(noise_corpus.poses, noise_corpus.rows, strict=True):
        if row["veiled"]:
            steps["noise"].append(_veil_step(raw, row))
    assert len(steps["mistrack"]) >= 30
    assert {row["veil_mode"] for row in corpus.rows if row["veiled"]} == set(MISTRACK_MODES)
    assert np.max(steps["mistrack"]) < 0.1 * np.min(steps["noise"])
    assert np.median(steps["mistrack"]) < 1.5 * np.median(steps["none"])
    assert np.min(scores) > 0.7
    # the eyes, which the veil shows, are tracked as well as anyone's
    assert np.median(eye_change) < 2 * np.median(plain_eye_change)


def test_mistrack_is_a_wrong_but_plausible_face(corpus: Corpus):
    """Each mode is a face (up to similarity, or a reflection for "mirror"), wrong in its own
    way against the true eyes and the body's nose: collapsed to a fraction of the face's size,
    below the nose, with the jaw's ends swapped, or turned against the eye line."""
    from nmmfast.probes.tracking import CANONICAL_FACE, procrustes_distance

    template = CANONICAL_FACE[[k - FACE0 for k in VEILED]]
    measures: dict[str, list[dict[str, float]]] = {}
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        px = _pixels(raw, row)[_valid_frames(raw)]
        face = _face_frame(px)
        veiled, iod = face["veiled"], face["iod"]
        centre = veiled.mean(axis=1)
        jaw = px[:, FACE0 + 16] - px[:, FACE0]  # face-0 -> face-16: image left to right
        eye_line = face["left_eye"] - face["right_eye"]
        turn = np.angle((jaw[:, 0] + 1j * jaw[:, 1]) / (eye_line[:, 0] + 1j * eye_line[:, 1]))
        mirrored = np.stack([-veiled[..., 0], veiled[..., 1]], axis=-1)
        measures.setdefault(row["veil_mode"] or "none", []).append(
            {
                "spread": np.median(
                    np.sqrt(((veiled - centre[:, None]) ** 2).sum(-1).mean(-1)) / iod
                ),
                "below_nose": np.median((centre[:, 1] - px[:, 0, 1]) / iod),
                "turn": np.degrees(np.median(np.abs(turn))),
                "shape": np.median(procrustes_distance(veiled, template)),
                "mirrored_shape": np.median(procrustes_distance(mirrored, template)),
            }
        )

    def values(mode: str, key: str) -> np.ndarray:
        return np.array([m[key] for m in measures[mode]])

    # the true faces, for reference
    assert values("none", "spread").min() > 0.6
    assert np.abs(values("none", "below_nose")).max() < 0.3
    assert values("none", "turn").max() < 5.0
    assert values("none", "shape").max() < 0.1
    # wrong ...
    assert values("collapse", "spread").max() < 0.3 * values("none", "spread").min()
    assert values("shift", "below_nose").min() > 0.5
    assert values("mirror", "turn").min() > 150.0  # face-0 on the image right
    assert values("rotate", "turn").min() > 40.0
    # ... but face-shaped (a collapsed face is too small for its shape to outlast the jitter)
    for mode in ("shift", "rotate"):
        assert values(mode, "shape").max() < 0.1, mode
    assert values("mirror", "mirrored_shape").max() < 0.1
    assert values("mirror", "shape").min() > 0.5


def test_mistracked_points_carry_no_marker(corpus: Corpus):
    """A veil's mistracked face follows the body, not the head: the head shake of a negation
    moves the body's nose, not the mistracked points."""
    nose_ratios, veil_ratios = [], []
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        if not row["veiled"] or _span(row, "negation") is None:
            continue
        px, valid = _pixels(raw, row), _valid_frames(raw)
        shoulders = px[:, 5:7, 0].mean(axis=1)
        for points, ratios in ((px[:, [0]], nose_ratios), (px[:, VEILED], veil_ratios)):
            sideways = points[..., 0].mean(axis=1) - shoulders
            inside, outside = _inside_outside(row, "negation", sideways, valid)
            if len(inside) >= 8 and len(outside) >= 8:
                ratios.append(inside.std() / outside.std())
    assert len(veil_ratios) >= 5
    assert np.median(nose_ratios) > 4
    assert np.median(veil_ratios) < 1.5


def test_both_veil_kinds_are_planted_and_recorded():
    mixed = generate(64, seed=3, veil="mistrack,noise")
    noise_only = generate(64, seed=3, veil="noise")
    mistrack_only = generate(64, seed=3, veil=["mistrack"])
    assert mixed.settings["veil"] == "mistrack,noise"
    kinds = [s.veil_kind for s in mixed.signers if s.veiled]
    assert kinds == ["mistrack", "noise", "mistrack", "noise"]  # veiled signers take turns
    assert all(s.veil_kind is None for s in mixed.signers if not s.veiled)
    described = {s["code"]: s for s in mixed.describe()["signers"]}
    for signer in mixed.signers:
        assert described[signer.code]["veil_kind"] == signer.veil_kind
    # the kind of veil changes nothing else: each clip is the one of the corpus of its kind
    for i, row in enumerate(mixed.rows):
        assert row["veil_kind"] == described[row["signer"]]["veil_kind"]
        assert (row["veil_mode"] is not None) == (row["veil_kind"] == "mistrack")
        same_as = noise_only if row["veil_kind"] == "noise" else mistrack_only
        assert mixed.poses[i].tobytes() == same_as.poses[i].tobytes(), row["id"]
        if not row["veiled"]:
            assert mixed.poses[i].tobytes() == noise_only.poses[i].tobytes()
    with pytest.raises(ValueError, match="veil"):
        generate(4, veil="blur")
    with pytest.raises(ValueError, match="veil"):
        generate(4, veil=[])


def test_dominant_hand_follows_handedness(corpus: Corpus):
    spread: dict[str, np.ndarray] = {}
    for raw, row in zip(corpus.poses, corpus.rows, strict=True):
        px = _pixels(raw, row)[_valid_frames(raw)]
        wrists = px[:, [9, 10]] / row["height"]  # left, right
        spread[row["signer"]] = spread.get(row["signer"], 0) + wrists.std(axis=0).sum(axis=-1)
    for signer in corpus.signers:
        left, right = spread[signer.code]
        assert (left > right) == (signer.handedness == "left"), signer.code


def test_rates_switch_markers_off():
    plain = generate(24, seed=0, question_rate=0, negation_rate=0, intensifier_rate=0)
    assert all(not row["nmm"] for row in plain.rows)
    assert all(row["text"].endswith(".") for row in plain.rows)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="question_rate"):
        generate(4, question_rate=1.5)
    with pytest.raises(ValueError, match="n_glosses"):
        generate(4, n_glosses=5)
    with pytest.raises(ValueError, match="n_veiled"):
        generate(4, n_signers=12, n_veiled=13)


# ------------------------------------------------------------------------------ on disk


def test_cli_writes_a_corpus_the_store_and_manifest_reader_open(tmp_path):
    pytest.importorskip("nmmfast.data.annotations")
    from nmmfast.cli import main
    from nmmfast.data import PoseStore
    from nmmfast.data.annotations import read_manifest

    out = tmp_path / "corpus"
    assert main(["synth", "--out", str(out), "--samples", "20", "--seed", "7"]) == 0
    expected = generate(20, seed=7)
    store = PoseStore(out / "poses")
    assert sorted(store.ids()) == sorted(expected.ids())
    for raw, row in zip(expected.poses, expected.rows, strict=True):
        np.testing.assert_array_equal(store[row["id"]], raw)
        meta = store.meta(row["id"])
        assert meta["width"] == row["width"] and meta["height"] == row["height"]
    rows = read_manifest(out / "manifest.jsonl")
    by_id = {r["id"]: r for r in rows}
    for row in expected.rows:
        assert by_id[row["id"]]["text"] == row["text"]
        assert by_id[row["id"]]["gloss"] == row["gloss"]
    described = json.loads((out / "synnmm.json").read_text())
    assert len(described["lexicon"]) == len(expected.lexicon)
    with pytest.raises(FileExistsError):
        write_corpus(expected, out)
