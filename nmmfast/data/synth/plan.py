"""SynNMM's sample plans: which signer signs which sentence, and each clip's timeline (rest, signs
and transitions with their frame counts), planted markers, and manifest row, before any frame is
drawn. Also the COCO joints that carry each marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from nmmfast.data.synth.body import Signer
from nmmfast.data.synth.language import Lexicon, Sentence
from nmmfast.skeleton.coco import BROWS, CHIN, EYES, FACE, HEAD, MOUTH

__all__ = [
    "NMM_TYPES",
    "SIGN",
    "SOURCE",
    "TRANSITION",
    "SamplePlan",
    "Segment",
    "assign_samples",
    "plan_samples",
]

NMM_TYPES = ("question", "negation", "intensifier")
SOURCE = "synnmm"
SIGN, TRANSITION = 0, 1  # segment kinds


class Segment(NamedTuple):
    """A stretch of a clip's timeline: a sign held or performed (`SIGN`, gloss_a == gloss_b; the
    rest pose is gloss len(lexicon)) or a `TRANSITION` from gloss_a's end to gloss_b's start."""

    kind: int
    gloss_a: int
    gloss_b: int
    frames: int


@dataclass
class SamplePlan:
    """One clip as planned, before its frames are drawn.

    signer:   index into the corpus's signers.
    segments: the clip's timeline, in order.
    offset:   the clip's first frame in all clips' planned frames, concatenated.
    frames:   planned frames (before missing frames are removed).
    ramp:     frames over which a marker ramps in and out.
    row:      the manifest row; its frame ranges (`nmm`, `signs`) count planned frames until
              `generate` moves them past the removed frames.
    """

    signer: int
    segments: list[Segment]
    offset: int
    frames: int
    ramp: int
    row: dict[str, Any]


def _joints(*groups: tuple[int, ...]) -> list[int]:
    return sorted({j for group in groups for j in group})


# COCO joints that carry each marker, for unveiled and veiled signers (a veil hides all face
# points but the eyes; the body's nose, eyes and ears still follow the head)
_CARRIERS: dict[str, dict[bool, dict[str, list[int]]]] = {
    "question": {
        False: {"head_tilt": _joints(HEAD, FACE), "brow_raise": _joints(BROWS, EYES)},
        True: {"head_tilt": _joints(HEAD, EYES), "brow_raise": _joints(EYES)},
    },
    "negation": {
        False: {"head_shake": _joints(HEAD, FACE)},
        True: {"head_shake": _joints(HEAD, EYES)},
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


def assign_samples(
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


def plan_samples(
    assignment: list[tuple[int, int, int]],
    lexicon: Lexicon,
    sentences: list[Sentence],
    signers: list[Signer],
    rng: np.random.Generator,
    *,
    rates: tuple[float, float, float],
) -> list[SamplePlan]:
    """Per sample of `assignment` (see `assign_samples`): its timeline, markers and manifest row.

    rates: (question, negation, intensifier) share of clips that get each marker.
    """
    question_rate, negation_rate, intensifier_rate = rates
    plan = []
    offset = 0
    for signer_index, sentence_index, repetition in assignment:
        signer = signers[signer_index]
        sentence = sentences[sentence_index]
        draws = rng.random(3)
        target = sentence.intensifier_target()
        markers = {
            "question": bool(draws[0] < question_rate),
            "negation": bool(draws[1] < negation_rate),
            "intensifier": bool(target >= 0 and draws[2] < intensifier_rate),
        }
        segments, sign_spans = _timeline(sentence, lexicon, signer, rng)
        total = sum(segment.frames for segment in segments)
        ramp = max(2, int(round(0.12 * signer.fps)))
        nmm_rows = _nmm_rows(markers, sentence, sign_spans, total, ramp, signer.veiled)
        row = _manifest_row(
            signer, sentence, sentence_index, repetition, markers, total, nmm_rows, sign_spans
        )
        plan.append(SamplePlan(signer_index, segments, offset, total, ramp, row))
        offset += total
    return plan


def _timeline(
    sentence: Sentence, lexicon: Lexicon, signer: Signer, rng: np.random.Generator
) -> tuple[list[Segment], list[tuple[int, int]]]:
    """The clip's segments (rest hold, transitions and signs, rest hold) and each sign's
    [start, end) frames, timed by the signer's speed with a little jitter."""
    rest = len(lexicon)
    fps, speed = signer.fps, signer.speed
    glosses = [lexicon.by_name[g] for g in sentence.glosses]
    k = len(glosses)
    sign_jitter = rng.uniform(0.9, 1.1, k)
    transition_jitter = rng.uniform(0.85, 1.15, k + 1)
    holds = rng.uniform(0.2, 0.4, 2)

    def frames_of(seconds: float) -> int:
        return max(2, int(round(seconds * fps)))

    segments = [Segment(SIGN, rest, rest, frames_of(holds[0]))]
    segments.append(
        Segment(TRANSITION, rest, glosses[0], frames_of(0.3 * speed * transition_jitter[0]))
    )
    sign_spans = []
    cursor = sum(s.frames for s in segments)
    for i, gloss in enumerate(glosses):
        n = frames_of(lexicon.glosses[gloss].duration_s * speed * sign_jitter[i])
        segments.append(Segment(SIGN, gloss, gloss, n))
        sign_spans.append((cursor, cursor + n))
        cursor += n
        following = glosses[i + 1] if i + 1 < k else rest
        seconds = (0.2 if i + 1 < k else 0.3) * speed * transition_jitter[i + 1]
        segments.append(Segment(TRANSITION, gloss, following, frames_of(seconds)))
        cursor += segments[-1].frames
    segments.append(Segment(SIGN, rest, rest, frames_of(holds[1])))
    return segments, sign_spans


