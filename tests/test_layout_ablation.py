"""The layout ablation's statistics and comparison (`nmmfast.probes.layout_ablation`), on small
hand-built arms whose answers are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nmmfast.errors import UserError
from nmmfast.probes.layout_ablation import (
    FLIP_REGIONS,
    LayoutArm,
    compare_layouts,
    mcnemar_p,
    paired_difference,
    wilson_interval,
)
from nmmfast.skeleton import get_layout


def test_wilson_interval_matches_the_closed_form() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mcnemar_counts_only_discordant_pairs() -> None:
    a = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    # six clips right only under b, none only under a: 2 * 0.5**6
    b = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    assert mcnemar_p(a, b) == pytest.approx(2 / 64)
    assert mcnemar_p(a, a) == 1.0
    assert mcnemar_p(b, a) == mcnemar_p(a, b)


def test_paired_difference_interval_contains_the_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200) < 0.3
    b = a | (rng.random(200) < 0.3)
    diff = paired_difference(a, b, seed=0)
    assert diff["difference"] == pytest.approx(b.mean() - a.mean())
    assert diff["low"] <= diff["difference"] <= diff["high"]
    assert diff["low"] > 0 and diff["p_value"] < 1e-6
    same = paired_difference(a, a)
    assert same["difference"] == 0 and same["low"] == same["high"] == 0 and same["p_value"] == 1
    with pytest.raises(ValueError, match="differ"):
        paired_difference(a, b[:-1])


def _arm(root: Path, layout: str, n: int, brow_reader: bool, rng: np.random.Generator) -> LayoutArm:
    """An arm over `n` clips, half of them questions. A `brow_reader` marks every question and
    loses the marking whenever the face or the brows are neutralised; the other marks none and
    nothing flips. Attribution puts weight 9 on each eyebrow joint and 1 on every other joint."""
    root.mkdir(parents=True)
    ids = [f"01_{k:04d}" for k in range(n)]
    asked = {i: k % 2 == 0 for k, i in enumerate(ids)}
    reference = {i: "You go home?" if asked[i] else "You go home." for i in ids}
    marked = {i: asked[i] if brow_reader else False for i in ids}
    text = {i: "You go home?" if marked[i] else "You go home." for i in ids}
    with (root / "predictions.jsonl").open("w") as handle:
        for i in ids:
            row = {"id": i, "prediction": text[i], "reference": reference[i], "task": "slt"}
            handle.write(json.dumps(row) + "\n")
    samples = []
    for i in ids:
        regions = {"none": {"prediction": text[i]}}
        for region in FLIP_REGIONS:
            flips = brow_reader and asked[i] and region in ("face", "face+head", "brows")
            regions[region] = {"prediction": "You go home." if flips else text[i]}
        samples.append({"id": i, "prediction": text[i], "regions": regions})
    (root / "counterfactual.json").write_text(json.dumps({"samples": samples[::-1]}))
    coco = np.asarray(get_layout(layout).coco_indices)
    weights = np.where((coco >= 40) & (coco < 50), 9.0, 1.0)
    (root / "attribution" / "samples").mkdir(parents=True)
    for i in ids[:12]:
        scale = rng.uniform(0.5, 2.0)
        np.savez(
            root / "attribution" / "samples" / f"{i}.npz",
            joint_abs=scale * weights,
            joint_abs_coords=scale * weights / 2,
            meta=json.dumps({"id": i}),
        )
    return LayoutArm(
        layout=layout,
        predictions=root / "predictions.jsonl",
        counterfactual=root / "counterfactual.json",
        attribution=root / "attribution",
    )


def test_compare_layouts_finds_the_brow_reader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blind = _arm(tmp_path / "a", "unisign69", 60, brow_reader=False, rng=rng)
    reader = _arm(tmp_path / "b", "nmm87", 60, brow_reader=True, rng=rng)
    result = compare_layouts([blind, reader], pair="control-slt", seed=0)

    first, second = result["layouts"]
    assert first["question_marking"]["value"] == pytest.approx(0.5)
    assert second["question_marking"]["value"] == 1.0
    assert second["questions_marked"]["value"] == 1.0 and second["questions_marked"]["n"] == 30
    assert second["flips"]["face"]["value"] == 1.0 and second["flips"]["head"]["value"] == 0.0
    assert second["flips"]["brows"]["value"] == 1.0 and first["flips"]["brows"]["value"] == 0.0
    # unisign69 has no eyebrows or eyes; nmm87 has 10 eyebrow joints of weight 9 among 87
    assert first["shares"]["brows"] is None and first["shares"]["eyes"] is None
    assert second["shares"]["brows"]["value"] == pytest.approx(100 * 90 / (90 + 77))
    brows = second["shares"]["brows"]
    assert brows["low"] == pytest.approx(brows["value"]) == pytest.approx(brows["high"])

    (diff,) = result["differences"]
    assert diff["flips"]["face"]["difference"] == 1.0 and diff["flips"]["face"]["p_value"] < 1e-8
    assert diff["question_marking"]["difference"] == pytest.approx(0.5)
    assert "reads the question from the face" in result["answer"]
    assert "marks questions better" in result["answer"]

    null = compare_layouts([blind, blind], pair="control-slt")
    assert "no difference" in null["answer"]
    coords = compare_layouts([blind, reader], pair="control-slt", channels="coords")
    assert coords["layouts"][1]["shares"]["brows"]["value"] == pytest.approx(
        second["shares"]["brows"]["value"]
    )


def test_compare_layouts_refuses_arms_over_other_clips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blind = _arm(tmp_path / "a", "unisign69", 20, brow_reader=False, rng=rng)
    reader = _arm(tmp_path / "b", "nmm87", 22, brow_reader=True, rng=rng)
    with pytest.raises(UserError, match="different clips"):
        compare_layouts([blind, reader], pair="control-slt")
    with pytest.raises(ValueError, match="at least two"):
        compare_layouts([blind], pair="control-slt")


def test_compare_layouts_names_a_probe_without_the_regions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blind = _arm(tmp_path / "a", "unisign69", 10, brow_reader=False, rng=rng)
    reader = _arm(tmp_path / "b", "nmm87", 10, brow_reader=True, rng=rng)
    probe = json.loads(reader.counterfactual.read_text())
    for sample in probe["samples"]:
        del sample["regions"]["brows"]
    reader.counterfactual.write_text(json.dumps(probe))
    with pytest.raises(UserError, match=r"counterfactual.json: regions \['brows'\]"):
        compare_layouts([blind, reader], pair="control-slt")
