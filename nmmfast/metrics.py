"""The study's scores for decoded predictions, per task: WER (jiwer, and Uni-Sign's 3/3/4-cost
variant), BLEU-1…4 (sacrebleu, 13a), exact match, previously-seen rate, unigram overlap and F1,
and question marking (whether a translation is a question exactly when its reference is).
Each report carries a signature of the settings that move its numbers; `format_table2` lays
reports out as the reference study's Table 2 (Markdown or CSV).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "METRIC_NAMES",
    "PARTITION_LABELS",
    "TASKS",
    "UNISIGN_WER_COSTS",
    "EditCounts",
    "Metric",
    "MetricScore",
    "ScoreReport",
    "compute_scores",
    "format_table2",
    "is_question",
    "normalize_text",
    "score",
    "unisign_edit_counts",
    "unisign_wer",
]

TASKS = ("cslr", "slt")

# Uni-Sign's SLRT_metrics.py: deletion 3, insertion 3, substitution 4.
UNISIGN_WER_COSTS: Mapping[str, int] = {"deletion": 3, "insertion": 3, "substitution": 4}

# The reference study's partitions, in its Table 2 order.
PARTITION_LABELS: Mapping[str, str] = {
    "control": "Control",
    "si": "Signer-independent",
    "us": "Unseen sentences",
}

_BLEU_TOKENIZER = "13a"
_BLEU_SMOOTHING = "exp"


def normalize_text(text: str, *, lowercase: bool = False) -> str:
    """The one normalisation every metric sees: strip, and collapse runs of whitespace to one space.

    Whitespace is any Unicode whitespace (`str.split()`). Case is kept unless `lowercase=True`. No
    punctuation removal, Unicode normalisation or gloss rewriting is applied.
    """
    collapsed = " ".join(text.split())
    return collapsed.lower() if lowercase else collapsed


@dataclass(frozen=True)
class _Corpus:
    """Validated, normalised inputs shared by all metrics (one entry per sample, same order)."""

    hypotheses: tuple[str, ...]
    references: tuple[str, ...]
    hypothesis_words: tuple[tuple[str, ...], ...]
    reference_words: tuple[tuple[str, ...], ...]
    train_targets: frozenset[str] | None

    @property
    def n(self) -> int:
        return len(self.hypotheses)


@dataclass(frozen=True)
class MetricScore:
    """One number with what is needed to print it: its name, its scale and its direction."""

    name: str
    value: float | None
    percent: bool  # True: 0-100 (or above, for WER); False: a share in 0-1
    higher_is_better: bool | None  # None: a diagnostic with no better direction

    def format(self) -> str:
        if self.value is None:
            return f"{self.name} = n/a"
        if self.percent:
            return f"{self.name} = {self.value:.2f}"
        return f"{self.name} = {self.value:.4f} ({100 * self.value:.2f} %)"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "scale": "0-100" if self.percent else "0-1",
            "higher_is_better": self.higher_is_better,
        }

    def __str__(self) -> str:
        return self.format()


class Metric(ABC):
    """Template for a corpus-level metric: `__call__` computes the value, wraps it in a MetricScore.

    A subclass sets `name`, `percent` and `higher_is_better`, implements `_compute`, and lists what
    moves its number in `signature_fields`.
    """

    name: str
    percent: bool
    higher_is_better: bool | None

    def __call__(self, corpus: _Corpus) -> MetricScore:
        return MetricScore(self.name, self._compute(corpus), self.percent, self.higher_is_better)

    @abstractmethod
    def _compute(self, corpus: _Corpus) -> float | None: ...

    def signature_fields(self) -> dict[str, str]:
        return {}


class WordErrorRate(Metric):
    """Corpus WER in %: (S + D + I) / Σ reference words × 100, unit costs, via jiwer."""

    name = "wer"
    percent = True
    higher_is_better = False

    def _compute(self, corpus: _Corpus) -> float:
        import jiwer

        _require_reference_words(corpus, self.name)
        # The strings are already normalised, so jiwer's default transform changes nothing.
        return 100.0 * float(jiwer.wer(list(corpus.references), list(corpus.hypotheses)))

    def signature_fields(self) -> dict[str, str]:
        return {"wer": f"jiwer-{_version('jiwer')}"}


@dataclass(frozen=True)
class EditCounts:
    """Operations on the backtraced alignment of one or more sentence pairs."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def unisign_edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """S/D/I of Uni-Sign's weighted alignment of two word sequences.

    The alignment minimises 3·D + 3·I + 4·S (a matching word costs 0 and is always taken on the
    diagonal). The counts come from one backtrace from the end that prefers, at each cell: match,
    then substitution, then insertion, then deletion. Ties between equally cheap alignments are
    therefore resolved the way Uni-Sign resolves them, which fixes the counts. Unlike Uni-Sign's
    8-bit cost matrix, costs here are exact integers, so long sentences do not overflow.
    """
    cost_del = UNISIGN_WER_COSTS["deletion"]
    cost_ins = UNISIGN_WER_COSTS["insertion"]
    cost_sub = UNISIGN_WER_COSTS["substitution"]
    n_ref, n_hyp = len(reference), len(hypothesis)
    # cost[i][j]: cheapest alignment of reference[:i] with hypothesis[:j]
    cost = [[0] * (n_hyp + 1) for _ in range(n_ref + 1)]
    for j in range(n_hyp + 1):
        cost[0][j] = j * cost_ins
    for i in range(1, n_ref + 1):
        cost[i][0] = i * cost_del
        for j in range(1, n_hyp + 1):
            if reference[i - 1] == hypothesis[j - 1]:
                cost[i][j] = cost[i - 1][j - 1]
            else:
                cost[i][j] = min(
                    cost[i - 1][j - 1] + cost_sub,
                    cost[i][j - 1] + cost_ins,
                    cost[i - 1][j] + cost_del,
                )
    subs = dels = ins = 0
    i, j = n_ref, n_hyp
    while i > 0 or j > 0:
        diagonal_ok = i > 0 and j > 0
        same_word = diagonal_ok and reference[i - 1] == hypothesis[j - 1]
        if same_word and cost[i][j] == cost[i - 1][j - 1]:
            i, j = i - 1, j - 1
        elif diagonal_ok and cost[i][j] == cost[i - 1][j - 1] + cost_sub:
            subs += 1
            i, j = i - 1, j - 1
        elif j > 0 and cost[i][j] == cost[i][j - 1] + cost_ins:
            ins += 1
            j -= 1
        else:
            dels += 1
            i -= 1
    return EditCounts(subs, dels, ins, n_ref)


def unisign_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Uni-Sign's corpus WER in %: Σ(S + D + I) / Σ reference words × 100.

    S, D and I are counted (each as 1) on the 3/3/4-cost alignment of `unisign_edit_counts`; words
    are whitespace-split after stripping, with no other preprocessing. Raises ValueError when the
    references hold no words at all (WER undefined).
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"unisign_wer: got {len(references)} references and {len(hypotheses)} hypotheses"
        )
    total = EditCounts()
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        total = total + unisign_edit_counts(reference.split(), hypothesis.split())
    if total.reference_words == 0:
        raise ValueError(
            f"unisign_wer: WER is undefined, all {len(references)} references are empty"
        )
    return 100.0 * total.errors / total.reference_words


class UniSignWordErrorRate(Metric):
    """Uni-Sign's WER in %, for comparison with numbers produced by its code (see `unisign_wer`)."""

    name = "wer_unisign"
    percent = True
    higher_is_better = False

    def _compute(self, corpus: _Corpus) -> float:
        _require_reference_words(corpus, self.name)
        return unisign_wer(corpus.references, corpus.hypotheses)

    def signature_fields(self) -> dict[str, str]:
        costs = UNISIGN_WER_COSTS
        weights = f"del{costs['deletion']}+ins{costs['insertion']}+sub{costs['substitution']}"
        return {"wer_unisign": weights}


