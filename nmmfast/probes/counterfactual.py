"""Counterfactual region probe: neutralise a region of the normalised model input (face, head,
hands, body) and measure how often the decoded output changes and how much the original output's
log-probability drops, overall and per planted NMM category; for SLT also whether the question,
negation and intensifier marking of the prediction changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from nmmfast.metrics import is_question
from nmmfast.skeleton import REGION_COCO, coco_region, get_layout

__all__ = [
    "CATEGORIES",
    "DEFAULT_REGIONS",
    "INTENSIFIER_WORDS",
    "MARKERS",
    "MODES",
    "NEGATION_WORDS",
    "REGION_COCO",
    "counterfactual_probe",
    "markers_of",
    "neutralize",
    "region_positions",
]

# Regions a probe can neutralise: those of `REGION_COCO` (nmmfast.skeleton.coco), "a+b" joining
# several; "none" is the control (nothing neutralised: must change nothing), "all" the whole input.
DEFAULT_REGIONS = ("none", "face", "head", "face+head", "hands", "body", "all")
MODES = ("zero", "clip_mean", "signer_mean")
CATEGORIES = ("question", "negation", "intensifier", "none")
MARKERS = ("question", "negation", "intensifier")
NEGATION_WORDS = frozenset({"not", "no", "never", "nothing", "nobody", "none", "nor", "cannot"})
INTENSIFIER_WORDS = frozenset({"very", "much", "really", "extremely", "so", "too", "highly"})
_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def region_positions(layout: Any, region: str) -> np.ndarray:
    """Layout positions (int64, sorted) of `region`: a name of `REGION_COCO`, several joined by
    "+" (e.g. "face+head"), "all" or "none". Joints the layout lacks are skipped (unisign69 has
    no eyes in its body part, so its "head" is nose and ears)."""
    layout = get_layout(layout)
    if region == "none":
        return np.zeros(0, dtype=np.int64)
    if region == "all":
        return np.arange(layout.num_joints, dtype=np.int64)
    return np.flatnonzero(np.isin(layout.coco_indices, coco_region(region))).astype(np.int64)


def _joint_means(poses: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over real frames where a joint is detected (score > 0) [B, J, 3] and the count [B, J]."""
    detected = (poses[..., 2] > 0) & mask[:, :, None]  # [B, T, J]
    weights = detected.to(poses.dtype)
    return (poses * weights[..., None]).sum(1), weights.sum(1)


def neutralize(
    poses: torch.Tensor,
    mask: torch.Tensor,
    positions: np.ndarray | Sequence[int],
    mode: str = "zero",
    signer_means: torch.Tensor | None = None,
) -> torch.Tensor:
    """A copy of `poses` with the joints at `positions` replaced by a neutral version.

    poses: float [B, T, J, 3], normalised model input (x, y, score; undetected joints all 0);
    mask: bool [B, T], True on real frames; positions: layout positions (`region_positions`).
    mode: "zero" (the joints become undetected, (0, 0, 0), in every frame), "clip_mean" (each
    joint frozen at its mean over the clip's real frames where it is detected; never detected
    stays 0) or "signer_mean" (frozen at `signer_means`, float [B, J, 3], the mean pose of each
    sample's signer).
    """
    if mode not in MODES:
        raise ValueError(f"neutralize: mode must be one of {MODES}, got {mode!r}")
    if poses.dim() != 4 or mask.shape != poses.shape[:2]:
        raise ValueError(
            f"neutralize: poses must be [B, T, J, 3] and mask [B, T], got "
            f"{tuple(poses.shape)} and {tuple(mask.shape)}"
        )
    out = poses.clone()
    index = torch.as_tensor(np.asarray(positions, dtype=np.int64), device=poses.device)
    if index.numel() == 0:
        return out
    if mode == "zero":
        out[:, :, index] = 0.0
        return out
    if mode == "clip_mean":
        total, count = _joint_means(poses, mask)
        means = total / count.clamp(min=1.0)[..., None]
    else:
        if signer_means is None or signer_means.shape != (poses.shape[0], *poses.shape[2:]):
            raise ValueError(
                f"neutralize: mode 'signer_mean' needs signer_means [B, J, 3] = "
                f"{(poses.shape[0], *poses.shape[2:])}"
            )
        means = signer_means.to(poses)
    out[:, :, index] = means[:, None, index].expand(-1, poses.shape[1], -1, -1)
    return out


def markers_of(
    text: str,
    negation_words: Iterable[str] = NEGATION_WORDS,
    intensifier_words: Iterable[str] = INTENSIFIER_WORDS,
) -> dict[str, bool]:
    """Which NMM-carried markings a translation shows: question (`metrics.is_question`), negation (a
    negation word or an n't contraction), intensifier (an intensifier word); case-insensitive."""
    words = [w.lower() for w in _WORD_RE.findall(text or "")]
    negation_set, intensifier_set = set(negation_words), set(intensifier_words)
    return {
        "question": is_question(text or ""),
        "negation": any(w in negation_set or w.endswith(("n't", "n’t")) for w in words),
        "intensifier": any(w in intensifier_set for w in words),
    }


