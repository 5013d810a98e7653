"""SynNMM's rendering: per-frame parameters to raw keypoints as a pose estimator would report them
(camera placement, jitter, scores, veils, hand occlusion, dropped frames), in chunks of frames on a
few threads, each chunk with its own random stream so the result does not depend on the threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from nmmfast.data.synth.body import (
    VEIL_KINDS,
    VEILED_FACE,
    Signer,
    SignerTable,
    mistracked_face,
    pose_body_units,
)
from nmmfast.data.synth.motion import FrameParameters, MistrackParameters
from nmmfast.skeleton.coco import (
    FACE0,
    LEFT_HAND0,
    NOSE_TIP,
    NUM_COCO_JOINTS,
    NUM_FACE_POINTS,
    NUM_HAND_POINTS,
    RIGHT_HAND0,
)

__all__ = ["render"]

_CHUNK_FRAMES = 4096  # frames rendered per vectorised pass: keeps the temporaries in cache
_RENDER_THREADS = min(2, os.cpu_count() or 1)


# per-joint keypoint quality: typical score and jitter factor by body part
def _joint_quality() -> tuple[np.ndarray, np.ndarray]:
    score = np.full(NUM_COCO_JOINTS, 0.88, dtype=np.float32)
    jitter = np.ones(NUM_COCO_JOINTS, dtype=np.float32)
    score[0:5] = 0.92
    score[5:7] = 0.93
    score[7:11] = 0.87
    score[11:13] = 0.45
    score[13:23] = 0.06
    score[FACE0 : FACE0 + NUM_FACE_POINTS] = 0.88
    score[LEFT_HAND0:] = 0.84
    jitter[FACE0 : FACE0 + NUM_FACE_POINTS] = 0.6
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


def render(
    frames: FrameParameters,
    mistrack: MistrackParameters,
    keep: np.ndarray,
    signers: list[Signer],
    rng: np.random.Generator,
    chunk_seeds: np.random.SeedSequence,
    jitter_px: float,
    drop_frame_rate: float,
    occlusion_rate: float,
) -> np.ndarray:
    """Keypoints of the kept frames: [F_kept, 133, 3] float32 (x / width, y / height, score).

    keep: bool [F], which of the planned frames stay in the corpus; rng draws the occlusions,
    chunk_seeds gives each chunk of frames its own stream.
    """
    table = SignerTable.of(signers)
    index = np.flatnonzero(keep)
    raw = np.empty((len(index), NUM_COCO_JOINTS, 3), dtype=np.float32)
    sample_all = frames.sample
    n_samples = frames.n_samples

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
    hand_slices = (
        slice(LEFT_HAND0, LEFT_HAND0 + NUM_HAND_POINTS),
        slice(RIGHT_HAND0, RIGHT_HAND0 + NUM_HAND_POINTS),
    )
    veiled_cols = np.array([FACE0 + k for k in VEILED_FACE])

    starts = range(0, len(index), _CHUNK_FRAMES)
    chunk_rngs = [np.random.default_rng(s) for s in chunk_seeds.spawn(len(starts))]

    def render_chunk(lo: int, rng: np.random.Generator) -> None:
        chunk = index[lo : lo + _CHUNK_FRAMES]
        n = len(chunk)
        sample = sample_all[chunk]
        signer = frames.signer[chunk]
        body = pose_body_units(
            table,
            signer,
            frames.manual[chunk],
            frames.head[chunk],
            frames.expressions[chunk],
            frames.sway[chunk],
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
            nose = body[noisy, NOSE_TIP][:, None, :]
            body[noisy[:, None], veiled_cols[None, :]] = nose + box
        if len(mistracked):
            frame = chunk[mistracked]
            body[mistracked[:, None], veiled_cols[None, :]] = mistracked_face(
                table,
                signer[mistracked],
                frames.sway[frame],
                mistrack.mode[frame],
                mistrack.centre[frame],
                mistrack.scale[frame],
                mistrack.angle[frame],
            )

        # body units -> x / width, y / height, with the clip's camera placement
        camera = frames.camera[sample]
        size = np.stack([width[signer], height[signer]], axis=-1)  # [n, 2]
        origin = np.stack([neck_x[signer], neck_y[signer]], axis=-1) + camera[:, :2]
        xy = body
        xy *= ((ppm[signer] * camera[:, 2])[:, None] / size).astype(np.float32)[:, None, :]
        xy += origin.astype(np.float32)[:, None, :]
        sigma = (jitter_px * height[signer] / 720.0)[:, None] / size  # [n, 2], normalised units
        noise = _gaussian(rng, (n, NUM_COCO_JOINTS, 2))
        noise *= _JITTER[None, :, None] * sigma.astype(np.float32)[:, None, :]
        xy += noise

        # scores mostly a little under the joint's typical value, rarely far under
        shortfall = rng.random((n, NUM_COCO_JOINTS), dtype=np.float32)
        score = _SCORE - 0.25 * shortfall**3
        score[:, 13:23] = rng.uniform(0.01, 0.15, (n, 10))
        if len(veiled):
            noise_score = rng.uniform(0.75, 0.95, (len(veiled), len(veiled_cols)))[is_noise]
            score[np.ix_(noisy, veiled_cols)] = noise_score
        if len(mistracked):
            # as confident as a real face, a little less on some clips
            drop = mistrack.score_drop[chunk[mistracked]].astype(np.float32)
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
                score[rows, cols] = rng.uniform(0.05, 0.3, (len(rows), NUM_HAND_POINTS))
                wobble = rng.normal(0.0, 6.0, (len(rows), NUM_HAND_POINTS, 2))
                wobble /= size[rows, None, :]
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
