"""`nmmfast demo`: the whole study on the built-in SynNMM corpus with one command.

Generates the corpus, builds the three partitions, trains CSLR and SLT models on each, decodes,
scores, attributes, probes and writes the report. Every stage writes its outputs atomically into the
study directory (`nmmfast.study`) and is skipped when a rerun finds them finished.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nmmfast.study import (
    PARTITIONS,
    TASKS,
    Analysis,
    AnalysisSettings,
    StudyDir,
    read_json,
    write_json_atomic,
)


@dataclass(frozen=True)
class DemoSettings:
    """Everything that moves a number of the demo; recorded in study.json."""

    samples: int = 2000
    seed: int = 0
    config: str = "tiny"
    # CSLR trains first; SLT then starts from the same partition's CSLR weights (embedding rows
    # matched by word) and needs fewer epochs than from scratch.
    cslr_epochs: int = 5
    # 5 epochs: control SLT BLEU-4 59.5 / 49.4 / 50.2 and question marking right on 87.8 / 70.8 /
    # 68.8 % of test clips (seeds 0 / 1 / 2), the whole study in about 9 minutes on 2 cores
    # (benchmarks/RESULTS.md).
    slt_epochs: int = 5
    dev_epochs: int = 1  # only the last epochs are decoded on dev to pick the best one
    batch_size: int = 8
    lr: float = 1e-3
    # Uni-Sign's 0.2 slows the tiny models down within 5 epochs: control CSLR dev WER 28.9 (seed
    # 0) and 49.0 (seed 1) at 0.2, 23.9 and 23.4 at 0.1 (23.6 at 0 for seed 1)
    label_smoothing: float = 0.1
    max_frames: int | None = None  # frames fed per clip; None: the config's (tiny: 64)
    dev_beam: int = 1  # beam of the per-epoch dev decoding that picks the best epoch
    beam: int = 4
    max_new_tokens: int = 30  # SynNMM targets have at most 18 tokens (with </s>)
    partitions: tuple[str, ...] = PARTITIONS
    tasks: tuple[str, ...] = TASKS
    attribution_samples: int = 24  # test samples attributed per partition x task
    # Simpson panels bisected where completeness fails, per sample, until |delta| <= 1 % of
    # |F(x) - F(b)| (at most `ig_max_steps` points)
    ig_method: str = "simpson"
    ig_steps: int = 5
    ig_tolerance: float | None = 0.01
    ig_max_steps: int = 129
    probe_samples: int = 80  # control test samples in the counterfactual probe
    stop_gradients: str = "lift"
    baseline: str = "zero"
    channels: str = "all"
    # the control SLT model attributed again with stop-gradients kept and under the other
    # baselines, for the report's side-by-side tables: about 90 s of CPU, 60 s of wall time on 2
    # cores, which the default study cannot afford within 10 minutes (`--compare` adds them;
    # `--quick` always does, so every stage is exercised)
    compare: bool = False

    def analysis(self) -> AnalysisSettings:
        """The settings of the stages after training: those of `nmmfast study`."""
        return AnalysisSettings(
            split="test",
            beam=self.beam,
            max_new_tokens=self.max_new_tokens,
            attribution_samples=self.attribution_samples,
            ig_method=self.ig_method,
            ig_steps=self.ig_steps,
            ig_tolerance=self.ig_tolerance,
            ig_max_steps=self.ig_max_steps,
            probe_samples=self.probe_samples,
            seed=self.seed,
            stop_gradients=self.stop_gradients,
            baseline=self.baseline,
            channels=self.channels,
            compare_stop_gradients=self.compare,
            compare_baselines=self.compare,
            compare_scope="first",
        )

    @classmethod
    def quick(cls, seed: int = 0) -> DemoSettings:
        """Every stage and output of the study on a corpus small enough for CI (about a minute
        on 2 cores); its models are far from trained, so its numbers only show the mechanics."""
        return cls(
            samples=300,
            seed=seed,
            cslr_epochs=2,
            slt_epochs=1,
            dev_epochs=1,
            beam=1,
            attribution_samples=8,
            ig_steps=9,
            ig_tolerance=None,
            probe_samples=24,
            compare=True,
        )


def _train_one(job: tuple) -> dict[str, Any]:
    """Train one model (runs in a worker process): resumes a run interrupted earlier."""
    import torch

    from nmmfast.train import train

    corpus, partition, task, run_dir, options = job
    torch.set_num_threads(1)
    resume = (Path(run_dir) / "last.pt").is_file()
    return train(corpus, partition, task, run_dir, resume=resume, progress=False, **options)


def _run_job(spec: tuple) -> Any:
    kind, job = spec
    return _train_one(job) if kind == "train" else _analyse_one(job)


def _analyse_one(job: tuple) -> dict[str, float]:
    """Run post-training stages in a worker process; returns their timings (the parent writes
    the study record, so workers never race on it)."""
    import torch

    out, settings, stages = job
    torch.set_num_threads(1)
    study = Study(out, settings, progress=False, record=False)
    for name, args in stages:
        getattr(study, name)(*args)
    return study.timings


PROBE_KINDS = ("counterfactual", "identity")  # the probes that need a trained model


class Study:
    """Runs the stages of the study in order; each stage is skipped when its outputs exist."""

    def __init__(
        self,
        out: str | Path,
        settings: DemoSettings,
        *,
        progress: bool = True,
        workers: int = 1,
        record: bool = True,
    ) -> None:
        self.dirs = StudyDir.at(out)
        self.settings = settings
        self.progress = progress
        self.workers = workers
        self.record = record
        self.timings: dict[str, float] = {}
        self._check_settings()
        runs = {
            (p, t): self.dirs.run(p, t) for p in settings.partitions for t in settings.tasks
        }
        self.analysis = Analysis(
            self.dirs, self.dirs.corpus, runs, settings.analysis(), self._stage, progress
        )

    def _check_settings(self) -> None:
        if not self.dirs.record.is_file():
            return
        previous = read_json(self.dirs.record).get("settings", {})
        current = json.loads(json.dumps(asdict(self.settings)))
        # a setting an older record lacks reads as None, which matches only a None setting
        changed = sorted(k for k in current if previous and previous.get(k) != current[k])
        if changed:
            raise ValueError(
                f"{self.dirs.root} holds a study made with other settings ({', '.join(changed)}); "
                f"choose a new --out or the same settings"
            )

    def _stage(self, name: str, done: Callable[[], bool], run: Callable[[], Any]) -> None:
        if done():
            tqdm.write(f"[demo] {name}: already done, reusing", file=sys.stdout)
            return
        began = time.perf_counter()
        run()
        self.timings[name] = round(time.perf_counter() - began, 2)
        self._write_record()

    def _write_record(self) -> None:
        if not self.record:
            return
        import torch

        import nmmfast

        previous = read_json(self.dirs.record) if self.dirs.record.is_file() else {}
        timings = {**previous.get("stage_seconds", {}), **self.timings}
        write_json_atomic(
            self.dirs.record,
            {
                "produced_by": "nmmfast demo",
                "nmmfast": nmmfast.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "machine": platform.platform(),
                "settings": asdict(self.settings),
                "stage_seconds": timings,
            },
        )

    # --- stages ---------------------------------------------------------------------------------

    def corpus(self) -> None:
        from nmmfast.data.synth import generate, write_corpus

        def run() -> None:
            corpus = generate(self.settings.samples, seed=self.settings.seed)
            write_corpus(corpus, self.dirs.corpus, overwrite=True)

        self._stage("corpus", lambda: (self.dirs.corpus / "manifest.jsonl").is_file(), run)

    def partitions(self) -> None:
        from nmmfast.data.annotations import read_manifest
        from nmmfast.data.partitions import make_partitions, write_partitions

        def run() -> None:
            rows = read_manifest(self.dirs.corpus / "manifest.jsonl")
            write_partitions(self.dirs.corpus, make_partitions(rows, seed=self.settings.seed))

        parts = self.dirs.corpus / "partitions"
        self._stage(
            "partitions", lambda: all((parts / f"{p}.json").is_file() for p in PARTITIONS), run
        )

    def models_and_analysis(self) -> None:
        """Train every model, then decode, score and attribute it, and run the probes: one pool
        of `workers` processes with one torch thread each (small models gain nothing from more
        threads, and side by side they keep every core busy). An SLT model waits for its
        partition's CSLR model and starts from its weights; a free worker takes the first ready
        job in the order CSLR training, SLT training, probes, analysis. Finished jobs are
        reused."""
        jobs = [("train", p, t) for t in ("cslr", "slt") for p in self.settings.partitions]
        jobs = [job for job in jobs if job[2] in self.settings.tasks]
        jobs.append(("probes",))
        jobs += [("analyse", p, t) for p in self.settings.partitions for t in self.settings.tasks]
        pending = []
        for job in jobs:
            if self._job_done(job):
                tqdm.write(f"[demo] {self._job_name(job)}: already done, reusing", file=sys.stdout)
            else:
                pending.append(job)
        if not pending:
            return
        bar = tqdm(
            total=len(pending),
            desc="models",
            unit="job",
            disable=not self.progress,
            file=sys.stderr,
        )
        began = time.perf_counter()
        workers = max(1, min(self.workers, len(pending)))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            running: dict[Any, tuple] = {}
            while pending or running:
                for job in [j for j in pending if self._job_ready(j)][: workers - len(running)]:
                    pending.remove(job)
                    running[pool.submit(_run_job, self._job_spec(job))] = job
                if not running:
                    raise RuntimeError(f"demo: jobs that can never start: {pending}")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    result = future.result()
                    if job[0] == "train":
                        self._record_training(job[1], job[2], result)
                    else:
                        self.timings.update(result)
                    self._write_record()
                    bar.update()
        bar.close()
        self.timings["models and analysis (wall)"] = round(time.perf_counter() - began, 2)
        self._write_record()

    @staticmethod
    def _job_name(job: tuple) -> str:
        return job[0] if len(job) == 1 else f"{job[0]} {job[1]}-{job[2]}"

    def _job_done(self, job: tuple) -> bool:
        if job[0] == "train":
            return self._trained(job[1], job[2])
        if job[0] == "analyse":
            return self.analysis.done(job[1], job[2])
        outputs = [self.dirs.probe("tracking")]
        if self._probed_run is not None:
            outputs += [self.dirs.probe(kind, *self._probed_run) for kind in PROBE_KINDS]
        return all(path.is_file() for path in outputs)

    def _job_ready(self, job: tuple) -> bool:
        if job[0] == "train":
            return self._ready(job[1], job[2])
        if job[0] == "probes":
            return self._probed_run is None or self._trained(*self._probed_run)
        return self._trained(job[1], job[2])

    @property
    def _probed_run(self) -> tuple[str, str] | None:
        """The model the counterfactual and identity probes use: control SLT, the task whose text
        depends on the NMMs (None when the study has no such model)."""
        if "control" in self.settings.partitions and "slt" in self.settings.tasks:
            return "control", "slt"
        return None

    def _job_spec(self, job: tuple) -> tuple:
        if job[0] == "train":
            return ("train", self._train_spec(job[1], job[2]))
        stages = [("probes", ())]
        if job[0] == "analyse":
            stages = [("analyse", job[1:])]
        return ("analyse", (str(self.dirs.root), self.settings, stages))

    def _trained(self, partition: str, task: str) -> bool:
        return (self.dirs.run(partition, task) / "summary.json").is_file()

    def _warm_source(self, partition: str, task: str) -> Path | None:
        """The run an SLT model starts from: its partition's CSLR run, when the study has one."""
        if task != "slt" or "cslr" not in self.settings.tasks:
            return None
        return self.dirs.run(partition, "cslr")

    def _ready(self, partition: str, task: str) -> bool:
        source = self._warm_source(partition, task)
        return source is None or self._trained(partition, "cslr")

    def _train_spec(self, partition: str, task: str) -> tuple:
        s = self.settings
        epochs = s.slt_epochs if task == "slt" else s.cslr_epochs
        source = self._warm_source(partition, task)
        options = {
            "config": s.config,
            "epochs": epochs,
            "batch_size": s.batch_size,
            "lr": s.lr,
            "label_smoothing": s.label_smoothing,
            "seed": s.seed,
            "dev_beam": s.dev_beam,
            "dev_from": max(1, epochs - s.dev_epochs + 1),
            "max_new_tokens": s.max_new_tokens,
            "init_from": None if source is None else str(source),
            "max_frames": s.max_frames,
        }
        return (
            str(self.dirs.corpus),
            partition,
            task,
            str(self.dirs.run(partition, task)),
            options,
        )

    def _record_training(self, partition: str, task: str, result: dict[str, Any]) -> None:
        write_json_atomic(self.dirs.run(partition, task) / "summary.json", result)
        self.timings[f"train {partition}-{task}"] = round(float(result.get("seconds", 0.0)), 2)

    def analyse(self, partition: str, task: str) -> None:
        self.analysis.analyse(partition, task)

    def probes(self) -> None:
        """Tracking failure over the whole corpus; counterfactual regions and signer identity
        with the control partition's SLT model (the task whose text depends on the NMMs)."""
        self.analysis.tracking()
        if self._probed_run is not None:
            self.analysis.model_probes(*self._probed_run)

    def report(self) -> Path:
        from nmmfast.report import build_report

        began = time.perf_counter()
        path = build_report(self.dirs.root)
        self.timings["report"] = round(time.perf_counter() - began, 2)
        self._write_record()
        return path

    def run_all(self) -> Path:
        for step in (self.corpus, self.partitions, self.models_and_analysis):
            step()
        return self.report()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="nmm-study", help="study directory (default: nmm-study)")
    parser.add_argument("--quick", action="store_true", help="a smaller study for CI (about 2 min)")
    parser.add_argument("--seed", type=int, default=0, help="seed of corpus, splits and training")
    parser.add_argument(
        "--cslr-epochs", type=int, help="CSLR training epochs (default 5; --quick: 2)"
    )
    parser.add_argument(
        "--slt-epochs",
        type=int,
        help="SLT training epochs, after the CSLR model it starts from (default 5; --quick: 1)",
    )
    from nmmfast.attribution.job import add_setting_arguments

    add_setting_arguments(parser)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also attribute the control SLT model with the other stop-gradient setting and "
        "under the other baselines (about a minute more; --quick always does)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="models trained side by side (default: one per CPU core)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the tiny models gain nothing from more, "
        "and extra threads contend on small machines)",
    )


