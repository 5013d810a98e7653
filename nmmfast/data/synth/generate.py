"""`generate`: the SynNMM corpus in memory, deterministic by seed. It draws the lexicon, sentences
and signers, plans every clip (`plan`), draws their per-frame motion (`motion`), renders keypoints
(`render`) and cuts them into clips, moving the planted frame ranges past the removed frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nmmfast.data.synth.body import MISTRACK_MODES, VEIL_KINDS, make_signers
from nmmfast.data.synth.corpus import Corpus
from nmmfast.data.synth.language import build_lexicon, build_sentences, trajectory_table
from nmmfast.data.synth.motion import frame_parameters, mistrack_parameters
from nmmfast.data.synth.plan import SamplePlan, assign_samples, plan_samples
from nmmfast.data.synth.render import render

__all__ = ["generate"]


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
    plan = plan_samples(
        assign_samples(n_samples, n_signers, n_sentences, sample_rng),
        lexicon,
        sentences,
        signers,
        sample_rng,
        rates=(question_rate, negation_rate, intensifier_rate),
    )
    frames = frame_parameters(plan, signers, table, rest, sample_rng)
    mistrack = mistrack_parameters(frames, veil_rng)
    for s, sample in enumerate(plan):
        if sample.row["veil_kind"] == "mistrack":
            sample.row["veil_mode"] = MISTRACK_MODES[mistrack.clip_mode[s]]
    keep = noise_rng.random(frames.count) >= missing_frame_rate
    raw = render(
        frames,
        mistrack,
        keep,
        signers,
        noise_rng,
        seeds[5],
        jitter_px,
        drop_frame_rate,
        occlusion_rate,
    )
    poses, rows = _cut_clips(raw, keep, plan)
    return Corpus(poses, rows, lexicon, sentences, signers, settings)


def _cut_clips(
    raw: np.ndarray, keep: np.ndarray, plan: list[SamplePlan]
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Split the rendered frames into clips and move each row's frame ranges (and count) past the
    frames removed before them. raw [F_kept, 133, 3]; keep bool [F]."""
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    poses, rows = [], []
    for sample in plan:
        first, last = sample.offset, sample.offset + sample.frames
        start, stop = kept_before[first], kept_before[last]
        poses.append(raw[start:stop])

        def moved(frame: int, first: int = first, start: int = start) -> int:
            return int(kept_before[first + frame] - start)

        row = sample.row
        row["frames"] = int(stop - start)
        for span in row["nmm"] + row["signs"]:
            span["start"], span["end"] = moved(span["start"]), moved(span["end"])
        rows.append(row)
    return poses, rows


def _veil_kinds(veil: str | Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in veil.split(",")) if isinstance(veil, str) else tuple(veil)
    if not kinds or any(kind not in VEIL_KINDS for kind in kinds):
        raise ValueError(f"veil must name kinds among {VEIL_KINDS}, got {veil!r}")
    return kinds
