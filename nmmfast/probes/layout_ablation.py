"""Layout ablation: the same model trained on two skeleton layouts (e.g. `unisign69`, which leaves
out the eyebrows and eyes, and `nmm87`, which adds them), compared on what a yes/no question's
brow raise should move:

- question marking: how often a prediction is a question exactly when its reference is, and the
  share of question clips marked as questions;
- counterfactual flips: the share of question clips whose marking flips when the face, the head,
  both, or the eyebrows alone are neutralised (`nmmfast.probes.counterfactual`);
- attribution: the face, eyebrow and eye shares of the model's IG attribution.

Rates carry Wilson 95 % intervals; differences between layouts are paired over the same clips
(percentile bootstrap interval, exact McNemar p-value); shares carry a percentile bootstrap over
clips. The result states the answer the numbers give, whichever way it falls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import read_json
from nmmfast.errors import UserError
from nmmfast.skeleton import REGION_COCO

__all__ = [
    "FLIP_REGIONS",
    "PROBE_NAME",
    "SHARE_GROUPS",
    "LayoutArm",
    "compare_layouts",
    "mcnemar_p",
    "paired_difference",
    "wilson_interval",
]

PROBE_NAME = "layouts"
# regions neutralised for the flip rates (`nmmfast.skeleton.coco_region` names)
FLIP_REGIONS = ("face", "head", "face+head", "brows")
# groups of joints whose attribution shares are reported per layout: all of face-68, and the
# eyebrows and eyes that unisign69 leaves out
SHARE_GROUPS: dict[str, tuple[int, ...]] = {
    name: REGION_COCO[name] for name in ("face", "brows", "eyes")
}
LEVEL = 0.95


@dataclass(frozen=True)
class LayoutArm:
    """One layout's outputs for the same (partition, task) and the same clips."""

    layout: str
    predictions: Path  # decode's JSONL over the split
    counterfactual: Path  # counterfactual probe JSON with `FLIP_REGIONS` over the split
    attribution: Path  # attribution job directory (samples/*.npz)