def run_cli(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    settings = DemoSettings.quick(args.seed) if args.quick else DemoSettings(seed=args.seed)
    epochs = {"cslr_epochs": args.cslr_epochs, "slt_epochs": args.slt_epochs}
    epochs = {key: value for key, value in epochs.items() if value is not None}
    if any(value < 1 for value in epochs.values()):
        raise SystemExit("nmmfast demo: --cslr-epochs and --slt-epochs must be >= 1")
    settings = replace(
        settings,
        **epochs,
        stop_gradients=args.stop_gradients,
        baseline=args.baseline,
        channels=args.channels,
        compare=settings.compare or args.compare,
    )
    began = time.perf_counter()
    study = Study(args.out, settings, progress=not args.no_progress, workers=args.workers)
    report = study.run_all()
    print(f"study finished in {time.perf_counter() - began:.0f} s")
    print(summary_text(study.dirs, report))
    return 0


def summary_text(dirs: StudyDir, report: Path) -> str:
    """Where to look, with the headline numbers."""
    lines = [f"report:      {report}"]
    for partition in PARTITIONS:
        parts = []
        for task, key, label in (("cslr", "wer", "CSLR WER"), ("slt", "bleu4", "SLT BLEU-4")):
            path = dirs.metrics(partition, task)
            if path.is_file():
                scores = read_json(path)["scores"]
                parts.append(f"{label} {scores[key]:.1f}")
                if scores.get("question_marking") is not None:
                    parts.append(f"questions marked right {100 * scores['question_marking']:.1f}%")
            shares = dirs.attribution(partition, task) / "summary.json"
            if shares.is_file():
                region = read_json(shares)["region_shares"]
                parts.append(
                    f"{task.upper()} shares "
                    + " / ".join(f"{name} {value:.0f}%" for name, value in region.items())
                )
        if parts:
            lines.append(f"{partition + ':':<12} " + ", ".join(parts))
    lines.append(f"metrics:     {dirs.root / 'metrics'}")
    lines.append(f"attribution: {dirs.root / 'attribution'}")
    lines.append(f"probes:      {dirs.root / 'probes'}")
    return "\n".join(lines)
