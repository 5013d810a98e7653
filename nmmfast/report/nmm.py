"""The report's non-manual-marker section: the planted-truth contrast where the corpus has
planted labels, else the counterfactual face / head rows; the marker-word probe."""

from __future__ import annotations

from typing import Any

from nmmfast.probes.planted import face_head_shares_by_nmm
from nmmfast.report.page import (
    Report,
    attribution_jobs,
    fmt,
    mean,
    pair_title,
    probe_results,
)
from nmmfast.study import StudyDir, read_json


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
    from nmmfast.attribution.summary import load_samples
    from nmmfast.skeleton import get_layout

    report.heading("Do the planted non-manual markers draw attribution?")
    jobs = attribution_jobs(study)
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
                "partition": pair_title(partition, task),
                "face+head share, with NMM (%)": mean(groups["with NMM"]),
                "face+head share, without NMM (%)": mean(groups["without NMM"]),
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
    results = probe_results(study, "counterfactual")
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
                    "partition": pair_title(partition, task),
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

    results = probe_results(study, PROBE_NAME)
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
        title = pair_title(partition, task)
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
            f"{fmt((result.get('completeness') or {}).get('median'), 4)}; words: {shown}.",
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
