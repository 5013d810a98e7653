"""The study directory: where each stage of the study writes its outputs, so that the demo, the
report and users running the stages by hand agree on one layout.

    <root>/corpus/                      poses/, manifest.jsonl, partitions/<name>.json
    <root>/runs/<partition>-<task>/     training run (model, checkpoints, log)
    <root>/predictions/<partition>-<task>.jsonl
    <root>/metrics/<partition>-<task>.json
    <root>/attribution/<partition>-<task>/
    <root>/probes/<probe>[-<partition>-<task>].json
    <root>/report/index.html            and the tables as CSV / JSON
    <root>/study.json                   what produced all of it: settings, versions, stage times
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nmmfast._io import read_json, write_json_atomic

__all__ = ["PARTITIONS", "TASKS", "StudyDir", "read_json", "write_json_atomic"]

PARTITIONS = ("control", "si", "us")
TASKS = ("cslr", "slt")


@dataclass(frozen=True)
class StudyDir:
    """Paths of one study's outputs under `root`."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> StudyDir:
        return cls(Path(root))

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def record(self) -> Path:
        return self.root / "study.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def run(self, partition: str, task: str) -> Path:
        return self.root / "runs" / f"{partition}-{task}"

    def predictions(self, partition: str, task: str) -> Path:
        return self.root / "predictions" / f"{partition}-{task}.jsonl"

    def metrics(self, partition: str, task: str) -> Path:
        return self.root / "metrics" / f"{partition}-{task}.json"

    def attribution(self, partition: str, task: str) -> Path:
        return self.root / "attribution" / f"{partition}-{task}"

    def probe(self, name: str, partition: str | None = None, task: str | None = None) -> Path:
        suffix = f"-{partition}-{task}" if partition and task else ""
        return self.root / "probes" / f"{name}{suffix}.json"
