"""The study report: built from a study directory written here by hand."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nmmfast.cli import main
from nmmfast.report import build_report
from nmmfast.study import StudyDir, write_json_atomic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_scores(wer: float, bleu4: float) -> dict:
    return {
        "wer": wer,
        "wer_unisign": wer + 1,
        "bleu1": bleu4 + 10,
        "bleu4": bleu4,
        "exact_match": 0.5,
        "seen_rate": 0.9,
        "unigram_overlap": 0.95,
        "unigram_f1": 0.7,
        "question_marking": 0.8,
        "n": 20,
        "signature": "task:x|nmmfast:test",
    }


@pytest.fixture
def study(tmp_path: Path) -> StudyDir:
    dirs = StudyDir.at(tmp_path / "study")
    for partition, wer in (("control", 12.5), ("si", 40.0), ("us", 88.0)):
        for task in ("cslr", "slt"):
            write_json_atomic(
                dirs.metrics(partition, task),
                {"partition": partition, "task": task, "scores": fake_scores(wer, 100 - wer)},
            )
    write_json_atomic(dirs.record, {"nmmfast": "test", "torch": "x", "settings": {"samples": 10}})
    return dirs


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained_with_tables(study: StudyDir) -> None:
    path = build_report(study.root)
    page = path.read_text()
    assert path == study.report_dir / "index.html"
    assert "Table 2" in page and "signer-independent" in page and "unseen sentences" in page
    images = embedded_images(page)
    assert images and all(img.startswith(PNG_MAGIC) for img in images)
    assert not re.search(r'src="(?!data:)', page), "every image must be embedded"
    with (study.report_dir / "table2_metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["partition"] for r in rows] == ["control", "signer-independent", "unseen sentences"]
    assert float(rows[1]["CSLR WER ↓"]) == 40.0
    assert float(rows[0]["SLT question marking (%) ↑"]) == pytest.approx(80.0)
    assert "task:x|nmmfast:test" in page


def test_missing_inputs_are_reported_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    page = build_report(tmp_path / "empty").read_text()
    assert "Not available: metrics" in page
    with pytest.raises(FileNotFoundError, match="no study directory"):
        build_report(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_report_command_line(study: StudyDir, tmp_path: Path, capsys) -> None:
    assert main(["report", str(study.root), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file()
    assert "report:" in capsys.readouterr().out


def chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


@pytest.mark.skipif(
    chromium() is None, reason="headless Chromium is not installed (apt install chromium)"
)
def test_report_renders_in_headless_chromium(study: StudyDir, tmp_path: Path) -> None:
    page = build_report(study.root)
    # Chromium dumps the DOM after layout; a broken image would keep naturalWidth 0.
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>window.onload=()=>{"
            "const bad=[...document.images].filter(i=>!i.naturalWidth).length;"
            "document.title='images:'+document.images.length+' broken:'+bad;}</script></body>",
        )
    )
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    title = re.search(r"<title>(images:\d+ broken:\d+)</title>", done.stdout)
    assert title, done.stdout[-500:]
    images, broken = map(int, re.findall(r"\d+", title.group(1)))
    assert images >= 1 and broken == 0