def wilson_interval(hits: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion hits/n (0-1); (nan, nan) when n is 0."""
    if n == 0:
        return (math.nan, math.nan)
    z = _normal_quantile(0.5 + level / 2.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _normal_quantile(q: float) -> float:
    """Standard normal quantile by bisection on erf (exact to 1e-12; no SciPy needed)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if 0.5 * (1.0 + math.erf(middle / math.sqrt(2.0))) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired binary outcomes a, b (same clips)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Mean of b minus mean of a for binary outcomes on the same clips (0-1 scale): the
    difference, a percentile bootstrap interval resampling clips, and McNemar's p."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.shape} and {b.shape} clips differ")
    if a.size == 0:
        return {"difference": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, a.size, (n_resamples, a.size))
    boot = b[draws].mean(1) - a[draws].mean(1)
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    return {
        "difference": float(b.mean() - a.mean()),
        "low": float(low),
        "high": float(high),
        "p_value": mcnemar_p(a.astype(bool), b.astype(bool)),
    }


def _rate(outcomes: np.ndarray) -> dict[str, Any]:
    n, hits = int(outcomes.size), int(np.asarray(outcomes, dtype=bool).sum())
    low, high = wilson_interval(hits, n)
    return {"value": hits / n if n else None, "low": low, "high": high, "n": n}


def _question_outcomes(arm: LayoutArm, task: str) -> dict[str, Any]:
    """Per clip of the predictions (sorted by id): reference is a question, prediction is."""
    from nmmfast.evaluate import read_predictions
    from nmmfast.metrics import is_question

    rows = {row["id"]: row for row in read_predictions(arm.predictions, task).get(task, [])}
    if not rows:
        raise UserError(f"{arm.predictions}: no {task} predictions")
    ids = sorted(rows)
    return {
        "ids": ids,
        "references": {i: rows[i]["reference"] for i in ids},
        "asked": np.array([is_question(rows[i]["reference"]) for i in ids], dtype=bool),
        "marked": np.array([is_question(rows[i]["prediction"] or "") for i in ids], dtype=bool),
    }


def _flip_outcomes(arm: LayoutArm, references: Mapping[str, str]) -> dict[str, Any]:
    """Per question clip of the counterfactual probe (sorted by id): marking flipped per region."""
    from nmmfast.metrics import is_question

    probe = read_json(arm.counterfactual)
    records = sorted(probe.get("samples") or [], key=lambda r: r["id"])
    if not records:
        raise UserError(
            f"{arm.counterfactual}: no per-sample records (probe run with samples=False?)"
        )
    absent = [r for r in FLIP_REGIONS if r not in records[0]["regions"]]
    if absent:
        raise UserError(f"{arm.counterfactual}: regions {absent} were not neutralised")
    unknown = [r["id"] for r in records if r["id"] not in references]
    if unknown:
        raise UserError(f"{arm.counterfactual}: clip {unknown[0]!r} is not in {arm.predictions}")
    questions = [r for r in records if is_question(references[r["id"]])]
    flips = {
        region: np.array(
            [
                is_question(r["prediction"]) != is_question(r["regions"][region]["prediction"])
                for r in questions
            ],
            dtype=bool,
        )
        for region in FLIP_REGIONS
    }
    return {"ids": [r["id"] for r in questions], "flips": flips}


def _group_shares(arm: LayoutArm, channels: str, n_resamples: int, seed: int) -> dict[str, Any]:
    """Pooled share (%) of each `SHARE_GROUPS` group with a bootstrap interval over clips; None
    for a group the layout lacks."""
    from nmmfast.attribution.shares import bootstrap_region_intervals
    from nmmfast.attribution.summary import load_samples
    from nmmfast.skeleton import get_layout

    samples = load_samples(arm.attribution)
    if not samples:
        raise UserError(f"{arm.attribution}: no attributed samples")
    key = "joint_abs_coords" if channels == "coords" else "joint_abs"
    joint_abs = np.stack([s[key] for s in samples])  # [N, J]
    coco = np.asarray(get_layout(arm.layout).coco_indices)
    out: dict[str, Any] = {"clips": len(samples)}
    for group, indices in SHARE_GROUPS.items():
        member = np.isin(coco, indices)
        if not member.any():
            out[group] = None
            continue
        split = np.stack([joint_abs[:, member].sum(1), joint_abs[:, ~member].sum(1)], 1)
        total = split.sum()
        low, high = bootstrap_region_intervals(split, n_resamples=n_resamples, seed=seed)[0]
        out[group] = {
            "value": float(100.0 * split[:, 0].sum() / total) if total > 0 else None,
            "low": float(low),
            "high": float(high),
            "joints": int(member.sum()),
        }
    return out


def compare_layouts(
    arms: Sequence[LayoutArm],
    *,
    pair: str,
    task: str = "slt",
    channels: str = "all",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare the arms (the first is the reference layout) on the same clips.

    A question is a reference ending with a question mark (`nmmfast.metrics.is_question`), read
    from the predictions files of `task`. Returns a JSON-ready dict: probe, pair, settings, layouts
    [{layout, question_marking, questions_marked (rates with Wilson intervals, 0-1), flips
    {region: rate over question clips}, shares {face, brows, eyes: {value, low, high} in % or
    None when the layout lacks them, clips}}], differences [{layout, versus, question_marking,
    questions_marked, flips {region}: paired_difference}], answer (one paragraph).
    """
    if len(arms) < 2:
        raise ValueError("compare_layouts: needs at least two layouts")
    rows, outcomes = [], []
    for arm in arms:
        questions = _question_outcomes(arm, task)
        flips = _flip_outcomes(arm, questions["references"])
        outcomes.append((questions, flips))
        correct = questions["asked"] == questions["marked"]
        rows.append(
            {
                "layout": arm.layout,
                "question_marking": _rate(correct),
                "questions_marked": _rate(questions["marked"][questions["asked"]]),
                "flips": {region: _rate(values) for region, values in flips["flips"].items()},
                "shares": _group_shares(arm, channels, n_resamples, seed),
            }
        )
    base_questions, base_flips = outcomes[0]
    differences = []
    for arm, (questions, flips) in zip(arms[1:], outcomes[1:], strict=True):
        for name, first, second in (
            ("predictions", base_questions["ids"], questions["ids"]),
            ("counterfactual question clips", base_flips["ids"], flips["ids"]),
        ):
            if first != second:
                raise UserError(
                    f"{arm.predictions.parent.parent}: the {name} of {arm.layout} and "
                    f"{arms[0].layout} cover different clips; the comparison needs the same ones"
                )

        def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
            return paired_difference(a, b, n_resamples=n_resamples, seed=seed)

        asked = questions["asked"]
        differences.append(
            {
                "layout": arm.layout,
                "versus": arms[0].layout,
                "question_marking": paired(
                    base_questions["asked"] == base_questions["marked"],
                    asked == questions["marked"],
                ),
                "questions_marked": paired(
                    base_questions["marked"][asked], questions["marked"][asked]
                ),
                "flips": {
                    region: paired(base_flips["flips"][region], flips["flips"][region])
                    for region in FLIP_REGIONS
                },
            }
        )
    return {
        "probe": PROBE_NAME,
        "pair": pair,
        "settings": {
            "channels": channels,
            "flip_regions": list(FLIP_REGIONS),
            "share_groups": {k: [v[0], v[-1]] for k, v in SHARE_GROUPS.items()},
            "level": LEVEL,
            "resamples": n_resamples,
            "seed": seed,
            "rates": "Wilson score interval",
            "differences": "paired over clips: percentile bootstrap, exact McNemar p",
            "shares": "pooled |attribution| share, percentile bootstrap over clips",
        },
        "layouts": rows,
        "differences": differences,
        "answer": answer_text(rows, differences),
    }


def _pct(rate: Mapping[str, Any]) -> str:
    if rate.get("value") is None:
        return "n/a"
    return f"{100 * rate['value']:.1f} % [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _points(diff: Mapping[str, float]) -> str:
    return (
        f"{100 * diff['difference']:+.1f} points [{100 * diff['low']:+.1f}, "
        f"{100 * diff['high']:+.1f}], McNemar p = {diff['p_value']:.3g}"
    )


def answer_text(rows: Sequence[Mapping[str, Any]], differences: Sequence[Mapping[str, Any]]) -> str:
    """What the comparison says, in words, for the first layout against each other one."""
    base = rows[0]
    parts = []
    for row, diff in zip(rows[1:], differences, strict=True):
        face, marking = diff["flips"]["face"], diff["question_marking"]
        brows = row["shares"].get("brows")
        lines = [
            f"Neutralising the face flips the question marking of {_pct(row['flips']['face'])} "
            f"of question clips with {row['layout']} and {_pct(base['flips']['face'])} with "
            f"{base['layout']} ({_points(face)}); the eyebrows alone flip "
            f"{_pct(row['flips']['brows'])} with {row['layout']}.",
            f"Question marking is right on {_pct(row['question_marking'])} of clips with "
            f"{row['layout']} and {_pct(base['question_marking'])} with {base['layout']} "
            f"({_points(marking)}).",
        ]
        if brows is not None and brows.get("value") is not None:
            lines.append(
                f"The eyebrows draw {brows['value']:.1f} % [{brows['low']:.1f}, "
                f"{brows['high']:.1f}] of the {row['layout']} model's attribution."
            )
        face_used = face["p_value"] < 0.05 and face["difference"] > 0
        better = marking["p_value"] < 0.05 and marking["difference"] > 0
        worse = marking["p_value"] < 0.05 and marking["difference"] < 0
        if face_used and better:
            verdict = (
                f"Answer: with the eyebrows and eyes in its input, the model reads the question "
                f"from the face, and marks questions better than with {base['layout']}."
            )
        elif face_used:
            verdict = (
                f"Answer: with the eyebrows and eyes in its input, the model reads the question "
                f"from the face, but question marking is no better than with {base['layout']} "
                f"at this sample size."
            )
        elif better:
            verdict = (
                f"Answer: {row['layout']} marks questions better, but neutralising the face "
                f"does not flip more markings: the gain does not show as use of the face here."
            )
        elif worse:
            verdict = f"Answer: {row['layout']} marks questions worse than {base['layout']}."
        else:
            verdict = (
                f"Answer: at this sample size the data show no difference: adding the joints "
                f"of {row['layout']} neither makes the face a question cue nor changes question "
                f"marking (both paired tests p ≥ 0.05)."
            )
        parts.append(" ".join([*lines, verdict]))
    return "\n\n".join(parts)
