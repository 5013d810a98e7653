"""The study directory: where each stage of the study writes its outputs, so that the demo, the
report and users running the stages by hand agree on one layout.

    <root>/corpus/                      poses/, manifest.jsonl, partitions/<name>.json (the
                                        demo's; a study of a user's corpus names it in study.json)
    <root>/runs/<partition>-<task>/     training run (model, checkpoints, log)
    <root>/predictions/<partition>-<task>.jsonl
    <root>/metrics/<partition>-<task>.json
    <root>/attribution/<partition>-<task>/
    <root>/probes/<probe>[-<partition>-<task>].json   (marker-words-<partition>-<task>.json:
                                        per-token shares of a word list's tokens)
    <root>/layouts/<layout>/            `nmmfast demo --layouts`: another layout's runs and
                                        results, in this same layout
    <root>/report/index.html            and the tables as CSV / JSON
    <root>/study.json                   what produced all of it: settings, versions, stage times
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nmmfast._io import file_sha256, read_json, write_json_atomic
from nmmfast.errors import positive_float, positive_int

__all__ = [
    "PARTITIONS",
    "TASKS",
    "Analysis",
    "AnalysisSettings",
    "add_marker_words",
    "StudyDir",
    "pair_order",
    "parse_pair",
    "read_json",
    "run_study",
    "write_json_atomic",
]

PARTITIONS = ("control", "si", "us")
TASKS = ("cslr", "slt")


def pair_order(pair: tuple[str, str]) -> tuple:
    """Sort key of (partition, task): the reference study's partitions first, in its order."""
    partition, task = pair
    known = PARTITIONS.index(partition) if partition in PARTITIONS else len(PARTITIONS)
    return (known, partition, TASKS.index(task) if task in TASKS else len(TASKS), task)


