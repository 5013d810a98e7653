"""Tracking-failure probe: how far each frame's face-68 keypoints are from being a face.

A frame scores its face shape against a canonical face after similarity (Procrustes) alignment, the
face's placement against the body's own head keypoints, and its agreement with the neighbouring
frames (temporal jitter); `tracking_report` flags samples and signers and, when the manifest plants
which signers are veiled (and how), measures how well the score separates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nmmfast.skeleton.coco import FACE, NUM_COCO_JOINTS

__all__ = [
    "CANONICAL_FACE",
    "FACE_COCO",
    "auroc",
    "canonical_face",
    "estimate_canonical_face",
    "face_coherence",
    "face_coherence_parts",
    "placement_distance",
    "procrustes_distance",
    "tracking_report",
]

FACE_COCO = np.asarray(FACE)  # COCO-WholeBody indices of face-68 points 0..67
# the body part's own head keypoints (nose, left eye, right eye) and the face-68 points that name
# the same places: the nose tip, and the eyes' rings (the subject's left eye is face-42..47)
HEAD_COCO = np.array([0, 1, 2])
HEAD_FACE_POINTS = ((30,), tuple(range(42, 48)), tuple(range(36, 42)))
SCORE_THRESHOLD = 0.3  # a face point is used iff its score is above it (as in normalisation)
MIN_POINTS = 8  # fewer confident face points than this: no face in the frame (score NaN)
TERMS = ("shape", "placement", "jitter")  # the frame score is the largest of these
FLAG_THRESHOLD = 0.3  # frame score above it: incoherent face
FLAG_SAMPLE_SHARE = 0.5  # sample flagged when more than this share of its scored frames is


def canonical_face() -> np.ndarray:
    """A frontal face-68 shape, float64 [68, 2] (x to the image right, y down, half the jaw width
    = 1, nose bridge at x = 0), in the 68-point convention (face-0 and face-36 on the image left).
    """
    face = np.empty((68, 2))
    k = np.arange(17)
    angle = np.pi * k / 16.0
    face[0:17, 0] = -np.cos(angle) * (1.0 - 0.12 * np.sin(angle) ** 4)
    face[0:17, 1] = -0.3 + 1.25 * np.sin(angle) ** 1.3
    u = np.linspace(0.0, 1.0, 5)
    face[17:22, 0] = -0.85 + 0.7 * u
    face[17:22, 1] = -0.55 - 0.12 * np.sin(np.pi * (0.3 + 0.7 * u))
    face[22:27] = face[21:16:-1] * [-1.0, 1.0]  # mirror of the image-left brow
    face[27:31, 0] = 0.0
    face[27:31, 1] = np.linspace(-0.35, 0.1, 4)
    face[31:36, 0] = np.linspace(-0.22, 0.22, 5)
    face[31:36, 1] = 0.22 - 0.05 * np.cos(np.pi * np.linspace(-0.5, 0.5, 5))
    eye = np.array([[-0.6, -0.3], [-0.5, -0.36], [-0.38, -0.36], [-0.28, -0.3],
                    [-0.38, -0.25], [-0.5, -0.25]])  # fmt: skip
    face[36:42] = eye
    face[42:48] = eye[[3, 2, 1, 0, 5, 4]] * [-1.0, 1.0]  # inner corner first, as face-42
    phi = np.pi - 2.0 * np.pi * np.arange(12) / 12.0
    face[48:60, 0] = 0.36 * np.cos(phi)
    face[48:60, 1] = 0.52 - 0.13 * np.sin(phi)
    phi = np.pi - 2.0 * np.pi * np.arange(8) / 8.0
    face[60:68, 0] = 0.27 * np.cos(phi)
    face[60:68, 1] = 0.52 - 0.04 * np.sin(phi)
    return face


CANONICAL_FACE = canonical_face()


def _complex_points(xy: np.ndarray) -> np.ndarray:
    return xy[..., 0] + 1j * xy[..., 1]


def procrustes_distance(
    shapes: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Full Procrustes distance of 2-D point sets under similarity (no reflection).

    shapes: float [N, P, 2]; reference: float [P, 2] or [N, P, 2]; weights: float [N, P] (>= 0,
    e.g. 1 for confident points, 0 for the rest; default all 1).
    Returns float64 [N] in [0, 1]: 1 - R² of the best similarity fit (weighted), 0 for identical
    shapes up to translation, rotation and scale, about 1 for unrelated point clouds; NaN where
    fewer than 3 points carry weight or either shape has no spread.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    reference = np.broadcast_to(np.asarray(reference, dtype=np.float64), shapes.shape)
    if weights is None:
        weights = np.ones(shapes.shape[:2])
    weights = np.asarray(weights, dtype=np.float64)
    z_shape, z_ref = _complex_points(shapes), _complex_points(reference)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_shape = z_shape - (weights * z_shape).sum(axis=1, keepdims=True) / total
        z_ref = z_ref - (weights * z_ref).sum(axis=1, keepdims=True) / total
        cross = np.abs((weights * np.conj(z_ref) * z_shape).sum(axis=1)) ** 2
        spread = (weights * np.abs(z_shape) ** 2).sum(axis=1) * (weights * np.abs(z_ref) ** 2).sum(
            axis=1
        )
        distance = 1.0 - cross / spread
    enough = ((weights > 0).sum(axis=1) >= 3) & (spread > 0)
    return np.where(enough, np.clip(distance, 0.0, 1.0), np.nan)


def placement_distance(
    shapes: np.ndarray,
    weights: np.ndarray,
    head: np.ndarray,
    head_weights: np.ndarray,
    template: np.ndarray,
) -> np.ndarray:
    """How far a face sits from where the body's own head keypoints put it.

    The template is fitted to each face by similarity (weighted least squares), which places the
    template's nose tip and eye centres (`HEAD_FACE_POINTS`) on the frame; those are compared
    with the body's nose, left eye and right eye (`HEAD_COCO`). A face of the wrong size, in the
    wrong place, turned or mirrored predicts them wrongly, however face-like its shape.

    shapes: float [N, 68, 2]; weights: float [N, 68] (>= 0); head: float [N, 3, 2], the body's
    nose, left eye, right eye; head_weights: float [N, 3] (> 0 where confident); template:
    float [68, 2].
    Returns float64 [N] in [0, 1]: e / (e + sqrt(s_body · s_face)), where e is the summed squared
    distance between the face's and the body's head points and s_body, s_face the two
    triangles' own summed squared spreads about their means. Symmetric between face and body
    (neither is taken for the truth): a face k times too large or too small scores
    (k - 1)² / ((k - 1)² + k), 1/3 at k = 2 or 1/2; a face collapsed to a point, or far from the
    head, tends to 1. NaN where fewer than 3 face points carry weight, a head point is not
    confident or the body's head points have no spread.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    landmarks = _complex_points(
        np.stack([template[list(points)].mean(axis=0) for points in HEAD_FACE_POINTS])
    )
    z_shape, z_ref = _complex_points(shapes), _complex_points(template)[None]
    z_head = _complex_points(np.asarray(head, dtype=np.float64))
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shape_mean = (weights * z_shape).sum(axis=1, keepdims=True) / total
        ref_mean = (weights * z_ref).sum(axis=1, keepdims=True) / total
        centred_ref = z_ref - ref_mean
        a = (weights * np.conj(centred_ref) * (z_shape - shape_mean)).sum(axis=1) / (
            weights * np.abs(centred_ref) ** 2
        ).sum(axis=1)
        predicted = a[:, None] * (landmarks[None] - ref_mean) + shape_mean
        error = (np.abs(predicted - z_head) ** 2).sum(axis=1)
        spread = (np.abs(z_head - z_head.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        face_spread = (np.abs(predicted - predicted.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        distance = error / (error + np.sqrt(spread * face_spread))
    usable = (
        ((weights > 0).sum(axis=1) >= 3)
        & (np.asarray(head_weights) > 0).all(axis=1)
        & (spread > 0)
        & np.isfinite(distance)
    )
    return np.where(usable, distance, np.nan)


def _face_points(
    raw: np.ndarray, width: float | None, height: float | None, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Face-68 points in pixels (or frame units) [T, 68, 2] and their use weights [T, 68]."""
    return _points(raw, FACE_COCO, width, height, threshold)


def _points(
    raw: np.ndarray,
    coco: np.ndarray,
    width: float | None,
    height: float | None,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints `coco` in pixels (or frame units) [T, K, 2] and their use weights [T, K]."""
    raw = np.asarray(raw)
    if raw.ndim != 3 or raw.shape[1:] != (NUM_COCO_JOINTS, 3):
        raise ValueError(
            f"face_coherence: raw must be [T, 133, 3] (x / width, y / height, score), "
            f"got shape {raw.shape}"
        )
    points = raw[:, coco].astype(np.float64)
    xy = points[..., :2] * np.array([width or 1.0, height or 1.0])
    confident = (points[..., 2] > threshold) & np.isfinite(xy).all(axis=-1)
    return np.where(confident[..., None], xy, 0.0), confident.astype(np.float64)


def face_coherence(
    raw: np.ndarray,
    *,
    width: float | None = None,
    height: float | None = None,
    template: np.ndarray | None = None,
    threshold: float = SCORE_THRESHOLD,
    terms: Sequence[str] = TERMS,
    min_points: int = MIN_POINTS,
) -> np.ndarray:
    """Per-frame face incoherence of one raw pose (higher = less like a face that holds together).

    raw: float [T, 133, 3], COCO-WholeBody (x / width, y / height, score), as in the pose store.
    width, height: the frame size in pixels (so the face keeps its aspect); None = square frame.
    template: float [68, 2] canonical face (default `CANONICAL_FACE`; see
    `estimate_canonical_face`). Only points with score > `threshold` are used.

    Returns float64 [T] in [0, 1]: the largest of the `terms` (default all three), each 0 for a
    face that holds together:
      shape: Procrustes distance of the face-68 to the template (`procrustes_distance`);
      placement: how far the face, fitted by the template, puts the nose tip and eyes from the
        body's own nose and eyes (`placement_distance`): a face-shaped face of the wrong size,
        in the wrong place, or turned or mirrored;
      jitter: the smaller Procrustes distance to the previous or next frame (over points
        confident in both): a face that is not the same face from frame to frame.
    The largest, not the mean: a face that fails one way is not rescued by passing the others.
    A term is left out of a frame where it is undefined (placement without confident body nose
    and eyes; jitter without a face in either neighbouring frame). NaN where the frame has fewer
    than `min_points` confident face points (no face to judge), or where every chosen term is
    undefined. `face_coherence_parts` returns the terms as well.
    """
    return face_coherence_parts(
        raw,
        width=width,
        height=height,
        template=template,
        threshold=threshold,
        terms=terms,
        min_points=min_points,
    )["score"]


def face_coherence_parts(
    raw: np.ndarray,
    *,
    width: float | None = None,
    height: float | None = None,
    template: np.ndarray | None = None,
    threshold: float = SCORE_THRESHOLD,
    terms: Sequence[str] = TERMS,
    min_points: int = MIN_POINTS,
) -> dict[str, np.ndarray]:
    """`face_coherence` and its terms: {"score", "shape", "placement", "jitter"}, each float64 [T]
    (NaN where undefined: no face in the frame; for placement also no confident body nose and
    eyes, for jitter no face in either neighbouring frame). Every term is computed whatever
    `terms` holds; `terms` only chooses those the score takes the largest of."""
    terms = tuple(terms)
    if not terms or any(term not in TERMS for term in terms):
        raise ValueError(f"face_coherence: terms must be among {TERMS}, got {terms}")
    points, weights = _face_points(raw, width, height, threshold)
    template = CANONICAL_FACE if template is None else np.asarray(template, dtype=np.float64)
    if template.shape != (68, 2):
        raise ValueError(f"face_coherence: template must be [68, 2], got {template.shape}")
    has_face = weights.sum(axis=1) >= min_points
    shape = np.where(has_face, procrustes_distance(points, template, weights), np.nan)
    head, head_weights = _points(raw, HEAD_COCO, width, height, threshold)
    placement = placement_distance(points, weights, head, head_weights, template)
    placement = np.where(has_face, placement, np.nan)
    n_frames = points.shape[0]
    jitter = np.full(n_frames, np.nan)
    if n_frames > 1:
        both = weights[1:] * weights[:-1]
        step = procrustes_distance(points[1:], points[:-1], both)
        usable = has_face[1:] & has_face[:-1] & (both.sum(axis=1) >= min_points)
        step = np.where(usable, step, np.nan)
        neighbours = np.full((n_frames, 2), np.nan)
        neighbours[1:, 0] = step  # to the previous frame
        neighbours[:-1, 1] = step  # to the next frame
        with np.errstate(invalid="ignore"):
            lowest = np.fmin(neighbours[:, 0], neighbours[:, 1])
        jitter = np.where(has_face, lowest, np.nan)
    parts = {"shape": shape, "placement": placement, "jitter": jitter}
    score = np.full(n_frames, np.nan)
    for term in terms:
        score = np.fmax(score, parts[term])  # NaN only where every chosen term is
    score = np.where(has_face, score, np.nan)
    return {"score": score, **parts}


def estimate_canonical_face(
    raws: Iterable[np.ndarray],
    *,
    sizes: Iterable[tuple[float | None, float | None]] | None = None,
    threshold: float = SCORE_THRESHOLD,
    max_frames: int = 20000,
    iterations: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """A canonical face estimated from data: the per-point median of aligned frontal-ish faces.

    raws: raw poses [T_i, 133, 3]; sizes: (width, height) per pose (None = square frames).
    Frames with every face point confident are aligned to the current estimate (starting at
    `CANONICAL_FACE`) by similarity, and the per-point median of the best-fitting half is the next
    estimate; the median makes it robust to a minority of veiled or mistracked faces.
    Returns float64 [68, 2], centred, half the jaw width ~ 1.
    """
    rng = np.random.default_rng(seed)
    size_list = list(sizes) if sizes is not None else None
    shapes = []
    for i, raw in enumerate(raws):
        width, height = size_list[i] if size_list is not None else (None, None)
        points, weights = _face_points(raw, width, height, threshold)
        shapes.append(points[weights.all(axis=1)])
    pool = np.concatenate(shapes) if shapes else np.zeros((0, 68, 2))
    if len(pool) == 0:
        raise ValueError("estimate_canonical_face: no frame has all 68 face points confident")
    if len(pool) > max_frames:
        pool = pool[rng.choice(len(pool), max_frames, replace=False)]
    z = _complex_points(pool)
    z = z - z.mean(axis=1, keepdims=True)
    estimate = _complex_points(CANONICAL_FACE)
    estimate = estimate - estimate.mean()
    for _ in range(iterations):
        # z_aligned = a · z with a minimising |a z - estimate|², per frame
        a = (np.conj(z) * estimate).sum(axis=1) / (np.abs(z) ** 2).sum(axis=1)
        aligned = a[:, None] * z
        residual = (np.abs(aligned - estimate) ** 2).sum(axis=1)
        best = aligned[residual <= np.median(residual)]
        estimate = np.median(best.real, axis=0) + 1j * np.median(best.imag, axis=0)
        estimate = estimate - estimate.mean()
    half_jaw = np.abs(estimate[16] - estimate[0]) / 2.0
    estimate = estimate / half_jaw
    return np.stack([estimate.real, estimate.imag], axis=-1)


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the positive `labels` (Mann–Whitney, ties count
    half). NaN scores are dropped; NaN when either class is empty."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    keep = ~np.isnan(scores)
    scores, labels = scores[keep], labels[keep]
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # average ranks (1-based) over runs of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(sorted_scores)]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty_like(sorted_scores)
    ranks[order] = np.repeat(run_rank, ends - starts)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _stats(values: np.ndarray) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"mean": None, "median": None, "p90": None}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p90": float(np.quantile(values, 0.9)),
    }


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def tracking_report(
    store: Any,
    ids: Sequence[str] | None = None,
    manifest_rows: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
    *,
    template: str | np.ndarray = "builtin",
    threshold: float = FLAG_THRESHOLD,
    sample_share: float = FLAG_SAMPLE_SHARE,
    terms: Sequence[str] = TERMS,
    score_threshold: float = SCORE_THRESHOLD,
    examples: int = 8,
    frame_scores: bool = False,
) -> dict[str, Any]:
    """Score every frame of `ids` (default: the whole store) and summarise per sample and signer.

    store: a `PoseStore` (or any mapping id -> raw [T, 133, 3] with `meta(id)` giving signer,
    width, height). manifest_rows: manifest rows (list or id -> row); their `veiled` field is the
    planted truth the AUROCs are measured against, `veil_kind` and `veil_mode` (SynNMM's) how the
    veiled faces were planted. template: "builtin" (`CANONICAL_FACE`), "corpus"
    (`estimate_canonical_face` over these samples) or a [68, 2] array. terms: the terms of
    `face_coherence` whose largest is the frame score.
    A frame is incoherent when its `face_coherence` score exceeds `threshold`; a sample is flagged
    when more than `sample_share` of its scored frames are.

    Returns a JSON-ready dict:
      probe: "tracking"; settings: every setting that moves a number;
      samples: [{id, signer, frames, scored_frames, no_face_frames, incoherent_frames,
                 incoherent_share, score_mean, score_median, score_p90, flagged, veiled?,
                 veil_kind?, veil_mode?}];
      signers: {signer: {samples, frames, no_face_share, incoherent_share, flagged_samples,
                 score_mean, score_median, veiled?, veil_kind?}};
      overall: {samples, frames, scored_frames, no_face_frames, incoherent_share, flagged_samples};
      auroc (present when the manifest has `veiled`): {frames, samples, terms, veiled_samples,
             unveiled_samples, veiled_incoherent_share, veiled_flagged_share}: frame-level AUROC
             of the score for veiled signers' frames against unveiled ones, sample-level AUROC of
             each sample's median score, the frame-level AUROC of each term alone ({shape,
             placement, jitter}), and the share of the veiled frames over `threshold` and of the
             veiled samples flagged;
      auroc_by_kind (with `auroc`): {kind: the same, for the veiled samples of one `veil_kind`
             ("unspecified" where the manifest does not say) against all unveiled samples};
      auroc_by_mode (where the manifest has `veil_mode`): {mode: the same, per mode};
      examples: the `examples` most incoherent frames, one per sample: [{id, frame, score}];
      frame_scores (only with `frame_scores=True`): {id: [score or None per frame]}.
    """
    ids = list(store.ids() if ids is None else ids)
    terms = tuple(terms)
    rows: dict[str, Mapping[str, Any]] = {}
    if manifest_rows is not None:
        if isinstance(manifest_rows, Mapping):
            rows = dict(manifest_rows)
        else:
            rows = {row["id"]: row for row in manifest_rows}
    metas = {sample_id: store.meta(sample_id) for sample_id in ids}

    def size(sample_id: str) -> tuple[float | None, float | None]:
        meta = metas[sample_id]
        return meta.get("width"), meta.get("height")

    if isinstance(template, str):
        if template == "builtin":
            template_array = CANONICAL_FACE
        elif template == "corpus":
            template_array = estimate_canonical_face(
                (store[i] for i in ids), sizes=[size(i) for i in ids], threshold=score_threshold
            )
        else:
            raise ValueError(
                f"tracking_report: template must be 'builtin', 'corpus' or an array, "
                f"got {template!r}"
            )
    else:
        template_array = np.asarray(template, dtype=np.float64)

    samples: list[dict[str, Any]] = []
    parts_by_id: dict[str, dict[str, np.ndarray]] = {}
    for sample_id in ids:
        width, height = size(sample_id)
        parts = face_coherence_parts(
            store[sample_id],
            width=width,
            height=height,
            template=template_array,
            threshold=score_threshold,
            terms=terms,
        )
        parts_by_id[sample_id] = parts
        scores = parts["score"]
        scored = ~np.isnan(scores)
        with np.errstate(invalid="ignore"):
            incoherent = int((scores > threshold).sum())
        n_scored = int(scored.sum())
        share = incoherent / n_scored if n_scored else None
        stats = _stats(scores)
        record: dict[str, Any] = {
            "id": sample_id,
            "signer": metas[sample_id].get("signer"),
            "frames": int(len(scores)),
            "scored_frames": n_scored,
            "no_face_frames": int(len(scores) - n_scored),
            "incoherent_frames": incoherent,
            "incoherent_share": share,
            "score_mean": stats["mean"],
            "score_median": stats["median"],
            "score_p90": stats["p90"],
            "flagged": bool(share is not None and share > sample_share),
        }
        row = rows.get(sample_id, {})
        if "veiled" in row:
            record["veiled"] = bool(row["veiled"])
        for key in ("veil_kind", "veil_mode"):
            if key in row:
                record[key] = row[key]
        samples.append(record)
    scores_by_id = {sample_id: parts["score"] for sample_id, parts in parts_by_id.items()}

    signers: dict[str, dict[str, Any]] = {}
    for record in samples:
        key = str(record["signer"])
        entry = signers.setdefault(key, {"ids": [], "veiled": set(), "kinds": set()})
        entry["ids"].append(record["id"])
        if "veiled" in record:
            entry["veiled"].add(record["veiled"])
        if record.get("veil_kind") is not None:
            entry["kinds"].add(record["veil_kind"])
    signer_summary: dict[str, dict[str, Any]] = {}
    by_id = {record["id"]: record for record in samples}
    for key in sorted(signers):
        members = signers[key]["ids"]
        scores = np.concatenate([scores_by_id[i] for i in members]) if members else np.zeros(0)
        scored = ~np.isnan(scores)
        with np.errstate(invalid="ignore"):
            incoherent = int((scores > threshold).sum())
        stats = _stats(scores)
        summary: dict[str, Any] = {
            "samples": len(members),
            "frames": int(len(scores)),
            "no_face_share": float((~scored).mean()) if len(scores) else None,
            "incoherent_share": incoherent / int(scored.sum()) if scored.any() else None,
            "flagged_samples": sum(by_id[i]["flagged"] for i in members),
            "score_mean": stats["mean"],
            "score_median": stats["median"],
        }
        if signers[key]["veiled"]:
            summary["veiled"] = any(signers[key]["veiled"])
        if signers[key]["kinds"]:
            summary["veil_kind"] = ",".join(sorted(signers[key]["kinds"]))
        signer_summary[key] = summary

    frame_all = np.concatenate(list(scores_by_id.values())) if scores_by_id else np.zeros(0)
    n_scored = int((~np.isnan(frame_all)).sum())
    with np.errstate(invalid="ignore"):
        n_incoherent = int((frame_all > threshold).sum())
    template_name = template if isinstance(template, str) else "array"
    result: dict[str, Any] = {
        "probe": "tracking",
        "settings": {
            "template": template_name,
            "threshold": threshold,
            "sample_share": sample_share,
            "terms": list(terms),
            "score_threshold": score_threshold,
            "min_points": MIN_POINTS,
            "signature": (
                f"tracking|template:{template_name}|terms:{'+'.join(terms)}|combine:max"
                f"|thr:{threshold}|share:{sample_share}"
                f"|conf:{score_threshold}|min_points:{MIN_POINTS}"
            ),
        },
        "samples": samples,
        "signers": signer_summary,
        "overall": {
            "samples": len(samples),
            "frames": int(len(frame_all)),
            "scored_frames": n_scored,
            "no_face_frames": int(len(frame_all) - n_scored),
            "incoherent_share": n_incoherent / n_scored if n_scored else None,
            "flagged_samples": sum(record["flagged"] for record in samples),
        },
    }
    if samples and all("veiled" in record for record in samples):
        unveiled = [r for r in samples if not r["veiled"]]
        veiled = [r for r in samples if r["veiled"]]

        def block(positives: list[dict[str, Any]]) -> dict[str, Any]:
            return _veil_auroc(positives, unveiled, parts_by_id, threshold)

        result["auroc"] = block(veiled)
        kinds: dict[str, list[dict[str, Any]]] = {}
        modes: dict[str, list[dict[str, Any]]] = {}
        for record in veiled:
            kinds.setdefault(record.get("veil_kind") or "unspecified", []).append(record)
            if record.get("veil_mode") is not None:
                modes.setdefault(record["veil_mode"], []).append(record)
        result["auroc_by_kind"] = {kind: block(kinds[kind]) for kind in sorted(kinds)}
        if modes:
            result["auroc_by_mode"] = {mode: block(modes[mode]) for mode in sorted(modes)}
    worst = []
    for sample_id, scores in scores_by_id.items():
        if np.isnan(scores).all():
            continue
        frame = int(np.nanargmax(scores))
        worst.append({"id": sample_id, "frame": frame, "score": float(scores[frame])})
    worst.sort(key=lambda item: -item["score"])
    result["examples"] = worst[:examples]
    if frame_scores:
        result["frame_scores"] = {
            sample_id: [None if np.isnan(s) else float(s) for s in scores]
            for sample_id, scores in scores_by_id.items()
        }
    return result


def _veil_auroc(
    positives: list[dict[str, Any]],
    negatives: list[dict[str, Any]],
    parts_by_id: Mapping[str, Mapping[str, np.ndarray]],
    threshold: float,
) -> dict[str, Any]:
    """AUROCs of veiled samples `positives` against unveiled `negatives` (sample records)."""
    members = positives + negatives

    def frames(name: str) -> np.ndarray:
        arrays = [parts_by_id[r["id"]][name] for r in members]
        return np.concatenate(arrays) if arrays else np.zeros(0)

    frame_labels = np.concatenate(
        [np.full(len(parts_by_id[r["id"]]["score"]), r["veiled"]) for r in members]
        or [np.zeros(0, dtype=bool)]
    )
    medians = np.array(
        [np.nan if r["score_median"] is None else r["score_median"] for r in members]
    )
    labels = np.array([r["veiled"] for r in members], dtype=bool)
    positive_scores = frames("score")[frame_labels]
    scored = positive_scores[~np.isnan(positive_scores)]
    return {
        "frames": _none_if_nan(auroc(frames("score"), frame_labels)),
        "samples": _none_if_nan(auroc(medians, labels)),
        "terms": {term: _none_if_nan(auroc(frames(term), frame_labels)) for term in TERMS},
        "veiled_samples": len(positives),
        "unveiled_samples": len(negatives),
        "veiled_incoherent_share": float((scored > threshold).mean()) if len(scored) else None,
        "veiled_flagged_share": (
            sum(r["flagged"] for r in positives) / len(positives) if positives else None
        ),
    }
