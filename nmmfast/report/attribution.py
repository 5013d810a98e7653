"""The report's attribution section: region shares with intervals, top joints per region,
the settings' variants side by side, and differences between partitions."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.errors import UserError
from nmmfast.report import figures
from nmmfast.report.page import (
    Report,
    attribution_jobs,
    layout_edges,
    pair_title,
    read_result,
    template_positions,
)
from nmmfast.study import StudyDir, read_json


def _interval(summary: dict[str, Any], region: str) -> str:
    low, high = (summary.get("region_intervals") or {}).get(region, (None, None))
    share = summary["region_shares"][region]
    if low is None:
        return f"{share:.1f}"
    return f"{share:.1f} [{low:.1f}, {high:.1f}]"


def _region_rows(jobs: Sequence[tuple[str, str, Path]], label: str = "partition") -> list[dict]:
    """One row per job: each region's share with its 95 % interval, the coords / confidence
    split, the per-clip-mean alternative, the clips and the signature."""
    rows = []
    for name, path in jobs:
        summary = read_result(path / "summary.json", "region_shares", "samples", "table")
        row: dict[str, Any] = {label: name}
        for region in summary["region_shares"]:
            row[f"{region} % [95 % CI]"] = _interval(summary, region)
        for region in summary.get("region_coords") or {}:
            row[f"{region}: coords / confidence"] = (
                f"{summary['region_coords'][region]:.1f} / "
                f"{summary['region_confidence'][region]:.1f}"
            )
        for region, value in (summary.get("region_shares_clip_mean") or {}).items():
            row[f"{region}, per-clip mean"] = value
        row["clips"] = summary["samples"]
        row["signature"] = summary.get("signature", "")
        rows.append(row)
    return rows


def _joint_shares(path: Path) -> dict[str, dict[str, Any]]:
    """Every joint's shares of a job (its shares_joint.csv): joint -> row."""
    table = path / "shares_joint.csv"
    if not table.is_file():
        raise UserError(f"{table}: not found; rerun `nmmfast attribute --summarize-only`")
    with table.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"joint", "region", "share"} <= rows[0].keys():
        raise UserError(f"{table}: lacks the joint, region and share columns")
    return {row["joint"]: row for row in rows}


def _top_joint_tables(report: Report, jobs: Sequence[tuple[str, str, Path]], top: int = 8) -> None:
    """Per region, one compact table as the reference study lays them out: joints as rows (the
    `top` with the highest mean share over the models), one column per model with the joint's
    share and its coords / confidence parts; the reference study's label beside each joint,
    † where x and y are constant by construction."""
    from nmmfast.skeleton import reference_study_labels

    shares = {pair_title(p, t): _joint_shares(path) for p, t, path in jobs}
    layout_of = {
        pair_title(p, t): read_result(path / "job.json", "layout")["layout"] for p, t, path in jobs
    }
    first = next(iter(shares.values()))
    regions = list(dict.fromkeys(row["region"] for row in first.values()))
    study_labels = {
        true: printed
        for layout in set(layout_of.values())
        for printed, true in reference_study_labels(layout)
    }
    for region in regions:
        joints = [j for j, row in first.items() if row["region"] == region]
        mean = {
            j: np.mean([float(m[j]["share"]) for m in shares.values() if j in m]) for j in joints
        }
        rows = []
        for joint in sorted(joints, key=lambda j: -mean[j])[:top]:
            anchored = first[joint].get("anchored") == "1"
            row: dict[str, Any] = {
                "joint": joint + (" †" if anchored else ""),
                "reference study's label": study_labels.get(joint, ""),
            }
            for title, model in shares.items():
                entry = model.get(joint)
                if entry is None:
                    row[title] = "–"
                    continue
                row[title] = f"{float(entry['share']):.2f}"
                if entry.get("coords") not in (None, ""):
                    row[title] += (
                        f" ({float(entry['coords']):.2f} / {float(entry['confidence']):.2f})"
                    )
            rows.append(row)
        report.heading(f"Top {region} joints (%; coords / confidence in brackets)", level=4)
        report.table(f"joint_shares_{region}", rows)


