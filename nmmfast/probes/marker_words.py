"""Marker-word probe: per-token Integrated Gradients of the reference tokens of words that a
user's list marks (question words, negation, ...) against the other tokens of the same sentences,
as face / head / face+head / hands / body shares. It needs no planted NMM labels: the words stand
in for the non-manual markers that carry them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmmfast.errors import UserError

__all__ = [
    "PROBE_NAME",
    "REGIONS",
    "SHARE_COLUMNS",
    "marker_spans",
    "marker_token_positions",
    "marker_token_shares",
    "marker_word_probe",
    "read_marker_words",
    "target_encoder",
    "words_signature",
]

PROBE_NAME = "marker-words"
# Disjoint regions of the counterfactual probe (`region_positions`): head = nose, eyes, ears;
# body = the rest of the body keypoints. Together they cover every joint of a layout.
REGIONS = ("face", "head", "hands", "body")
SHARE_COLUMNS = ("face", "head", "face+head", "hands", "body")
# A word of a reference or of the list: letters and digits with inner apostrophes (the words of
# `WordTokenizer.split` and `markers_of`); hyphens and underscores separate words.
_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NOT_IN_ENTRY = re.compile(r"[^\w '’\-]", re.UNICODE)


# --- the word list -------------------------------------------------------------------------------


def read_marker_words(path: str | os.PathLike) -> tuple[str, ...]:
    """The words and phrases of a marker-word file, case-folded, in file order, without repeats.

    One word or phrase per line; text from `#` to the end of the line is a comment; blank lines
    are skipped. An entry holds words (letters, digits, inner apostrophes) separated by spaces
    or hyphens. Raises `UserError` naming the file for a missing or unreadable file, an entry
    with other characters (e.g. "not, never": one entry per line) or a file without any entry.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such marker-word file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file (one word or phrase per line)") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the marker-word file ({error.strerror})") from None
    words: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        found = _WORD_RE.findall(entry)
        if not found or _NOT_IN_ENTRY.search(entry):
            raise UserError(
                f"{path}: line {number}: {entry[:40]!r} is not a word or phrase (letters, digits, "
                f"apostrophes, words joined by spaces or hyphens; one entry per line)"
            )
        phrase = " ".join(word.casefold() for word in found)
        if phrase not in words:
            words.append(phrase)
    if not words:
        raise UserError(f"{path}: no marker words (one word or phrase per line, # comments)")
    return tuple(words)


def words_signature(words: Iterable[str]) -> str:
    """Short hex digest of a word list (names it in signatures)."""
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]


# --- words -> target tokens ----------------------------------------------------------------------


