"""The report's metrics section: the reference study's Table 2 for every pair of the study."""

from __future__ import annotations

from typing import Any

from nmmfast.report import figures
from nmmfast.report.page import (
    Report,
    read_result,
)
from nmmfast.study import TASKS, StudyDir


def _load_metrics(study: StudyDir) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for partition, task in study.pairs():
        path = study.metrics(partition, task)
        if path.is_file():
            results.setdefault(partition, {})[task] = read_result(path, "scores")["scores"]
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
