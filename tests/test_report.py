"""The study report: built from a study directory written here by hand."""

from __future__ import annotations

import base64
import csv
import html
import json
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


def marker_result(words: list[str], marker_face: float) -> dict:
    """A marker-word probe result as `nmmfast.probes.marker_words` writes it (shares only)."""

    def group(face: float, samples: int, tokens: int) -> dict:
        return {
            "samples": samples,
            "tokens": tokens,
            "shares": {
                "face": face,
                "head": 5.0,
                "face+head": face + 5.0,
                "hands": 60.0 - face,
                "body": 35.0,
            },
        }

    return {
        "probe": "marker-words",
        "job": {"split": "test", "words": words},
        "settings": {"words": words, "max_samples": 24, "signature": "marker-words|test"},
        "matched_samples": 7,
        "samples": 6,
        "marker": group(marker_face, 6, 9),
        "other": group(2.0, 6, 41),
        "by_word": {w: group(marker_face, 3, 4) for w in words},
        "face_head_difference": {"value": marker_face - 2.0, "ci95": [1.5, 9.25]},
        "completeness": {"median": 0.004},
    }


def counterfactual_result() -> dict:
    regions = {
        region: {"n": 12, "change_rate": rate, "delta_log_p_mean": -rate, "marking": {}}
        for region, rate in (("none", 0.0), ("face", 0.25), ("head", 0.5), ("face+head", 0.75))
    }
    regions["hands"] = {"n": 12, "change_rate": 1.0, "delta_log_p_mean": -9.0}
    return {
        "probe": "counterfactual",
        "settings": {"mode": "signer_mean"},
        "n": 12,
        "regions": regions,
    }


def write_manifest(corpus: Path, **fields) -> Path:
    row = {"id": "a", "signer": "s1", "sentence": "1", "gloss": "X", "text": "x", **fields}
    corpus.mkdir()
    (corpus / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    return corpus


def test_nmm_section_without_planted_labels(tmp_path: Path) -> None:
    dirs = StudyDir.at(tmp_path / "study")
    corpus = write_manifest(tmp_path / "corpus")
    write_json_atomic(dirs.record, {"corpus": str(corpus), "settings": {}})
    write_json_atomic(
        dirs.metrics("official", "slt"),
        {"partition": "official", "task": "slt", "scores": fake_scores(50, 20)},
    )
    page = html.unescape(build_report(dirs.root).read_text())
    assert "Non-manual markers without planted labels" in page
    assert "Not available: counterfactual probe" in page
    assert "Not available: marker-word attribution" in page and "--marker-words FILE" in page

    write_json_atomic(dirs.probe("counterfactual", "official", "slt"), counterfactual_result())
    write_json_atomic(dirs.probe("marker-words", "official", "slt"), marker_result(["not"], 12.0))
    page = html.unescape(build_report(dirs.root).read_text())
    section = page.split("Non-manual markers without planted labels")[1].split("<h2>")[0]
    assert "Not available" not in section
    assert "planted non-manual markers draw" not in page
    with (dirs.report_dir / "nmm_counterfactual.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["partition"], r["neutralised"]) for r in rows] == [
        ("official / SLT", "nothing (control)"),
        ("official / SLT", "face"),
        ("official / SLT", "head"),
        ("official / SLT", "face+head"),
    ]
    assert float(rows[3]["output changed (%)"]) == pytest.approx(75.0)
    with (dirs.report_dir / "marker_word_shares.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["tokens of"], r["samples"], r["tokens"]) for r in rows] == [
        ("listed words", "6", "9"),
        ("other words", "6", "41"),
    ]
    assert float(rows[0]["face+head %"]) == pytest.approx(17.0)
    assert rows[0]["face+head: listed − other (95 % CI)"] == "+10.00 [+1.50, +9.25]"
    assert "7 test samples hold a listed word, 6 attributed (at most 24)" in page
    assert "words: not." in page


def test_nmm_section_with_planted_labels_keeps_the_contrast(tmp_path: Path) -> None:
    dirs = StudyDir.at(tmp_path / "study")
    corpus = write_manifest(tmp_path / "corpus", nmm=[])  # SynNMM's planted labels (none here)
    write_json_atomic(dirs.record, {"corpus": str(corpus), "settings": {}})
    write_json_atomic(
        dirs.metrics("control", "slt"),
        {"partition": "control", "task": "slt", "scores": fake_scores(50, 20)},
    )
    page = html.unescape(build_report(dirs.root).read_text())
    assert "Do the planted non-manual markers draw attribution?" in page
    assert "without planted labels" not in page and "marker words" not in page
    write_json_atomic(dirs.probe("marker-words", "control", "slt"), marker_result(["do"], 3.0))
    page = html.unescape(build_report(dirs.root).read_text())
    assert "Do the planted non-manual markers draw attribution?" in page
    assert "Do the tokens of marker words draw face and head attribution?" in page
    with (dirs.report_dir / "marker_word_shares_by_word.csv").open() as handle:
        assert [r["word"] for r in csv.DictReader(handle)] == ["do"]


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