def marker_spans(text: str, words: Sequence[str]) -> list[tuple[str, int, int]]:
    """Every occurrence in `text` of an entry of `words` (as `read_marker_words` gives them):
    (entry, start, end) character spans, matched on whole words, case-insensitively; a phrase
    matches consecutive words. In text order."""
    found = [(m.group().casefold(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]
    entries = [(entry, entry.split(" ")) for entry in words]
    spans = []
    for first in range(len(found)):
        for entry, parts in entries:
            run = found[first : first + len(parts)]
            if [word for word, _, _ in run] == parts:
                spans.append((entry, run[0][1], run[-1][2]))
    return spans


def target_encoder(
    tokenizer: Any, max_length: int | None = None
) -> Callable[[Sequence[str]], list[list[int]]]:
    """Texts -> target ids without </s>, as the model's `tokenize_targets` makes them (the same
    tokenizer call and truncation). `tokenizer`: a Hugging Face tokenizer or `WordTokenizer`."""
    eos = int(tokenizer.eos_token_id)

    def encode(texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        rows = tokenizer(
            list(texts),
            padding=False,
            truncation=max_length is not None,
            max_length=max_length,
            return_tensors=None,
        )["input_ids"]
        return [list(row[: row.index(eos)] if eos in row else row) for row in rows]

    return encode


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def marker_token_positions(
    text: str,
    words: Sequence[str],
    encode: Callable[[Sequence[str]], list[list[int]]],
    target_ids: Sequence[int] | None = None,
) -> dict[str, list[int]]:
    """Positions in the target ids of `text` of the tokens of each entry of `words` found in it.

    encode: texts -> ids without </s> (`target_encoder`); target_ids: the ids of `text` (default
    `encode([text])[0]`). A span's tokens are those between the tokenisation of the text before
    it and of the text up to its end, each compared with the whole text's tokenisation: this
    holds for any tokenizer, keeps SentencePiece's lone "▁" piece with the word it prefixes, and
    gives a word split into several pieces all of them. A span cut off by truncation has fewer
    tokens or none. Returns {entry: sorted positions} for the entries found (possibly empty).
    """
    spans = marker_spans(text, words)
    if not spans:
        return {}
    full = list(encode([text])[0] if target_ids is None else target_ids)
    cuts = sorted({start for _, start, _ in spans} | {end for _, _, end in spans})
    prefixes = {cut: text[:cut].rstrip() for cut in cuts}
    asked = [cut for cut in cuts if prefixes[cut]]
    encoded = dict(zip(asked, encode([prefixes[cut] for cut in asked]), strict=True))
    boundary = {cut: _common_prefix(encoded[cut], full) if cut in encoded else 0 for cut in cuts}
    positions: dict[str, set[int]] = {}
    for entry, start, end in spans:
        positions.setdefault(entry, set()).update(range(boundary[start], boundary[end]))
    return {entry: sorted(found) for entry, found in positions.items()}


# --- the numbers ---------------------------------------------------------------------------------


def _shares(region_abs: np.ndarray) -> dict[str, float | None]:
    """[R] pooled Σ|attribution| of REGIONS -> % per SHARE_COLUMNS (None when all zero)."""
    total = float(region_abs.sum())
    if not total > 0:
        return dict.fromkeys(SHARE_COLUMNS)
    by_region = dict(zip(REGIONS, (100.0 * float(v) / total for v in region_abs), strict=True))
    by_region["face+head"] = by_region["face"] + by_region["head"]
    return {name: by_region[name] for name in SHARE_COLUMNS}


def _face_head(region_abs: np.ndarray) -> np.ndarray:
    return region_abs[..., REGIONS.index("face")] + region_abs[..., REGIONS.index("head")]


def marker_token_shares(
    records: Sequence[Mapping[str, Any]], *, seed: int = 0, resamples: int = 1000
) -> dict[str, Any]:
    """Region shares (%) of marker tokens and of the other tokens of the same sentences.

    records: per sample {"token_region_abs": [L][len(REGIONS)] Σ|attribution| of each target
    token over each region's joints, frames and channels, "positions": {entry: [token
    positions]}, "eos": position of </s> or None}. Shares pool |attribution| over the group's
    tokens (the study's share rule); </s> belongs to neither group.

    Returns {"marker": group, "other": group, "by_word": {entry: group}, "face_head_difference":
    {"value", "ci95", "resamples"} or None}, group = {"samples", "tokens", "shares":
    {SHARE_COLUMNS: %}}; the difference is marker − other face+head share (points) with a
    bootstrap interval over samples (`seed`).
    """
    width = len(REGIONS)
    pooled = {"marker": np.zeros(width), "other": np.zeros(width)}
    counts = {"marker": [0, 0], "other": [0, 0]}  # samples, tokens
    words: dict[str, Any] = {}
    per_sample = []  # (marker face+head, marker total, other face+head, other total)
    for record in records:
        values = np.asarray(record["token_region_abs"], dtype=np.float64).reshape(-1, width)
        marker = np.zeros(len(values), dtype=bool)
        for entry, positions in record["positions"].items():
            index = np.asarray(positions, dtype=np.int64)
            marker[index] = True
            slot = words.setdefault(entry, [np.zeros(width), 0, 0])
            slot[0] += values[index].sum(0)
            slot[1] += 1 if index.size else 0
            slot[2] += int(index.size)
        other = ~marker
        if record.get("eos") is not None:
            other[int(record["eos"])] = False
        sums = []
        for group, chosen in (("marker", marker), ("other", other)):
            group_sum = values[chosen].sum(0)
            pooled[group] += group_sum
            counts[group][0] += int(chosen.any())
            counts[group][1] += int(chosen.sum())
            sums += [float(_face_head(group_sum)), float(group_sum.sum())]
        if marker.any() and other.any():
            per_sample.append(sums)

    def group(name: str) -> dict[str, Any]:
        return {
            "samples": counts[name][0],
            "tokens": counts[name][1],
            "shares": _shares(pooled[name]),
        }

    result: dict[str, Any] = {
        "marker": group("marker"),
        "other": group("other"),
        "by_word": {
            entry: {"samples": samples, "tokens": tokens, "shares": _shares(total)}
            for entry, (total, samples, tokens) in words.items()
        },
        "face_head_difference": None,
    }
    if per_sample:
        table = np.asarray(per_sample)

        def difference(rows: np.ndarray) -> float:
            sums = table[rows].sum(0)
            if not (sums[1] > 0 and sums[3] > 0):
                return float("nan")
            return 100.0 * (sums[0] / sums[1] - sums[2] / sums[3])

        rng = np.random.default_rng(seed)
        draws = np.array(
            [difference(rng.integers(0, len(table), len(table))) for _ in range(resamples)]
        )
        draws = draws[np.isfinite(draws)]
        result["face_head_difference"] = {
            "value": difference(np.arange(len(table))),
            "ci95": [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
            if draws.size
            else None,
            "resamples": int(draws.size),
            "samples": len(table),
        }
    return result


# --- the probe -----------------------------------------------------------------------------------


def _read_checkpoint(path: Path | None, job: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Records of an interrupted run of the same job, by sample id."""
    from nmmfast._io import read_json

    if path is None or not path.is_file():
        return {}
    try:
        saved = read_json(path)
    except ValueError:  # a torn file cannot exist (atomic writes), a foreign one can
        return {}
    if not isinstance(saved, dict) or saved.get("job") != _json_ready(job):
        return {}
    return {record["id"]: record for record in saved.get("records", [])}


def _json_ready(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def marker_word_probe(
    model: Any,
    corpus: Any,
    ids: Sequence[str],
    words: Sequence[str],
    *,
    task: str,
    method: str = "simpson",
    n_steps: int = 17,
    max_samples: int | None = None,
    max_frames: int | None = None,
    samples_per_call: int = 4,
    batch_rows: int | None = None,
    seed: int = 0,
    job: Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-token IG of the marker words' tokens in the references of `ids` against the others.

    model: a `UniSignModel` (eval mode); corpus: an open `nmmfast.data.dataset.Corpus` or its
    directory; ids: the split's sample ids, in order; words: entries of `read_marker_words`;
    task: "slt" (reference sentences) or "cslr" (gloss sequences). The samples whose reference
    holds an entry (`marker_spans`) are matched; the first `max_samples` of them (None: all) are
    attributed: Integrated Gradients of each reference token's log-probability, teacher-forced
    (`SequenceAttributor`, per_token, zero-pose baseline, stop-gradients lifted), with the
    `method` rule at `n_steps` points (fixed: per-token attribution has no adaptive steps).
    Tokens come from `marker_token_positions`.

    job: what defines the result (a resumed run must match it); checkpoint: a JSON file
    rewritten atomically after every `samples_per_call` samples, from which an interrupted run
    of the same job resumes (the caller removes it once the result is saved).

    Returns a JSON-ready dict: probe, job, settings {task, words, words_sha256, method,
    n_steps, max_samples, max_frames, layout, regions, target, baseline, stop_gradient_lifted,
    signature}; matched_samples (samples whose reference holds an entry), samples (attributed),
    matched_by_word {entry: samples}, without_tokens [ids whose entries lost every token to
    truncation], skipped {reason: count}; the `marker_token_shares` fields (marker, other,
    by_word, face_head_difference); completeness (`completeness_stats` over tokens); records
    [{id, reference, tokens, positions, eos, token_region_abs, delta, f_input, f_baseline}].
    """
    from nmmfast import __version__
    from nmmfast._io import write_json_atomic
    from nmmfast.attribution.quadrature import valid_steps
    from nmmfast.attribution.sequence import SequenceAttributor
    from nmmfast.attribution.shares import completeness_stats
    from nmmfast.data.dataset import Corpus, PoseDataset
    from nmmfast.probes.counterfactual import region_positions
    from nmmfast.skeleton import get_layout

    words = tuple(words)
    if not words:
        raise ValueError("marker_word_probe: no marker words given")
    if isinstance(corpus, (str, os.PathLike)):
        corpus = Corpus.open(corpus)
    layout = get_layout(model.config.layout)
    n_steps = valid_steps(method, n_steps)
    max_frames = int(max_frames or model.config.max_frames)
    model.eval()
    dataset = PoseDataset(corpus, list(ids), task, layout=layout.name, max_frames=max_frames)
    encode = target_encoder(model.tokenizer, model.config.max_target_tokens)
    eos = int(model.tokenizer.eos_token_id)

    matched: list[int] = []
    matched_by_word: dict[str, int] = {}
    without_tokens: list[str] = []
    for index, text in enumerate(dataset.targets):
        spans = marker_spans(text, words)
        if not spans:
            continue
        for entry in dict.fromkeys(entry for entry, _, _ in spans):
            matched_by_word[entry] = matched_by_word.get(entry, 0) + 1
        matched.append(index)
    chosen = matched if max_samples is None else matched[: max(0, int(max_samples))]
    plans = []
    for index in chosen:
        text = dataset.targets[index]
        target = encode([text])[0]
        positions = marker_token_positions(text, words, encode, target)
        if not any(positions.values()):
            without_tokens.append(dataset.sample_ids[index])
            continue
        plans.append((index, positions, target))

    job = dict(job or {})
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    done = _read_checkpoint(checkpoint, job)
    pending = [plan for plan in plans if dataset.sample_ids[plan[0]] not in done]
    masks = {r: region_positions(layout, r) for r in REGIONS}
    attributor = SequenceAttributor(model)
    chunks = [pending[i : i + samples_per_call] for i in range(0, len(pending), samples_per_call)]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="marker words", unit="call", leave=False)
    for chunk in chunks:
        items = [dataset[index] for index, _, _ in chunk]
        res = attributor.attribute(
            [poses for _, poses, _ in items],
            [torch.tensor([*target, eos], dtype=torch.long) for _, _, target in chunk],
            n_steps=n_steps,
            method=method,
            per_token=True,
            batch_rows=batch_rows,
        )
        joint = res.ig.joint.abs.detach().double().cpu().numpy()  # [N, L, J]
        for row, ((_, positions, target), (sample_id, _, text)) in enumerate(
            zip(chunk, items, strict=True)
        ):
            length = len(target) + 1
            per_joint = joint[row, :length]
            done[sample_id] = {
                "id": sample_id,
                "reference": text,
                "tokens": res.target_tokens[row],
                "positions": positions,
                "eos": length - 1,
                "token_region_abs": np.stack(
                    [per_joint[:, masks[r]].sum(1) for r in REGIONS], axis=1
                ).tolist(),
                "delta": res.ig.delta[row, :length].tolist(),
                "f_input": res.ig.f_input[row, :length].tolist(),
                "f_baseline": res.ig.f_baseline[row, :length].tolist(),
            }
        if checkpoint is not None:
            write_json_atomic(checkpoint, {"job": job, "records": list(done.values())})

    records = [done[dataset.sample_ids[index]] for index, _, _ in plans]
    completeness = completeness_stats(
        [d for r in records for d in r["delta"]],
        [f for r in records for f in r["f_input"]],
        [f for r in records for f in r["f_baseline"]],
    )
    signature = (
        f"marker-words|task:{task}|words:{words_signature(words)}|method:{method}"
        f"|steps:{n_steps}|target:reference|baseline:zero|layout:{layout.name}"
        f"|frames:{max_frames}|nmmfast:{__version__}"
    )
    return _json_ready(
        {
            "probe": PROBE_NAME,
            "job": job,
            "settings": {
                "task": task,
                "words": list(words),
                "words_sha256": words_signature(words),
                "method": method,
                "n_steps": n_steps,
                "max_samples": max_samples,
                "max_frames": max_frames,
                "layout": layout.name,
                "regions": {r: [layout.names[int(p)] for p in masks[r]] for r in REGIONS},
                "target": "reference",
                "baseline": "zero pose",
                "stop_gradient_lifted": True,
                "signature": signature,
            },
            "matched_samples": len(matched),
            "samples": len(records),
            "matched_by_word": matched_by_word,
            "without_tokens": without_tokens,
            "skipped": dict(dataset.skipped),
            **marker_token_shares(records, seed=seed),
            "completeness": completeness,
            "records": records,
        }
    )