class CorpusBLEU(Metric):
    """Corpus BLEU-n (0-100) via sacrebleu with `max_ngram_order=n`.

    BLEU-n = BP · exp(mean of log p_1 … log p_n): the cumulative score over orders 1..n, not the
    n-gram precision p_n alone. Tokenizer 13a, smoothing 'exp', no effective order, one reference.
    """

    percent = True
    higher_is_better = True

    def __init__(self, order: int) -> None:
        if order not in (1, 2, 3, 4):
            raise ValueError(f"CorpusBLEU: order must be 1..4, got {order}")
        self.order = order
        self.name = f"bleu{order}"

    def _compute(self, corpus: _Corpus) -> float:
        from sacrebleu.metrics import BLEU

        bleu = BLEU(
            tokenize=_BLEU_TOKENIZER,
            smooth_method=_BLEU_SMOOTHING,
            lowercase=False,  # case is handled once, by normalize_text
            effective_order=False,
            max_ngram_order=self.order,
        )
        return float(bleu.corpus_score(list(corpus.hypotheses), [list(corpus.references)]).score)

    def signature_fields(self) -> dict[str, str]:
        return {
            "bleu": f"sacrebleu-{_version('sacrebleu')}+tok.{_BLEU_TOKENIZER}"
            f"+smooth.{_BLEU_SMOOTHING}+eff.no+nrefs.1"
        }