@dataclass(frozen=True)
class StudyDir:
    """Paths of one study's outputs under `root`."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> StudyDir:
        return cls(Path(root))

    @property
    def corpus(self) -> Path:
        """The corpus studied: `corpus` in study.json when the study names one, else
        `<root>/corpus` (the demo's)."""
        if self.record.is_file():
            named = read_json(self.record).get("corpus")
            if named:
                return Path(named)
        return self.root / "corpus"

    def pairs(self) -> list[tuple[str, str]]:
        """Every (partition, task) with predictions, metrics or attribution in the study, any
        partition name, in `pair_order`."""
        found: set[tuple[str, str]] = set()
        candidates = [
            *(self.root / "predictions").glob("*.jsonl"),
            *(self.root / "metrics").glob("*.json"),
            *(p for p in (self.root / "attribution").glob("*") if p.is_dir()),
        ]
        for path in candidates:
            partition, _, task = (
                path.stem.rpartition("-") if path.is_file() else path.name.rpartition("-")
            )
            if partition and task in TASKS:
                found.add((partition, task))
        return sorted(found, key=pair_order)

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

    def attribution(self, partition: str, task: str, variant: str | None = None) -> Path:
        """A pair's attribution job; `variant` (e.g. "stop-keep", "baseline-mean-pose"): the same
        job under other settings, for comparison."""
        name = f"{partition}-{task}" + (f"@{variant}" if variant else "")
        return self.root / "attribution" / name

    def variants(self, partition: str, task: str) -> dict[str, Path]:
        """The variant attribution jobs of a pair that hold a summary: variant -> directory."""
        prefix = f"{partition}-{task}@"
        return {
            path.name[len(prefix) :]: path
            for path in sorted((self.root / "attribution").glob(f"{prefix}*"))
            if (path / "summary.json").is_file()
        }

    def probe(self, name: str, partition: str | None = None, task: str | None = None) -> Path:
        suffix = f"-{partition}-{task}" if partition and task else ""
        return self.root / "probes" / f"{name}{suffix}.json"


# --- the study's analysis stages, shared by `nmmfast study` and `nmmfast demo` -------------------


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything after training that moves a number of a study; recorded in study.json."""

    split: str = "test"
    beam: int = 4
    max_new_tokens: int = 100
    attribution_samples: int | None = 24  # samples of the split attributed per pair (None: all)
    # Simpson panels bisected where completeness fails, per sample, until |delta| <= tolerance ·
    # |F(x) - F(b)| (at most `ig_max_steps` points)
    ig_method: str = "simpson"
    ig_steps: int = 5
    ig_tolerance: float | None = 0.01
    ig_max_steps: int = 129
    probe_samples: int = 80  # samples of the split in the counterfactual probe
    seed: int = 0
    # words and phrases whose reference tokens are attributed one by one against the other
    # tokens (`nmmfast.probes.marker_words`; None: not run), on the first
    # `attribution_samples` samples of `split` holding one, with `ig_method` at a fixed step
    # count (per-token attribution has no adaptive steps)
    marker_words: tuple[str, ...] | None = None
    marker_ig_steps: int = 17
    # the attribution's settings (`nmmfast attribute`): stop-gradients lifted or kept as the
    # model has them, the IG baseline, the channels the headline shares count
    stop_gradients: str = "lift"
    baseline: str = "zero"
    channels: str = "all"
    # each pair attributed again with the other stop-gradient setting, and the first SLT pair
    # (else the first pair) under every other baseline, for the report's side-by-side tables
    compare_stop_gradients: bool = False
    compare_baselines: bool = False
    # "all": the stop-gradient comparison for every pair; "first": for the first SLT pair only
    compare_scope: str = "all"
    skip_bad: bool = False  # leave out (and list) samples with non-finite poses

    def variants(self, pair: tuple[str, str], pairs: Sequence[tuple[str, str]]) -> dict[str, dict]:
        """The extra attribution jobs of `pair`: variant name -> the settings it changes."""
        from nmmfast.attribution.baselines import BASELINES

        out: dict[str, dict] = {}
        ordered = sorted(pairs, key=pair_order)
        first = next((p for p in ordered if p[1] == "slt"), ordered[0] if ordered else None)
        if self.compare_stop_gradients and (self.compare_scope == "all" or pair == first):
            other = "keep" if self.stop_gradients == "lift" else "lift"
            out[f"stop-{other}"] = {"stop_gradients": other}
        if self.compare_baselines and pair == first:
            for baseline in BASELINES:
                if baseline != self.baseline:
                    out[f"baseline-{baseline}"] = {"baseline": baseline}
        return out


class Analysis:
    """decode → evaluate → attribute of each (partition, task) run, and the probes, into a study
    directory. Each stage is skipped when its output exists; `stage(name, done, run)` runs one
    (the caller times and records it)."""

    def __init__(
        self,
        dirs: StudyDir,
        corpus: str | os.PathLike,
        runs: Mapping[tuple[str, str], str | os.PathLike],
        settings: AnalysisSettings,
        stage: Callable[[str, Callable[[], bool], Callable[[], Any]], None],
        progress: bool = True,
    ) -> None:
        self.dirs = dirs
        self.corpus = Path(corpus)
        self.runs = {pair: Path(run) for pair, run in runs.items()}
        self.settings = settings
        self.stage = stage
        self.progress = progress

    def analyse(self, partition: str, task: str) -> None:
        self.decode(partition, task)
        self.evaluate(partition, task)
        self.attribute(partition, task)
        for variant, changed in self.settings.variants((partition, task), list(self.runs)).items():
            self.attribute(partition, task, variant, changed)
        self.marker_words(partition, task)

    def done(self, partition: str, task: str) -> bool:
        from nmmfast.attribution.summary import SUMMARY_FILE

        variants = self.settings.variants((partition, task), list(self.runs))
        return all(
            path.is_file()
            for path in (
                self.dirs.predictions(partition, task),
                self.dirs.metrics(partition, task),
                self.dirs.attribution(partition, task) / SUMMARY_FILE,
                *(self.dirs.attribution(partition, task, v) / SUMMARY_FILE for v in variants),
            )
        ) and self._marker_words_done(partition, task)

    def decode(self, partition: str, task: str) -> None:
        from nmmfast.decode import decode

        out = self.dirs.predictions(partition, task)
        s = self.settings

        def run() -> None:
            decode(
                self.runs[partition, task],
                self.corpus,
                partition,
                split=s.split,
                out=out,
                beam=s.beam,
                max_new_tokens=s.max_new_tokens,
                progress=self.progress,
                skip_bad=s.skip_bad,
            )

        self.stage(f"decode {partition}-{task}", out.is_file, run)

    def evaluate(self, partition: str, task: str) -> None:
        from nmmfast.evaluate import evaluate_file

        out = self.dirs.metrics(partition, task)

        def run() -> None:
            reports = evaluate_file(
                self.dirs.predictions(partition, task),
                corpus=self.corpus,
                partition=partition,
                task=task,
                beam=self.settings.beam,
                checkpoint=self.runs[partition, task] / "best.pt",
                split=self.settings.split,
            )
            scores = reports[task].as_dict()
            write_json_atomic(out, {"partition": partition, "task": task, "scores": scores})

        self.stage(f"evaluate {partition}-{task}", out.is_file, run)

    def attribute(
        self,
        partition: str,
        task: str,
        variant: str | None = None,
        changed: Mapping[str, Any] | None = None,
    ) -> None:
        """A pair's attribution job; a `variant` (`AnalysisSettings.variants`) with the settings
        it `changed`."""
        from nmmfast.attribution.job import attribute_partition
        from nmmfast.attribution.summary import SUMMARY_FILE

        out = self.dirs.attribution(partition, task, variant)
        s = self.settings
        changed = changed or {}

        def run() -> None:
            attribute_partition(
                self.runs[partition, task],
                self.corpus,
                partition,
                out,
                split=s.split,
                method=s.ig_method,
                n_steps=s.ig_steps,
                tolerance=s.ig_tolerance,
                max_steps=s.ig_max_steps,
                max_samples=s.attribution_samples,
                num_beams=s.beam,
                max_new_tokens=s.max_new_tokens,
                progress=self.progress,
                skip_bad=s.skip_bad,
                stop_gradients=changed.get("stop_gradients", s.stop_gradients),
                baseline=changed.get("baseline", s.baseline),
                channels=s.channels,
            )

        name = f"attribute {out.name}"
        self.stage(name, (out / SUMMARY_FILE).is_file, run)

    def marker_words(self, partition: str, task: str) -> None:
        """Per-token attribution of the marker words' reference tokens against the other tokens
        (`settings.marker_words`; nothing without a list). A result for another list or other
        settings is computed again; an interrupted run resumes from its checkpoint file."""
        from nmmfast.data.partitions import load_partition
        from nmmfast.probes.cli import write_json
        from nmmfast.probes.marker_words import PROBE_NAME, marker_word_probe

        s = self.settings
        if not s.marker_words:
            return
        out = self.dirs.probe(PROBE_NAME, partition, task)
        checkpoint = out.with_name(f"{out.stem}.partial.json")

        def run() -> None:
            from nmmfast.model import load_run

            # on the GPU where there is one: per-token attribution costs a backward per token
            model, _, _ = load_run(self.runs[partition, task], "best")
            result = marker_word_probe(
                model,
                self.corpus,
                load_partition(self.corpus, partition)[s.split],
                s.marker_words,
                task=task,
                method=s.ig_method,
                n_steps=s.marker_ig_steps,
                max_samples=s.attribution_samples,
                seed=s.seed,
                job=self._marker_words_job(partition, task),
                checkpoint=checkpoint,
                progress=self.progress,
            )
            write_json(result, out)
            checkpoint.unlink(missing_ok=True)

        self.stage(
            f"marker words {partition}-{task}",
            lambda: self._marker_words_done(partition, task),
            run,
        )

    def _marker_words_job(self, partition: str, task: str) -> dict[str, Any]:
        """What a marker-word result depends on besides the run (which the study fixes)."""
        s = self.settings
        return {
            "partition": partition,
            "task": task,
            "split": s.split,
            "words": list(s.marker_words or ()),
            "method": s.ig_method,
            "n_steps": s.marker_ig_steps,
            "max_samples": s.attribution_samples,
            "seed": s.seed,
        }

    def _marker_words_done(self, partition: str, task: str) -> bool:
        from nmmfast.probes.marker_words import PROBE_NAME

        if not self.settings.marker_words:
            return True
        out = self.dirs.probe(PROBE_NAME, partition, task)
        if not out.is_file():
            return False
        return read_json(out).get("job") == self._marker_words_job(partition, task)

    def tracking(self) -> None:
        """Face tracking failure over the whole corpus."""
        from nmmfast.data import PoseStore
        from nmmfast.data.annotations import read_manifest
        from nmmfast.probes.cli import write_json
        from nmmfast.probes.tracking import tracking_report

        out = self.dirs.probe("tracking")

        def run() -> None:
            store = PoseStore(self.corpus / "poses")
            rows = read_manifest(self.corpus / "manifest.jsonl")
            write_json(tracking_report(store, manifest_rows=rows), out)

        self.stage("probe tracking", out.is_file, run)

    def model_probes(self, partition: str, task: str) -> None:
        """Counterfactual regions and signer identity with one run, on its split."""
        from nmmfast.data.partitions import load_partition
        from nmmfast.probes.cli import write_json

        ids = load_partition(self.corpus, partition)[self.settings.split]
        counterfactual = self.dirs.probe("counterfactual", partition, task)
        identity = self.dirs.probe("identity", partition, task)
        s = self.settings

        def run_counterfactual() -> None:
            from nmmfast.probes.counterfactual import counterfactual_probe

            result = counterfactual_probe(
                self.model(partition, task),
                self.corpus,
                ids[: s.probe_samples],
                task=task,
                num_beams=s.beam,
                max_new_tokens=s.max_new_tokens,
                progress=self.progress,
            )
            write_json(result, counterfactual)

        def run_identity() -> None:
            from nmmfast.probes.identity import identity_probe

            try:
                result = identity_probe(
                    self.model(partition, task),
                    self.corpus,
                    ids,
                    task=task,
                    seed=s.seed,
                    progress=self.progress,
                )
            except ValueError as error:  # e.g. a split with one signer, or none recorded
                result = {"skipped": str(error)}
            write_json(result, identity)

        self.stage(
            f"probe counterfactual {partition}-{task}", counterfactual.is_file, run_counterfactual
        )
        self.stage(f"probe identity {partition}-{task}", identity.is_file, run_identity)

    def model(self, partition: str, task: str) -> Any:
        """A pair's run, its best weights loaded, in eval mode."""
        from nmmfast.model import load_model

        run = self.runs[partition, task]
        return load_model(run, weights=run / "best.pt").eval()


# --- `nmmfast study`: the study of any runs on any partitions -----------------------------------


def parse_pair(text: str) -> tuple[str, str, Path]:
    """`PARTITION:TASK=RUN` -> (partition, task, run directory)."""
    head, sep, run = text.partition("=")
    partition, colon, task = head.rpartition(":")
    if not sep or not colon or not partition or not run:
        raise ValueError(f"{text!r}: expected PARTITION:TASK=RUN, e.g. official:slt=runs/slt")
    if task not in TASKS:
        raise ValueError(f"{text!r}: task must be one of {TASKS}, got {task!r}")
    return partition, task, Path(run)


def _check_inputs(corpus: Path, runs: Mapping[tuple[str, str], Path]) -> dict[str, Any]:
    """Raise naming the file when the corpus, a partition or a run is missing or does not fit;
    returns what the study record says of the runs (path, task, weights' SHA-256)."""
    from nmmfast.data.partitions import load_partition

    for needed in (corpus / "manifest.jsonl", corpus / "poses"):
        if not needed.exists():
            raise FileNotFoundError(f"{needed}: not found (a corpus holds manifest.jsonl, poses/)")
    described: dict[str, Any] = {}
    for (partition, task), run in runs.items():
        load_partition(corpus, partition)
        for needed in (run / "best.pt", run / "run.json", run / "model_config.json"):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"{needed}: not found; a run comes from `nmmfast train` or "
                    f"`nmmfast convert-checkpoint`"
                )
        run_task = read_json(run / "run.json").get("task")
        if run_task != task:
            raise ValueError(f"{run / 'run.json'}: a {run_task} model, given as {partition}:{task}")
        described[f"{partition}:{task}"] = {
            "run": str(run.resolve()),
            "weights_sha256": file_sha256(run / "best.pt"),
        }
    return described


