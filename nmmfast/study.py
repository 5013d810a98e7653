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

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as JSON to `path` through a temporary file and a rename: readers see the old
    file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=1, default=_jsonable)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as handle:
        return json.load(handle)


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
