"""Builds the study report: one self-contained HTML file (figures embedded as PNG data URIs) plus
the same tables as CSV and JSON, from a study directory (`nmmfast.study.StudyDir`).
Sections whose inputs are missing say so instead of disappearing."""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import atomic_write_text
from nmmfast.errors import UserError
from nmmfast.report import figures
from nmmfast.study import TASKS, StudyDir, read_json, write_json_atomic

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","DejaVu Sans","Noto Sans Arabic",
"Noto Sans CJK SC","Arial Unicode MS",sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.sig{font-family:ui-monospace,"DejaVu Sans Mono","Noto Sans Mono",monospace,"Noto Sans",
"DejaVu Sans","Noto Sans Arabic","Noto Sans CJK SC",sans-serif;font-size:.75em;color:#555;
word-break:break-all}
.missing{color:#a00}.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
img{max-width:100%}.note{color:#555;font-size:.9em}
"""


class Report:
    """Accumulates HTML sections and the tables written beside the report."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str | None = None) -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def missing(self, what: str, how: str) -> None:
        self.paragraph(f"Not available: {what}. {how}", css="missing")

    def figure(self, png: bytes, alt: str) -> str:
        data = base64.b64encode(png).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'

    def figures(self, images: Sequence[str]) -> None:
        self.parts.append('<div class="figs">' + "".join(images) + "</div>")

    def table(
        self, name: str, rows: list[dict[str, Any]], *, digits: int = 2, aside: str | None = None
    ) -> None:
        """Render `rows` (same keys) as an HTML table and keep them for CSV/JSON output. The
        column `aside` (e.g. long signatures) is kept in the files but shown below the table,
        one line per row, instead of as a column."""
        self.tables[name] = rows
        if not rows:
            self.paragraph("(no rows)", css="note")
            return
        columns = [c for c in rows[0] if c != aside]
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_fmt(row.get(c), digits))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if aside is not None:
            for row in rows:
                if row.get(aside):
                    self.signature(f"{row[columns[0]]}: {row[aside]}")

    def signature(self, text: str) -> None:
        self.parts.append(f'<p class="sig">{html.escape(text)}</p>')

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, rows in self.tables.items():
            write_json_atomic(directory / f"{name}.json", rows)
            if rows:
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
                atomic_write_text(directory / f"{name}.csv", buffer.getvalue())
        page = (
            "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(self.title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
            + "\n".join(self.parts)
            + "</body></html>"
        )
        return atomic_write_text(directory / "index.html", page)


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# --- sections ------------------------------------------------------------------------------------


def _read_result(path: Path, *keys: str) -> dict[str, Any]:
    """A result file that must be a JSON object holding `keys`; anything else is a `UserError`
    naming the file (a damaged or foreign file, not a missing section)."""
    result = read_json(path)
    if not isinstance(result, dict):
        raise UserError(f"{path}: expected a JSON object; rerun the stage that wrote it")
    missing = [key for key in keys if key not in result]
    if missing:
        raise UserError(f"{path}: lacks {', '.join(missing)}; rerun the stage that wrote it")
    return result


def _load_metrics(study: StudyDir) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for partition, task in study.pairs():
        path = study.metrics(partition, task)
        if path.is_file():
            results.setdefault(partition, {})[task] = _read_result(path, "scores")["scores"]
    return results


def metrics_section(report: Report, study: StudyDir) -> dict[str, dict[str, dict[str, Any]]]:
    report.heading("Recognition and translation quality (Table 2)")
    results = _load_metrics(study)
    if not results:
        report.missing(
            "metrics", "Run `nmmfast decode` and `nmmfast evaluate` (or `nmmfast demo`)."
        )
        return results
    rows = []
    for partition, by_task in results.items():
        cslr, slt = by_task.get("cslr", {}), by_task.get("slt", {})
        rows.append(
            {
                "partition": figures.PARTITION_TITLES.get(partition, partition),
                "CSLR WER ↓": cslr.get("wer"),
                "CSLR WER (Uni-Sign) ↓": cslr.get("wer_unisign"),
                "SLT BLEU-1": slt.get("bleu1"),
                "SLT BLEU-4 ↑": slt.get("bleu4"),
                "SLT exact match": slt.get("exact_match"),
                "SLT question marking (%) ↑": None
                if slt.get("question_marking") is None
                else 100 * slt["question_marking"],
                "n (CSLR / SLT)": f"{cslr.get('n', 0)} / {slt.get('n', 0)}",
            }
        )
    report.table("table2_metrics", rows)

    images = []
    for task in TASKS:
        groups = [p for p in results if task in results[p]]
        if not groups:
            continue
        series = {
            "exact match": [100 * (results[p][task].get("exact_match") or 0) for p in groups],
            "previously seen": [100 * (results[p][task].get("seen_rate") or 0) for p in groups],
            "≥1 word shared": [
                100 * (results[p][task].get("unigram_overlap") or 0) for p in groups
            ],
        }
        images.append(
            report.figure(
                figures.grouped_bars(
                    [figures.PARTITION_TITLES.get(p, p) for p in groups],
                    series,
                    ylabel="% of test predictions",
                    title=f"{task.upper()}: exact match vs previously-seen vs overlap",
                    ylim=(0, 105),
                ),
                f"{task} exact match and overlap",
            )
        )
    report.figures(images)
    report.paragraph(
        "A high previously-seen rate with low exact match on unseen sentences means the model "
        "recalls "
        "training targets instead of composing new ones.",
        css="note",
    )
    for partition, by_task in results.items():
        for task, scores in by_task.items():
            report.signature(f"{partition}/{task}: {scores.get('signature', '')}")
    return results


def _attribution_jobs(study: StudyDir) -> list[tuple[str, str, Path]]:
    return [
        (p, t, study.attribution(p, t))
        for p, t in study.pairs()
        if (study.attribution(p, t) / "summary.json").is_file()
    ]


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
        summary = _read_result(path / "summary.json", "region_shares", "samples", "table")
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

    shares = {_title(p, t): _joint_shares(path) for p, t, path in jobs}
    layout_of = {
        _title(p, t): _read_result(path / "job.json", "layout")["layout"] for p, t, path in jobs
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
            main = _read_result(path / "summary.json", "job")["job"]
            setting = "stop_gradients" if kind == "stop-" else "baseline"
            entries = [(f"{_title(partition, task)}: {main.get(setting)}", path)]
            entries += [
                (f"{_title(partition, task)}: {name[len(kind) :]}", variant)
                for name, variant in variants.items()
            ]
            rows += _region_rows(entries, label="model: setting")
            if kind == "stop-":
                for name, variant in entries:
                    stats = _read_result(variant / "summary.json", "completeness")["completeness"]
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
    from nmmfast.attribution.job import load_samples
    from nmmfast.attribution.shares import share_difference
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
            job = _read_result(path / "job.json", "layout")
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
    from nmmfast.attribution.job import load_samples
    from nmmfast.attribution.shares import SHARE_RULE, attribution_shares
    from nmmfast.skeleton import get_layout

    report.heading("What the model relies on: attribution shares (Tables 3–5)")
    jobs = _attribution_jobs(study)
    if not jobs:
        report.missing("attribution", "Run `nmmfast attribute` (or `nmmfast demo`).")
        return
    first = _read_result(jobs[0][2] / "summary.json", "region_shares")
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
        _region_rows([(_title(p, t), path) for p, t, path in jobs]),
        aside="signature",
    )
    _partition_differences(report, jobs)
    _variant_tables(report, study, jobs)
    report.heading("Top joints per region, with correct names", level=3)
    _top_joint_tables(report, jobs)
    completeness_rows = []
    for partition, task, path in jobs:
        summary = _read_result(path / "summary.json", "samples")
        stats = summary.get("completeness", {})
        completeness_rows.append(
            {
                "partition": _title(partition, task),
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
        positions = _template_positions(study, layout)
        title = _title(partition, task)
        if positions is not None:
            edges = _layout_edges(layout)
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


def nmm_contrast_section(report: Report, study: StudyDir) -> None:
    """The NMM section. With SynNMM's planted labels: face+head share of samples planted with an
    NMM vs samples without (ground truth check). Without them: the counterfactual probe's face
    and head rows. Either way, the marker-word probe where the study holds one (required without
    planted labels: it is then the only token-level measure)."""
    from nmmfast.data.annotations import read_manifest

    manifest = study.corpus / "manifest.jsonl"
    rows_by_id = {row["id"]: row for row in read_manifest(manifest)} if manifest.is_file() else {}
    if any("nmm" in row for row in rows_by_id.values()):
        _planted_contrast(report, study, rows_by_id)
        _marker_words_part(report, study, required=False)
        return
    report.heading("Non-manual markers without planted labels")
    report.paragraph(
        "This corpus has no planted non-manual marker labels (SynNMM's, from `nmmfast demo`), so "
        "samples cannot be split by marker. What can be measured without them: whether "
        "neutralising the face and head changes the output (counterfactual probe), and whether "
        "the tokens of words that non-manual markers carry draw face and head attribution "
        "(marker-word probe).",
        css="note",
    )
    _counterfactual_part(report, study)
    _marker_words_part(report, study, required=True)


def _planted_contrast(
    report: Report, study: StudyDir, rows_by_id: dict[str, dict[str, Any]]
) -> None:
    from nmmfast.attribution.job import load_samples
    from nmmfast.skeleton import get_layout

    report.heading("Do the planted non-manual markers draw attribution?")
    jobs = _attribution_jobs(study)
    if not jobs:
        report.missing("attribution", "Run `nmmfast attribute` (or `nmmfast demo`).")
        return
    table = []
    for partition, task, path in jobs:
        job = read_json(path / "job.json") if (path / "job.json").is_file() else {}
        layout = get_layout(job.get("layout", "unisign69"))
        groups = face_head_shares_by_nmm(load_samples(path), rows_by_id, layout)
        table.append(
            {
                "partition": _title(partition, task),
                "face+head share, with NMM (%)": _mean(groups["with NMM"]),
                "face+head share, without NMM (%)": _mean(groups["without NMM"]),
                "samples with / without": "{} / {}".format(*map(len, groups.values())),
            }
        )
    report.paragraph(
        "Mean per-sample share of face and head joints (face region plus nose, eyes and ears). In "
        "SynNMM the markers change the translation but not the glosses. A model that uses them "
        "reads the face and head on samples without a marker too (to rule one out), and the "
        "marker's token is one of a sentence's many, so this contrast can be small or reversed "
        "even then; per-token shares and the counterfactual probe test the reliance directly.",
        css="note",
    )
    report.table("nmm_face_head_shares", table)


def _counterfactual_part(report: Report, study: StudyDir) -> None:
    """The face / head rows of every counterfactual probe of the study (all rows: Probes)."""
    report.heading("Neutralise the face, the head, or both: does the output change?", level=3)
    results = _probe_results(study, "counterfactual")
    if not results:
        report.missing(
            "counterfactual probe",
            "`nmmfast study` runs it with every SLT run (every run when none is SLT); "
            "`nmmfast probe counterfactual` runs it alone.",
        )
        return
    rows = []
    for partition, task, result in results:
        regions = result.get("regions", {})
        for region in ("none", "face", "head", "face+head"):
            values = regions.get(region)
            if values is None:
                continue
            rate = values.get("change_rate")
            rows.append(
                {
                    "partition": _title(partition, task),
                    "neutralised": "nothing (control)" if region == "none" else region,
                    "output changed (%)": None if rate is None else 100 * rate,
                    "mean Δ log p (nats)": values.get("delta_log_p_mean"),
                    "median Δ log p (nats)": values.get("delta_log_p_median"),
                    "samples": values.get("n"),
                }
            )
    modes = sorted({str(r.get("settings", {}).get("mode")) for _, _, r in results})
    report.paragraph(
        f"Each region is neutralised (mode {', '.join(modes)}; signer_mean freezes it at the "
        "signer's mean pose: a still face without the clip's markers) and the test samples are "
        "decoded again: the share of outputs that change, and Δ log p, the change in "
        "log-probability of the original output (negative: less likely without the region's "
        "movement). Head: nose, eyes and ears. Hands and body are in the full table under "
        "Probes.",
        css="note",
    )
    report.table("nmm_counterfactual", rows)


def _marker_words_part(report: Report, study: StudyDir, *, required: bool) -> None:
    """The marker-word probe (`nmmfast.probes.marker_words`) of every (partition, task) that
    has one."""
    from nmmfast.probes.marker_words import PROBE_NAME, SHARE_COLUMNS

    results = _probe_results(study, PROBE_NAME)
    if not results:
        if required:
            report.heading("Tokens of marker words", level=3)
            report.missing(
                "marker-word attribution",
                "Give a list of words that non-manual markers carry (question words, negation, "
                "...) with `nmmfast study --marker-words FILE` or afterwards with "
                "`nmmfast report STUDY --marker-words FILE`.",
            )
        return
    report.heading("Do the tokens of marker words draw face and head attribution?", level=3)
    report.paragraph(
        "Per-token Integrated Gradients (zero-pose baseline, stop-gradients lifted) of the "
        "log-probability of each reference token, teacher-forced, on the samples whose "
        "reference holds a listed word or phrase (whole words, any case). Shares pool "
        "|attribution| over the tokens, frames and channels of each group: the tokens of the "
        "listed words, and the other tokens of the same sentences (</s> left out). Head: nose, "
        "eyes and ears; body: the other body joints. If the model reads the non-manual markers "
        "that carry these words (a question's raised brows, a negation's head shake), their "
        "tokens draw a larger face+head share; the interval is a bootstrap over samples.",
        css="note",
    )
    rows, word_rows = [], []
    for partition, task, result in results:
        title = _title(partition, task)
        difference = result.get("face_head_difference") or {}
        for group, label in (("marker", "listed words"), ("other", "other words")):
            values = result.get(group) or {}
            shares = values.get("shares") or {}
            row: dict[str, Any] = {"partition": title, "tokens of": label}
            row.update({f"{name} %": shares.get(name) for name in SHARE_COLUMNS})
            row["samples"] = values.get("samples")
            row["tokens"] = values.get("tokens")
            row["face+head: listed − other (95 % CI)"] = (
                _difference(difference) if group == "marker" else None
            )
            rows.append(row)
        for word, values in (result.get("by_word") or {}).items():
            shares = values.get("shares") or {}
            word_rows.append(
                {
                    "partition": title,
                    "word": word,
                    **{f"{name} %": shares.get(name) for name in SHARE_COLUMNS},
                    "samples": values.get("samples"),
                    "tokens": values.get("tokens"),
                }
            )
        settings = result.get("settings", {})
        words = settings.get("words", [])
        shown = ", ".join(words[:20]) + (f", … ({len(words) - 20} more)" if len(words) > 20 else "")
        limit = settings.get("max_samples")
        split = (result.get("job") or {}).get("split", "test")
        report.paragraph(
            f"{title}: {result.get('matched_samples')} {split} samples hold a listed word, "
            f"{result.get('samples')} attributed"
            + (f" (at most {limit})" if limit is not None else "")
            + f"; median per-token completeness gap "
            f"{_fmt((result.get('completeness') or {}).get('median'), 4)}; words: {shown}.",
            css="note",
        )
        report.signature(f"{partition}/{task}: {settings.get('signature', '')}")
    report.table("marker_word_shares", rows)
    report.heading("By listed word", level=4)
    report.table("marker_word_shares_by_word", word_rows)


def _difference(difference: dict[str, Any]) -> str | None:
    if difference.get("value") is None:
        return None
    interval = difference.get("ci95")
    text = f"{difference['value']:+.2f}"
    if interval:
        text += f" [{interval[0]:+.2f}, {interval[1]:+.2f}]"
    return text


def face_head_shares_by_nmm(
    samples: Sequence[dict[str, Any]], rows_by_id: dict[str, dict[str, Any]], layout: Any
) -> dict[str, list[float]]:
    """Per-sample face+head attribution shares (%) of attributed samples, split by whether the
    manifest plants an NMM in them; samples whose row has no `nmm` field are left out."""
    face_head = face_head_mask(layout)
    groups: dict[str, list[float]] = {"with NMM": [], "without NMM": []}
    for sample in samples:
        nmm = rows_by_id.get(sample["id"], {}).get("nmm")
        if nmm is None:
            continue
        share = float(sample["joint_abs"][face_head].sum() / max(sample["joint_abs"].sum(), 1e-30))
        groups["with NMM" if nmm else "without NMM"].append(100 * share)
    return groups


def face_head_mask(layout: Any) -> np.ndarray:
    """[J] bool: the counterfactual probe's "face+head" joints (face-68 points plus nose, eyes
    and ears, as far as the layout has them)."""
    from nmmfast.probes.counterfactual import region_positions

    mask = np.zeros(layout.num_joints, dtype=bool)
    mask[region_positions(layout, "face+head")] = True
    return mask


def probes_section(report: Report, study: StudyDir) -> None:
    report.heading("Probes")
    tracking_path = study.probe("tracking")
    report.heading("Tracking failure (veiled or mistracked faces)", level=3)
    if tracking_path.is_file():
        tracking = _read_result(tracking_path)
        auroc = tracking.get("auroc") or {}
        if auroc:
            report.paragraph(
                "AUROC of the face coherence score against the planted veiled signers, overall, "
                "per kind of plant (a smooth structured mistrack, or per-frame noise) and per "
                "mistrack mode, with the AUROC of each term of the score alone: per-frame noise "
                "is what the jitter term detects by construction, so the mistrack rows are the "
                "test that counts.",
                css="note",
            )
            groups = {"all veiled": auroc}
            groups.update(
                {f"kind: {k}": v for k, v in (tracking.get("auroc_by_kind") or {}).items()}
            )
            groups.update(
                {f"mode: {k}": v for k, v in (tracking.get("auroc_by_mode") or {}).items()}
            )
            rows = []
            for name, values in groups.items():
                row: dict[str, Any] = {
                    "veiled clips": name,
                    "frames AUROC": values.get("frames"),
                    "samples AUROC": values.get("samples"),
                }
                for term, value in (values.get("terms") or {}).items():
                    row[f"{term} alone"] = value
                row["veiled samples"] = values.get("veiled_samples")
                row["flagged share"] = values.get("veiled_flagged_share")
                rows.append(row)
            columns = list(dict.fromkeys(c for row in rows for c in row))
            report.table("tracking_auroc", [{c: r.get(c) for c in columns} for r in rows], digits=3)
        signer_rows = [
            {"signer": signer, **{k: v for k, v in values.items() if not isinstance(v, dict)}}
            for signer, values in sorted(tracking.get("signers", {}).items())
        ]
        report.table("tracking_signers", signer_rows, digits=3)
        examples = _tracking_examples(study, tracking)
        if examples:
            report.figures(
                [
                    report.figure(
                        figures.face_examples(
                            examples, title="most incoherent faces (left) vs a coherent one (right)"
                        ),
                        "tracking failure examples",
                    )
                ]
            )
    else:
        report.missing("tracking probe", "Run `nmmfast probe tracking` (or `nmmfast demo`).")

    report.heading("Counterfactual regions: neutralise a region, decode again", level=3)
    found = False
    for partition, task, result in _probe_results(study, "counterfactual"):
        found = True
        rows = []
        for region, values in result.get("regions", {}).items():
            row = {
                "region": region,
                "n": values.get("n"),
                "output changed (%)": 100 * (values.get("change_rate") or 0),
                "mean Δ log p (nats)": values.get("delta_log_p_mean"),
            }
            for marker, marks in (values.get("marking") or {}).items():
                row[f"{marker} marking flipped on its samples (%)"] = (
                    100 * marks["category_changed_rate"]
                    if marks.get("category_changed_rate") is not None
                    else None
                )
            rows.append(row)
        report.paragraph(
            f"{figures.PARTITION_TITLES.get(partition, partition)} / "
            f"{task.upper()}, mode {result.get('settings', {}).get('mode')}, "
            f"{result.get('n')} samples.",
            css="note",
        )
        report.table(f"counterfactual_{partition}_{task}", rows)
    if not found:
        report.missing("counterfactual probe", "Run `nmmfast probe counterfactual`.")

    report.heading("Signer identity from each region's encoder features", level=3)
    found = False
    for partition, task, result in _probe_results(study, "identity"):
        found = True
        if "skipped" in result:
            report.paragraph(f"{_title(partition, task)}: not run ({result['skipped']}).")
            continue
        regions = result.get("regions", {})
        names = list(regions)
        report.figures(
            [
                report.figure(
                    figures.grouped_bars(
                        names,
                        {
                            "accuracy": [100 * regions[n]["accuracy"] for n in names],
                            "chance": [100 * result.get("chance", 0)] * len(names),
                        },
                        ylabel="signer accuracy (%)",
                        ylim=(0, 105),
                        title=f"who is signing? {_title(partition, task)} "
                        f"({result.get('classes')} signers)",
                    ),
                    "signer identity accuracy",
                )
            ]
        )
        report.table(
            f"identity_{partition}_{task}",
            [
                {
                    "region": n,
                    "accuracy": regions[n]["accuracy"],
                    "± std": regions[n].get("accuracy_std"),
                    "chance": result.get("chance"),
                }
                for n in names
            ],
            digits=3,
        )
    if not found:
        report.missing("signer-identity probe", "Run `nmmfast probe identity`.")


def _probe_results(study: StudyDir, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, task, result) of every `name` probe file the study holds."""
    return [
        (p, t, _read_result(study.probe(name, p, t)))
        for p, t in study.pairs()
        if study.probe(name, p, t).is_file()
    ]


def label_mapping_section(report: Report) -> None:
    from nmmfast.skeleton import reference_study_labels

    report.heading("Joint names: the reference study's labels and the true joints")
    report.paragraph(
        "The reference study's tables label the i-th selected body or face joint as COCO joint i "
        "(23 + i for the face). Hands are contiguous, so only body and face labels differ.",
        css="note",
    )
    report.table(
        "study_label_mapping",
        [
            {"reference study's label": printed, "true joint": true}
            for printed, true in reference_study_labels("unisign69")
            if printed != true
        ],
    )


def _template_positions(study: StudyDir, layout: Any) -> np.ndarray | None:
    """Mean confident pixel positions of the layout's joints over some frames of the corpus."""
    from nmmfast.data import PoseStore

    poses = study.corpus / "poses"
    if not poses.is_dir():
        return None
    store = PoseStore(poses)
    total, count = np.zeros((len(layout.coco_indices), 2)), np.zeros((len(layout.coco_indices), 1))
    for sample_id in store.ids()[:20]:
        raw = np.asarray(store[sample_id])[:, layout.coco_indices]
        meta = store.meta(sample_id)
        scale = np.array([meta.get("width") or 1.0, meta.get("height") or 1.0])
        confident = raw[..., 2:3] > 0.3
        total += (raw[..., :2] * scale * confident).sum(0)
        count += confident.sum(0)
    if not count.any():
        return None
    return total / np.maximum(count, 1)


def _layout_edges(layout: Any) -> list[tuple[int, int]]:
    edges = []
    for part, positions in layout.parts.items():
        positions = np.asarray(positions)
        edges += [(int(positions[a]), int(positions[b])) for a, b in layout.part_edges[part]]
    return edges


def _tracking_examples(study: StudyDir, tracking: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    from nmmfast.data import PoseStore

    poses = study.corpus / "poses"
    if not poses.is_dir():
        return []
    store = PoseStore(poses)
    chosen = []
    for example in tracking.get("examples", [])[:3]:
        if example["id"] in store:
            chosen.append(
                (
                    example["id"],
                    int(example["frame"]),
                    f"{example['id']} score {example['score']:.2f}",
                )
            )
    coherent = [s for s in tracking.get("samples", []) if not s.get("flagged")]
    if coherent:
        best = min(coherent, key=lambda s: s.get("score_median") or 1e9)
        chosen.append((best["id"], 0, f"{best['id']} (coherent)"))
    out = []
    for sample_id, frame, caption in chosen:
        raw = np.asarray(store[sample_id])
        meta = store.meta(sample_id)
        scale = np.array([meta.get("width") or 1.0, meta.get("height") or 1.0])
        out.append((caption, raw[min(frame, len(raw) - 1), 23:91, :2] * scale))
    return out


def _title(partition: str, task: str) -> str:
    return f"{figures.PARTITION_TITLES.get(partition, partition)} / {task.upper()}"


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def build_report(study_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `<out_dir>/index.html` (default `<study>/report/`) and its tables; returns its path."""
    study = StudyDir.at(study_dir)
    if not study.root.is_dir():
        raise FileNotFoundError(f"{study.root}: no study directory")
    record = _read_result(study.record) if study.record.is_file() else {}
    report = Report("nmmfast study report: non-manual markers in a pose-based sign-language model")
    settings = record.get("settings")
    report.paragraph(
        f"Study directory {study.root.resolve()}; made "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"with nmmfast {record.get('nmmfast', '?')}, torch {record.get('torch', '?')}."
    )
    if settings:
        report.signature("settings: " + json.dumps(settings, sort_keys=True))
    try:
        metrics_section(report, study)
        attribution_section(report, study)
        nmm_contrast_section(report, study)
        probes_section(report, study)
    except (KeyError, TypeError, IndexError) as error:
        # a result file that parses but lacks a field further in: name the directory, not a
        # line of the report's code
        raise UserError(
            f"{study.root}: a result file lacks an expected field ({type(error).__name__}: "
            f"{error}); rerun `nmmfast study` (or the stage that wrote it) into this directory"
        ) from error
    label_mapping_section(report)
    return report.write(Path(out_dir) if out_dir else study.report_dir)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study", help="study directory (as written by `nmmfast study` or `nmmfast demo`)"
    )
    parser.add_argument("--out", help="report directory (default: STUDY/report)")
    parser.add_argument(
        "--marker-words",
        metavar="FILE",
        help="first attribute the reference tokens of these words or phrases (one per line, "
        "# comments) with the study's runs and settings, then report; a result for the same "
        "list is reused",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_cli(args: argparse.Namespace) -> int:
    if args.marker_words is not None:
        from nmmfast.probes.marker_words import read_marker_words
        from nmmfast.study import add_marker_words

        words = read_marker_words(args.marker_words)
        add_marker_words(args.study, words, progress=not args.no_progress)
    path = build_report(args.study, args.out)
    print(f"report: {path}")
    return 0