def _nmm_rows(
    markers: dict[str, bool],
    sentence: Sentence,
    sign_spans: list[tuple[int, int]],
    total: int,
    ramp: int,
    veiled: bool,
) -> list[dict[str, Any]]:
    """The manifest's `nmm` spans: a question over the sentence, a negation over the verb phrase,
    an intensifier over its target sign, each widened by the ramp, with their carrier joints."""
    k = len(sign_spans)
    nmm = []
    if markers["question"]:
        nmm.append(("question", 0, k - 1))
    if markers["negation"]:
        nmm.append(("negation", *sentence.negation_span()))
    if markers["intensifier"]:
        target = sentence.intensifier_target()
        nmm.append(("intensifier", target, target))
    rows = []
    for kind, first, last in nmm:
        start = max(0, sign_spans[first][0] - ramp)
        end = min(total, sign_spans[last][1] + ramp)
        carriers = _CARRIERS[kind][veiled]
        rows.append(
            {
                "type": kind,
                "start": start,
                "end": end,
                "glosses": [first, last],
                "joints": _joints(*[tuple(j) for j in carriers.values()]),
                "carriers": carriers,
            }
        )
    return rows


def _manifest_row(
    signer: Signer,
    sentence: Sentence,
    sentence_index: int,
    repetition: int,
    markers: dict[str, bool],
    total: int,
    nmm_rows: list[dict[str, Any]],
    sign_spans: list[tuple[int, int]],
) -> dict[str, Any]:
    sample_id = f"{signer.code}_{sentence_index + 1:04d}"
    if repetition:
        sample_id += f"_{repetition}"
    return {
        "id": sample_id,
        "signer": signer.code,
        "sentence": f"{sentence_index + 1:04d}",
        "gloss": sentence.gloss,
        "text": sentence.text(**markers),
        "frames": total,
        "fps": signer.fps,
        "width": signer.width,
        "height": signer.height,
        "source": SOURCE,
        "handedness": signer.handedness,
        "veiled": signer.veiled,
        "veil_kind": signer.veil_kind,
        "veil_mode": None,
        "repetition": repetition,
        "nmm": nmm_rows,
        "signs": [
            {"gloss": sentence.glosses[i], "start": a, "end": b}
            for i, (a, b) in enumerate(sign_spans)
        ],
    }
