"""The report's probe sections: tracking failure, counterfactual regions, signer identity,
and the mapping from the reference study's joint labels to the true ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from nmmfast.report import figures
from nmmfast.report.page import (
    Report,
    pair_title,
    probe_results,
    read_result,
)
from nmmfast.skeleton.coco import FACE
from nmmfast.study import StudyDir


def probes_section(report: Report, study: StudyDir) -> None:
    report.heading("Probes")
    tracking_path = study.probe("tracking")
    report.heading("Tracking failure (veiled or mistracked faces)", level=3)
    if tracking_path.is_file():
        tracking = read_result(tracking_path)
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
    for partition, task, result in probe_results(study, "counterfactual"):
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
    for partition, task, result in probe_results(study, "identity"):
        found = True
        if "skipped" in result:
            report.paragraph(f"{pair_title(partition, task)}: not run ({result['skipped']}).")
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
                        title=f"who is signing? {pair_title(partition, task)} "
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
        out.append((caption, raw[min(frame, len(raw) - 1), FACE, :2] * scale))
    return out