class ExactMatch(Metric):
    """Share (0-1) of predictions identical to their reference after normalisation."""

    name = "exact_match"
    percent = False
    higher_is_better = True

    def _compute(self, corpus: _Corpus) -> float:
        hits = sum(h == r for h, r in zip(corpus.hypotheses, corpus.references, strict=True))
        return hits / corpus.n


class SeenRate(Metric):
    """Share (0-1) of predictions equal to any training target; None without training targets.

    An empty prediction (empty after normalisation, or None) is never seen: it stays in the
    denominator, like every other empty prediction, but recalls nothing. Empty training targets
    are left out of the seen set.

    A diagnostic, not a quality score: a high rate on unseen-sentence test sets means the model
    recalls training sentences instead of composing new ones.
    """

    name = "seen_rate"
    percent = False
    higher_is_better = None

    def _compute(self, corpus: _Corpus) -> float | None:
        if corpus.train_targets is None:
            return None
        return sum(bool(h) and h in corpus.train_targets for h in corpus.hypotheses) / corpus.n


class UnigramOverlap(Metric):
    """Share (0-1) of predictions sharing at least one word with their reference."""

    name = "unigram_overlap"
    percent = False
    higher_is_better = True

    def _compute(self, corpus: _Corpus) -> float:
        pairs = zip(corpus.hypothesis_words, corpus.reference_words, strict=True)
        return sum(bool(set(h) & set(r)) for h, r in pairs) / corpus.n


class UnigramF1(Metric):
    """Mean over samples (0-1) of the unigram F1 = 2·c / (|hyp| + |ref|), c the multiset overlap.

    Both empty counts as 1.0; exactly one empty counts as 0.0.
    """

    name = "unigram_f1"
    percent = False
    higher_is_better = True

    def _compute(self, corpus: _Corpus) -> float:
        total = 0.0
        for h, r in zip(corpus.hypothesis_words, corpus.reference_words, strict=True):
            if not h and not r:
                total += 1.0
                continue
            common = sum((Counter(h) & Counter(r)).values())
            total += 2.0 * common / (len(h) + len(r))
        return total / corpus.n


QUESTION_MARKS = ("?", "？", "؟")  # Latin, full-width (CJK), Arabic


def is_question(text: str) -> bool:
    """Whether a sentence is marked as a question: it ends with a question mark."""
    return text.rstrip().endswith(QUESTION_MARKS)


class QuestionMarking(Metric):
    """Share (0-1) of predictions that are questions exactly when their references are.

    Yes/no questions are carried by non-manual markers (brow raise, head tilt) and leave the
    manual glosses unchanged, so this is how often a translation model reads them. None when no
    reference is a question (gloss targets, or a test set without questions): there is nothing
    to read.
    """

    name = "question_marking"
    percent = False
    higher_is_better = True

    def _compute(self, corpus: _Corpus) -> float | None:
        asked = [is_question(r) for r in corpus.references]
        if not any(asked):
            return None
        hits = sum(is_question(h) == a for h, a in zip(corpus.hypotheses, asked, strict=True))
        return hits / corpus.n

    def signature_fields(self) -> dict[str, str]:
        # code points, not the marks: a signature stays ASCII, legible in any font or terminal
        return {"question": "ends-" + "/".join(f"U+{ord(c):04X}" for c in QUESTION_MARKS)}