def _analysis_job(job: tuple) -> dict[str, float]:
    """One pair's stages (or the probes) in a worker process; returns their timings."""
    import torch

    root, corpus, runs, settings, step, args = job
    torch.set_num_threads(1)
    timings: dict[str, float] = {}

    def stage(name: str, done: Callable[[], bool], run: Callable[[], Any]) -> None:
        if done():
            return
        began = time.perf_counter()
        run()
        timings[name] = round(time.perf_counter() - began, 2)

    analysis = Analysis(StudyDir.at(root), corpus, runs, settings, stage, progress=False)
    getattr(analysis, step)(*args)
    return timings


def _check_same_study(path: Path, previous: Mapping[str, Any], record: Mapping[str, Any]) -> None:
    """Refuse to resume a study made with another corpus, other runs or weights, or other
    settings (a setting that an older record lacks reads as its default)."""
    defaults = json.loads(json.dumps(asdict(AnalysisSettings())))
    before = previous.get("settings") or {}
    settings = sorted(
        key for key, value in record["settings"].items() if before.get(key, defaults[key]) != value
    )
    changed = [f"another {k}" for k in ("corpus", "runs") if previous.get(k) != record[k]]
    if settings:
        changed.append(f"other settings ({', '.join(settings)})")
    if changed:
        hint = (
            "; `nmmfast report OUT --marker-words FILE` attributes another word list in it"
            if settings == ["marker_words"] and len(changed) == 1
            else ""
        )
        raise ValueError(
            f"{path}: this study was made with {' and '.join(changed)}; choose a new --out or "
            f"the same inputs{hint}"
        )


