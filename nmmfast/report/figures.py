"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes so the HTML can embed
them: metric bars, region shares, the skeleton coloured by joint share, per-frame region curves,
probe results and tracking-failure examples."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REGION_COLOURS = {"hands": "#1f77b4", "face": "#d62728", "body": "#2ca02c"}
PARTITION_TITLES = {"control": "control", "si": "signer-independent", "us": "unseen sentences"}


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
    colours: Mapping[str, str] | None = None,
    intervals: Mapping[str, Sequence[tuple[float, float] | None]] | None = None,
) -> bytes:
    """One group of bars per entry of `groups`, one bar per series; `intervals` (per series,
    per group (low, high) or None) draws error bars. The legend sits below the axes, clear of
    the bars' value labels."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(series)) / 2), 3.6))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    tallest = 0.0
    for i, (name, values) in enumerate(series.items()):
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
        colour = (colours or {}).get(name)
        where = x + (i - (len(series) - 1) / 2) * width
        error = None
        spans = (intervals or {}).get(name)
        if spans is not None:
            lows = np.array([np.nan if s is None else s[0] for s in spans], dtype=float)
            highs = np.array([np.nan if s is None else s[1] for s in spans], dtype=float)
            error = np.nan_to_num(np.stack([values - lows, highs - values]), nan=0.0)
            tallest = max(tallest, float(np.nanmax(np.append(highs, 0.0))))
        ax.bar(where, values, width, label=name, color=colour, yerr=error, capsize=2)
        tops = values if error is None else values + error[1]
        for position, value, top in zip(where, values, tops, strict=True):
            if np.isfinite(value):  # the value label above the bar and its error bar
                ax.annotate(
                    f"{value:.1f}",
                    (position, top),
                    xytext=(0, 1),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        tallest = max(tallest, float(np.nanmax(np.append(values, 0.0))))
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if ylim:
        ax.set_ylim(*ylim)
    elif tallest > 0:
        ax.set_ylim(0, tallest * 1.15)  # headroom for the value labels
    ax.legend(
        fontsize=8,
        frameon=False,
        ncols=min(4, len(series)),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
    )
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def skeleton_shares(
    positions: np.ndarray,
    shares: np.ndarray,
    edges: Sequence[tuple[int, int]],
    *,
    title: str,
    labels: Sequence[str] | None = None,
    top: int = 6,
) -> bytes:
    """Joints at `positions` [J, 2] (pixels, y down) coloured and sized by `shares` [J] (%)."""
    fig, ax = plt.subplots(figsize=(3.6, 4.2))
    for a, b in edges:
        ax.plot(positions[[a, b], 0], positions[[a, b], 1], color="#bbbbbb", lw=0.8, zorder=1)
    order = np.argsort(shares)
    scatter = ax.scatter(
        positions[order, 0],
        positions[order, 1],
        c=shares[order],
        cmap="inferno_r",
        s=8 + 260 * shares[order] / max(float(shares.max()), 1e-9),
        zorder=2,
        edgecolors="black",
        linewidths=0.3,
    )
    if labels is not None:
        for j in np.argsort(shares)[::-1][:top]:
            ax.annotate(
                labels[j], positions[j], fontsize=6, xytext=(4, 2), textcoords="offset points"
            )
    fig.colorbar(scatter, ax=ax, shrink=0.7, label="share of |attribution| (%)")
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def region_curves(curves: Mapping[str, Sequence[float]], *, title: str) -> bytes:
    """Per-frame share of each region over normalised time (0 = first frame, 1 = last)."""
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    for region, values in curves.items():
        values = np.asarray(values, dtype=float)
        ax.plot(
            np.linspace(0, 1, len(values)), values, label=region, color=REGION_COLOURS.get(region)
        )
    ax.set_xlabel("normalised time")
    ax.set_ylabel("share (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def face_examples(examples: Sequence[tuple[str, np.ndarray]], *, title: str) -> bytes:
    """Face keypoints ([68, 2] in pixels, y down) of a few frames side by side."""
    fig, axes = plt.subplots(1, len(examples), figsize=(2.2 * len(examples), 2.6), squeeze=False)
    for ax, (caption, points) in zip(axes[0], examples, strict=True):
        ax.scatter(points[:, 0], points[:, 1], s=6, color="#d62728")
        ax.plot(points[:17, 0], points[:17, 1], color="#888888", lw=0.6)
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)
