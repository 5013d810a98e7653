"""SynNMM: the generated corpus of raw COCO-WholeBody pose sequences with planted ground truth
(signers, parametric signs, sentences, non-manual markers that change the text but not the glosses).
`generate` builds it in memory (deterministic by seed), `write_corpus` stores it, `nmmfast synth`
runs both.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.data.synth.body import (
    ALL_FACE,
    BROWS,
    CHIN,
    EYES,
    FACE0,
    HEAD_BODY,
    LEFT_HAND0,
    MISTRACK_MODES,
    MOUTH,
    RIGHT_HAND0,
    VEIL_KINDS,
    VEILED_FACE,
    Signer,
    SignerTable,
    make_signers,
    mistracked_face,
    pose_body_units,
)
from nmmfast.data.synth.language import (
    HAND_STATE,
    TABLE_STEPS,
    Lexicon,
    Sentence,
    build_lexicon,
    build_sentences,
    trajectory_table,
)

__all__ = [
    "MISTRACK_MODES",
    "NMM_TYPES",
    "VEIL_KINDS",
    "Corpus",
    "Lexicon",
    "Sentence",
    "Signer",
    "configure_parser",
    "generate",
    "run_cli",
    "write_corpus",
]

NMM_TYPES = ("question", "negation", "intensifier")
SOURCE = "synnmm"
_SIGN, _TRANSITION = 0, 1
_CHUNK_FRAMES = 4096  # frames rendered per vectorised pass: keeps the temporaries in cache
_RENDER_THREADS = min(2, os.cpu_count() or 1)


@dataclass
class Corpus:
    """A generated corpus held in memory.

    poses[i] is sample i's raw pose, [T_i, 133, 3] float32 (x / width, y / height, score);
    rows[i] its manifest row (id, signer, sentence, gloss, text, frames, fps, width, height,
    source, handedness, veiled, veil_kind, veil_mode, nmm, signs, repetition).
    """

    poses: list[np.ndarray]
    rows: list[dict[str, Any]]
    lexicon: Lexicon
    sentences: list[Sentence]
    signers: list[Signer]
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> list[str]:
        return [row["id"] for row in self.rows]

    def records(self) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
        """(id, raw [T, 133, 3] float32, store metadata) per sample, for `PoseStore.extend`."""
        for raw, row in zip(self.poses, self.rows, strict=True):
            meta = {k: row[k] for k in ("signer", "sentence", "fps", "width", "height", "source")}
            yield row["id"], raw, meta

    def describe(self) -> dict[str, Any]:
        """Corpus-level ground truth: settings, lexicon, sentences and signers (JSON-ready)."""
        return {
            "source": SOURCE,
            "settings": self.settings,
            "lexicon": [asdict(g) for g in self.lexicon.glosses],
            "sentences": [
                {
                    "sentence": f"{s.index + 1:04d}",
                    "gloss": s.gloss,
                    "roles": list(s.roles),
                    "text": s.text(),
                }
                for s in self.sentences
            ],
            "signers": [s.describe() for s in self.signers],
        }


def _joints(*groups: tuple[int, ...]) -> list[int]:
    return sorted({j for group in groups for j in group})


# COCO joints that carry each marker, for unveiled and veiled signers (a veil hides all face
# points but the eyes; the body's nose, eyes and ears still follow the head)
_CARRIERS: dict[str, dict[bool, dict[str, list[int]]]] = {
    "question": {
        False: {"head_tilt": _joints(HEAD_BODY, ALL_FACE), "brow_raise": _joints(BROWS, EYES)},
        True: {"head_tilt": _joints(HEAD_BODY, EYES), "brow_raise": _joints(EYES)},
    },
    "negation": {
        False: {"head_shake": _joints(HEAD_BODY, ALL_FACE)},
        True: {"head_shake": _joints(HEAD_BODY, EYES)},
    },
    "intensifier": {
        False: {
            "brow_furrow": _joints(BROWS),
            "squint": _joints(EYES),
            "mouth_down": _joints(MOUTH, CHIN),
        },
        True: {"squint": _joints(EYES)},
    },
}


def _assign_samples(
    n_samples: int, n_signers: int, n_sentences: int, rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """(signer, sentence, repetition) per sample, sorted by id.

    Signers get equal shares; the sentences are cycled through one random order, so every sentence
    is signed about n_samples / n_sentences times, by different signers.
    """
    order = rng.permutation(n_sentences)
    shares = np.full(n_signers, n_samples // n_signers)
    shares[: n_samples % n_signers] += 1
    out = []
    position = 0
    for signer in range(n_signers):
        counts: dict[int, int] = {}
        for _ in range(int(shares[signer])):
            sentence = int(order[position % n_sentences])
            position += 1
            out.append((signer, sentence, counts.get(sentence, 0)))
            counts[sentence] = counts.get(sentence, 0) + 1
    return sorted(out)


def _smoothstep5(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile 10u^3 - 15u^4 + 6u^5."""
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def _lookup(table: np.ndarray, gloss: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Manual state [N, MANUAL_STATE] of each frame's gloss at its phase in [0, 1]."""
    position = np.clip(phase, 0.0, 1.0) * (TABLE_STEPS - 1)
    i0 = np.minimum(position.astype(np.int64), TABLE_STEPS - 2)
    frac = (position - i0)[:, None]
    rows = table.reshape(-1, table.shape[-1])
    flat = gloss * TABLE_STEPS + i0
    before = np.take(rows, flat, axis=0)
    after = np.take(rows, flat + 1, axis=0)
    after -= before
    after *= frac
    before += after
    return before


def generate(
    n_samples: int = 2000,
    seed: int = 0,
    *,
    n_signers: int = 16,
    n_veiled: int = 4,
    veil: str | Sequence[str] = "mistrack",
    n_left_handed: int = 3,
    n_glosses: int = 64,
    n_sentences: int = 240,
    min_glosses: int = 3,
    max_glosses: int = 7,
    question_rate: float = 0.3,
    negation_rate: float = 0.3,
    intensifier_rate: float = 0.35,
    jitter_px: float = 1.5,
    drop_frame_rate: float = 0.01,
    missing_frame_rate: float = 0.01,
    occlusion_rate: float = 0.2,
) -> Corpus:
    """Generate the SynNMM corpus in memory, deterministic by `seed`.

    Args:
        n_samples: number of clips; signers share them equally, each sentence is signed about
            n_samples / n_sentences times by different signers.
        seed: every random draw follows from it (lexicon, sentences, signers and samples use
            separate streams, so changing `n_samples` keeps the lexicon, sentences and signers).
        n_signers, n_veiled, n_left_handed: signers, how many wear a face veil (all face points
            but the eyes confidently wrong) and how many sign left-handed.
        veil: how the pose estimator gets a veiled face wrong, one of VEIL_KINDS or several
            (a sequence or a comma-separated string, e.g. "mistrack,noise": the veiled signers
            take them in turn). "mistrack": per clip, one of MISTRACK_MODES, a generic face
            collapsed to 5..35 % of its size, shifted onto the chin, neck or upper chest,
            mirrored left-right, or turned 45..180°, drifting, breathing and turning slowly
            (sums of 0.1..0.5 Hz sinusoids; only the recording jitter changes from frame to
            frame), placed by the body, not the head, so it carries no marker; scores those of
            a real face, lowered by 0..0.1 per clip; the row's `veil_mode` names the mode.
            "noise": the points land anywhere on the head, anew every frame, with scores
            0.75..0.95 (only their mean follows the head). Either way the eyes stay right.
        n_glosses: lexicon size (16..MAX_GLOSSES); n_sentences: distinct gloss strings, each of
            `min_glosses`..`max_glosses` glosses.
        question_rate, negation_rate: share of clips signed as a yes/no question (brow raise and
            forward head tilt over the sentence) and negated (head shake over the verb phrase);
            intensifier_rate: share of the clips whose sentence has an adjective or a gradable verb
            that get the intense face (brow furrow, squint, mouth corners down) over that sign.
            Each marker changes the text, never the glosses.
        jitter_px: keypoint jitter (standard deviation, pixels at 720 px frame height);
        drop_frame_rate: share of frames with no detection (all zeros); missing_frame_rate: share of
            frames removed from the clip; occlusion_rate: share of clips where one hand is
            occluded (scores 0.05..0.3) for 8..25 frames.

    Returns:
        Corpus with poses [T, 133, 3] float32 (x / width, y / height, score; in [0, 1]) and the
        manifest rows. Frame ranges in the rows (`nmm`, `signs`) are [start, end) in the clip's
        frames, after the missing frames are removed.
    """
    for name, rate in (
        ("question_rate", question_rate),
        ("negation_rate", negation_rate),
        ("intensifier_rate", intensifier_rate),
        ("drop_frame_rate", drop_frame_rate),
        ("missing_frame_rate", missing_frame_rate),
        ("occlusion_rate", occlusion_rate),
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 1 <= n_sentences <= 9999:
        raise ValueError(f"n_sentences must be in [1, 9999] (four-digit ids), got {n_sentences}")
    if jitter_px < 0:
        raise ValueError(f"jitter_px must be >= 0, got {jitter_px}")
    veil_kinds = _veil_kinds(veil)
    settings = {
        "n_samples": n_samples,
        "seed": seed,
        "n_signers": n_signers,
        "n_veiled": n_veiled,
        "veil": ",".join(veil_kinds),
        "n_left_handed": n_left_handed,
        "n_glosses": n_glosses,
        "n_sentences": n_sentences,
        "min_glosses": min_glosses,
        "max_glosses": max_glosses,
        "question_rate": question_rate,
        "negation_rate": negation_rate,
        "intensifier_rate": intensifier_rate,
        "jitter_px": jitter_px,
        "drop_frame_rate": drop_frame_rate,
        "missing_frame_rate": missing_frame_rate,
        "occlusion_rate": occlusion_rate,
    }
    # the veil has its own stream (the seventh child: the first six are as they always were), so
    # the kind of veil changes nothing else
    seeds = np.random.SeedSequence(seed).spawn(7)
    lexicon_rng, sentence_rng, signer_rng, sample_rng, noise_rng = map(
        np.random.default_rng, seeds[:5]
    )
    veil_rng = np.random.default_rng(seeds[6])

    lexicon = build_lexicon(n_glosses, lexicon_rng)
    sentences = build_sentences(
        lexicon, n_sentences, sentence_rng, min_glosses=min_glosses, max_glosses=max_glosses
    )
    signers = make_signers(n_signers, n_veiled, n_left_handed, signer_rng, veil_kinds)
    table = trajectory_table(lexicon).astype(np.float32)
    rest = len(lexicon)
    plan = _plan_samples(
        _assign_samples(n_samples, n_signers, n_sentences, sample_rng),
        lexicon,
        sentences,
        signers,
        sample_rng,
        rates=(question_rate, negation_rate, intensifier_rate),
    )
    frames = _frame_parameters(plan, signers, table, rest, sample_rng)
    frames["mistrack"] = _mistrack_parameters(frames, veil_rng)
    modes = frames["mistrack"]["clip_mode"]
    for s, sample in enumerate(plan):
        if sample["row"]["veil_kind"] == "mistrack":
            sample["row"]["veil_mode"] = MISTRACK_MODES[modes[s]]
    keep = noise_rng.random(frames["count"]) >= missing_frame_rate
    raw = _render(
        frames, keep, signers, noise_rng, seeds[5], jitter_px, drop_frame_rate, occlusion_rate
    )

    # split into clips and move the frame ranges past the removed frames
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    poses, rows = [], []
    for sample in plan:
        first, last = sample["offset"], sample["offset"] + sample["frames"]
        start, stop = kept_before[first], kept_before[last]
        poses.append(raw[start:stop])

        def moved(frame: int, first: int = first, start: int = start) -> int:
            return int(kept_before[first + frame] - start)

        row = sample["row"]
        row["frames"] = int(stop - start)
        for span in row["nmm"] + row["signs"]:
            span["start"], span["end"] = moved(span["start"]), moved(span["end"])
        rows.append(row)
    return Corpus(poses, rows, lexicon, sentences, signers, settings)


def _plan_samples(
    assignment: list[tuple[int, int, int]],
    lexicon: Lexicon,
    sentences: list[Sentence],
    signers: list[Signer],
    rng: np.random.Generator,
    *,
    rates: tuple[float, float, float],
) -> list[dict[str, Any]]:
    """Per sample: its segments (rest, signs, transitions) with durations, its markers and row."""
    question_rate, negation_rate, intensifier_rate = rates
    rest = len(lexicon)
    plan = []
    offset = 0
    for signer_index, sentence_index, repetition in assignment:
        signer = signers[signer_index]
        sentence = sentences[sentence_index]
        fps, speed = signer.fps, signer.speed
        glosses = [lexicon.by_name[g] for g in sentence.glosses]
        k = len(glosses)
        draws = rng.random(3)
        question = bool(draws[0] < question_rate)
        negation = bool(draws[1] < negation_rate)
        target = sentence.intensifier_target()
        intensifier = bool(target >= 0 and draws[2] < intensifier_rate)
        sign_jitter = rng.uniform(0.9, 1.1, k)
        transition_jitter = rng.uniform(0.85, 1.15, k + 1)
        holds = rng.uniform(0.2, 0.4, 2)

        def frames_of(seconds: float, fps: int = fps) -> int:
            return max(2, int(round(seconds * fps)))

        # segments: (kind, gloss A, gloss B, frames)
        segments = [(_SIGN, rest, rest, frames_of(holds[0]))]
        segments.append(
            (_TRANSITION, rest, glosses[0], frames_of(0.3 * speed * transition_jitter[0]))
        )
        sign_spans = []
        cursor = sum(s[3] for s in segments)
        for i, gloss in enumerate(glosses):
            n = frames_of(lexicon.glosses[gloss].duration_s * speed * sign_jitter[i])
            segments.append((_SIGN, gloss, gloss, n))
            sign_spans.append((cursor, cursor + n))
            cursor += n
            following = glosses[i + 1] if i + 1 < k else rest
            seconds = (0.2 if i + 1 < k else 0.3) * speed * transition_jitter[i + 1]
            segments.append((_TRANSITION, gloss, following, frames_of(seconds)))
            cursor += segments[-1][3]
        segments.append((_SIGN, rest, rest, frames_of(holds[1])))
        total = cursor + segments[-1][3]

        ramp = max(2, int(round(0.12 * fps)))
        nmm = []
        veiled = signer.veiled
        if question:
            nmm.append(("question", 0, k - 1))
        if negation:
            nmm.append(("negation", *sentence.negation_span()))
        if intensifier:
            nmm.append(("intensifier", target, target))
        nmm_rows = []
        for kind, first, last in nmm:
            start = max(0, sign_spans[first][0] - ramp)
            end = min(total, sign_spans[last][1] + ramp)
            carriers = _CARRIERS[kind][veiled]
            nmm_rows.append(
                {
                    "type": kind,
                    "start": start,
                    "end": end,
                    "glosses": [first, last],
                    "joints": _joints(*[tuple(j) for j in carriers.values()]),
                    "carriers": carriers,
                }
            )
        sample_id = f"{signer.code}_{sentence_index + 1:04d}"
        if repetition:
            sample_id += f"_{repetition}"
        row = {
            "id": sample_id,
            "signer": signer.code,
            "sentence": f"{sentence_index + 1:04d}",
            "gloss": sentence.gloss,
            "text": sentence.text(question=question, negation=negation, intensifier=intensifier),
            "frames": total,
            "fps": fps,
            "width": signer.width,
            "height": signer.height,
            "source": SOURCE,
            "handedness": signer.handedness,
            "veiled": veiled,
            "veil_kind": signer.veil_kind,
            "veil_mode": None,
            "repetition": repetition,
            "nmm": nmm_rows,
            "signs": [
                {"gloss": sentence.glosses[i], "start": a, "end": b}
                for i, (a, b) in enumerate(sign_spans)
            ],
        }
        plan.append(
            {
                "signer": signer_index,
                "segments": segments,
                "offset": offset,
                "frames": total,
                "ramp": ramp,
                "row": row,
            }
        )
        offset += total
    return plan


def _frame_parameters(
    plan: list[dict[str, Any]],
    signers: list[Signer],
    table: np.ndarray,
    rest: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Per-frame parameters of all clips, concatenated: manual state, head pose, expressions."""
    n_samples = len(plan)
    seg_kind, seg_a, seg_b, seg_len, seg_sample = [], [], [], [], []
    for s, sample in enumerate(plan):
        for kind, a, b, n in sample["segments"]:
            seg_kind.append(kind)
            seg_a.append(a)
            seg_b.append(b)
            seg_len.append(n)
            seg_sample.append(s)
    seg_len_a = np.array(seg_len)
    count = int(seg_len_a.sum())
    seg_start = np.cumsum(seg_len_a) - seg_len_a
    kind = np.repeat(np.array(seg_kind), seg_len_a)
    gloss_a = np.repeat(np.array(seg_a), seg_len_a)
    gloss_b = np.repeat(np.array(seg_b), seg_len_a)
    in_segment = np.arange(count) - np.repeat(seg_start, seg_len_a)
    phase = (in_segment + 0.5) / np.repeat(seg_len_a, seg_len_a)
    sample = np.repeat(np.array(seg_sample), seg_len_a)
    sample_offset = np.array([p["offset"] for p in plan])
    fps = np.array([signers[p["signer"]].fps for p in plan], dtype=np.float64)
    t = (np.arange(count) - sample_offset[sample]) / fps[sample]  # seconds into the clip
    frame_in_clip = np.arange(count) - sample_offset[sample]

    # manual: signs follow their trajectory; transitions blend end and start states smoothly,
    # lifted along a small arc
    is_sign = kind == _SIGN
    state_a = _lookup(table, gloss_a, np.where(is_sign, phase, 1.0))
    state_b = _lookup(table, gloss_b, np.where(is_sign, phase, 0.0))
    weight = np.where(is_sign, 0.0, _smoothstep5(phase))[:, None]
    manual = state_a + (state_b - state_a) * weight
    arc = np.where(is_sign, 0.0, np.sin(np.pi * phase))
    for offset in (0, HAND_STATE):
        distance = np.linalg.norm(
            state_b[:, offset : offset + 2] - state_a[:, offset : offset + 2], axis=1
        )
        manual[:, offset + 1] -= 0.25 * distance * arc
    # per-clip drift of the signing space and body sway (small, slow)
    drift_amp = rng.normal(0.0, 0.006, (n_samples, 2))
    drift_hz = rng.uniform(0.1, 0.3, n_samples)
    drift_phase = rng.uniform(0.0, 2 * np.pi, n_samples)
    wave = np.sin(2 * np.pi * drift_hz[sample] * t + drift_phase[sample])[:, None]
    for offset in (0, HAND_STATE):
        manual[:, offset : offset + 2] += drift_amp[sample] * wave
    sway = (
        rng.normal(0.0, 0.004, (n_samples, 2))[sample]
        * np.cos(2 * np.pi * 0.2 * t + drift_phase[sample])[:, None]
    )

    # non-manual marker levels, 0 outside [start, end), ramping in and out
    levels = {}
    starts = {}
    ramp = np.array([p["ramp"] for p in plan], dtype=np.float64)[sample]
    for name in NMM_TYPES:
        start = np.full(n_samples, -1)
        end = np.full(n_samples, -1)
        for s, p in enumerate(plan):
            for span in p["row"]["nmm"]:
                if span["type"] == name:
                    start[s], end[s] = span["start"], span["end"]
        a, b = start[sample], end[sample]
        level = np.clip((frame_in_clip - a + 1) / ramp, 0.0, 1.0) * np.clip(
            (b - frame_in_clip) / ramp, 0.0, 1.0
        )
        levels[name] = np.where(a >= 0, level, 0.0)
        starts[name] = a

    signer = np.array([p["signer"] for p in plan])[sample]
    tilt = np.array([s.tilt for s in signers])[signer]
    shake = np.array([s.shake for s in signers])[signer]
    shake_hz = np.array([s.shake_hz for s in signers])[signer]
    idle_phase = rng.uniform(0.0, 2 * np.pi, (n_samples, 3))[sample]
    idle_hz = rng.uniform(0.15, 0.4, (n_samples, 3))[sample]
    idle = np.sin(2 * np.pi * idle_hz * t[:, None] + idle_phase) * np.array([1.5, 2.0, 1.0])
    pose0 = np.array([[s.pitch0, s.yaw0, s.roll0] for s in signers])[signer]
    shake_t = (frame_in_clip - starts["negation"]) / fps[sample]
    head = pose0 + idle
    head[:, 0] += tilt * levels["question"]
    head[:, 1] += levels["negation"] * shake * np.sin(2 * np.pi * shake_hz * shake_t)

    # mouthing: a random opening during each sign, unrelated to the text
    seg_mouth = rng.uniform(0.0, 0.35, len(seg_len))
    mouth_open = np.where(is_sign & (gloss_a != rest), np.repeat(seg_mouth, seg_len_a), 0.0)
    mouth_open = mouth_open * np.sin(np.pi * phase)
    blink_start = rng.random(count) < 0.25 / fps[sample]
    blink = np.minimum(np.convolve(blink_start, [0.6, 1.0, 0.6], mode="same"), 1.0)
    intense = levels["intensifier"]
    expressions = np.stack(
        [
            levels["question"],
            intense,
            intense,
            intense,
            mouth_open,
            np.maximum(blink - intense, 0.0),
        ],
        axis=-1,
    )
    camera = np.stack(
        [
            rng.normal(0.0, 0.01, n_samples),
            rng.normal(0.0, 0.01, n_samples),
            rng.uniform(0.97, 1.03, n_samples),
        ],
        axis=-1,
    )
    return {
        "count": count,
        "sample": sample,
        "signer": signer,
        "manual": manual,
        "head": head,
        "expressions": expressions,
        "sway": sway,
        "camera": camera,
        "n_samples": n_samples,
        "t": t,
    }


def _veil_kinds(veil: str | Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in veil.split(",")) if isinstance(veil, str) else tuple(veil)
    if not kinds or any(kind not in VEIL_KINDS for kind in kinds):
        raise ValueError(f"veil must name kinds among {VEIL_KINDS}, got {veil!r}")
    return kinds


def _mistrack_parameters(frames: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Per clip a mistrack mode, per frame where the mistracked face sits (see `mistracked_face`).

    Every clip draws (veiled or not, so the draws do not depend on who is veiled): a mode, its
    resting placement, and slow wobbles of the placement (two sinusoids per axis), size and angle.
    Returns {clip_mode [n_samples], mode [F], centre [F, 2], scale [F], angle [F] (radians),
    score_drop [F]}.
    """
    n = frames["n_samples"]
    sample, t = frames["sample"], frames["t"]
    clip_mode = rng.integers(0, len(MISTRACK_MODES), n)
    u = rng.random((n, 5))
    collapse, shift, mirror, rotate = (clip_mode == MISTRACK_MODES.index(m) for m in MISTRACK_MODES)
    # resting placement, in face units (half a jaw width) from the resting face centre, y down;
    # each mode from mild to gross
    scale0 = np.select(
        [collapse, shift, mirror],
        [0.05 + 0.3 * u[:, 0], 0.75 + 0.55 * u[:, 0], 0.9 + 0.2 * u[:, 0]],
        0.85 + 0.3 * u[:, 0],
    )
    centre0 = np.stack([0.2 * (u[:, 1] - 0.5), 0.2 * (u[:, 2] - 0.5)], axis=-1)
    centre0[collapse, 1] = -0.3 + 0.5 * u[collapse, 2]  # between the eyes and the nose tip
    centre0[shift, 0] = 1.2 * (u[shift, 1] - 0.5)
    centre0[shift, 1] = 1.0 + 1.6 * u[shift, 2]  # from the chin down to the upper chest
    angle0 = np.radians(20.0 * (u[:, 3] - 0.5))
    turn = np.radians(45.0 + 135.0 * u[:, 3]) * np.where(u[:, 4] < 0.5, -1.0, 1.0)
    angle0 = np.where(rotate, turn, angle0)
    # slow wobbles: drift of the centre, breathing of the size, a little turning
    drift_amp = rng.normal(0.0, 0.06, (n, 2, 2))  # [clip, sinusoid, axis]
    drift_hz = rng.uniform(0.1, 0.5, (n, 2, 1))
    drift_phase = rng.uniform(0.0, 2 * np.pi, (n, 2, 2))
    size_hz, size_phase = rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 2 * np.pi, n)
    turn_hz, turn_phase = rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 2 * np.pi, n)
    score_drop = rng.uniform(0.0, 0.1, n)

    tt = t[:, None, None]
    drift = drift_amp[sample] * np.sin(2 * np.pi * drift_hz[sample] * tt + drift_phase[sample])
    centre = centre0[sample] + drift.sum(axis=1)
    scale = scale0[sample] * (
        1.0 + 0.05 * np.sin(2 * np.pi * size_hz[sample] * t + size_phase[sample])
    )
    angle = angle0[sample] + np.radians(4.0) * np.sin(
        2 * np.pi * turn_hz[sample] * t + turn_phase[sample]
    )
    return {
        "clip_mode": clip_mode,
        "mode": clip_mode[sample],
        "centre": centre,
        "scale": scale,
        "angle": angle,
        "score_drop": score_drop[sample],
    }


# per-joint keypoint quality: typical score and jitter factor by body part
def _joint_quality() -> tuple[np.ndarray, np.ndarray]:
    score = np.full(133, 0.88, dtype=np.float32)
    jitter = np.ones(133, dtype=np.float32)
    score[0:5] = 0.92
    score[5:7] = 0.93
    score[7:11] = 0.87
    score[11:13] = 0.45
    score[13:23] = 0.06
    score[FACE0 : FACE0 + 68] = 0.88
    score[LEFT_HAND0:] = 0.84
    jitter[FACE0 : FACE0 + 68] = 0.6
    jitter[LEFT_HAND0:] = 1.2
    jitter[11:23] = 3.0
    return score, jitter


_SCORE, _JITTER = _joint_quality()


# standard normal quantiles, indexed by random 16-bit integers: a Gaussian draw at a fraction of
# the cost of the generator's own (jitter is the largest random draw of the corpus)
_GAUSSIAN_TABLE = np.sort(np.random.default_rng(0x5EED).standard_normal(65536)).astype(np.float32)


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    index = np.frombuffer(rng.bytes(2 * count), dtype=np.uint16).reshape(shape)
    return _GAUSSIAN_TABLE[index]


def _render(
    frames: dict[str, Any],
    keep: np.ndarray,
    signers: list[Signer],
    rng: np.random.Generator,
    chunk_seeds: np.random.SeedSequence,
    jitter_px: float,
    drop_frame_rate: float,
    occlusion_rate: float,
) -> np.ndarray:
    """Keypoints of the kept frames: [F_kept, 133, 3] float32 (x / width, y / height, score)."""
    table = SignerTable.of(signers)
    index = np.flatnonzero(keep)
    raw = np.empty((len(index), 133, 3), dtype=np.float32)
    sample_all = frames["sample"]
    n_samples = frames["n_samples"]

    # hand occlusion: one stretch per chosen clip, in clip frames
    occluded = rng.random(n_samples) < occlusion_rate
    occluded_hand = rng.integers(0, 2, n_samples)
    sample_offset = np.searchsorted(sample_all, np.arange(n_samples))
    sample_frames = np.diff(np.append(sample_offset, len(sample_all)))
    occlusion_len = rng.integers(8, 26, n_samples)
    occlusion_start = (rng.random(n_samples) * np.maximum(sample_frames - occlusion_len, 1)).astype(
        int
    )

    width = np.array([s.width for s in signers], dtype=np.float64)
    height = np.array([s.height for s in signers], dtype=np.float64)
    ppm = np.array([s.pixels_per_metre for s in signers])
    neck_x = np.array([s.neck_x for s in signers])
    neck_y = np.array([s.neck_y for s in signers])
    hand_slices = (slice(LEFT_HAND0, LEFT_HAND0 + 21), slice(RIGHT_HAND0, RIGHT_HAND0 + 21))
    veiled_cols = np.array([FACE0 + k for k in VEILED_FACE])
    mistrack = frames["mistrack"]

    starts = range(0, len(index), _CHUNK_FRAMES)
    chunk_rngs = [np.random.default_rng(s) for s in chunk_seeds.spawn(len(starts))]

    def render_chunk(lo: int, rng: np.random.Generator) -> None:
        chunk = index[lo : lo + _CHUNK_FRAMES]
        n = len(chunk)
        sample = sample_all[chunk]
        signer = frames["signer"][chunk]
        body = pose_body_units(
            table,
            signer,
            frames["manual"][chunk],
            frames["head"][chunk],
            frames["expressions"][chunk],
            frames["sway"][chunk],
        )
        # veil, "noise": face points but the eyes land anywhere on the head, confidently, every
        # frame; "mistrack": a whole face in a wrong place, size or orientation, moving smoothly.
        # Every veiled frame draws the noise, whatever its kind, so the kind changes no other draw
        # (the rest of the corpus stays the same, bit for bit)
        veiled = np.flatnonzero(table.veiled[signer])
        is_noise = table.veil_kind[signer[veiled]] == 1 + VEIL_KINDS.index("noise")
        noisy, mistracked = veiled[is_noise], veiled[~is_noise]
        if len(veiled):
            box = rng.random((len(veiled), len(veiled_cols), 2), dtype=np.float32)[is_noise]
            box = 2.0 * box - np.float32(1.0)
            box[..., 1] += np.float32(0.1)
            box *= table.head_scale[signer[noisy]].astype(np.float32)[:, None, None]
            nose = body[noisy, FACE0 + 30][:, None, :]
            body[noisy[:, None], veiled_cols[None, :]] = nose + box
        if len(mistracked):
            frame = chunk[mistracked]
            body[mistracked[:, None], veiled_cols[None, :]] = mistracked_face(
                table,
                signer[mistracked],
                frames["sway"][frame],
                mistrack["mode"][frame],
                mistrack["centre"][frame],
                mistrack["scale"][frame],
                mistrack["angle"][frame],
            )

        # body units -> x / width, y / height, with the clip's camera placement
        camera = frames["camera"][sample]
        size = np.stack([width[signer], height[signer]], axis=-1)  # [n, 2]
        origin = np.stack([neck_x[signer], neck_y[signer]], axis=-1) + camera[:, :2]
        xy = body
        xy *= ((ppm[signer] * camera[:, 2])[:, None] / size).astype(np.float32)[:, None, :]
        xy += origin.astype(np.float32)[:, None, :]
        sigma = (jitter_px * height[signer] / 720.0)[:, None] / size  # [n, 2], normalised units
        noise = _gaussian(rng, (n, 133, 2))
        noise *= _JITTER[None, :, None] * sigma.astype(np.float32)[:, None, :]
        xy += noise

        # scores mostly a little under the joint's typical value, rarely far under
        shortfall = rng.random((n, 133), dtype=np.float32)
        score = _SCORE - 0.25 * shortfall**3
        score[:, 13:23] = rng.uniform(0.01, 0.15, (n, 10))
        if len(veiled):
            noise_score = rng.uniform(0.75, 0.95, (len(veiled), len(veiled_cols)))[is_noise]
            score[np.ix_(noisy, veiled_cols)] = noise_score
        if len(mistracked):
            # as confident as a real face, a little less on some clips
            drop = mistrack["score_drop"][chunk[mistracked]].astype(np.float32)
            score[np.ix_(mistracked, veiled_cols)] -= drop[:, None]
        frame_in_clip = chunk - sample_offset[sample]
        start = occlusion_start[sample]
        hidden = (
            occluded[sample]
            & (frame_in_clip >= start)
            & (frame_in_clip < start + occlusion_len[sample])
        )
        for hand, cols in enumerate(hand_slices):
            rows = np.flatnonzero(hidden & (occluded_hand[sample] == hand))
            if len(rows):
                score[rows, cols] = rng.uniform(0.05, 0.3, (len(rows), 21))
                wobble = rng.normal(0.0, 6.0, (len(rows), 21, 2)) / size[rows, None, :]
                xy[rows, cols] += wobble.astype(np.float32)

        out = raw[lo : lo + n]
        out[:, :, :2] = np.clip(xy, 0.0, 1.0, out=xy)
        out[:, :, 2] = np.clip(score, 0.01, 0.99, out=score)
        dropped = rng.random(n) < drop_frame_rate
        out[dropped] = 0.0

    # chunks write disjoint rows of `raw` and draw from their own generators, so the result does
    # not depend on the order they run in; NumPy releases the GIL in the heavy array operations
    with ThreadPoolExecutor(max_workers=_RENDER_THREADS) as pool:
        jobs = [pool.submit(render_chunk, lo, r) for lo, r in zip(starts, chunk_rngs, strict=True)]
        for job in jobs:
            job.result()
    return raw


def write_corpus(corpus: Corpus, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write `corpus` as `<out_dir>/poses/` (a PoseStore), `<out_dir>/manifest.jsonl` and
    `<out_dir>/synnmm.json` (settings, lexicon, sentences, signers). Returns `out_dir`."""
    from nmmfast.data import PoseStore
    from nmmfast.data.annotations import write_manifest

    out = Path(out_dir)
    poses_dir = out / "poses"
    if poses_dir.exists() and any(poses_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{poses_dir} already holds a pose store; pass overwrite=True")
        import shutil

        shutil.rmtree(poses_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = PoseStore.create(poses_dir)
    store.extend(corpus.records())
    write_manifest(out / "manifest.jsonl", corpus.rows)
    (out / "synnmm.json").write_text(json.dumps(corpus.describe(), indent=1) + "\n")
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (poses/, manifest.jsonl)")
    parser.add_argument("--samples", type=int, default=2000, help="number of clips (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--signers", type=int, default=16, help="number of signers (default 16)")
    parser.add_argument("--veiled", type=int, default=4, help="veiled signers (default 4)")
    parser.add_argument(
        "--veil",
        default="mistrack",
        help="how a veiled face is mistracked: mistrack (a whole face in a wrong place, size or "
        "orientation, moving smoothly; default), noise (points scattered over the head anew "
        "every frame), or both comma-separated (mistrack,noise: the veiled signers alternate)",
    )
    parser.add_argument(
        "--left-handed", type=int, default=3, help="left-handed signers (default 3)"
    )
    parser.add_argument("--glosses", type=int, default=64, help="lexicon size (default 64)")
    parser.add_argument(
        "--sentences", type=int, default=240, help="distinct sentences (default 240)"
    )
    parser.add_argument("--question-rate", type=float, default=0.3)
    parser.add_argument("--negation-rate", type=float, default=0.3)
    parser.add_argument("--intensifier-rate", type=float, default=0.35)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus")


def _veil_summary(signers: list[Signer]) -> str:
    counts = {k: sum(s.veil_kind == k for s in signers) for k in VEIL_KINDS}
    kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return f"{sum(s.veiled for s in signers)} veiled" + (f": {kinds}" if kinds else "")


def run_cli(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    corpus = generate(
        args.samples,
        args.seed,
        n_signers=args.signers,
        n_veiled=args.veiled,
        veil=args.veil,
        n_left_handed=args.left_handed,
        n_glosses=args.glosses,
        n_sentences=args.sentences,
        question_rate=args.question_rate,
        negation_rate=args.negation_rate,
        intensifier_rate=args.intensifier_rate,
    )
    generated = time.perf_counter() - began
    out = write_corpus(corpus, args.out, overwrite=args.overwrite)
    total = time.perf_counter() - began
    frames = sum(row["frames"] for row in corpus.rows)
    marked = {
        t: sum(any(m["type"] == t for m in row["nmm"]) for row in corpus.rows) for t in NMM_TYPES
    }
    print(
        f"SynNMM seed {args.seed}: {len(corpus)} clips, {frames} frames, "
        f"{len(corpus.signers)} signers ({_veil_summary(corpus.signers)}), "
        f"{len(corpus.lexicon)} glosses, "
        f"{len(corpus.sentences)} sentences"
    )
    print("clips with " + ", ".join(f"{t} {n}" for t, n in marked.items()))
    print(f"generated in {generated:.2f} s, written to {out} in {total - generated:.2f} s")
    return 0
