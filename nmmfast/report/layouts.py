"""The report's layout-ablation section: the same model trained on several skeleton layouts
(`nmmfast.probes.layout_ablation`), side by side with intervals, and the answer they give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nmmfast.probes.layout_ablation import FLIP_REGIONS, PROBE_NAME, SHARE_GROUPS
from nmmfast.report.page import Report, read_result
from nmmfast.study import StudyDir

__all__ = ["layout_ablation_section"]


def _rate(rate: Mapping[str, Any] | None) -> str | None:
    if not rate or rate.get("value") is None:
        return None
    return f"{100 * rate['value']:.1f} [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def _share(share: Mapping[str, Any] | None) -> str:
    if share is None:
        return "not in layout"
    if share.get("value") is None:
        return "–"
    return f"{share['value']:.1f} [{share['low']:.1f}, {share['high']:.1f}]"


def _difference(diff: Mapping[str, Any]) -> str:
    return (
        f"{100 * diff['difference']:+.1f} [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}]"
        f" p={diff['p_value']:.3g}"
    )


def layout_ablation_section(report: Report, study: StudyDir) -> None:
    """Render every `probes/layouts-<pair>.json` of the study; a note when there is none."""
    paths = sorted((study.root / "probes").glob(f"{PROBE_NAME}-*.json"))
    report.heading("Layouts: what the eyebrows add")
    if not paths:
        report.paragraph(
            "Not run. Uni-Sign's 69 points leave out the eyebrows and eyes, the articulators of "
            "yes/no questions; `nmmfast demo --layouts unisign69,nmm87` trains the control "
            "models on both layouts and compares them here.",
            css="note",
        )
        return
    for path in paths:
        result = read_result(path, "layouts", "differences", "answer", "pair", "settings")
        pair = result["pair"]
        report.paragraph(
            f"The {pair} model trained on each layout, scored on the same clips. Question "
            f"marking: the prediction is a question exactly when the reference is; questions "
            f"marked: share of question clips whose prediction is a question. Flips: share of "
            f"question clips whose marking changes when the region is neutralised (frozen at "
            f"the signer's mean pose). Rates in %, Wilson 95 % intervals; shares: pooled "
            f"|attribution| in %, 95 % bootstrap over clips, channels "
            f"{result['settings'].get('channels', 'all')}."
        )
        rows = []
        for row in result["layouts"]:
            line: dict[str, Any] = {
                "layout": row["layout"],
                "question marking": _rate(row["question_marking"]),
                "questions marked": _rate(row["questions_marked"]),
                "question clips": row["flips"][FLIP_REGIONS[0]]["n"],
            }
            for region in FLIP_REGIONS:
                line[f"flips: {region}"] = _rate(row["flips"][region])
            for group in SHARE_GROUPS:
                line[f"{group} share"] = _share(row["shares"].get(group))
            rows.append(line)
        report.table(f"layouts_{pair.replace('-', '_')}", rows)
        differences = []
        for diff in result["differences"]:
            line = {
                "layout": f"{diff['layout']} − {diff['versus']}",
                "question marking": _difference(diff["question_marking"]),
                "questions marked": _difference(diff["questions_marked"]),
            }
            for region in FLIP_REGIONS:
                line[f"flips: {region}"] = _difference(diff["flips"][region])
            differences.append(line)
        report.paragraph(
            "Differences in percentage points, paired over the same clips: 95 % bootstrap "
            "interval and exact McNemar p-value."
        )
        report.table(f"layout_differences_{pair.replace('-', '_')}", differences)
        for paragraph in result["answer"].split("\n\n"):
            report.paragraph(paragraph)
