"""The study report: one self-contained HTML page plus its tables as CSV and JSON."""

from __future__ import annotations

from nmmfast.report.build import build_report

__all__ = ["build_report"]
