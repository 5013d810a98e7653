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
    # the most epochs the 10-minute budget of the whole study allows (the study's section of
    # benchmarks/RESULTS.md has what other budgets gave)
    slt_epochs: int = 5
    dev_epochs: int = 1  # only the last epochs are decoded on dev to pick the best one
    batch_size: int = 8
    lr: float = 1e-3
    # not Uni-Sign's 0.2: it slows the tiny models down, and 5 epochs leave no room for that
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
    # baselines, for the report's side-by-side tables: opt-in, since the default study has to
    # fit in 10 minutes (`--quick` always does it, so every stage is exercised)
    compare: bool = False
    # the skeleton layouts compared: the first is the study's; each other one trains the control
    # CSLR and SLT models again on it, and the control SLT models of all are compared on question
    # marking, counterfactual flips and face / eyebrow shares (`nmmfast.probes.layout_ablation`)
    layouts: tuple[str, ...] = ("unisign69",)

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
            layouts=("unisign69", "nmm87"),
        )

    @property
    def ablation(self) -> tuple[str, str] | None:
        """The (partition, task) the layout ablation retrains and compares, when it runs."""
        return ABLATION_PAIR if len(self.layouts) > 1 else None


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
ABLATION_PAIR = ("control", "slt")  # the model whose text depends on the NMMs
# settings that only add outputs: a rerun with them changed adds what is missing
ADDITIVE_SETTINGS = ("compare", "layouts")


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
        from nmmfast.skeleton import get_layout

        layouts = self.settings.layouts
        if not layouts or len(set(layouts)) != len(layouts):
            raise ValueError(f"demo: layouts must be distinct names, got {list(layouts)}")
        for name in layouts:
            get_layout(name)
        if len(layouts) > 1 and not (
            ABLATION_PAIR[0] in self.settings.partitions and ABLATION_PAIR[1] in self.settings.tasks
        ):
            raise ValueError("demo: the layout ablation needs the control partition's SLT model")
        if not self.dirs.record.is_file():
            return
        previous = read_json(self.dirs.record).get("settings", {})
        current = json.loads(json.dumps(asdict(self.settings)))
        # A setting an older record lacks reads as None, which matches only a None setting;
        # settings that only add outputs may change, except the study's own layout (records
        # from before `layouts` existed were all made with unisign69).
        primary = (previous.get("layouts") or ["unisign69"])[0] if previous else layouts[0]
        changed = sorted(
            k
            for k in current
            if previous and k not in ADDITIVE_SETTINGS and previous.get(k) != current[k]
        )
        if primary != layouts[0]:
            changed.append("layouts (the first, the study's own)")
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
        # the outputs of additive settings stay in the directory, so the record keeps them
        settings = asdict(self.settings)
        before = previous.get("settings") or {}
        settings["compare"] = settings["compare"] or bool(before.get("compare"))
        settings["layouts"] = [
            *settings["layouts"],
            *(name for name in before.get("layouts") or () if name not in settings["layouts"]),
        ]
        write_json_atomic(
            self.dirs.record,
            {
                "produced_by": "nmmfast demo",
                "nmmfast": nmmfast.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "machine": platform.platform(),
                "settings": settings,
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
        s = self.settings
        jobs: list[tuple] = [
            ("train", p, t, None) for t in ("cslr", "slt") for p in s.partitions if t in s.tasks
        ]
        jobs.append(("probes",))
        jobs += [("analyse", p, t, None) for p in s.partitions for t in s.tasks]
        if s.ablation is not None:
            partition, task = s.ablation
            for layout in s.layouts[1:]:
                jobs += [("train", partition, "cslr", layout), ("train", partition, task, layout)]
                jobs.append(("analyse", partition, task, layout))
            jobs += [("layout-probe", layout) for layout in s.layouts]
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
                        self._record_training(job[1], job[2], job[3], result)
                    else:
                        self.timings.update(result)
                    self._write_record()
                    bar.update()
        bar.close()
        self.timings["models and analysis (wall)"] = round(time.perf_counter() - began, 2)
        self._write_record()

    @staticmethod
    def _job_name(job: tuple) -> str:
        if job[0] == "layout-probe":
            return f"counterfactual @{job[1]}"
        if len(job) == 1:
            return job[0]
        return f"{job[0]} {job[1]}-{job[2]}" + (f" @{job[3]}" if job[3] else "")

    def _job_done(self, job: tuple) -> bool:
        if job[0] == "train":
            return self._trained(job[1], job[2], job[3])
        if job[0] == "analyse":
            return self._analysis(job[3]).done(job[1], job[2])
        if job[0] == "layout-probe":
            return self._layout_probe_path(job[1]).is_file()
        outputs = [self.dirs.probe("tracking")]
        if self._probed_run is not None:
            outputs += [self.dirs.probe(kind, *self._probed_run) for kind in PROBE_KINDS]
        return all(path.is_file() for path in outputs)

    def _job_ready(self, job: tuple) -> bool:
        if job[0] == "train":
            return self._ready(job[1], job[2], job[3])
        if job[0] == "probes":
            return self._probed_run is None or self._trained(*self._probed_run)
        if job[0] == "layout-probe":
            return self._trained(*ABLATION_PAIR, self._arm(job[1]))
        return self._trained(job[1], job[2], job[3])

    @property
    def _probed_run(self) -> tuple[str, str] | None:
        """The model the counterfactual and identity probes use: control SLT, the task whose text
        depends on the NMMs (None when the study has no such model)."""
        if "control" in self.settings.partitions and "slt" in self.settings.tasks:
            return "control", "slt"
        return None

    def _job_spec(self, job: tuple) -> tuple:
        if job[0] == "train":
            return ("train", self._train_spec(job[1], job[2], job[3]))
        stages = [("probes", ())]
        if job[0] == "analyse":
            stages = [("analyse", job[1:])]
        elif job[0] == "layout-probe":
            stages = [("layout_probe", job[1:])]
        return ("analyse", (str(self.dirs.root), self.settings, stages))

    # --- the layout ablation's arms -------------------------------------------------------------

    def _arm(self, layout: str) -> str | None:
        """The arm of `layout`: None for the study's own layout, else the layout's name."""
        return None if layout == self.settings.layouts[0] else layout

    def _dirs(self, arm: str | None) -> StudyDir:
        """Where an arm's runs and results live: the study itself for its own layout,
        `<root>/layouts/<layout>/` for another."""
        return self.dirs if arm is None else StudyDir.at(self.dirs.root / "layouts" / arm)

    def _analysis(self, arm: str | None) -> Analysis:
        if arm is None:
            return self.analysis
        dirs = self._dirs(arm)
        settings = replace(
            self.settings.analysis(), compare_stop_gradients=False, compare_baselines=False
        )

        def stage(name: str, done: Callable[[], bool], run: Callable[[], Any]) -> None:
            self._stage(f"{name} @{arm}", done, run)

        runs = {ABLATION_PAIR: dirs.run(*ABLATION_PAIR)}
        return Analysis(dirs, self.dirs.corpus, runs, settings, stage, self.progress)

    def _layout_probe_path(self, layout: str) -> Path:
        return StudyDir.at(self.dirs.root / "layouts" / layout).probe(
            "counterfactual", *ABLATION_PAIR
        )

    def _trained(self, partition: str, task: str, arm: str | None = None) -> bool:
        return (self._dirs(arm).run(partition, task) / "summary.json").is_file()

    def _warm_source(self, partition: str, task: str, arm: str | None = None) -> Path | None:
        """The run an SLT model starts from: its partition's CSLR run, when the study has one."""
        if task != "slt" or "cslr" not in self.settings.tasks:
            return None
        return self._dirs(arm).run(partition, "cslr")

    def _ready(self, partition: str, task: str, arm: str | None = None) -> bool:
        source = self._warm_source(partition, task, arm)
        return source is None or self._trained(partition, "cslr", arm)

    def _train_spec(self, partition: str, task: str, arm: str | None = None) -> tuple:
        s = self.settings
        epochs = s.slt_epochs if task == "slt" else s.cslr_epochs
        source = self._warm_source(partition, task, arm)
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
            "layout": arm or s.layouts[0],
        }
        return (
            str(self.dirs.corpus),
            partition,
            task,
            str(self._dirs(arm).run(partition, task)),
            options,
        )

    def _record_training(
        self, partition: str, task: str, arm: str | None, result: dict[str, Any]
    ) -> None:
        write_json_atomic(self._dirs(arm).run(partition, task) / "summary.json", result)
        name = f"train {partition}-{task}" + (f" @{arm}" if arm else "")
        self.timings[name] = round(float(result.get("seconds", 0.0)), 2)

    def analyse(self, partition: str, task: str, arm: str | None = None) -> None:
        self._analysis(arm).analyse(partition, task)

    def layout_probe(self, layout: str) -> None:
        """The counterfactual probe of the ablation: `FLIP_REGIONS` neutralised in every clip of
        the split, with the control SLT model trained on `layout`."""
        from nmmfast.data.partitions import load_partition
        from nmmfast.probes.cli import write_json
        from nmmfast.probes.counterfactual import counterfactual_probe
        from nmmfast.probes.layout_ablation import FLIP_REGIONS

        out = self._layout_probe_path(layout)
        s = self.settings.analysis()

        def run() -> None:
            ids = load_partition(self.dirs.corpus, ABLATION_PAIR[0])[s.split]
            result = counterfactual_probe(
                self._analysis(self._arm(layout)).model(*ABLATION_PAIR),
                self.dirs.corpus,
                ids,
                task=ABLATION_PAIR[1],
                regions=("none", *FLIP_REGIONS),
                num_beams=s.beam,
                max_new_tokens=s.max_new_tokens,
                progress=self.progress,
            )
            write_json(result, out)

        self._stage(f"probe counterfactual @{layout}", out.is_file, run)

    def layout_comparison(self) -> None:
        """The arms of the layout ablation side by side (`probes/layouts-control-slt.json`)."""
        from nmmfast.probes.cli import write_json
        from nmmfast.probes.layout_ablation import PROBE_NAME, LayoutArm, compare_layouts

        s = self.settings
        if s.ablation is None:
            return
        out = self.dirs.probe(PROBE_NAME, *ABLATION_PAIR)

        def done() -> bool:
            if not out.is_file():
                return False
            return [row["layout"] for row in read_json(out)["layouts"]] == list(s.layouts)

        def run() -> None:
            arms = []
            for layout in s.layouts:
                dirs = self._dirs(self._arm(layout))
                arms.append(
                    LayoutArm(
                        layout=layout,
                        predictions=dirs.predictions(*ABLATION_PAIR),
                        counterfactual=self._layout_probe_path(layout),
                        attribution=dirs.attribution(*ABLATION_PAIR),
                    )
                )
            pair = "-".join(ABLATION_PAIR)
            result = compare_layouts(
                arms, pair=pair, task=ABLATION_PAIR[1], channels=s.channels, seed=s.seed
            )
            write_json(result, out)

        self._stage("layout comparison", done, run)

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
        steps = (self.corpus, self.partitions, self.models_and_analysis, self.layout_comparison)
        for step in steps:
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
    parser.add_argument(
        "--layouts",
        type=_layout_list,
        help="comma-separated skeleton layouts, e.g. unisign69,nmm87: the first is the study's "
        "(default unisign69); each other one trains the control CSLR and SLT models again on "
        "it, and the report compares question marking, counterfactual flips and face / eyebrow "
        "shares (about 4 minutes more per layout; --quick: unisign69,nmm87)",
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


def _layout_list(text: str) -> tuple[str, ...]:
    from nmmfast.skeleton import available_layouts

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in available_layouts()]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct layouts from {', '.join(available_layouts())}, got {text!r}"
        )
    return names


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
        layouts=args.layouts or settings.layouts,
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