def _default_metrics() -> list[Metric]:
    return [
        WordErrorRate(),
        UniSignWordErrorRate(),
        *(CorpusBLEU(order) for order in (1, 2, 3, 4)),
        ExactMatch(),
        SeenRate(),
        UnigramOverlap(),
        UnigramF1(),
        QuestionMarking(),
    ]


METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in _default_metrics())


@dataclass(frozen=True)
class ScoreReport:
    """All scores of one task on one set of predictions, with the signature that produced them."""

    task: str
    n: int
    scores: tuple[MetricScore, ...]
    signature: str
    n_empty_predictions: int = 0

    def __getitem__(self, name: str) -> float | None:
        for metric_score in self.scores:
            if metric_score.name == name:
                return metric_score.value
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready: metric name → value, plus `n`, `n_empty_predictions`, `signature`."""
        out: dict[str, Any] = {s.name: s.value for s in self.scores}
        out["n"] = self.n
        out["n_empty_predictions"] = self.n_empty_predictions
        out["signature"] = self.signature
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False)

    def format_text(self) -> str:
        lines = [f"{self.task.upper()}  n = {self.n}"]
        if self.n_empty_predictions:
            lines[0] += f"  (empty predictions: {self.n_empty_predictions})"
        lines += [f"  {s.format()}" for s in self.scores]
        lines.append(f"  signature: {self.signature}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_text()


def compute_scores(
    hypotheses: Sequence[str | None],
    references: Sequence[str],
    *,
    task: str,
    train_targets: Iterable[str] | None = None,
    lowercase: bool = False,
    settings: Mapping[str, object] | None = None,
) -> ScoreReport:
    """Score `hypotheses` against `references` (paired by position); see `score` for conventions."""
    if task not in TASKS:
        raise ValueError(f"compute_scores: task must be one of {TASKS}, got {task!r}")
    hyps_raw = _as_text_list(hypotheses, "hypotheses")
    refs_raw = _as_text_list(references, "references")
    if len(hyps_raw) != len(refs_raw):
        raise ValueError(
            f"compute_scores: got {len(hyps_raw)} hypotheses and {len(refs_raw)} references; "
            "they must pair one to one"
        )
    if not hyps_raw:
        raise ValueError("compute_scores: nothing to score (0 hypotheses and 0 references)")
    for index, ref in enumerate(refs_raw):
        if ref is None:
            raise ValueError(f"compute_scores: references[{index}] is None; every sample needs one")
    hyps = tuple(normalize_text(h or "", lowercase=lowercase) for h in hyps_raw)
    refs = tuple(normalize_text(r, lowercase=lowercase) for r in refs_raw)  # type: ignore[arg-type]
    targets: frozenset[str] | None = None
    if train_targets is not None:
        target_list = _as_text_list(train_targets, "train_targets")
        for index, target in enumerate(target_list):
            if target is None:
                raise ValueError(f"compute_scores: train_targets[{index}] is None")
        normalized = (normalize_text(t, lowercase=lowercase) for t in target_list)  # type: ignore[arg-type]
        targets = frozenset(t for t in normalized if t)  # an empty target is never a match
    corpus = _Corpus(
        hypotheses=hyps,
        references=refs,
        hypothesis_words=tuple(tuple(h.split()) for h in hyps),
        reference_words=tuple(tuple(r.split()) for r in refs),
        train_targets=targets,
    )
    metrics = _default_metrics()
    return ScoreReport(
        task=task,
        n=corpus.n,
        scores=tuple(metric(corpus) for metric in metrics),
        signature=_signature(task, lowercase, metrics, settings),
        n_empty_predictions=sum(not h for h in hyps),
    )


def score(
    hypotheses: Sequence[str | None],
    references: Sequence[str],
    *,
    task: str,
    train_targets: Iterable[str] | None = None,
    lowercase: bool = False,
    settings: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """Every metric of the study for one task, as a flat JSON-ready dict.

    Args:
        hypotheses: [N] decoded strings. None (a failed decode) counts as an empty prediction, so it
            is penalised rather than dropped; `n_empty_predictions` counts empty ones.
        references: [N] reference strings, paired by position. None is an error.
        task: "cslr" (gloss targets; `wer` is the headline) or "slt" (sentences; `bleu4` is).
        train_targets: the training set's targets for this task; enables `seen_rate`. Empty
            targets are ignored, and an empty prediction never counts as seen.
        lowercase: lower-case every string before scoring (default: case kept).
        settings: what else moved the numbers, e.g. {"partition": "control", "beam": 4,
            "checkpoint": "<sha256 prefix>"}; appended to the signature in the order given
            (None values are left out).

    Every string is normalised by `normalize_text` (strip, collapse whitespace) before scoring;
    words are whitespace-separated tokens of the result (WER, unigram metrics); BLEU tokenises
    with 13a on the same strings.

    Returns:
        `wer`, `wer_unisign` (%, may exceed 100), `bleu1`…`bleu4` (0-100, cumulative: BLEU with
        max n-gram order n), `exact_match`, `seen_rate` (None without train_targets),
        `unigram_overlap`, `unigram_f1`, `question_marking` (0-1; None when no reference is a
        question), `n`, `n_empty_predictions`, `signature`.

    Raises:
        ValueError: lengths differ (both are named), nothing to score, a None reference, an
            unknown task, or no reference word at all (WER undefined). Single empty references
            are allowed: their insertions count in the numerator and they add 0 to the
            denominator.
        TypeError: a bare string or non-string entries where lists of strings are expected.
    """
    return compute_scores(
        hypotheses,
        references,
        task=task,
        train_targets=train_targets,
        lowercase=lowercase,
        settings=settings,
    ).as_dict()


def format_table2(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    fmt: str = "markdown",
    wide: bool = False,
    wer_key: str = "wer",
) -> str:
    """The reference study's Table 2: one row per partition, CSLR WER and SLT BLEU-4 columns.

    Args:
        results: partition → task ("cslr"/"slt") → the dict returned by `score` (or its
            `ScoreReport`). Partitions `control`, `si`, `us` come first, in that order, labelled
            "Control", "Signer-independent", "Unseen sentences"; others follow as given.
        fmt: "markdown" (values in %, 2 decimals; the signatures listed below the table) or "csv"
            (machine names as headers, raw values: WER/BLEU 0-100, shares 0-1).
        wide: every metric of every task, plus `n`, instead of the two headline columns.
        wer_key: "wer" (jiwer) or "wer_unisign" for the headline WER column.
    """
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"format_table2: fmt must be 'markdown' or 'csv', got {fmt!r}")
    if wer_key not in ("wer", "wer_unisign"):
        raise ValueError(f"format_table2: wer_key must be 'wer' or 'wer_unisign', got {wer_key!r}")
    partitions = [p for p in PARTITION_LABELS if p in results]
    partitions += [p for p in results if p not in PARTITION_LABELS]
    if wide:
        columns = [(task, name) for task in TASKS for name in (*METRIC_NAMES, "n")]
    else:
        columns = [("cslr", wer_key), ("slt", "bleu4")]
    rows: list[tuple[str, list[Any]]] = []
    for partition in partitions:
        by_task = {task: _score_dict(value) for task, value in results[partition].items()}
        unknown = set(by_task) - set(TASKS)
        if unknown:
            raise ValueError(
                f"format_table2: partition {partition!r} has unknown task(s) {sorted(unknown)}"
            )
        rows.append((partition, [by_task.get(task, {}).get(name) for task, name in columns]))

    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["partition", *(f"{task}_{name}" for task, name in columns)])
        for partition, values in rows:
            writer.writerow([partition, *("" if v is None else _csv_number(v) for v in values)])
        return buffer.getvalue()

    header = ["Partition", *(_column_title(task, name) for task, name in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * len(columns),
    ]
    for partition, values in rows:
        cells = [PARTITION_LABELS.get(partition, partition)]
        cells += [_markdown_number(name, v) for (_, name), v in zip(columns, values, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    signatures = [
        f"- {PARTITION_LABELS.get(p, p)}, {task.upper()}: `{_score_dict(v).get('signature', '')}`"
        for p in partitions
        for task in TASKS
        if (v := results[p].get(task)) is not None
    ]
    if signatures:
        lines += ["", "Signatures:", *signatures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# helpers


_PERCENT_METRICS = frozenset(m.name for m in _default_metrics() if m.percent)
_DIRECTION_ARROWS = {True: " ↑", False: " ↓", None: ""}
_DIRECTIONS = {m.name: m.higher_is_better for m in _default_metrics()}
_TITLES = {
    "wer": "WER",
    "wer_unisign": "WER (Uni-Sign)",
    "exact_match": "exact match",
    "seen_rate": "seen rate",
    "unigram_overlap": "unigram overlap",
    "unigram_f1": "unigram F1",
    "question_marking": "question marking",
    "n": "n",
}


def _column_title(task: str, name: str) -> str:
    title = _TITLES.get(name) or f"BLEU-{name[-1]}"
    if name == "n":
        return f"{task.upper()} n"
    return f"{task.upper()} {title} (%){_DIRECTION_ARROWS[_DIRECTIONS[name]]}"


def _markdown_number(name: str, value: Any) -> str:
    if value is None:
        return "–"
    if name == "n":
        return str(int(value))
    shown = float(value) if name in _PERCENT_METRICS else 100.0 * float(value)
    return f"{shown:.2f}"


def _csv_number(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.6g}" if math.isfinite(float(value)) else str(value)


def _score_dict(value: Mapping[str, Any] | ScoreReport) -> Mapping[str, Any]:
    return value.as_dict() if isinstance(value, ScoreReport) else value


def _as_text_list(values: Iterable[str | None], what: str) -> list[str | None]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"compute_scores: {what} must be a list of strings, got a single string")
    items = list(values)
    for index, item in enumerate(items):
        if item is not None and not isinstance(item, str):
            raise TypeError(
                f"compute_scores: {what}[{index}] must be a string, got {type(item).__name__}"
            )
    return items


def _require_reference_words(corpus: _Corpus, metric: str) -> None:
    if not any(corpus.reference_words):
        raise ValueError(
            f"{metric}: WER is undefined, all {corpus.n} references are empty after normalisation"
        )


@cache
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


@cache
def _nmmfast_version() -> str:
    """This package's version: `nmmfast.__version__` (the compiled core's), else the installed
    distribution's, else `version` in the source checkout's pyproject.toml, else "unknown"."""
    try:
        from nmmfast import __version__

        if isinstance(__version__, str) and __version__:
            return __version__
    except (ImportError, AttributeError, KeyError):  # no compiled core (a source-only checkout)
        pass
    installed = _version("nmmfast")
    if installed != "unknown":
        return installed
    return _pyproject_version(Path(__file__).resolve().parent.parent / "pyproject.toml")


def _pyproject_version(path: Path) -> str:
    """`[project] version` of the pyproject.toml at `path` if it is nmmfast's; else "unknown"."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    try:
        import tomllib
    except ImportError:  # Python 3.10: read the two keys of the [project] table by hand
        project = _project_table_by_hand(text)
    else:
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError:
            return "unknown"
    if not isinstance(project, dict) or project.get("name") != "nmmfast":
        return "unknown"
    version = project.get("version")
    return version if isinstance(version, str) and version else "unknown"


