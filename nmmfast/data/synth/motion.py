"""SynNMM's motion: the per-frame parameters of every clip, concatenated (manual state along the
gloss trajectories, head pose, expression levels of the planted markers, sway, camera placement),
and where a veil's mistracked face sits on each frame. Drawing them is cheap; `render` turns them
into keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmmfast.data.synth.body import MISTRACK_MODES, Signer
from nmmfast.data.synth.language import HAND_STATE, TABLE_STEPS
from nmmfast.data.synth.plan import NMM_TYPES, SIGN, SamplePlan

__all__ = ["FrameParameters", "MistrackParameters", "frame_parameters", "mistrack_parameters"]


@dataclass
class FrameParameters:
    """Per-frame parameters of all clips, concatenated in plan order (F frames, n_samples clips).

    sample [F] int (the frame's clip); signer [F] int; t [F] float64 (seconds into the clip);
    manual [F, MANUAL_STATE] (dominant hand then the other, right-dominant coordinates);
    head [F, 3] (pitch, yaw, roll, degrees); expressions [F, len(EXPRESSIONS)] (levels);
    sway [F, 2] (body offset, body units); camera [n_samples, 3] (x and y offset, zoom).
    """

    sample: np.ndarray
    signer: np.ndarray
    t: np.ndarray
    manual: np.ndarray
    head: np.ndarray
    expressions: np.ndarray
    sway: np.ndarray
    camera: np.ndarray
    n_samples: int

    @property
    def count(self) -> int:
        """F, the frames of all clips."""
        return len(self.sample)


@dataclass
class MistrackParameters:
    """Where a veil's mistracked face sits (see `body.mistracked_face`), drawn for every clip.

    clip_mode [n_samples] int (index into MISTRACK_MODES); per frame: mode [F] int,
    centre [F, 2], scale [F], angle [F] (radians), score_drop [F].
    """

    clip_mode: np.ndarray
    mode: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    score_drop: np.ndarray


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


def frame_parameters(
    plan: list[SamplePlan],
    signers: list[Signer],
    table: np.ndarray,
    rest: int,
    rng: np.random.Generator,
) -> FrameParameters:
    """Per-frame parameters of all clips, concatenated: manual state, head pose, expressions.

    table: the lexicon's trajectory table; rest: the rest pose's gloss index (len(lexicon)).
    """
    n_samples = len(plan)
    seg_kind, seg_a, seg_b, seg_len, seg_sample = [], [], [], [], []
    for s, sample in enumerate(plan):
        for kind, a, b, n in sample.segments:
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
    sample_offset = np.array([p.offset for p in plan])
    fps = np.array([signers[p.signer].fps for p in plan], dtype=np.float64)
    t = (np.arange(count) - sample_offset[sample]) / fps[sample]  # seconds into the clip
    frame_in_clip = np.arange(count) - sample_offset[sample]

    # manual: signs follow their trajectory; transitions blend end and start states smoothly,
    # lifted along a small arc
    is_sign = kind == SIGN
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
    ramp = np.array([p.ramp for p in plan], dtype=np.float64)[sample]
    for name in NMM_TYPES:
        start = np.full(n_samples, -1)
        end = np.full(n_samples, -1)
        for s, p in enumerate(plan):
            for span in p.row["nmm"]:
                if span["type"] == name:
                    start[s], end[s] = span["start"], span["end"]
        a, b = start[sample], end[sample]
        level = np.clip((frame_in_clip - a + 1) / ramp, 0.0, 1.0) * np.clip(
            (b - frame_in_clip) / ramp, 0.0, 1.0
        )
        levels[name] = np.where(a >= 0, level, 0.0)
        starts[name] = a

    signer = np.array([p.signer for p in plan])[sample]
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
    return FrameParameters(
        sample=sample,
        signer=signer,
        t=t,
        manual=manual,
        head=head,
        expressions=expressions,
        sway=sway,
        camera=camera,
        n_samples=n_samples,
    )


def mistrack_parameters(frames: FrameParameters, rng: np.random.Generator) -> MistrackParameters:
    """Per clip a mistrack mode, per frame where the mistracked face sits (see `mistracked_face`).

    Every clip draws (veiled or not, so the draws do not depend on who is veiled): a mode, its
    resting placement, and slow wobbles of the placement (two sinusoids per axis), size and angle.
    """
    n = frames.n_samples
    sample, t = frames.sample, frames.t
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
    return MistrackParameters(
        clip_mode=clip_mode,
        mode=clip_mode[sample],
        centre=centre,
        scale=scale,
        angle=angle,
        score_drop=score_drop[sample],
    )