def _categories(row: Mapping[str, Any] | None) -> list[str] | None:
    if row is None or "nmm" not in row:
        return None
    types = sorted({str(span["type"]) for span in row["nmm"] or []})
    return types or ["none"]


def _summary(records: list[dict[str, Any]], region: str) -> dict[str, Any]:
    changed = np.array([r["regions"][region]["changed"] for r in records], dtype=bool)
    delta = np.array([r["regions"][region]["delta_log_p"] for r in records], dtype=np.float64)
    if len(records) == 0:
        return {"n": 0, "change_rate": None, "delta_log_p_mean": None, "delta_log_p_median": None}
    return {
        "n": len(records),
        "change_rate": float(changed.mean()),
        "delta_log_p_mean": float(delta.mean()),
        "delta_log_p_median": float(np.median(delta)),
    }


def _signer_means(
    dataset: Any, batch_size: int, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Mean normalised pose [J, 3] of each signer over the dataset's real frames."""
    from nmmfast.data.dataset import collate

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        total, count = _joint_means(batch.poses, batch.mask)
        for row, sample_id in enumerate(batch.ids):
            signer = str(dataset.corpus.store.meta(sample_id).get("signer"))
            sums[signer] = sums.get(signer, 0) + total[row]
            counts[signer] = counts.get(signer, 0) + count[row]
    return {s: (sums[s] / counts[s].clamp(min=1.0)[..., None]).to(device) for s in sums}


@torch.no_grad()
def counterfactual_probe(
    model: Any,
    corpus: Any,
    ids: Sequence[str],
    *,
    task: str = "slt",
    regions: Sequence[str] = DEFAULT_REGIONS,
    mode: str = "signer_mean",
    batch_size: int = 16,
    num_beams: int = 4,
    max_new_tokens: int = 100,
    max_frames: int | None = None,
    device: str | torch.device = "cpu",
    samples: bool = True,
    negation_words: Iterable[str] = NEGATION_WORDS,
    intensifier_words: Iterable[str] = INTENSIFIER_WORDS,
    progress: bool = False,
) -> dict[str, Any]:
    """Neutralise each region of `regions` in every sample of `ids` and compare with the original.

    model: a `UniSignModel` (set to eval mode here); corpus: an open `nmmfast.data.dataset.Corpus`
    or its directory (poses, and the manifest rows whose `nmm` spans give each sample's
    categories: question / negation / intensifier, or none); task: "slt" | "cslr" (samples
    without a target are skipped, as in decoding); max_frames: frames fed per sample (uniformly
    selected; default the model's). The original output is the beam-decoded prediction; for
    each region the neutralised input (`neutralize` with `mode`) is decoded again and the original
    output (re-tokenised with `model.tokenize_targets`) is scored under it with
    `model.sequence_log_prob`. mode "signer_mean" (default) freezes the region at the signer's
    mean pose over `ids`: a plausible, still face without the clip's markers. "clip_mean" keeps
    a marker held over the whole clip (a question's brow raise and head tilt) in its mean, so it
    only tests movement; "zero" makes the region undetected, an input seen rarely in training.

    Returns a JSON-ready dict:
      probe: "counterfactual"; settings: {task, mode, regions, num_beams, max_new_tokens,
        max_frames, layout, region_joints: {region: [joint labels]}, signature};
      n: samples probed; skipped: {reason: count};
      regions: {region: {n, change_rate, delta_log_p_mean, delta_log_p_median,
        by_category: {category: {n, change_rate, delta_log_p_mean, delta_log_p_median}},
        marking (task "slt" only): {marker: {changed_rate, present_before, present_after,
          category_n, category_changed_rate, category_present_before,
          category_present_after}}}}
        where change_rate is the share of samples whose decoded text changed, delta_log_p =
        log p(original output | neutralised) - log p(original output | original) (nats;
        negative when the neutralised input makes the original output less likely), marker
        in question / negation / intensifier (`markers_of`),
        changed_rate the share of all samples whose marking flipped, present_* how many
        predictions show it before / after, and category_* the same restricted to the samples
        planted with that NMM;
      samples (with `samples=True`): [{id, signer, categories, prediction, log_p,
        regions: {region: {prediction, changed, delta_log_p}}}].
    Categories are omitted (by_category empty) when the manifest rows carry no `nmm` field.
    """
    from nmmfast.data.dataset import BucketBatchSampler, Corpus, PoseDataset, collate

    if mode not in MODES:
        raise ValueError(f"counterfactual_probe: mode must be one of {MODES}, got {mode!r}")
    if isinstance(corpus, (str, os.PathLike)):
        corpus = Corpus.open(corpus)
    layout = get_layout(model.config.layout)
    positions = {region: region_positions(layout, region) for region in regions}
    negation_words, intensifier_words = set(negation_words), set(intensifier_words)
    model.eval()
    model.to(device)
    max_frames = max_frames or model.config.max_frames
    dataset = PoseDataset(corpus, list(ids), task, layout=layout.name, max_frames=max_frames)
    means = _signer_means(dataset, batch_size, device) if mode == "signer_mean" else {}
    batches = list(BucketBatchSampler(dataset.lengths, batch_size))
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"counterfactual ({mode})", unit="batch", leave=False)

    records: dict[str, dict[str, Any]] = {}
    for indices in batches:
        batch = collate([dataset[i] for i in indices]).to(device)
        generated = model.generate(
            batch.poses, batch.mask, num_beams=num_beams, max_new_tokens=max_new_tokens
        )
        predictions = model.decode(generated)
        # the original output as the model's targets (an empty prediction scores </s> alone)
        target_ids = model.tokenize_targets(predictions).to(batch.poses.device)
        log_p = model.sequence_log_prob(batch.poses, batch.mask, target_ids)
        signer_means = None
        if mode == "signer_mean":
            signer_means = torch.stack(
                [means[str(corpus.store.meta(i).get("signer"))] for i in batch.ids]
            )
        for row, sample_id in enumerate(batch.ids):
            records[sample_id] = {
                "id": sample_id,
                "signer": corpus.store.meta(sample_id).get("signer"),
                "categories": _categories(corpus.rows.get(sample_id)),
                "prediction": predictions[row],
                "log_p": float(log_p[row]),
                "regions": {},
            }
        for region in regions:
            poses = neutralize(batch.poses, batch.mask, positions[region], mode, signer_means)
            changed_ids = model.generate(
                poses, batch.mask, num_beams=num_beams, max_new_tokens=max_new_tokens
            )
            changed_text = model.decode(changed_ids)
            changed_log_p = model.sequence_log_prob(poses, batch.mask, target_ids)
            for row, sample_id in enumerate(batch.ids):
                records[sample_id]["regions"][region] = {
                    "prediction": changed_text[row],
                    "changed": changed_text[row] != predictions[row],
                    "delta_log_p": float(changed_log_p[row] - log_p[row]),
                }
    ordered = [records[i] for i in dataset.sample_ids]

    region_results: dict[str, Any] = {}
    for region in regions:
        entry = _summary(ordered, region)
        by_category = {}
        for category in CATEGORIES:
            members = [r for r in ordered if r["categories"] and category in r["categories"]]
            if members:
                summary = _summary(members, region)
                by_category[category] = summary
        entry["by_category"] = by_category
        if task == "slt":
            marking = {}
            for marker in MARKERS:
                before = [
                    markers_of(r["prediction"], negation_words, intensifier_words)[marker]
                    for r in ordered
                ]
                after = [
                    markers_of(
                        r["regions"][region]["prediction"], negation_words, intensifier_words
                    )[marker]
                    for r in ordered
                ]
                flips = np.array(before, dtype=bool) != np.array(after, dtype=bool)
                in_category = np.array(
                    [bool(r["categories"]) and marker in r["categories"] for r in ordered],
                    dtype=bool,
                )
                category_n = int(in_category.sum())
                marking[marker] = {
                    "changed_rate": float(flips.mean()) if len(flips) else None,
                    "present_before": int(np.sum(before)),
                    "present_after": int(np.sum(after)),
                    "category_n": category_n,
                    "category_changed_rate": (
                        float(flips[in_category].mean()) if category_n else None
                    ),
                    "category_present_before": int(np.array(before, bool)[in_category].sum()),
                    "category_present_after": int(np.array(after, bool)[in_category].sum()),
                }
            entry["marking"] = marking
        region_results[region] = entry

    from nmmfast import __version__

    signature = (
        f"counterfactual|task:{task}|mode:{mode}|layout:{layout.name}|beam:{num_beams}"
        f"|max_new_tokens:{max_new_tokens}|frames:{max_frames}|nmmfast:{__version__}"
    )
    result: dict[str, Any] = {
        "probe": "counterfactual",
        "settings": {
            "task": task,
            "mode": mode,
            "regions": list(regions),
            "num_beams": num_beams,
            "max_new_tokens": max_new_tokens,
            "max_frames": max_frames,
            "layout": layout.name,
            "region_joints": {
                r: [layout.names[int(p)] for p in positions[r]]
                for r in regions
                if r not in ("all", "none")
            },
            "signature": signature,
        },
        "n": len(ordered),
        "skipped": dict(dataset.skipped),
        "regions": region_results,
    }
    if samples:
        result["samples"] = ordered
    return result