def run_study(
    corpus: str | os.PathLike,
    out: str | os.PathLike,
    runs: Mapping[tuple[str, str], str | os.PathLike],
    settings: AnalysisSettings = AnalysisSettings(),
    *,
    workers: int = 1,
    progress: bool = True,
    marker_words_file: str | os.PathLike | None = None,
) -> Path:
    """decode → evaluate → attribute (and, with `settings.marker_words`, the marker-word
    probe) for every (partition, task) run, the tracking probe over the corpus, the
    counterfactual and identity probes with every SLT run (every run when there is none), then
    the report. A rerun into `out` reuses finished stages; it refuses another corpus, other runs
    or weights, or other settings (the word list included). `marker_words_file`: where the list
    came from, recorded in study.json. Returns the report's path."""
    from nmmfast.report import build_report

    corpus = Path(corpus).resolve()
    runs = {pair: Path(run) for pair, run in runs.items()}
    if not runs:
        raise ValueError("give at least one PARTITION:TASK=RUN")
    dirs = StudyDir.at(out)
    record = {
        "produced_by": "nmmfast study",
        "corpus": str(corpus),
        "runs": _check_inputs(corpus, runs),
        "settings": json.loads(json.dumps(asdict(settings))),
    }
    if marker_words_file is not None:
        record["marker_words_file"] = str(Path(marker_words_file).resolve())
    if dirs.record.is_file():
        previous = read_json(dirs.record)
        _check_same_study(dirs.record, previous, record)
        timings = dict(previous.get("stage_seconds", {}))
    else:
        timings = {}

    def save() -> None:
        import platform

        import torch

        import nmmfast

        write_json_atomic(
            dirs.record,
            {
                **record,
                "nmmfast": nmmfast.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "stage_seconds": timings,
            },
        )

    save()
    slt = [pair for pair in runs if pair[1] == "slt"]
    jobs = [("analyse", pair) for pair in sorted(runs, key=pair_order)]
    jobs += [("tracking", ())] + [("model_probes", pair) for pair in (slt or list(runs))]
    specs = [(str(dirs.root), str(corpus), runs, settings, step, args) for step, args in jobs]
    bar = tqdm(total=len(specs), desc="study", unit="job", disable=not progress, file=sys.stderr)
    if workers <= 1:
        for spec in specs:
            timings.update(_analysis_job(spec))
            save()
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(_analysis_job, specs):
                timings.update(result)
                save()
                bar.update()
    bar.close()
    began = time.perf_counter()
    report = build_report(dirs.root)
    timings["report"] = round(time.perf_counter() - began, 2)
    save()
    return report


