"""`nmmfast demo --quick` end to end: every stage's files, the report, and the planted truth."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch

from nmmfast.cli import main
from nmmfast.study import PARTITIONS, TASKS, StudyDir, read_json


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> StudyDir:
    out = tmp_path_factory.mktemp("demo") / "study"
    threads = torch.get_num_threads()
    try:
        assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return StudyDir.at(out)


def test_every_stage_wrote_its_outputs(study: StudyDir) -> None:
    assert (study.corpus / "manifest.jsonl").is_file()
    for partition in PARTITIONS:
        assert (study.corpus / "partitions" / f"{partition}.json").is_file()
        for task in TASKS:
            assert (study.run(partition, task) / "best.pt").is_file()
            with study.predictions(partition, task).open() as handle:
                rows = [json.loads(line) for line in handle]
            assert rows and {"id", "prediction", "reference", "task"} <= set(rows[0])
            scores = read_json(study.metrics(partition, task))["scores"]
            assert scores["n"] == len(rows) and "signature" in scores
            summary = read_json(study.attribution(partition, task) / "summary.json")
            assert summary["region_shares"].keys() == {"hands", "face", "body"}
            assert abs(sum(summary["region_shares"].values()) - 100) < 1e-6
    record = read_json(study.record)
    assert {"corpus", "partitions", "probe tracking"} <= set(record["stage_seconds"])


def test_report_embeds_every_section(study: StudyDir) -> None:
    page = html.unescape((study.report_dir / "index.html").read_text())
    for heading in (
        "Table 2",
        "attribution shares",
        "planted non-manual markers",
        "Tracking failure",
        "Counterfactual regions",
        "Signer identity",
        "reference study's labels",
        "Layouts: what the eyebrows add",
    ):
        assert heading in page, heading
    assert "Not available" not in page
    assert not re.search(r'src="(?!data:)', page)
    assert (study.report_dir / "region_shares.csv").is_file()


def test_planted_truth_is_recovered(study: StudyDir) -> None:
    tracking = read_json(study.probe("tracking"))
    assert tracking["auroc"]["frames"] >= 0.95 and tracking["auroc"]["samples"] >= 0.95
    # Counterfactual: neutralising nothing changes nothing; neutralising the whole input moves
    # log p of the original output (the quick models are too short-trained to change their text).
    counterfactual = read_json(study.probe("counterfactual", "control", "slt"))
    assert counterfactual["regions"]["none"]["change_rate"] == 0
    assert counterfactual["regions"]["none"]["delta_log_p_mean"] == 0
    assert counterfactual["regions"]["all"]["delta_log_p_mean"] != 0


def test_layout_ablation_compares_both_arms(study: StudyDir) -> None:
    # --quick trains the control models again on nmm87 and compares them with the study's own
    arm = StudyDir.at(study.root / "layouts" / "nmm87")
    assert (arm.run("control", "slt") / "best.pt").is_file()
    assert (arm.attribution("control", "slt") / "summary.json").is_file()
    result = read_json(study.probe("layouts", "control", "slt"))
    assert [row["layout"] for row in result["layouts"]] == ["unisign69", "nmm87"]
    unisign, nmm = result["layouts"]
    assert unisign["shares"]["brows"] is None and nmm["shares"]["brows"]["joints"] == 10
    assert unisign["flips"]["brows"]["value"] == 0  # the brows are not in unisign69's input
    questions = unisign["flips"]["face"]["n"]
    assert questions > 0 and nmm["flips"]["face"]["n"] == questions
    assert result["answer"].startswith("Neutralising the face")
    probe = read_json(arm.probe("counterfactual", "control", "slt"))
    assert probe["settings"]["layout"] == "nmm87"
    test_ids = read_json(study.corpus / "partitions" / "control.json")["test"]
    assert probe["n"] == len(test_ids)


def test_layouts_only_add_outputs(study: StudyDir, capsys) -> None:
    threads = torch.get_num_threads()
    try:
        args = ["demo", "--quick", "--out", str(study.root), "--no-progress"]
        assert main([*args, "--layouts", "unisign69"]) == 0
        assert main([*args, "--layouts", "nmm87,unisign69"]) == 2
    finally:
        torch.set_num_threads(threads)
    assert "layouts (the first, the study's own)" in capsys.readouterr().err


def test_rerun_reuses_finished_stages(study: StudyDir, capsys) -> None:
    threads = torch.get_num_threads()
    try:
        assert main(["demo", "--quick", "--out", str(study.root), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "already done, reusing" in capsys.readouterr().out


def test_other_settings_into_the_same_directory_are_refused(study: StudyDir, capsys) -> None:
    assert main(["demo", "--out", str(study.root), "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
    with pytest.raises(ValueError, match="other settings"):
        main(["demo", "--out", str(study.root), "--no-progress", "--debug"])


def test_report_rebuilds_from_the_command_line(study: StudyDir, tmp_path: Path) -> None:
    assert main(["report", str(study.root), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").stat().st_size > 10_000
