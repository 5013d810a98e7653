"""The study's attribution numbers: global shares per joint and per region, the share tables,
per-frame region curves, per-token region shares, completeness statistics, and the uncertainty
of shares (bootstrap intervals over clips, permutation tests between partitions).

Each number comes from exactly one function here; reports and the CLI only format them.

**The share rule is our reading.** The reference study reports a "global attribution share" per
joint and region without saying how clips are combined. `attribution_shares` pools Σ|attribution|
over clips, frames and channels, then normalises (`SHARE_RULE`): long or strongly attributed
clips weigh more. The alternative, the mean over clips of each clip's own shares, is computed
beside it (`Shares.region_clip_mean`).

**Channels.** Input channel 2 is the detector's confidence. The zero-pose baseline zeroes it, so
a joint's share includes "the joint was detected at all"; and the joints a part is normalised
relative to (`Layout.anchored_joints`: hand roots, face anchor) have x = y = 0 on every frame, so
their whole share is confidence. Every share is therefore also split into `coords` (x, y) and
`confidence` (score) parts of the all-channel total, and `channels="coords"` makes the headline
shares the x, y attribution alone, renormalised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHANNELS",
    "SHARE_RULE",
    "Shares",
    "attribution_shares",
    "bootstrap_region_intervals",
    "pooled_region_shares",
    "share_difference",
    "share_signature",
    "completeness_stats",
    "format_share_table",
    "frame_region_curves",
    "share_table",
    "token_region_shares",
]


# What the headline shares count: every input channel, or x and y only.
CHANNELS = ("all", "coords")
SHARE_RULE = (
    "pooled: sum of |attribution| over clips, frames and channels, then normalised to 100 % "
    "(our reading of the reference study's 'global attribution share'; the mean of per-clip "
    "shares is given beside it)"
)


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
    """Global attribution shares (%) under `SHARE_RULE`.

    joint: [J] % per joint (sums to 100); region: [R] % per region (sums to 100), both of the
    channels named by `channels` ("all" or "coords"); joint_names: [J] table labels;
    region_names: [R]; region_of_joint: [J]; samples: how many clips were pooled.
    joint_coords, joint_confidence ([J]) and region_coords, region_confidence ([R]): the
    all-channel shares split into their x, y part and their score part (each pair sums to the
    all-channel share; None where the split was not recorded). region_clip_mean: [R] the
    alternative rule, the mean over clips of each clip's own region shares (same channels).
    anchored: [J] bool, joints whose x and y are constant by construction.
    """

    joint: np.ndarray
    region: np.ndarray
    joint_names: tuple[str, ...]
    region_names: tuple[str, ...]
    region_of_joint: np.ndarray
    samples: int
    channels: str = "all"
    joint_coords: np.ndarray | None = None
    joint_confidence: np.ndarray | None = None
    region_coords: np.ndarray | None = None
    region_confidence: np.ndarray | None = None
    region_clip_mean: np.ndarray | None = None
    anchored: np.ndarray | None = None

    def region_share(self, name: str) -> float:
        return float(self.region[self.region_names.index(name)])

    def _named(self, values: np.ndarray | None, names: Sequence[str]) -> dict[str, float] | None:
        if values is None:
            return None
        return {n: float(v) for n, v in zip(names, values, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "channels": self.channels,
            "rule": SHARE_RULE,
            "region": self._named(self.region, self.region_names),
            "region_coords": self._named(self.region_coords, self.region_names),
            "region_confidence": self._named(self.region_confidence, self.region_names),
            "region_clip_mean": self._named(self.region_clip_mean, self.region_names),
            "joint": self._named(self.joint, self.joint_names),
            "joint_coords": self._named(self.joint_coords, self.joint_names),
            "joint_confidence": self._named(self.joint_confidence, self.joint_names),
            "anchored_joints": [
                n for n, a in zip(self.joint_names, self._anchored(), strict=True) if a
            ],
        }

    def _anchored(self) -> np.ndarray:
        if self.anchored is None:
            return np.zeros(len(self.joint_names), dtype=bool)
        return self.anchored


def pooled_region_shares(region_abs: Any) -> np.ndarray:
    """[R] % of clips' pooled Σ|attribution| per region, from per-clip [N, R] (`SHARE_RULE`)."""
    return _percent(_as_array(region_abs, "region_abs", 2).sum(0))


