"""Builds the study report: one self-contained HTML file (figures embedded as PNG data URIs) plus
the same tables as CSV and JSON, from a study directory (`nmmfast.study.StudyDir`).
Sections whose inputs are missing say so instead of disappearing."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nmmfast.errors import UserError
from nmmfast.report.attribution import attribution_section
from nmmfast.report.layouts import layout_ablation_section
from nmmfast.report.metrics import metrics_section
from nmmfast.report.nmm import nmm_contrast_section
from nmmfast.report.page import Report, read_result
from nmmfast.report.probes import label_mapping_section, probes_section
from nmmfast.study import StudyDir


def build_report(study_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `<out_dir>/index.html` (default `<study>/report/`) and its tables; returns its path."""
    study = StudyDir.at(study_dir)
    if not study.root.is_dir():
        raise FileNotFoundError(f"{study.root}: no study directory")
    record = read_result(study.record) if study.record.is_file() else {}
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
        layout_ablation_section(report, study)
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
