"""The report page: the `Report` that accumulates HTML sections and their tables, and the
readers every section shares (result files, the study's attribution jobs and probe results)."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast._io import atomic_write_text
from nmmfast.errors import UserError
from nmmfast.report import figures
from nmmfast.study import StudyDir, read_json, write_json_atomic

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
            + "".join(f"<td>{html.escape(fmt(row.get(c), digits))}</td>" for c in columns)
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


def fmt(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def read_result(path: Path, *keys: str) -> dict[str, Any]:
    """A result file that must be a JSON object holding `keys`; anything else is a `UserError`
    naming the file (a damaged or foreign file, not a missing section)."""
    result = read_json(path)
    if not isinstance(result, dict):
        raise UserError(f"{path}: expected a JSON object; rerun the stage that wrote it")
    missing = [key for key in keys if key not in result]
    if missing:
        raise UserError(f"{path}: lacks {', '.join(missing)}; rerun the stage that wrote it")
    return result


def attribution_jobs(study: StudyDir) -> list[tuple[str, str, Path]]:
    return [
        (p, t, study.attribution(p, t))
        for p, t in study.pairs()
        if (study.attribution(p, t) / "summary.json").is_file()
    ]


def probe_results(study: StudyDir, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(partition, task, result) of every `name` probe file the study holds."""
    return [
        (p, t, read_result(study.probe(name, p, t)))
        for p, t in study.pairs()
        if study.probe(name, p, t).is_file()
    ]


def pair_title(partition: str, task: str) -> str:
    return f"{figures.PARTITION_TITLES.get(partition, partition)} / {task.upper()}"


def mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def template_positions(study: StudyDir, layout: Any) -> np.ndarray | None:
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


def layout_edges(layout: Any) -> list[tuple[int, int]]:
    edges = []
    for part, positions in layout.parts.items():
        positions = np.asarray(positions)
        edges += [(int(positions[a]), int(positions[b])) for a, b in layout.part_edges[part]]
    return edges