def attribution_shares(
    joint_abs: Any, layout: Any, *, coords: Any = None, channels: str = "all"
) -> Shares:
    """Global shares from per-clip per-joint Σ|attribution| (`SHARE_RULE`).

    joint_abs: [N, J] over all channels (e.g. `IGResult.joint.abs`, or stacked from a job's
    sample files); coords: [N, J] the x, y part of it (None: no channel split, and
    `channels` must be "all"); layout: a `nmmfast.skeleton` layout name or object.
    """
    from nmmfast.skeleton import get_layout

    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    layout = get_layout(layout)
    values = _as_array(joint_abs, "joint_abs", 2)
    if values.shape[1] != layout.num_joints:
        raise ValueError(
            f"joint_abs has J={values.shape[1]} joints but layout {layout.name!r} has "
            f"{layout.num_joints}"
        )
    region_of_joint = np.asarray(layout.region_of_joint, dtype=np.int64)
    n_regions = len(layout.regions)
    one_hot = np.eye(n_regions)[region_of_joint]  # [J, R]
    split: dict[str, np.ndarray | None] = dict.fromkeys(
        ("joint_coords", "joint_confidence", "region_coords", "region_confidence")
    )
    headline = values
    if coords is not None:
        xy = _as_array(coords, "coords", 2)
        if xy.shape != values.shape:
            raise ValueError(f"coords has shape {xy.shape}, joint_abs {values.shape}")
        total = values.sum()
        scale = 100.0 / total if total > 0 else 0.0
        split["joint_coords"] = xy.sum(0) * scale
        split["joint_confidence"] = (values - xy).sum(0) * scale
        split["region_coords"] = split["joint_coords"] @ one_hot
        split["region_confidence"] = split["joint_confidence"] @ one_hot
        if channels == "coords":
            headline = xy
    elif channels != "all":
        raise ValueError("channels='coords' needs the x, y part of the attribution (coords=)")
    per_clip = headline @ one_hot  # [N, R]
    clip_totals = per_clip.sum(1, keepdims=True)
    clip_shares = np.divide(
        100.0 * per_clip, clip_totals, out=np.zeros_like(per_clip), where=clip_totals > 0
    )
    anchored = np.zeros(layout.num_joints, dtype=bool)
    anchored[layout.anchored_joints] = True
    return Shares(
        joint=_percent(headline.sum(0)),
        region=pooled_region_shares(per_clip),
        joint_names=tuple(layout.names),
        region_names=tuple(layout.regions),
        region_of_joint=region_of_joint,
        samples=int(values.shape[0]),
        channels=channels,
        region_clip_mean=clip_shares.mean(0) if len(clip_shares) else None,
        anchored=anchored,
        **split,
    )