def _variant_tables(report: Report, study: StudyDir, jobs: Sequence[tuple[str, str, Path]]) -> None:
    """The same model attributed under other settings (`--compare-stop-gradients`,
    `--compare-baselines`), side by side with the main job."""
    for kind, heading, note in (
        (
            "stop-",
            "Stop-gradients: lifted vs kept as the model has them",
            "Uni-Sign detaches the body feature it adds to the hands and face. Lifting the "
            "detach for attribution (forward values unchanged) lets the body context's share "
            "reach the body joints and keeps completeness; keeping it attributes the model as "
            "it is, as the reference study did, and then Σ attribution ≠ F(x) − F(b).",
        ),
        (
            "baseline-",
            "Baseline sensitivity",
            "zero: the all-zero pose (the reference study's); mean-pose: the training split's "
            "mean pose with the clip's own confidences; keep-confidence: zero coordinates, the "
            "clip's own confidences (the score channel then draws nothing).",
        ),
    ):
        rows = []
        for partition, task, path in jobs:
            variants = {
                k: v for k, v in study.variants(partition, task).items() if k.startswith(kind)
            }
            if not variants:
                continue
            main = read_result(path / "summary.json", "job")["job"]
            setting = "stop_gradients" if kind == "stop-" else "baseline"
            entries = [(f"{pair_title(partition, task)}: {main.get(setting)}", path)]
            entries += [
                (f"{pair_title(partition, task)}: {name[len(kind) :]}", variant)
                for name, variant in variants.items()
            ]
            rows += _region_rows(entries, label="model: setting")
            if kind == "stop-":
                for name, variant in entries:
                    stats = read_result(variant / "summary.json", "completeness")["completeness"]
                    for row in rows:
                        if row["model: setting"] == name:
                            row["completeness median |δ|/|ΔF|"] = stats.get("median")
        if rows:
            report.heading(heading, level=3)
            report.paragraph(note, css="note")
            report.table(f"variants_{kind.rstrip('-')}", rows, aside="signature")


def _partition_differences(report: Report, jobs: Sequence[tuple[str, str, Path]]) -> None:
    """Each partition's face (and face+head where a head region exists) share minus the first
    partition's of the same task: bootstrap interval and permutation test over clips."""
    from nmmfast.attribution.shares import share_difference
    from nmmfast.attribution.summary import load_samples
    from nmmfast.skeleton import get_layout

    by_task: dict[str, list[tuple[str, Path]]] = {}
    for partition, task, path in jobs:
        by_task.setdefault(task, []).append((partition, path))
    rows = []
    for task, entries in by_task.items():
        if len(entries) < 2:
            continue
        per_clip = {}
        for partition, path in entries:
            job = read_result(path / "job.json", "layout")
            layout = get_layout(job["layout"])
            one_hot = np.eye(len(layout.regions))[np.asarray(layout.region_of_joint)]
            key = "joint_abs_coords" if job.get("channels") == "coords" else "joint_abs"
            samples = load_samples(path)
            per_clip[partition] = (np.stack([s[key] for s in samples]) @ one_hot, layout)
        base, (base_values, layout) = entries[0][0], per_clip[entries[0][0]]
        for partition, _ in entries[1:]:
            values = per_clip[partition][0]
            for region in ("face", "hands"):
                if region not in layout.regions:
                    continue
                diff = share_difference(values, base_values, layout.regions.index(region))
                rows.append(
                    {
                        "task": task.upper(),
                        "difference": f"{partition} − {base}",
                        "region": region,
                        "Δ share (pp)": diff["difference"],
                        "95 % CI": f"[{diff['low']:.1f}, {diff['high']:.1f}]",
                        "permutation p": diff["p_value"],
                        "clips": f"{len(values)} / {len(base_values)}",
                    }
                )
    if rows:
        report.heading("Differences between partitions", level=3)
        report.paragraph(
            "Pooled share of a region in one partition's model minus the first partition's "
            "(percentage points), with a 95 % bootstrap interval (clips of each side resampled "
            "on their own, 1,000 resamples) and a two-sided permutation test (clips shuffled "
            "between the two, 2,000 permutations). The clips differ between partitions, so "
            "this compares the models on their own test clips, as the reference study does.",
            css="note",
        )
        report.table("partition_differences", rows, digits=3)