def _project_table_by_hand(text: str) -> dict[str, str]:
    project: dict[str, str] = {}
    in_project = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_project = stripped == "[project]"
            continue
        match = re.fullmatch(r'(name|version)\s*=\s*"([^"]*)"\s*(#.*)?', stripped)
        if in_project and match:
            project[match.group(1)] = match.group(2)
    return project


def _signature(
    task: str, lowercase: bool, metrics: Sequence[Metric], settings: Mapping[str, object] | None
) -> str:
    fields: dict[str, str] = {
        "task": task,
        "norm": "strip+collapse-ws",
        "case": "lc" if lowercase else "mixed",
        "words": "whitespace",
    }
    for metric in metrics:
        fields.update(metric.signature_fields())
    fields["nmmfast"] = _nmmfast_version()
    for key, value in (settings or {}).items():
        if value is None:
            continue
        text = str(value)
        if not key or any(c in key for c in "|:") or "|" in text:
            raise ValueError(
                f"compute_scores: settings[{key!r}] = {text!r}: keys must be non-empty without "
                "'|' or ':', and values without '|'"
            )
        if key in fields:
            raise ValueError(f"compute_scores: settings key {key!r} clashes with a built-in field")
        fields[key] = text
    return "|".join(f"{key}:{value}" for key, value in fields.items())
