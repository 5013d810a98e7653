"""A finished or running attribution job's directory, read back: its sample files and the
summary that merges them (shares with intervals, the coords/confidence split, completeness,
per-frame curves, per-token shares), written as summary.json, table.md / table.csv,
shares_joint.csv and frame_curves.csv.

    OUT/job.json            the settings the job was started with (`JOB_FILE`)
    OUT/samples/<id>.npz    one sample's arrays and meta (`SAMPLES_DIR`)
    OUT/summary.json        the merged result (`SUMMARY_FILE`)
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import atomic_write_text, write_json_atomic
from nmmfast.attribution.shares import (
    SHARE_RULE,
    attribution_shares,
    bootstrap_region_intervals,
    completeness_stats,
    format_share_table,
    frame_region_curves,
    share_signature,
    share_table,
    token_region_shares,
)
from nmmfast.errors import UserError
from nmmfast.skeleton import get_layout

__all__ = [
    "JOB_FILE",
    "SAMPLES_DIR",
    "SUMMARY_FILE",
    "VOLATILE_SETTINGS",
    "load_samples",
    "summarize",
]

JOB_FILE = "job.json"
SAMPLES_DIR = "samples"
SUMMARY_FILE = "summary.json"
# settings that may change between a run and its resumption without changing any number
VOLATILE_SETTINGS = (
    "rank",
    "world_size",
    "device",
    "batch_rows",
    "samples_per_call",
    "limit",
    "channels",  # only what the summary's headline counts: `--summarize-only` may change it
)



def load_samples(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every sample file of a job directory, as dicts of arrays plus the "meta" fields."""
    directory = Path(out) / SAMPLES_DIR
    samples = []
    for path in sorted(directory.glob("*.npz")):
        try:
            # the handle is ours: np.load leaves a path it opened open when the zip is broken
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                record = {key: data[key] for key in data.files if key != "meta"}
                record.update(json.loads(str(data["meta"])))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path}: unreadable sample result ({error}); delete it and resume the job to "
                f"compute that sample again"
            ) from error
        samples.append(record)
    samples.sort(key=lambda r: r["id"])
    return samples



def summarize(
    out: str | os.PathLike,
    top: int = 10,
    n_bins: int = 20,
    *,
    channels: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Merge a job's sample files into shares, tables, curves and completeness statistics.

    channels: what the headline shares count ("all", "coords"; default the job's). The shares
    carry 95 % bootstrap intervals over clips (`n_resamples`, `seed`), the per-clip-mean
    alternative rule and a signature of every setting that moved them.
    Writes summary.json, shares_joint.csv, table.md, table.csv, frame_curves.csv (and
    token_shares.json for per-token jobs) under `out`; returns the summary dict.
    """
    out = Path(out)
    try:
        settings = json.loads((out / JOB_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{out / JOB_FILE}: not found (not an attribution job directory)") from None
    except ValueError as error:
        raise UserError(f"{out / JOB_FILE}: unreadable job file ({error})") from None
    channels = channels or settings.get("channels", "all")
    samples = load_samples(out)
    if not samples:
        raise ValueError(f"{out}: no sample results to summarize")
    layout = get_layout(settings["layout"])
    joint_abs = np.stack([s["joint_abs"] for s in samples])
    coords = np.stack([s["joint_abs_coords"] for s in samples])
    shares = attribution_shares(joint_abs, layout, coords=coords, channels=channels)
    headline = coords if channels == "coords" else joint_abs
    one_hot = np.eye(len(layout.regions))[np.asarray(layout.region_of_joint)]
    intervals = bootstrap_region_intervals(headline @ one_hot, n_resamples=n_resamples, seed=seed)
    table = share_table(shares, top=top, study_labels=True)
    curves = frame_region_curves([s["frame_region_abs"] for s in samples], n_bins=n_bins)
    stats = completeness_stats(
        [float(s["delta"]) for s in samples],
        [float(s["f_input"]) for s in samples],
        [float(s["f_baseline"]) for s in samples],
    )
    if settings.get("stop_gradients") == "keep":
        stats["note"] = (
            "stop-gradients kept: the model's detached body-context paths carry no gradient, "
            "so the attributions need not sum to F(x) - F(baseline)"
        )
    key = f"{settings['partition']}/{settings['task']}"
    signature = share_signature(settings, channels)
    names = shares.region_names
    summary: dict[str, Any] = {
        "job": {k: v for k, v in settings.items() if k not in VOLATILE_SETTINGS},
        "signature": signature,
        "share_rule": SHARE_RULE,
        "channels": channels,
        "samples": len(samples),
        "region_shares": dict(zip(names, map(float, shares.region), strict=True)),
        "region_intervals": {
            name: [float(lo), float(hi)] for name, (lo, hi) in zip(names, intervals, strict=True)
        },
        "interval": {"level": 0.95, "resamples": n_resamples, "seed": seed, "unit": "clip"},
        "region_shares_clip_mean": dict(
            zip(names, map(float, shares.region_clip_mean), strict=True)
        ),
        "region_coords": dict(zip(names, map(float, shares.region_coords), strict=True)),
        "region_confidence": dict(zip(names, map(float, shares.region_confidence), strict=True)),
        "anchored_joints": [layout.names[j] for j in layout.anchored_joints],
        "completeness": stats,
        "converged": int(sum(bool(s["converged"]) for s in samples)),
        "table": table,
    }
    if "token_region_abs" in samples[0]:
        tokens = token_region_shares(
            [s["token_region_abs"] for s in samples], [s["tokens"] for s in samples]
        )
        token_doc = {
            w: dict(zip(shares.region_names, map(float, v), strict=True))
            for w, v in sorted(tokens.items())
        }
        write_json_atomic(out / "token_shares.json", token_doc)
        summary["token_shares"] = "token_shares.json"
    anchored = set(layout.anchored_joints.tolist())
    lines = ["joint,region,share,coords,confidence,anchored,signature"] + [
        f"{name},{shares.region_names[r]},{shares.joint[j]:.6f},{shares.joint_coords[j]:.6f},"
        f"{shares.joint_confidence[j]:.6f},{int(j in anchored)},{signature}"
        for j, (name, r) in enumerate(zip(shares.joint_names, shares.region_of_joint, strict=True))
    ]
    atomic_write_text(out / "shares_joint.csv", "\n".join(lines) + "\n")
    signatures = {key: signature}
    atomic_write_text(out / "table.md", format_share_table({key: table}, "markdown", signatures))
    atomic_write_text(out / "table.csv", format_share_table({key: table}, "csv", signatures))
    curve_lines = ["bin," + ",".join(shares.region_names)] + [
        f"{b}," + ",".join(f"{v:.4f}" for v in row) for b, row in enumerate(curves)
    ]
    atomic_write_text(out / "frame_curves.csv", "\n".join(curve_lines) + "\n")
    write_json_atomic(out / SUMMARY_FILE, summary)
    return summary
