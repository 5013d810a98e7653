"""The study's attribution numbers: global shares per joint and per region, the share tables,
per-frame region curves, per-token region shares and completeness statistics.

Each number comes from exactly one function here; reports and the CLI only format them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Shares",
    "attribution_shares",
    "completeness_stats",
    "format_share_table",
    "frame_region_curves",
    "share_table",
    "token_region_shares",
]


def _as_array(values: Any, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values.cpu() if hasattr(values, "cpu") else values, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    return array


def _percent(pooled: np.ndarray) -> np.ndarray:
    total = pooled.sum()
    if not total > 0:
        return np.zeros_like(pooled)
    return 100.0 * pooled / total


@dataclass(frozen=True)
class Shares:
    """Global attribution shares (%): pooled Σ|attribution| over samples, frames and channels.

    joint: [J] % per joint (sums to 100); region: [R] % per region (sums to 100);
    joint_names: [J] table labels; region_names: [R]; region_of_joint: [J];
    samples: how many samples were pooled.
    """

    joint: np.ndarray
    region: np.ndarray
    joint_names: tuple[str, ...]
    region_names: tuple[str, ...]
    region_of_joint: np.ndarray
    samples: int

    def region_share(self, name: str) -> float:
        return float(self.region[self.region_names.index(name)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "region": {n: float(v) for n, v in zip(self.region_names, self.region, strict=True)},
            "joint": {n: float(v) for n, v in zip(self.joint_names, self.joint, strict=True)},
        }


def attribution_shares(joint_abs: Any, layout: Any) -> Shares:
    """Global shares from per-sample per-joint Σ|attribution|.

    joint_abs: [N, J] (e.g. `IGResult.joint.abs`, or stacked from a job's sample files);
    layout: a `nmmfast.skeleton` layout name or object (joint names and regions).
    Pooling sums |attribution| over all samples before normalising, so long or strongly
    attributed samples weigh more: the reference study's definition.
    """
    from nmmfast.skeleton import get_layout

    layout = get_layout(layout)
    values = _as_array(joint_abs, "joint_abs", 2)
    if values.shape[1] != layout.num_joints:
        raise ValueError(
            f"joint_abs has J={values.shape[1]} joints but layout {layout.name!r} has "
            f"{layout.num_joints}"
        )
    pooled = values.sum(0)
    region_of_joint = np.asarray(layout.region_of_joint, dtype=np.int64)
    regions = np.bincount(region_of_joint, weights=pooled, minlength=len(layout.regions))
    return Shares(
        joint=_percent(pooled),
        region=_percent(regions),
        joint_names=tuple(layout.names),
        region_names=tuple(layout.regions),
        region_of_joint=region_of_joint,
        samples=int(values.shape[0]),
    )


def share_table(shares: Shares, top: int = 10, *, study_labels: bool = False) -> list[dict]:
    """The reference study's Tables 3–5 layout: per region, its total share and its `top` joints.

    Rows: {"region", "rank" (0 for the region total), "joint" (label, "" for the total),
    "share" (%)}, regions in `shares.region_names` order, joints by decreasing share. With
    `study_labels`, each joint row also carries "study_label": how the reference study's
    tables printed that joint (its labels are wrong for body and face joints).
    """
    study: dict[str, str] = {}
    if study_labels:
        from nmmfast.skeleton import reference_study_labels

        layout_name = _layout_of(shares)
        study = {true: printed for printed, true in reference_study_labels(layout_name)}
    rows: list[dict] = []
    for r, region in enumerate(shares.region_names):
        rows.append({"region": region, "rank": 0, "joint": "", "share": float(shares.region[r])})
        members = np.flatnonzero(shares.region_of_joint == r)
        ranked = members[np.argsort(-shares.joint[members], kind="stable")][:top]
        for rank, j in enumerate(ranked, start=1):
            row = {
                "region": region,
                "rank": rank,
                "joint": shares.joint_names[j],
                "share": float(shares.joint[j]),
            }
            if study_labels:
                row["study_label"] = study.get(shares.joint_names[j], "")
            rows.append(row)
    return rows


def _layout_of(shares: Shares) -> Any:
    from nmmfast.skeleton import available_layouts, get_layout

    for name in available_layouts():
        layout = get_layout(name)
        if tuple(layout.names) == shares.joint_names:
            return layout
    raise ValueError("no registered layout has these joint names; study labels need one")


def format_share_table(
    tables: Mapping[str, Sequence[Mapping[str, Any]]], fmt: str = "markdown"
) -> str:
    """Side-by-side share tables (one column per key, e.g. "control/slt") as Markdown or CSV.

    Every table must come from `share_table` with the same `top`; rows are matched by
    (region, rank).
    """
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    names = list(tables)
    if not names:
        raise ValueError("format_share_table: no tables given")
    keys = [(r["region"], r["rank"]) for r in tables[names[0]]]
    lookup = {name: {(r["region"], r["rank"]): r for r in rows} for name, rows in tables.items()}
    lines = []
    if fmt == "markdown":
        lines.append("| region | rank | " + " | ".join(f"{n} joint | {n} %" for n in names) + " |")
        lines.append("|---|---|" + "---|---|" * len(names))
    else:
        lines.append(",".join(["region", "rank"] + [f"{n} joint,{n} share" for n in names]))
    for key in keys:
        cells = []
        for name in names:
            row = lookup[name].get(key)
            label = "(total)" if key[1] == 0 else (row["joint"] if row else "")
            cells += [label, f"{row['share']:.2f}" if row else ""]
        region, rank = key[0], str(key[1]) if key[1] else ""
        if fmt == "markdown":
            lines.append(f"| {region} | {rank} | " + " | ".join(cells) + " |")
        else:
            lines.append(",".join([region, rank] + [c.replace(",", ";") for c in cells]))
    return "\n".join(lines) + "\n"


def frame_region_curves(frame_region_abs: Sequence[Any], n_bins: int = 20) -> np.ndarray:
    """Mean per-frame region shares over normalised time: [n_bins, R], rows sum to 100 (or 0).

    frame_region_abs: per sample [T_i, R] Σ|attribution| of each region on each frame. Each
    sample's frames fall into `n_bins` equal bins of its own duration; within a bin the
    regions' |attribution| is pooled over the samples, then normalised to %.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    curves: np.ndarray | None = None
    for n, values in enumerate(frame_region_abs):
        array = _as_array(values, f"frame_region_abs[{n}]", 2)
        if curves is None:
            curves = np.zeros((n_bins, array.shape[1]))
        elif array.shape[1] != curves.shape[1]:
            raise ValueError(
                f"frame_region_abs[{n}] has {array.shape[1]} regions, earlier samples "
                f"{curves.shape[1]}"
            )
        length = array.shape[0]
        bins = np.minimum((np.arange(length) * n_bins) // max(length, 1), n_bins - 1)
        np.add.at(curves, bins, array)
    if curves is None:
        raise ValueError("frame_region_abs holds no samples")
    totals = curves.sum(1, keepdims=True)
    return np.divide(100.0 * curves, totals, out=np.zeros_like(curves), where=totals > 0)


def token_region_shares(
    token_region_abs: Sequence[Any], tokens: Sequence[Sequence[str]]
) -> dict[str, np.ndarray]:
    """Region shares (%) per target token string, pooled over its occurrences: token -> [R].

    token_region_abs: per sample [L_i, R] Σ|attribution| of each region for each target token
    (from per-token attribution); tokens: per sample the L_i token strings.
    """
    if len(token_region_abs) != len(tokens):
        raise ValueError(
            f"token_region_abs has {len(token_region_abs)} samples but tokens {len(tokens)}"
        )
    pooled: dict[str, np.ndarray] = {}
    for n, (values, words) in enumerate(zip(token_region_abs, tokens, strict=True)):
        array = _as_array(values, f"token_region_abs[{n}]", 2)
        if array.shape[0] != len(words):
            raise ValueError(
                f"sample {n}: {array.shape[0]} token rows but {len(words)} token strings"
            )
        for word, row in zip(words, array, strict=True):
            pooled[word] = pooled.get(word, 0) + row
    return {word: _percent(values) for word, values in pooled.items()}


def completeness_stats(delta: Any, f_input: Any, f_baseline: Any) -> dict[str, float]:
    """Completeness over samples: relative gap r = |delta| / |F(x) − F(b)|.

    Returns {"samples", "median", "p95", "max"} of r (samples with F(x) = F(b) and delta = 0
    count as 0; with delta ≠ 0 as inf) and "median_abs_delta". NaN deltas (not evaluated)
    are left out.
    """
    d = _as_array(delta, "delta", 1)
    gap = np.abs(_as_array(f_input, "f_input", 1) - _as_array(f_baseline, "f_baseline", 1))
    keep = np.isfinite(d) & np.isfinite(gap)
    d, gap = np.abs(d[keep]), gap[keep]
    if d.size == 0:
        nan = math.nan
        return {"samples": 0, "median": nan, "p95": nan, "max": nan, "median_abs_delta": nan}
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(d == 0, 0.0, d / gap)
    return {
        "samples": int(d.size),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
        "max": float(rel.max()),
        "median_abs_delta": float(np.median(d)),
    }
