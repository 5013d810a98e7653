"""`nmmfast bench`: runs the benchmark scripts of a checkout (`benchmarks/bench_*.py`), each
measuring ours against its named peer side by side, and collects their summaries into one table
(benchmark, ours, peer, ratio, goal, status, machine) written as JSON and Markdown.

The status says whether the measured ratio meets the row's goal: `met`, `missed`, `no goal`, or
`unchecked` for a goal that is not a ratio this table can compare (a run that ran is not a goal
met). A script's row may carry its own status (an accuracy condition beside the ratio); else
goals of the form "≥ N x" and "faster" (ratio > 1) are checked here."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nmmfast


def find_benchmarks(directory: str | os.PathLike | None = None) -> Path:
    """The benchmarks folder: `directory`, else ./benchmarks, else the package's checkout."""
    candidates = (
        [Path(directory)]
        if directory
        else [Path.cwd() / "benchmarks", Path(nmmfast.__file__).resolve().parents[1] / "benchmarks"]
    )
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("bench_*.py")):
            return candidate
    raise FileNotFoundError(
        "no benchmarks folder with bench_*.py found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); the benchmarks ship with the source checkout: run from its root or pass --dir"
    )


def run_benchmark(script: Path, *, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one script with `--json`; returns its JSON (with `summary` rows) or a failure record."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, str(script), "--json", str(out)] + (["--quick"] if quick else [])
        began = time.perf_counter()
        try:
            # The scripts import the same nmmfast as this process, installed or not.
            package_root = str(Path(nmmfast.__file__).resolve().parents[1])
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (package_root, os.environ.get("PYTHONPATH")) if p
                ),
            }
            done = subprocess.run(
                command,
                env=env,
                cwd=script.parent,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"benchmark": script.stem, "status": f"timed out after {timeout:.0f} s"}
        seconds = time.perf_counter() - began
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {
                "benchmark": script.stem,
                "status": f"failed (exit {done.returncode})",
                "detail": " | ".join(tail),
            }
        result = json.loads(out.read_text())
        result.setdefault("benchmark", script.stem)
        result["status"] = "ok"
        result["seconds"] = round(seconds, 1)
        return result


STATUSES = ("met", "missed", "no goal", "unchecked")
QUICK_NOTE = " [--quick sizes: not those of RESULTS.md]"
_AT_LEAST = re.compile(r"^\s*(?:≥|>=)\s*([0-9]*\.?[0-9]+)\s*x\b")


def goal_status(ratio: Any, goal: Any) -> str:
    """met / missed / no goal / unchecked for a measured ratio (peer time / ours) and its goal."""
    text = str(goal or "").strip()
    if text in ("", "-", "–", "—"):
        return "no goal"
    if text == "faster":
        least, strict = 1.0, True
    else:
        found = _AT_LEAST.match(text)
        if not found:
            return "unchecked"
        least, strict = float(found.group(1)), False
    if not isinstance(ratio, (int, float)):
        return "missed"
    return "met" if (ratio > least if strict else ratio >= least) else "missed"


def summary_rows(results: list[dict[str, Any]], *, quick: bool = False) -> list[dict[str, Any]]:
    """One row per measured claim: benchmark, claim, ours, peer, ratio, goal and status (or why
    the script gave none). With `quick`, every claim says its sizes are not RESULTS.md's."""
    note = QUICK_NOTE if quick else ""
    rows = []
    for result in results:
        if result.get("status") != "ok":
            rows.append(
                {
                    "benchmark": result["benchmark"],
                    "claim": "-",
                    "ours": "-",
                    "peer": "-",
                    "ratio": None,
                    "goal": "-",
                    "status": result["status"],
                }
            )
            continue
        for row in result.get("summary", []):
            status = row.get("status")
            if status not in STATUSES:
                status = goal_status(row.get("ratio"), row.get("goal"))
            rows.append(
                {
                    "benchmark": result["benchmark"],
                    "claim": row.get("claim", "-") + note,
                    "ours": row.get("ours", "-"),
                    "peer": row.get("peer", "-"),
                    "ratio": row.get("ratio"),
                    "goal": row.get("goal", "-"),
                    "status": status,
                }
            )
        if not result.get("summary"):
            rows.append(
                {
                    "benchmark": result["benchmark"],
                    "claim": "ran, but printed no summary",
                    "ours": "-",
                    "peer": "-",
                    "ratio": None,
                    "goal": "-",
                    "status": "no goal",
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any], *, quick: bool = False) -> str:
    lines = [
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, python {machine['python']}, "
        f"nmmfast {machine['nmmfast']}, GPU: {machine['gpu'] or 'none'}",
        "",
    ]
    if quick:
        lines += [
            "Run with --quick: smaller sizes than the figures in benchmarks/RESULTS.md, so these "
            "ratios are not comparable with them.",
            "",
        ]
    lines += [
        "| benchmark | claim | ours | peer | ratio | goal | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if isinstance(r["ratio"], (int, float)) else "-"
        lines.append(
            f"| {r['benchmark']} | {r['claim']} | {r['ours']} | {r['peer']} | {ratio} | "
            f"{r['goal']} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the scripts' quick settings")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only this benchmark (e.g. kernels for bench_kernels.py); repeatable",
    )
    parser.add_argument("--dir", help="benchmarks folder (default: ./benchmarks)")
    parser.add_argument(
        "--out", default="bench-results", help="folder for results.json / results.md"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per script")


def run_cli(args: argparse.Namespace) -> int:
    folder = find_benchmarks(args.dir)
    scripts = sorted(folder.glob("bench_*.py"))
    if args.only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only}
        unknown = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if unknown:
            raise SystemExit(f"nmmfast bench: unknown benchmark(s) {sorted(unknown)} in {folder}")
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    results = []
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        results.append(run_benchmark(script, quick=args.quick, timeout=args.timeout))
    info = nmmfast.info()
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nmmfast": info["version"],
        "gpu": _gpu_name() if info["gpu_usable"] else None,
    }
    rows = summary_rows(results, quick=args.quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {"machine": machine, "quick": args.quick, "rows": rows, "results": results}, indent=1
        )
    )
    table = markdown(rows, machine, quick=args.quick)
    (out / "results.md").write_text(table)
    print(table)
    return 0 if all(r.get("status") == "ok" for r in results) else 1


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        return None