def _recorded_runs(dirs: StudyDir, record: Mapping[str, Any]) -> dict[tuple[str, str], Path]:
    """The runs of an existing study: those study.json names (their weights unchanged), else
    the demo's under `<root>/runs/`."""
    if "runs" not in record:
        return {
            pair: dirs.run(*pair)
            for pair in dirs.pairs()
            if (dirs.run(*pair) / "best.pt").is_file()
        }
    runs: dict[tuple[str, str], Path] = {}
    for key, described in record["runs"].items():
        partition, _, task = key.rpartition(":")
        run = Path(described["run"])
        weights = run / "best.pt"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: not found (the run of {key} in {dirs.record})")
        if file_sha256(weights) != described.get("weights_sha256"):
            raise ValueError(
                f"{weights}: not the weights {dirs.record} was made with (its SHA-256 differs)"
            )
        runs[partition, task] = run
    return runs


def add_marker_words(
    study_dir: str | os.PathLike, words: tuple[str, ...], *, progress: bool = True
) -> list[Path]:
    """The marker-word probe with `words` for every run of an existing study (`nmmfast report
    STUDY --marker-words FILE`): the runs and analysis settings its study.json records (the
    demo's runs under `<root>/runs/`). A result for the same list and settings is kept, one for
    another list replaced; study.json is left as it is (each result names its list). Returns
    the result files."""
    from dataclasses import fields

    from nmmfast.errors import UserError
    from nmmfast.probes.marker_words import PROBE_NAME

    dirs = StudyDir.at(study_dir)
    if not dirs.root.is_dir():
        raise FileNotFoundError(f"{dirs.root}: no study directory")
    record = read_json(dirs.record) if dirs.record.is_file() else {}
    runs = _recorded_runs(dirs, record)
    if not runs:
        raise UserError(
            f"{dirs.root}: no runs to attribute marker words with (study.json names none, "
            f"runs/ holds none)"
        )
    known = {field.name for field in fields(AnalysisSettings)} - {"marker_words"}
    recorded = {k: v for k, v in (record.get("settings") or {}).items() if k in known}
    settings = AnalysisSettings(**recorded, marker_words=tuple(words))

    def stage(name: str, done: Callable[[], bool], run: Callable[[], Any]) -> None:
        if not done():
            run()

    analysis = Analysis(dirs, dirs.corpus, runs, settings, stage, progress)
    for pair in sorted(runs, key=pair_order):
        analysis.marker_words(*pair)
    return [dirs.probe(PROBE_NAME, *pair) for pair in sorted(runs, key=pair_order)]