def _resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[B, n] how often each clip is drawn in each bootstrap resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def bootstrap_region_intervals(
    region_abs: Any, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> np.ndarray:
    """[R, 2] percentile bootstrap intervals of the pooled region shares (%), resampling clips.

    region_abs: per clip [N, R] Σ|attribution| per region (the channels the shares count).
    Clips are the unit: frames of one clip are not independent. Seeded, so a report is stable.
    """
    values = _as_array(region_abs, "region_abs", 2)
    if values.shape[0] < 2:
        return np.full((values.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    pooled = _resample_counts(values.shape[0], n_resamples, rng) @ values  # [B, R]
    totals = pooled.sum(1, keepdims=True)
    shares = np.divide(100.0 * pooled, totals, out=np.zeros_like(pooled), where=totals > 0)
    tail = 100.0 * (1.0 - level) / 2.0
    return np.percentile(shares, [tail, 100.0 - tail], axis=0).T


def share_difference(
    region_abs_a: Any,
    region_abs_b: Any,
    region: int,
    *,
    n_resamples: int = 1000,
    n_permutations: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Pooled share of `region` in clips A minus in clips B (percentage points), e.g. the face
    share of the signer-independent model minus the control model's.

    Returns {"difference", "low", "high" (bootstrap interval, clips of each side resampled on
    their own), "p_value" (two-sided permutation test: clips shuffled between A and B)}.
    """
    a = _as_array(region_abs_a, "region_abs_a", 2)
    b = _as_array(region_abs_b, "region_abs_b", 2)

    def share(values: np.ndarray) -> np.ndarray:  # [..., R] pooled -> share of `region`
        totals = values.sum(-1)
        return np.divide(
            100.0 * values[..., region], totals, out=np.zeros_like(totals), where=totals > 0
        )

    observed = float(share(a.sum(0)) - share(b.sum(0)))
    rng = np.random.default_rng(seed)
    if len(a) < 2 or len(b) < 2:
        return {"difference": observed, "low": math.nan, "high": math.nan, "p_value": math.nan}
    boot = share(_resample_counts(len(a), n_resamples, rng) @ a) - share(
        _resample_counts(len(b), n_resamples, rng) @ b
    )
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    both = np.concatenate([a, b])
    labels = np.zeros(len(both), dtype=bool)
    labels[: len(a)] = True
    permuted = np.stack([rng.permutation(labels) for _ in range(n_permutations)])  # [P, N]
    pooled_a = permuted.astype(np.float64) @ both
    pooled_b = (~permuted).astype(np.float64) @ both
    null = share(pooled_a) - share(pooled_b)
    extreme = int((np.abs(null) >= abs(observed) - 1e-12).sum())
    return {
        "difference": observed,
        "low": float(low),
        "high": float(high),
        "p_value": (extreme + 1) / (n_permutations + 1),
    }


def share_signature(settings: Mapping[str, Any], channels: str) -> str:
    """What moved a job's shares, as one line like the metrics' signatures: method, steps or
    tolerance, baseline, stop-gradients, channels, target, layout, weights' hash, version."""
    from nmmfast import __version__

    steps = (
        f"tol:{settings['tolerance']}+max:{settings.get('max_steps')}"
        if settings.get("tolerance") is not None
        else str(settings.get("n_steps"))
    )
    fields = [
        ("method", settings.get("method")),
        ("steps", steps),
        ("baseline", settings.get("baseline")),
        ("stop_gradients", settings.get("stop_gradients")),
        ("channels", channels),
        ("target", settings.get("target")),
        ("layout", settings.get("layout")),
        ("weights", str(settings.get("weights_sha256") or "?")[:12]),
        ("rule", "pooled"),
        ("nmmfast", __version__),
    ]
    return "|".join(f"{key}:{value}" for key, value in fields)


def share_table(shares: Shares, top: int = 10, *, study_labels: bool = False) -> list[dict]:
    """The reference study's Tables 3–5 layout: per region, its total share and its `top` joints.

    Rows: {"region", "rank" (0 for the region total), "joint" (label, "" for the total),
    "share" (%), and where the channel split was recorded "coords" and "confidence" (% of the
    all-channel total)}, regions in `shares.region_names` order, joints by decreasing share.
    Joint rows carry "anchored" (x, y constant by construction). With `study_labels`, each
    joint row also carries "study_label": how the reference study's tables printed that joint
    (its labels are wrong for body and face joints).
    """
    study: dict[str, str] = {}
    if study_labels:
        from nmmfast.skeleton import reference_study_labels

        layout_name = _layout_of(shares)
        study = {true: printed for printed, true in reference_study_labels(layout_name)}
    split = shares.joint_coords is not None
    anchored = shares._anchored()
    rows: list[dict] = []
    for r, region in enumerate(shares.region_names):
        total = {"region": region, "rank": 0, "joint": "", "share": float(shares.region[r])}
        if split:
            total["coords"] = float(shares.region_coords[r])
            total["confidence"] = float(shares.region_confidence[r])
        rows.append(total)
        members = np.flatnonzero(shares.region_of_joint == r)
        ranked = members[np.argsort(-shares.joint[members], kind="stable")][:top]
        for rank, j in enumerate(ranked, start=1):
            row = {
                "region": region,
                "rank": rank,
                "joint": shares.joint_names[j],
                "share": float(shares.joint[j]),
                "anchored": bool(anchored[j]),
            }
            if split:
                row["coords"] = float(shares.joint_coords[j])
                row["confidence"] = float(shares.joint_confidence[j])
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
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    fmt: str = "markdown",
    signatures: Mapping[str, str] | None = None,
) -> str:
    """Side-by-side share tables (one group of columns per key, e.g. "control/slt") as Markdown
    or CSV: joint, the reference study's label (where the rows carry it), share, and its coords
    and confidence parts (where recorded). Anchored joints (x, y constant by construction) are
    marked with "†". `signatures` (key -> signature) follow a Markdown table and fill a
    "<key> signature" column of a CSV one.

    Every table must come from `share_table` with the same `top`; rows are matched by
    (region, rank).
    """
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    names = list(tables)
    if not names:
        raise ValueError("format_share_table: no tables given")
    signatures = dict(signatures or {})
    keys = [(r["region"], r["rank"]) for r in tables[names[0]]]
    lookup = {name: {(r["region"], r["rank"]): r for r in rows} for name, rows in tables.items()}
    labelled = {n: any("study_label" in r for r in tables[n]) for n in names}
    split = {n: any("coords" in r for r in tables[n]) for n in names}

    def columns(name: str) -> list[str]:
        heads = [f"{name} joint"]
        heads += [f"{name} study label"] if labelled[name] else []
        heads += [f"{name} %"]
        heads += [f"{name} coords %", f"{name} confidence %"] if split[name] else []
        heads += [f"{name} signature"] if fmt == "csv" and name in signatures else []
        return heads

    def cells(name: str, key: tuple[str, int]) -> list[str]:
        row = lookup[name].get(key)
        if row is None:
            return [""] * len(columns(name))
        label = "(total)" if key[1] == 0 else row["joint"] + (" †" if row.get("anchored") else "")
        out = [label]
        out += [row.get("study_label", "")] if labelled[name] else []
        out += [f"{row['share']:.2f}"]
        if split[name]:
            out += [f"{row['coords']:.2f}", f"{row['confidence']:.2f}"]
        out += [signatures[name]] if fmt == "csv" and name in signatures else []
        return out

    heads = ["region", "rank"] + [h for n in names for h in columns(n)]
    lines = []
    if fmt == "markdown":
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "---|" * len(heads))
    else:
        lines.append(",".join(heads))
    for key in keys:
        row_cells = [c for n in names for c in cells(n, key)]
        region, rank = key[0], str(key[1]) if key[1] else ""
        if fmt == "markdown":
            lines.append(f"| {region} | {rank} | " + " | ".join(row_cells) + " |")
        else:
            lines.append(",".join([region, rank] + [c.replace(",", ";") for c in row_cells]))
    if fmt == "markdown":
        if any(split.values()):
            lines += [
                "",
                "coords % and confidence %: the all-channel share split into its x, y part and "
                "its detector-score part. † x and y constant by construction: the share is "
                "confidence alone.",
            ]
        for name in names:
            if name in signatures:
                lines += ["", f"{name}: `{signatures[name]}`"]
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