def attribution_section(report: Report, study: StudyDir) -> None:
    from nmmfast.attribution.shares import SHARE_RULE, attribution_shares
    from nmmfast.attribution.summary import load_samples
    from nmmfast.skeleton import get_layout

    report.heading("What the model relies on: attribution shares (Tables 3–5)")
    jobs = attribution_jobs(study)
    if not jobs:
        report.missing("attribution", "Run `nmmfast attribute` (or `nmmfast demo`).")
        return
    first = read_result(jobs[0][2] / "summary.json", "region_shares")
    job = first.get("job") or {}
    report.paragraph(
        "Integrated Gradients of the summed log-probability of each model's own decoded output; "
        f"baseline {job.get('baseline', 'zero')}, stop-gradients "
        f"{job.get('stop_gradients', 'lift')}, headline shares over "
        f"{'x and y only' if first.get('channels') == 'coords' else 'all channels'} (the "
        f"signature of each row names every setting). Share rule: {SHARE_RULE}. Intervals: "
        f"95 % percentile bootstrap over clips. coords / confidence: the all-channel share "
        f"split into its x, y part and its detector-score part; the hand roots and the face "
        f"anchor (†) have x = y = 0 on every frame, so their share is confidence alone.",
        css="note",
    )
    report.heading("Region shares (%)", level=3)
    report.table(
        "region_shares",
        _region_rows([(pair_title(p, t), path) for p, t, path in jobs]),
        aside="signature",
    )
    _partition_differences(report, jobs)
    _variant_tables(report, study, jobs)
    report.heading("Top joints per region, with correct names", level=3)
    _top_joint_tables(report, jobs)
    completeness_rows = []
    for partition, task, path in jobs:
        summary = read_result(path / "summary.json", "samples")
        stats = summary.get("completeness", {})
        completeness_rows.append(
            {
                "partition": pair_title(partition, task),
                "median |δ|/|ΔF|": stats.get("median"),
                "p95": stats.get("p95"),
                "max": stats.get("max"),
                "converged": f"{summary.get('converged')}/{summary['samples']}",
                "note": stats.get("note", ""),
            }
        )
    report.heading(
        "Completeness (|Σ attribution − (F(x) − F(baseline))| relative to |F(x) − F(b)|)", level=3
    )
    report.table("completeness", completeness_rows, digits=4)

    images = []
    for partition, task, path in jobs:
        samples = load_samples(path)
        if not samples:
            continue
        job = read_json(path / "job.json") if (path / "job.json").is_file() else {}
        layout = get_layout(job.get("layout", "unisign69"))
        shares = attribution_shares(
            np.stack([s["joint_abs"] for s in samples]),
            layout,
            coords=np.stack([s["joint_abs_coords"] for s in samples]),
            channels=job.get("channels", "all"),
        )
        positions = template_positions(study, layout)
        title = pair_title(partition, task)
        if positions is not None:
            edges = layout_edges(layout)
            maps = [(shares.joint, title)]
            if shares.channels == "all" and shares.joint_coords is not None:
                # x, y alone: the anchored joints (their share is confidence) drop out
                coords = 100 * shares.joint_coords / max(float(shares.joint_coords.sum()), 1e-30)
                maps.append((coords, f"{title}, x and y only"))
            for values, caption in maps:
                images.append(
                    report.figure(
                        figures.skeleton_shares(
                            positions, values, edges, title=caption, labels=shares.joint_names
                        ),
                        caption,
                    )
                )
        curves_path = path / "frame_curves.csv"
        if curves_path.is_file():
            with curves_path.open() as handle:
                table = list(csv.DictReader(handle))
            curves = {name: [float(r[name]) for r in table] for name in shares.region_names}
            images.append(
                report.figure(
                    figures.region_curves(curves, title=f"per-frame shares: {title}"),
                    f"per-frame region shares {title}",
                )
            )
    report.heading("Joint shares on the skeleton, and over time", level=3)
    report.figures(images)
