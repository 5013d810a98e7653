"""Uni-Sign's normalisation of raw whole-body poses into model input (one square body box per clip,
parts relative to their roots, low-confidence joints zeroed), vectorised over ragged batches, its
per-frame reference port, and Uni-Sign's frame selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from nmmfast.skeleton.coco import NUM_COCO_JOINTS
from nmmfast.skeleton.layouts import Layout, get_layout

__all__ = [
    "MAX_FRAMES",
    "SCORE_THRESHOLD",
    "normalize",
    "normalize_batch",
    "normalize_packed",
    "select_frames",
]

SCORE_THRESHOLD = 0.3  # Uni-Sign: a joint is confident iff score > 0.3
MAX_FRAMES = 256  # Uni-Sign's max_length


def _check_raw(raw: Any, where: str) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(
            f"{where}: expected raw pose [T, 133, 3] (x/W, y/H, score), got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{where}: non-finite value at frame {bad[0]}, joint {bad[1]}, channel {bad[2]}"
        )
    return arr


def normalize_packed(
    packed: np.ndarray,
    lengths: Sequence[int] | np.ndarray,
    layout: str | Layout = "unisign69",
    threshold: float = SCORE_THRESHOLD,
) -> np.ndarray:
    """Uni-Sign normalisation of many samples stored back to back.

    packed:  float [N, 133, 3], N = sum(lengths); samples concatenated along frames; finite
             (not checked here: `normalize`, `normalize_batch` and the pose store check it).
             Computed in packed's dtype (float32 or float64), so the result is bit-identical to
             Uni-Sign's per-sample code run in that dtype.
    lengths: int [B], frames per sample (zeros allowed).
    Returns float32 [N, J, 3] in layout order, same packing.
    """
    layout = get_layout(layout)
    packed = np.asarray(packed)
    if packed.ndim != 3 or packed.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(f"normalize_packed: packed must be [N, 133, 3], got {packed.shape}")
    if not np.issubdtype(packed.dtype, np.floating):
        packed = packed.astype(np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 0).any() or int(lengths.sum()) != packed.shape[0]:
        raise ValueError(
            f"normalize_packed: lengths must be non-negative and sum to "
            f"{packed.shape[0]} frames, got sum {int(lengths.sum())}"
        )
    dtype = packed.dtype
    n_frames = packed.shape[0]
    if n_frames == 0:
        return np.zeros((0, layout.num_joints, 3), dtype=np.float32)
    one = dtype.type(1)
    # Channels gathered apart ([N, J] each, contiguous); parts are contiguous position ranges,
    # worked on in place below with the same operations, in the same order and dtype, as
    # Uni-Sign's per-sample code, so results are bit-identical to it.
    flat = packed.reshape(n_frames, NUM_COCO_JOINTS * 3)
    xs, ys, scores = (np.take(flat, layout.coco_indices * 3 + c, axis=1) for c in range(3))

    # Per-clip square box over the confident body joints of all frames (Uni-Sign's crop_scale).
    body = layout.parts["body"]
    body_span = slice(int(body[0]), int(body[-1]) + 1)
    confident = scores[:, body_span] > threshold  # [N, Kb]
    nonempty = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    inf = dtype.type(np.inf)
    body_x, body_y = xs[:, body_span], ys[:, body_span]
    frame_min_x = np.where(confident, body_x, inf).min(axis=1)
    frame_max_x = np.where(confident, body_x, -inf).max(axis=1)
    frame_min_y = np.where(confident, body_y, inf).min(axis=1)
    frame_max_y = np.where(confident, body_y, -inf).max(axis=1)
    count = np.zeros(lengths.shape[0], dtype=np.int64)
    count[nonempty] = np.add.reduceat(confident.sum(axis=1), starts)
    xmin = np.full(lengths.shape[0], inf, dtype=dtype)
    xmax, ymin, ymax = -xmin, xmin.copy(), -xmin
    xmin[nonempty] = np.minimum.reduceat(frame_min_x, starts)
    xmax[nonempty] = np.maximum.reduceat(frame_max_x, starts)
    ymin[nonempty] = np.minimum.reduceat(frame_min_y, starts)
    ymax[nonempty] = np.maximum.reduceat(frame_max_y, starts)
    valid = count >= 4
    with np.errstate(invalid="ignore"):  # inf - inf for clips without confident joints
        scale = np.maximum(xmax - xmin, ymax - ymin)
        valid &= scale != 0
        scale = np.where(valid, scale, one)
        xmin, xmax = np.where(valid, xmin, 0), np.where(valid, xmax, 0)
        ymin, ymax = np.where(valid, ymin, 0), np.where(valid, ymax, 0)
    origin_x = (xmin + xmax - scale) / 2
    origin_y = (ymin + ymax - scale) / 2

    frame_scale = np.repeat(scale, lengths)[:, None]  # [N, 1]
    for part, positions in layout.parts.items():
        span = slice(int(positions[0]), int(positions[-1]) + 1)
        root = layout.part_roots[part].root
        for coord, origin in ((xs[:, span], origin_x), (ys[:, span], origin_y)):
            if root is None:
                coord -= np.repeat(origin, lengths)[:, None]
                coord /= frame_scale
                coord -= 0.5
                coord *= 2
            else:
                coord -= coord[:, root : root + 1].copy()
                coord /= frame_scale
    # all channels clipped to [-1, 1]; then joints with (clipped) score <= threshold, and every
    # joint of a clip without a body box, become (0, 0, 0)
    keep = (scores > threshold) & np.repeat(valid, lengths)[:, None]
    out = np.empty((n_frames, layout.num_joints, 3), dtype=np.float32)
    for channel, values in enumerate((xs, ys, scores)):
        np.clip(values, -1, 1, out=values)
        np.multiply(values, keep, out=out[..., channel], casting="same_kind")
    out += 0.0  # the -0.0 of a negative coordinate times 0 becomes +0.0
    return out


def normalize(raw: Any, layout: str | Layout = "unisign69") -> np.ndarray:
    """Uni-Sign normalisation of one sample.

    raw: float [T, 133, 3], COCO-WholeBody (x / frame width, y / frame height, score).
    Returns float32 [T, J, 3] in layout order: body mapped by one square box per clip (over body
    joints with score > 0.3) to [-1, 1]; other parts relative to their root, divided by the same
    scale; all channels clipped to [-1, 1]; joints with score <= 0.3 set to 0; a clip with fewer
    than 4 confident body joints (or a zero-size box) is all zeros.
    """
    arr = _check_raw(raw, "normalize")
    return normalize_packed(arr, [arr.shape[0]], layout)


def normalize_batch(raws: Iterable[Any], layout: str | Layout = "unisign69") -> list[np.ndarray]:
    """`normalize` over a list of ragged samples [T_i, 133, 3] in one vectorised pass.

    Returns a list of float32 [T_i, J, 3] views into one packed array.
    """
    arrays = [_check_raw(r, f"normalize_batch: sample {i}") for i, r in enumerate(raws)]
    if not arrays:
        return []
    dtype = np.result_type(*arrays)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    packed = np.concatenate([a.astype(dtype, copy=False) for a in arrays], axis=0)
    out = normalize_packed(packed, lengths, layout)
    return np.split(out, np.cumsum(lengths)[:-1])


def _normalize_reference(raw: np.ndarray, layout: str | Layout = "unisign69") -> np.ndarray:
    """Direct per-sample, per-frame port of Uni-Sign's `load_part_kp` + `crop_scale` (test oracle
    and benchmark baseline). Same dtype rules as Uni-Sign: computes in raw's dtype."""
    layout = get_layout(layout)
    thr = SCORE_THRESHOLD
    results: dict[str, np.ndarray] = {}
    scale: Any = None
    # "body" first: the other parts use its scale
    for part in ["body"] + [p for p in layout.parts if p != "body"]:
        idx = list(layout.part_coco_indices(part))
        root = layout.part_roots[part].root
        kps, confs = [], []
        for frame in raw:
            sel = frame[idx, :2]
            if root is not None:
                sel = sel - sel[root, :]
            kps.append(sel)
            confs.append(frame[idx, 2])
        motion = np.concatenate([np.stack(kps, 0), np.stack(confs, 0)[..., None]], axis=-1)
        if root is None:
            result = motion.copy()
            valid = motion[motion[..., 2] > thr][:, :2]
            if len(valid) < 4:
                results[part], scale = np.zeros(motion.shape), 0
                continue
            xmin, xmax = min(valid[:, 0]), max(valid[:, 0])
            ymin, ymax = min(valid[:, 1]), max(valid[:, 1])
            scale = max(xmax - xmin, ymax - ymin)
            if scale == 0:
                results[part], scale = np.zeros(motion.shape), 0
                continue
            xs, ys = (xmin + xmax - scale) / 2, (ymin + ymax - scale) / 2
            result[..., :2] = (motion[..., :2] - np.array([xs, ys])) / scale
            result[..., :2] = (result[..., :2] - 0.5) * 2
            result = np.clip(result, -1, 1)
            result[result[..., 2] <= thr] = 0
        elif scale == 0:
            result = np.zeros(motion.shape)
        else:
            result = motion
            result[..., :2] = result[..., :2] / scale
            result = np.clip(result, -1, 1)
            result[result[..., 2] <= thr] = 0
        results[part] = result
    return np.concatenate([results[p] for p in layout.parts], axis=1).astype(np.float32)


def select_frames(
    num_frames: int,
    max_frames: int = MAX_FRAMES,
    *,
    train: bool = False,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Frame indices (int64, sorted) to feed a model: all frames when num_frames <= max_frames;
    otherwise `max_frames` indices spread uniformly (evaluation, deterministic) or drawn at random
    without replacement and sorted (training, as Uni-Sign; `rng` seeds it)."""
    if num_frames < 0 or max_frames <= 0:
        raise ValueError(
            f"select_frames: need num_frames >= 0 and max_frames > 0, "
            f"got {num_frames}, {max_frames}"
        )
    if num_frames <= max_frames:
        return np.arange(num_frames, dtype=np.int64)
    if not train:
        return np.linspace(0, num_frames - 1, num=max_frames).round().astype(np.int64)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return np.sort(generator.choice(num_frames, size=max_frames, replace=False)).astype(np.int64)
