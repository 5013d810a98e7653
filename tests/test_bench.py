"""`nmmfast bench`: runs benchmark scripts, tabulates their summaries, reports failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmmfast.cli import main

GOOD = """
import argparse, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--json")
p.add_argument("--quick", action="store_true")
a = p.parse_args()
rows = [{"claim": "x vs peer", "ours": "1 s", "peer": "3 s", "ratio": 3.0, "goal": ">= 2x"}]
pathlib.Path(a.json).write_text(json.dumps({"summary": rows, "quick": a.quick}))
"""
BAD = "raise SystemExit('peer library is not installed')\n"


def test_bench_tabulates_summaries_and_failures(tmp_path: Path, capsys) -> None:
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "bench_good.py").write_text(GOOD)
    (scripts / "bench_bad.py").write_text(BAD)
    out = tmp_path / "out"
    code = main(["bench", "--quick", "--dir", str(scripts), "--out", str(out)])
    assert code == 1  # one script failed
    table = (out / "results.md").read_text()
    assert "| bench_good | x vs peer | 1 s | 3 s | 3.00x | >= 2x | ok |" in table
    assert "| bench_bad |" in table and "failed (exit 1)" in table
    results = json.loads((out / "results.json").read_text())
    assert results["results"][1]["quick"] is True
    assert "peer library is not installed" in results["results"][0]["detail"]
    assert "x vs peer" in capsys.readouterr().out


def test_bench_only_unknown_name(tmp_path: Path) -> None:
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "bench_good.py").write_text(GOOD)
    with pytest.raises(SystemExit, match="unknown benchmark"):
        main(["bench", "--dir", str(scripts), "--only", "nope"])
