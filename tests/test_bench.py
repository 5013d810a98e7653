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
rows = [{"claim": "x vs peer", "ours": "1 s", "peer": "3 s", "ratio": 3.0, "goal": ">= 2x"},
        {"claim": "y vs peer", "ours": "2 s", "peer": "3 s", "ratio": 1.5, "goal": "≥ 2x"},
        {"claim": "z vs peer", "ours": "1 s", "peer": "1 s", "ratio": 1.0, "goal": "-"},
        {"claim": "w vs peer", "ours": "1 s", "peer": "9 s", "ratio": 9.0, "goal": "≥ 3x",
         "status": "missed"}]
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
    quick = " [--quick sizes: not those of RESULTS.md]"
    assert f"| bench_good | x vs peer{quick} | 1 s | 3 s | 3.00x | >= 2x | met |" in table
    assert f"| bench_good | y vs peer{quick} | 2 s | 3 s | 1.50x | ≥ 2x | missed |" in table
    assert f"| bench_good | z vs peer{quick} | 1 s | 1 s | 1.00x | - | no goal |" in table
    # a script's own verdict (an accuracy condition the ratio cannot show) wins
    assert f"| bench_good | w vs peer{quick} | 1 s | 9 s | 9.00x | ≥ 3x | missed |" in table
    assert "smaller sizes than the figures in benchmarks/RESULTS.md" in table
    assert "| bench_bad |" in table and "failed (exit 1)" in table
    assert "| ok |" not in table  # a run that ran is not a goal met
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


@pytest.mark.parametrize(
    ("ratio", "goal", "status"),
    [
        (2.0, "≥ 2x", "met"),
        (1.99, "≥ 2x", "missed"),
        (3.1, "≥ 3x (CPU) at no worse accuracy", "met"),
        (0.96, "≥ 0.91x (≤ 10 % overhead)", "met"),
        (1.0, "faster", "missed"),
        (1.2, "faster", "met"),
        (None, "≥ 1x", "missed"),
        (None, "-", "no goal"),
        (1.0, "–", "no goal"),
        (None, "≤ 10 s for 2,000 samples", "unchecked"),
        (5.0, "≥ 80% of bandwidth", "unchecked"),
    ],
)
def test_goal_status(ratio, goal: str, status: str) -> None:
    from nmmfast.bench import goal_status

    assert goal_status(ratio, goal) == status


def test_full_runs_carry_no_quick_note(tmp_path: Path) -> None:
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "bench_good.py").write_text(GOOD)
    out = tmp_path / "out"
    assert main(["bench", "--dir", str(scripts), "--out", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert "| bench_good | x vs peer | 1 s | 3 s | 3.00x | >= 2x | met |" in table
    assert "--quick" not in table
