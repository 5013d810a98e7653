"""Tests for nmmfast.metrics and `nmmfast evaluate`: hand-computed values, agreement with jiwer and
sacrebleu called directly, Uni-Sign's weighted WER, edge cases, Table 2 layout and the CLI."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import random
import re
from pathlib import Path

import jiwer
import pytest
from sacrebleu.metrics import BLEU

from nmmfast import metrics
from nmmfast.cli import main as cli_main
from nmmfast.metrics import (
    METRIC_NAMES,
    Metric,
    compute_scores,
    format_table2,
    normalize_text,
    score,
    unisign_edit_counts,
    unisign_wer,
)


def _words(rng: random.Random, vocabulary: str, low: int, high: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high)))


def _random_corpus(seed: int, n: int = 40) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    references = [_words(rng, "abcdefg", 1, 8) for _ in range(n)]
    hypotheses = [_words(rng, "abcdefgh", 0, 9) for _ in range(n)]
    return hypotheses, references


# ---------------------------------------------------------------------------------------------
# WER (jiwer)


def test_wer_hand_computed():
    # "a b c d" -> "a x c": b->x substituted, d deleted: 2 errors; "e f" -> "e f g": 1 insertion.
    # (2 + 1) / (4 + 2) reference words = 50 %.
    result = score(["a x c", "e f g"], ["a b c d", "e f"], task="cslr")
    assert result["wer"] == pytest.approx(50.0)
    assert result["wer_unisign"] == pytest.approx(50.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wer_agrees_with_jiwer(seed):
    hypotheses, references = _random_corpus(seed)
    expected = 100.0 * jiwer.wer(references, [h for h in hypotheses])
    assert score(hypotheses, references, task="cslr")["wer"] == pytest.approx(expected, abs=1e-9)


def test_wer_counts_a_single_empty_reference_as_insertions():
    # "" <- "x": 1 insertion, 0 reference words; "a b" exact: 0 of 2. 1 / 2 = 50 %.
    result = score(["x", "a b"], ["", "a b"], task="cslr")
    assert result["wer"] == pytest.approx(50.0)
    assert result["wer_unisign"] == pytest.approx(50.0)
    assert result["wer"] == pytest.approx(100.0 * jiwer.wer(["", "a b"], ["x", "a b"]))


# ---------------------------------------------------------------------------------------------
# Uni-Sign's weighted WER (deletion 3, insertion 3, substitution 4)


def test_unisign_costs_are_deletion_3_insertion_3_substitution_4():
    assert dict(metrics.UNISIGN_WER_COSTS) == {"deletion": 3, "insertion": 3, "substitution": 4}


@pytest.mark.parametrize(
    ("reference", "hypothesis", "counts", "unit_cost_errors"),
    [
        # match, substitution, deletion: S(b->x) D(d).
        ("a b c d", "a x c", (1, 1, 0), 2),
        ("a b", "a b c", (0, 0, 1), 1),
        ("a b c", "", (0, 3, 0), 3),
        ("", "x y", (0, 0, 2), 2),
        # Unit costs: 5 substitutions (5 errors). Weighted: 5 S cost 20, while deleting "p q r",
        # keeping "a b" and inserting "s t u" costs 3*3 + 3*3 = 18, so Uni-Sign counts 6 errors.
        ("p q r a b", "a b s t u", (0, 3, 3), 5),
        # Two alignments cost 12: 3 S, or D p, D q, match a, I s, I t. The backtrace prefers the
        # substitution at the last cell (cost[2][2] = 8 = 12 - 4), so 3 S; an insertion-first
        # backtrace would count 4 errors here.
        ("p q a", "a s t", (3, 0, 0), 3),
        # Two alignments cost 15: 3 S + 1 D (4 errors) and 3 D + keep "b a" + 2 I (5 errors);
        # Uni-Sign's backtrace lands on the second.
        ("c c c b a", "b a a b", (0, 3, 2), 4),
    ],
)
def test_unisign_edit_counts_hand_cases(reference, hypothesis, counts, unit_cost_errors):
    result = unisign_edit_counts(reference.split(), hypothesis.split())
    assert (result.substitutions, result.deletions, result.insertions) == counts
    assert result.reference_words == len(reference.split())
    unit = jiwer.process_words(reference, hypothesis)
    assert unit.substitutions + unit.deletions + unit.insertions == unit_cost_errors


def test_unisign_wer_can_exceed_jiwer_wer():
    # 6 errors over 5 reference words for Uni-Sign, 5 over 5 for jiwer.
    result = score(["a b s t u"], ["p q r a b"], task="cslr")
    assert result["wer_unisign"] == pytest.approx(120.0)
    assert result["wer"] == pytest.approx(100.0)


def test_unisign_wer_corpus_normalisation_is_total_errors_over_total_reference_words():
    # (S+D = 2) + (I = 1) + (D = 3) = 6 errors over 4 + 2 + 3 = 9 reference words; a per-sentence
    # average would give (2/4 + 1/2 + 3/3) / 3 = 66.7 %, a hypothesis-length one 6 / 6.
    references = ["a b c d", "e f", "g h i"]
    hypotheses = ["a x c", "e f g", ""]
    assert unisign_wer(references, hypotheses) == pytest.approx(100.0 * 6 / 9)


def test_unisign_wer_has_no_8_bit_overflow_on_long_sentences():
    # 100 deletions cost 300 and 90 substitutions cost 360: both above 255.
    long_reference = " ".join(f"w{i}" for i in range(100))
    assert unisign_wer([long_reference], [""]) == pytest.approx(100.0)
    other = " ".join(f"v{i}" for i in range(100))
    counts = unisign_edit_counts(long_reference.split(), other.split())
    assert (counts.substitutions, counts.deletions, counts.insertions) == (100, 0, 0)


@functools.cache
def _cheapest_weighted_alignment(reference: tuple[str, ...], hypothesis: tuple[str, ...]) -> int:
    # Plain recursion over the first words: an independent oracle for the cheapest cost.
    if not reference:
        return 3 * len(hypothesis)
    if not hypothesis:
        return 3 * len(reference)
    first = 0 if reference[0] == hypothesis[0] else 4
    return min(
        first + _cheapest_weighted_alignment(reference[1:], hypothesis[1:]),
        3 + _cheapest_weighted_alignment(reference[1:], hypothesis),
        3 + _cheapest_weighted_alignment(reference, hypothesis[1:]),
    )


@pytest.mark.parametrize("seed", range(4))
def test_unisign_counts_describe_a_cheapest_alignment(seed):
    rng = random.Random(seed)
    for _ in range(60):
        reference = tuple(_words(rng, "abc", 0, 6).split())
        hypothesis = tuple(_words(rng, "abc", 0, 6).split())
        counts = unisign_edit_counts(reference, hypothesis)
        cost = 3 * counts.deletions + 3 * counts.insertions + 4 * counts.substitutions
        assert cost == _cheapest_weighted_alignment(reference, hypothesis)
        hits = len(reference) - counts.deletions - counts.substitutions
        assert hits >= 0
        assert len(hypothesis) == hits + counts.substitutions + counts.insertions


def test_unisign_wer_length_mismatch_and_empty_references():
    with pytest.raises(ValueError, match="2 references and 1 hypotheses"):
        unisign_wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="undefined"):
        unisign_wer(["", " "], ["a", "b"])


# ---------------------------------------------------------------------------------------------
# BLEU (sacrebleu)


def test_bleu_hand_computed_is_cumulative_over_orders():
    # "a b c d" vs "a b x d": p1 = 3/4, p2 = 1/3 ("a b"), p3 = 0/2, p4 = 0/1, BP = 1.
    # BLEU-1 = 75; BLEU-2 = sqrt(3/4 * 1/3) = 50. 'exp' smoothing replaces the k-th zero
    # precision by 1 / (2^k * total): p3 = 1/(2*2), p4 = 1/(4*1), so
    # BLEU-3 = (3/4 * 1/3 * 1/4)^(1/3) = 0.0625^(1/3); BLEU-4 = (0.0625 / 4)^(1/4).
    result = score(["a b c d"], ["a b x d"], task="slt")
    assert result["bleu1"] == pytest.approx(75.0)
    assert result["bleu2"] == pytest.approx(50.0)
    assert result["bleu3"] == pytest.approx(100.0 * 0.0625 ** (1 / 3))
    assert result["bleu4"] == pytest.approx(100.0 * 0.015625**0.25)


def test_bleu_brevity_penalty_hand_computed():
    # 3 hypothesis words against 4: BP = exp(1 - 4/3); every precision up to order 3 is 1.
    result = score(["the cat sat"], ["the cat sat down"], task="slt")
    for order in (1, 2, 3):
        assert result[f"bleu{order}"] == pytest.approx(100.0 * math.exp(1 - 4 / 3))


@pytest.mark.parametrize("seed", [0, 1])
def test_bleu_agrees_with_sacrebleu(seed):
    hypotheses, references = _random_corpus(seed)
    hypotheses = [h + " ." for h in hypotheses]  # 13a splits off the full stop
    result = score(hypotheses, references, task="slt")
    for order in (1, 2, 3, 4):
        direct = BLEU(tokenize="13a", max_ngram_order=order).corpus_score(hypotheses, [references])
        assert result[f"bleu{order}"] == pytest.approx(direct.score, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# exact match, seen rate, unigram overlap and F1


def test_share_metrics_hand_computed():
    references = ["a b", "b c", "x y", "a b", "p"]
    hypotheses = ["a b", " b   c d", "z", None, "q"]
    train_targets = ["a b", "b c d", "z z"]
    result = score(hypotheses, references, task="cslr", train_targets=train_targets)
    # normalised hypotheses: "a b", "b c d", "z", "", "q"
    assert result["exact_match"] == pytest.approx(1 / 5)  # only "a b"
    assert result["seen_rate"] == pytest.approx(2 / 5)  # "a b" and "b c d" are training targets
    assert result["unigram_overlap"] == pytest.approx(2 / 5)  # samples 1 and 2 share a word
    # F1 = 2c / (|h| + |r|): 4/4, 4/5, 0, 0 (empty prediction), 0 -> mean 1.8 / 5.
    assert result["unigram_f1"] == pytest.approx(1.8 / 5)
    # WER: 0 + 1 (I d) + 2 (S z, D y) + 2 (D a, D b) + 1 (S p) = 6 over 9 reference words.
    assert result["wer"] == pytest.approx(100.0 * 6 / 9)
    assert result["n"] == 5
    assert result["n_empty_predictions"] == 1


def test_unigram_f1_uses_multiset_overlap():
    # "a b b c" vs "b b d": c = 2 (both b's) -> 2*2 / (4 + 3) = 4/7.
    assert score(["a b b c"], ["b b d"], task="slt")["unigram_f1"] == pytest.approx(4 / 7)
    # "b b b" vs "b": c = 1 -> 2 / 4; a set overlap would give 1.0.
    assert score(["b b b"], ["b"], task="slt")["unigram_f1"] == pytest.approx(0.5)


def test_unigram_f1_both_empty_counts_as_one():
    result = score(["", "a"], ["", "a"], task="cslr")
    assert result["unigram_f1"] == pytest.approx(1.0)
    assert result["exact_match"] == pytest.approx(1.0)
    assert result["unigram_overlap"] == pytest.approx(0.5)  # the empty pair shares no word


def test_question_marking_hand_computed():
    references = ["does he go home ?", "he goes home .", "does she read ?", "she reads ."]
    hypotheses = ["does he go home ?", "does he go home ?", "she reads .", None]
    # right: 1 (question kept) and 4 (statement kept; an empty prediction is no question);
    # wrong: 2 (statement made a question), 3 (question lost)
    result = score(hypotheses, references, task="slt")
    assert result["question_marking"] == pytest.approx(2 / 4)
    assert "question:ends-U+003F/U+FF1F/U+061F" in result["signature"]
    assert result["signature"].isascii()


def test_question_marking_reads_other_scripts_and_trailing_space():
    references = ["هل تذهب؟", "你去吗？", "a ? "]
    assert score(references, references, task="slt")["question_marking"] == pytest.approx(1.0)
    flipped = ["هل تذهب.", "你去吗。", "a ."]
    assert score(flipped, references, task="slt")["question_marking"] == pytest.approx(0.0)


def test_question_marking_is_none_without_questions_to_read():
    assert score(["A B ?"], ["A C"], task="cslr")["question_marking"] is None
    assert score(["he goes ."], ["he goes ."], task="slt")["question_marking"] is None


def test_seen_rate_is_none_without_training_targets():
    assert score(["a"], ["a"], task="slt")["seen_rate"] is None


def test_seen_rate_never_counts_an_empty_prediction_even_with_an_empty_training_target():
    result = score(["", None, "b"], ["a", "a", "b"], task="cslr", train_targets=["", "b"])
    # "" and None are empty predictions (counted, in the denominator), never seen; "b" is seen.
    assert result["seen_rate"] == pytest.approx(1 / 3)
    assert result["n_empty_predictions"] == 2
    # whitespace-only is empty after normalisation, on both sides
    spaced = score([" \t", "b"], ["a", "b"], task="slt", train_targets=["  ", "b"])
    assert spaced["seen_rate"] == pytest.approx(1 / 2)
    assert spaced["n_empty_predictions"] == 1
    # only empty training targets: nothing can be seen, but the rate is defined
    assert score([""], ["a"], task="cslr", train_targets=[""])["seen_rate"] == 0.0


# ---------------------------------------------------------------------------------------------
# normalisation, signature and the template


def test_normalisation_collapses_whitespace_and_keeps_case_unless_asked():
    assert normalize_text("  a\tb \n c ") == "a b c"
    assert normalize_text("Ab C") == "Ab C"
    assert normalize_text("Ab C", lowercase=True) == "ab c"
    assert score(["a\t b"], ["a b"], task="cslr")["exact_match"] == 1.0
    assert score(["A B"], ["a b"], task="cslr")["exact_match"] == 0.0
    lowered = score(["A B"], ["a b"], task="cslr", train_targets=["A b"], lowercase=True)
    assert lowered["exact_match"] == 1.0
    assert lowered["seen_rate"] == 1.0
    assert "case:lc" in lowered["signature"]


def test_signature_names_every_setting():
    result = score(
        ["a"],
        ["a"],
        task="slt",
        settings={"partition": "control", "beam": 4, "checkpoint": "0123abcd4567", "seed": None},
    )
    fields = dict(part.split(":", 1) for part in result["signature"].split("|"))
    assert fields["task"] == "slt"
    assert fields["case"] == "mixed"
    assert fields["norm"] == "strip+collapse-ws"
    assert fields["wer"] == f"jiwer-{metrics._version('jiwer')}"
    assert fields["bleu"].startswith(f"sacrebleu-{metrics._version('sacrebleu')}+tok.13a")
    assert fields["wer_unisign"] == "del3+ins3+sub4"
    assert (fields["partition"], fields["beam"], fields["checkpoint"]) == (
        "control",
        "4",
        "0123abcd4567",
    )
    assert "seed" not in fields


def _checkout_version() -> str:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"  # this repository's
    text = pyproject.read_text(encoding="utf-8")
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)


def test_signature_names_this_checkouts_nmmfast_version():
    signature = score(["a"], ["a"], task="slt")["signature"]
    fields = dict(part.split(":", 1) for part in signature.split("|"))
    assert fields["nmmfast"] != "unknown"
    assert fields["nmmfast"] == _checkout_version()


def test_version_falls_back_to_pyproject_then_unknown(tmp_path, monkeypatch):
    import nmmfast

    def no_core(name):
        raise ImportError("no compiled core")

    monkeypatch.setattr(nmmfast, "__getattr__", no_core)
    monkeypatch.setattr(metrics, "_version", lambda package: "unknown")  # not pip-installed
    # the last resort reads the pyproject.toml next to the package: there in a source checkout,
    # absent where the package was installed into site-packages
    beside = Path(metrics.__file__).resolve().parent.parent / "pyproject.toml"
    metrics._nmmfast_version.cache_clear()
    try:
        expected = _checkout_version() if beside.is_file() else "unknown"
        assert metrics._nmmfast_version() == expected
    finally:
        metrics._nmmfast_version.cache_clear()
    pyproject = tmp_path / "pyproject.toml"
    assert metrics._pyproject_version(pyproject) == "unknown"  # missing
    pyproject.write_text('[project]\nname = "other"\nversion = "9.9"\n', encoding="utf-8")
    assert metrics._pyproject_version(pyproject) == "unknown"  # not nmmfast's
    pyproject.write_text('[tool.x]\nversion = "1"\n[project]\nname = "nmmfast"\n'
                         'version = "2.3.4"  # bumped\n', encoding="utf-8")  # fmt: skip
    assert metrics._pyproject_version(pyproject) == "2.3.4"
    assert metrics._project_table_by_hand(pyproject.read_text(encoding="utf-8")) == {
        "name": "nmmfast",
        "version": "2.3.4",
    }


@pytest.mark.parametrize("settings", [{"partition": "a|b"}, {"task": "slt"}, {"": 1}])
def test_signature_rejects_ambiguous_settings(settings):
    with pytest.raises(ValueError, match="settings"):
        score(["a"], ["a"], task="slt", settings=settings)


def test_every_metric_follows_the_template_and_formats_itself():
    report = compute_scores(["a b", "c"], ["a b", "d"], task="cslr", train_targets=["c"])
    assert [s.name for s in report.scores] == list(METRIC_NAMES)
    assert set(METRIC_NAMES) <= set(report.as_dict())
    for metric in metrics._default_metrics():
        assert isinstance(metric, Metric)
    wer = report.scores[0]
    assert wer.format() == "wer = 33.33"  # 1 substitution over 3 reference words
    share = next(s for s in report.scores if s.name == "exact_match")
    assert share.format() == "exact_match = 0.5000 (50.00 %)"
    assert share.to_json() == {
        "name": "exact_match",
        "value": 0.5,
        "scale": "0-1",
        "higher_is_better": True,
    }
    assert json.loads(report.to_json())["signature"] == report.signature
    text = report.format_text()
    assert text.startswith("CSLR  n = 2") and report.signature in text
    assert report["bleu4"] == report.as_dict()["bleu4"]


# ---------------------------------------------------------------------------------------------
# edge cases


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="3 hypotheses and 2 references"):
        score(["a", "b", "c"], ["a", "b"], task="cslr")


def test_nothing_to_score_is_an_error():
    with pytest.raises(ValueError, match="nothing to score"):
        score([], [], task="slt")


def test_all_empty_references_make_wer_undefined():
    with pytest.raises(ValueError, match="undefined"):
        score(["a", "b"], ["", "  "], task="cslr")


def test_none_reference_is_an_error_naming_the_index():
    with pytest.raises(ValueError, match=r"references\[1\] is None"):
        score(["a", "b"], ["a", None], task="cslr")  # type: ignore[list-item]


def test_bad_types_and_task():
    with pytest.raises(TypeError, match="single string"):
        score("a b", "a b", task="cslr")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"hypotheses\[0\] must be a string"):
        score([3], ["a"], task="cslr")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="task must be one of"):
        score(["a"], ["a"], task="islr")


def test_all_empty_predictions_score_zero_bleu_and_full_wer():
    result = score(["", None], ["a b", "c"], task="slt")
    assert result["wer"] == pytest.approx(100.0)
    assert result["bleu4"] == 0.0
    assert result["n_empty_predictions"] == 2


# ---------------------------------------------------------------------------------------------
# Table 2


def _table_results() -> dict:
    control_cslr = score(["a b c", "d"], ["a b c", "d e"], task="cslr")  # WER 1/5 = 20 %
    control_slt = score(["a b c d"], ["a b x d"], task="slt")  # BLEU-4 35.36 (see above)
    us_cslr = score(["x"], ["a b"], task="cslr")  # S + D: 100 %
    # partitions deliberately out of order; "si" has no SLT result.
    return {
        "us": {"cslr": us_cslr},
        "control": {"cslr": control_cslr, "slt": control_slt},
        "si": {"cslr": compute_scores(["a"], ["a"], task="cslr")},
    }


def test_table2_markdown_layout():
    results = _table_results()
    table = format_table2(results)
    lines = table.splitlines()
    assert lines[:5] == [
        "| Partition | CSLR WER (%) ↓ | SLT BLEU-4 (%) ↑ |",
        "|---|---:|---:|",
        "| Control | 20.00 | 35.36 |",
        "| Signer-independent | 0.00 | – |",
        "| Unseen sentences | 100.00 | – |",
    ]
    assert lines[6] == "Signatures:"
    assert f"- Control, CSLR: `{results['control']['cslr']['signature']}`" in lines


def test_table2_csv_and_wide_variant():
    results = _table_results()
    rows = list(csv.DictReader(io.StringIO(format_table2(results, fmt="csv"))))
    assert [r["partition"] for r in rows] == ["control", "si", "us"]
    assert float(rows[0]["cslr_wer"]) == pytest.approx(20.0)
    assert float(rows[0]["slt_bleu4"]) == pytest.approx(100.0 * 0.015625**0.25, rel=1e-5)
    assert rows[1]["slt_bleu4"] == ""

    wide = list(csv.DictReader(io.StringIO(format_table2(results, fmt="csv", wide=True))))
    expected_columns = ["partition"] + [
        f"{task}_{name}" for task in ("cslr", "slt") for name in (*METRIC_NAMES, "n")
    ]
    assert list(wide[0]) == expected_columns
    assert float(wide[0]["cslr_exact_match"]) == pytest.approx(0.5)
    assert wide[0]["cslr_n"] == "2"
    wide_md = format_table2(results, wide=True).splitlines()
    assert "| CSLR exact match (%) ↑ |" in wide_md[0]
    assert "| CSLR seen rate (%) |" in wide_md[0]  # a diagnostic: no better direction
    assert wide_md[2].split(" | ")[0] == "| Control"
    assert "50.00" in wide_md[2]  # exact match 0.5 shown as a percentage


def test_table2_headline_wer_can_be_unisign_and_bad_arguments_fail():
    results = {"control": {"cslr": score(["a b s t u"], ["p q r a b"], task="cslr")}}
    assert "| Control | 120.00 | – |" in format_table2(results, wer_key="wer_unisign")
    with pytest.raises(ValueError, match="fmt"):
        format_table2(results, fmt="html")
    with pytest.raises(ValueError, match="unknown task"):
        format_table2({"control": {"islr": {}}})


# ---------------------------------------------------------------------------------------------
# CLI round trip


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _write_corpus(root):
    manifest = [
        {"id": "01_0001", "gloss": "A B", "text": "a b ."},
        {"id": "01_0002", "gloss": "C D", "text": "c d ."},
        {"id": "02_0001", "gloss": "A B", "text": "a b ."},
        {"id": "02_0003", "gloss": "E F", "text": "e f ?"},
    ]
    _write_jsonl(root / "manifest.jsonl", manifest)
    (root / "partitions").mkdir()
    split = {"train": ["01_0001", "01_0002"], "dev": [], "test": ["02_0001", "02_0003"]}
    (root / "partitions" / "control.json").write_text(json.dumps(split), encoding="utf-8")


_PREDICTIONS = [
    {"id": "02_0001", "prediction": "A B", "reference": "A B", "task": "cslr"},
    {"id": "02_0003", "prediction": "C D", "reference": "E F", "task": "cslr"},
    {"id": "02_0001", "prediction": "a b .", "reference": "a b .", "task": "slt"},
    {"id": "02_0003", "prediction": None, "reference": "e f ?", "task": "slt"},
]


def test_cli_round_trip_with_corpus(tmp_path, capsys):
    _write_corpus(tmp_path)
    predictions = tmp_path / "pred.jsonl"
    _write_jsonl(predictions, _PREDICTIONS)
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    out = tmp_path / "res" / "results.json"
    rc = cli_main(
        ["evaluate", "--predictions", str(predictions), "--corpus", str(tmp_path),
         "--partition", "control", "--beam", "4", "--checkpoint", str(checkpoint),
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["partition"] == "control"
    assert set(payload["scores"]) == {"cslr", "slt"}
    cslr = payload["scores"]["cslr"]
    expected = score(
        ["A B", "C D"],
        ["A B", "E F"],
        task="cslr",
        train_targets=["A B", "C D"],
        settings={
            "partition": "control",
            "beam": 4,
            "checkpoint": hashlib.sha256(b"weights").hexdigest()[:12],
            "coverage": "2/2",
        },
    )
    assert cslr == expected
    assert cslr["seen_rate"] == pytest.approx(1.0)  # both predictions are training glosses
    assert cslr["wer"] == pytest.approx(50.0)
    slt = payload["scores"]["slt"]
    assert slt["seen_rate"] == pytest.approx(0.5)  # "a b ." is a training sentence
    assert slt["n_empty_predictions"] == 1
    assert cslr["signature"].endswith(
        "checkpoint:" + hashlib.sha256(b"weights").hexdigest()[:12] + "|coverage:2/2"
    )
    assert cslr["signature"] in printed and "wer = 50.00" in printed
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temporary left


def test_cli_task_filter_train_target_file_and_json(tmp_path, capsys):
    predictions = tmp_path / "pred.jsonl"
    rows = [{k: v for k, v in row.items() if k != "task"} for row in _PREDICTIONS[2:]]
    _write_jsonl(predictions, rows)
    targets = tmp_path / "targets.txt"
    targets.write_text("e f ?\n\nx\n", encoding="utf-8")
    rc = cli_main(
        ["evaluate", "--predictions", str(predictions), "--task", "slt",
         "--train-targets", str(targets), "--json"]
    )  # fmt: skip
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["scores"]) == ["slt"]
    assert payload["scores"]["slt"]["seen_rate"] == pytest.approx(0.0)
    assert payload["scores"]["slt"]["exact_match"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"id": 1, "prediction": "a", "task": "cslr"}], [],
         r"pred.jsonl:1: row has no 'reference'"),
        (
            [{"id": 1, "prediction": "a", "reference": "a", "task": "cslr"}] * 2,
            [],
            r"pred.jsonl:2: sample 1 \(cslr\) repeats line 1",
        ),
        ([{"id": 1, "prediction": "a", "reference": "a"}], [], "has no 'task'; pass --task"),
        ([{"id": 1, "prediction": "a", "reference": "a", "task": "slt"}], ["--task", "cslr"],
         "no predictions for task 'cslr'"),
        ([{"id": 1, "prediction": "a", "reference": "a", "task": "slt"}], ["--corpus", "."],
         "--corpus needs --partition"),
    ],
)  # fmt: skip
def test_cli_errors_name_the_file_and_sample(tmp_path, capsys, rows, extra, message):
    predictions = tmp_path / "pred.jsonl"
    _write_jsonl(predictions, rows)
    assert cli_main(["evaluate", "--predictions", str(predictions), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nmmfast evaluate: error:")
    assert re.search(message, err), err


def test_cli_corpus_with_unknown_training_id(tmp_path, capsys):
    _write_corpus(tmp_path)
    split = {"train": ["01_0001", "99_9999"], "dev": [], "test": []}
    (tmp_path / "partitions" / "si.json").write_text(json.dumps(split), encoding="utf-8")
    predictions = tmp_path / "pred.jsonl"
    _write_jsonl(predictions, _PREDICTIONS[:1])
    rc = cli_main(
        ["evaluate", "--predictions", str(predictions), "--corpus", str(tmp_path),
         "--partition", "si"]
    )  # fmt: skip
    assert rc == 2
    assert "training id '99_9999' is not in" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# CLI: several predictions files, Table 2


def _write_table2_inputs(root):
    """A corpus with control and si partitions, and three predictions files."""
    _write_corpus(root)
    si = {"train": ["01_0001", "02_0001"], "dev": [], "test": ["01_0002"]}
    (root / "partitions" / "si.json").write_text(json.dumps(si), encoding="utf-8")
    files = {
        # CSLR WER: 0 + 2 substitutions over 4 reference words = 50 %
        "control_cslr.jsonl": _PREDICTIONS[:2],
        # BLEU-4 of "a b c d" against "a b x d": 35.36 (see test_bleu_hand_computed...)
        "control_slt.jsonl": [
            {"id": "02_0001", "prediction": "a b c d", "reference": "a b x d", "task": "slt"}
        ],
        # "x" against "C D": one substitution, one deletion over 2 words = 100 %
        "si.jsonl": [{"id": "01_0002", "prediction": "X", "reference": "C D", "task": "cslr"}],
    }
    for name, rows in files.items():
        _write_jsonl(root / name, rows)
    return {name: root / name for name in files}


def test_cli_several_files_write_table2(tmp_path, capsys):
    files = _write_table2_inputs(tmp_path)
    out_dir = tmp_path / "metrics"
    rc = cli_main(
        ["evaluate", "--predictions", f"si={files['si.jsonl']}",
         f"control={files['control_cslr.jsonl']}", str(files["control_slt.jsonl"]),
         "--partition", "control", "--corpus", str(tmp_path), "--beam", "4",
         "--out-dir", str(out_dir), "--allow-partial"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "control-cslr.json",
        "control-slt.json",
        "si-cslr.json",
        "table2.csv",
        "table2.md",
    ]
    control_cslr = json.loads((out_dir / "control-cslr.json").read_text(encoding="utf-8"))
    assert (control_cslr["partition"], control_cslr["task"]) == ("control", "cslr")
    assert control_cslr["predictions"] == str(files["control_cslr.jsonl"])
    assert control_cslr["scores"] == score(
        ["A B", "C D"],
        ["A B", "E F"],
        task="cslr",
        train_targets=["A B", "C D"],
        settings={"partition": "control", "beam": 4, "coverage": "2/2"},
    )
    si_cslr = json.loads((out_dir / "si-cslr.json").read_text(encoding="utf-8"))["scores"]
    assert si_cslr["seen_rate"] == 0.0 and "partition:si" in si_cslr["signature"]
    control_slt = json.loads((out_dir / "control-slt.json").read_text(encoding="utf-8"))
    assert control_slt["scores"]["signature"].endswith("|coverage:1/2")  # --allow-partial

    markdown = (out_dir / "table2.md").read_text(encoding="utf-8")
    lines = markdown.splitlines()
    assert lines[:4] == [
        "| Partition | CSLR WER (%) ↓ | SLT BLEU-4 (%) ↑ |",
        "|---|---:|---:|",
        "| Control | 50.00 | 35.36 |",
        "| Signer-independent | 100.00 | – |",
    ]
    assert f"- Control, CSLR: `{control_cslr['scores']['signature']}`" in lines
    assert markdown in printed  # the same table is printed after the per-file scores
    rows = list(csv.DictReader(io.StringIO((out_dir / "table2.csv").read_text(encoding="utf-8"))))
    assert [r["partition"] for r in rows] == ["control", "si"]
    assert float(rows[0]["cslr_wer"]) == pytest.approx(50.0)
    assert float(rows[0]["slt_bleu4"]) == pytest.approx(100.0 * 0.015625**0.25, rel=1e-5)
    assert float(rows[1]["cslr_wer"]) == pytest.approx(100.0)
    assert rows[1]["slt_bleu4"] == ""


def test_cli_one_file_out_dir_and_wide_table(tmp_path, capsys):
    _write_corpus(tmp_path)
    predictions = tmp_path / "pred.jsonl"
    _write_jsonl(predictions, _PREDICTIONS)
    out_dir = tmp_path / "out"
    rc = cli_main(
        ["evaluate", "--predictions", f"control={predictions}", "--corpus", str(tmp_path),
         "--out-dir", str(out_dir), "--wide"]
    )  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO((out_dir / "table2.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["partition"] == "control"
    assert float(rows[0]["cslr_wer"]) == pytest.approx(50.0)
    assert float(rows[0]["cslr_seen_rate"]) == pytest.approx(1.0)
    assert float(rows[0]["slt_seen_rate"]) == pytest.approx(0.5)
    assert rows[0]["slt_n"] == "2"
    assert "| CSLR exact match (%) ↑ |" in (out_dir / "table2.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("specs", "extra", "message"),
    [
        (["control_cslr.jsonl", "si.jsonl"], [], "each needs its partition"),
        (["control=control_cslr.jsonl", "control=control_cslr.jsonl"], [],
         "task 'cslr' comes from both"),
        (["control=control_cslr.jsonl", "si=si.jsonl"], ["--out", "r.json"],
         "--out takes one predictions file"),
        (["control=control_cslr.jsonl", "si=si.jsonl"], ["--train-targets", "control_slt.jsonl"],
         "use --corpus DIR"),
        (["control=control_cslr.jsonl", "si=si.jsonl"], ["--checkpoint", "si.jsonl"],
         "--checkpoint names the weights of one predictions file"),
        (["=si.jsonl"], [], "expected PARTITION=PATH or PATH"),
        (["a/b=si.jsonl"], ["--out-dir", "out"], "cannot name a file"),
        (["control_cslr.jsonl"], ["--out-dir", "out"], "Table 2 rows are partitions"),
    ],
)  # fmt: skip
def test_cli_several_files_errors(tmp_path, monkeypatch, capsys, specs, extra, message):
    _write_table2_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["evaluate", "--predictions", *specs, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nmmfast evaluate: error:")
    assert re.search(re.escape(message), err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.json").exists()