def add_attribution_arguments(parser: argparse.ArgumentParser) -> None:
    """The attribution options of `study` (`AnalysisSettings`)."""
    from nmmfast.attribution.job import add_setting_arguments
    from nmmfast.data.dataset import add_skip_bad_argument

    add_setting_arguments(parser)
    parser.add_argument(
        "--compare-stop-gradients",
        action="store_true",
        help="also attribute every run with the other stop-gradient setting; the report shows "
        "both side by side",
    )
    parser.add_argument(
        "--compare-baselines",
        action="store_true",
        help="also attribute the first SLT run under every other baseline (the report's "
        "baseline-sensitivity table)",
    )
    add_skip_bad_argument(parser)


def attribution_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `AnalysisSettings` fields of `add_attribution_arguments`' options."""
    return {
        "stop_gradients": args.stop_gradients,
        "baseline": args.baseline,
        "channels": args.channels,
        "compare_stop_gradients": args.compare_stop_gradients,
        "compare_baselines": args.compare_baselines,
        "skip_bad": args.skip_bad,
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", nargs="+", metavar="PARTITION:TASK=RUN", help="runs to study")
    parser.add_argument("--corpus", required=True, metavar="DIR", help="corpus directory")
    parser.add_argument("--out", required=True, metavar="OUT", help="study directory")
    defaults = AnalysisSettings()
    parser.add_argument("--split", default=defaults.split, choices=["train", "dev", "test"])
    parser.add_argument(
        "--attribution-samples",
        type=int,
        default=defaults.attribution_samples,
        help=f"samples attributed per run (default {defaults.attribution_samples}; 0: all)",
    )
    parser.add_argument(
        "--tolerance",
        type=positive_float,
        default=defaults.ig_tolerance,
        help="completeness tolerance of the adaptive IG panels (default 0.01: 1 %%)",
    )
    parser.add_argument(
        "--beam", type=positive_int, default=defaults.beam, help="beam width (default 4)"
    )
    parser.add_argument(
        "--max-new-tokens", type=positive_int, default=defaults.max_new_tokens, help="(default 100)"
    )
    parser.add_argument(
        "--probe-samples",
        type=positive_int,
        default=defaults.probe_samples,
        help="samples in the counterfactual probe (default 80)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--marker-words",
        metavar="FILE",
        help="words or phrases (one per line, # comments) whose reference tokens are attributed "
        "one by one against the other tokens of the same sentences",
    )
    parser.add_argument(
        "--marker-steps",
        type=positive_int,
        default=defaults.marker_ig_steps,
        help=f"step points of that per-token attribution (default {defaults.marker_ig_steps}; "
        f"fixed: per-token attribution has no adaptive steps)",
    )
    add_attribution_arguments(parser)
    parser.add_argument("--workers", type=positive_int, default=1, help="processes side by side")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_cli(args: argparse.Namespace) -> int:
    runs: dict[tuple[str, str], Path] = {}
    for text in args.pairs:
        partition, task, run = parse_pair(text)
        if (partition, task) in runs:
            raise ValueError(f"{partition}:{task} given twice")
        runs[partition, task] = run
    marker_words = None
    if args.marker_words is not None:
        from nmmfast.probes.marker_words import read_marker_words

        marker_words = read_marker_words(args.marker_words)
    settings = AnalysisSettings(
        split=args.split,
        beam=args.beam,
        max_new_tokens=args.max_new_tokens,
        attribution_samples=args.attribution_samples or None,
        ig_tolerance=args.tolerance,
        probe_samples=args.probe_samples,
        seed=args.seed,
        marker_words=marker_words,
        marker_ig_steps=args.marker_steps,
        **attribution_settings(args),
    )
    report = run_study(
        args.corpus,
        args.out,
        runs,
        settings,
        workers=args.workers,
        progress=not args.no_progress,
        marker_words_file=args.marker_words,
    )
    print(f"report: {report}")
    return 0
