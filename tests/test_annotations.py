from __future__ import annotations

import gzip
import pickle

import pytest

from nmmfast.data.annotations import (
    check_coverage,
    parse_isharah_id,
    read_isharah_csv,
    read_labels,
    read_manifest,
    read_unisign_labels,
    validate_rows,
    write_isharah_csv,
    write_manifest,
    write_unisign_labels,
)


def test_isharah_csv_with_text(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        "id|gloss|text\n03_0042|أنا  ذهب مدرسة |ذهبت إلى المدرسة\n\n17_0001|g1 g2|t\n", "utf-8"
    )
    rows = read_isharah_csv(path)
    assert rows == [
        {
            "id": "03_0042",
            "signer": "03",
            "sentence": "0042",
            "gloss": "أنا ذهب مدرسة",
            "text": "ذهبت إلى المدرسة",
        },
        {"id": "17_0001", "signer": "17", "sentence": "0001", "gloss": "g1 g2", "text": "t"},
    ]


def test_isharah_csv_gloss_only_and_id_only(tmp_path):
    gloss = tmp_path / "dev.csv"
    gloss.write_text("\ufeffid|gloss\n02_0401|a b\n", "utf-8")  # with a byte-order mark
    assert read_isharah_csv(gloss)[0] == {
        "id": "02_0401",
        "signer": "02",
        "sentence": "0401",
        "gloss": "a b",
        "text": "",
    }
    ids = tmp_path / "test.csv"
    ids.write_text("id\n08_0451\n", "utf-8")
    assert read_isharah_csv(ids)[0]["gloss"] == ""


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("name|gloss\n01_0001|a\n", r"header"),
        ("id|gloss\n01_0001|a|b\n", r":2: 3 fields, expected 2"),
        ("id|gloss\n01_0001|a\nfoo|b\n", r":3: Isharah id 'foo'"),
        ("id|gloss\n01_0001|a\n01_0001|b\n", "appears twice"),
    ],
)
def test_isharah_csv_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(ValueError, match=message) as err:
        read_isharah_csv(path)
    assert "bad.csv" in str(err.value)


def test_isharah_roundtrip(tmp_path):
    rows = [{"id": "01_0002", "signer": "01", "sentence": "0002", "gloss": "x y", "text": "hello"}]
    write_isharah_csv(tmp_path / "a.csv", rows)
    assert read_isharah_csv(tmp_path / "a.csv") == rows
    write_isharah_csv(tmp_path / "b.csv", rows, with_text=False)
    assert read_isharah_csv(tmp_path / "b.csv")[0]["text"] == ""
    with pytest.raises(ValueError, match="'|'"):
        write_isharah_csv(tmp_path / "c.csv", [dict(rows[0], text="a|b")])
    assert parse_isharah_id("12_3456") == ("12", "3456")


def test_unisign_labels(tmp_path):
    data = {
        "S000020_P0000_T00": {
            "name": "S000020_P0000_T00",
            "gloss": ["他", "今天", "4"],
            "text": "他今年四岁。",
            "video_path": "S000020_P0000_T00.mp4",
        },
        "clip7": {"name": "clip7", "gloss": "", "text": "hello", "video_path": "dir/v7.mp4"},
    }
    path = tmp_path / "labels.train"
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f)
    rows = read_unisign_labels(path)
    assert rows[0] == {
        "id": "S000020_P0000_T00",
        "signer": "P0000",
        "sentence": "S000020",
        "gloss": "他 今天 4",
        "text": "他今年四岁。",
        "video_path": "S000020_P0000_T00.mp4",
    }
    assert rows[1]["signer"] is None and rows[1]["gloss"] == ""
    write_unisign_labels(tmp_path / "out.gz", rows)
    assert read_unisign_labels(tmp_path / "out.gz") == rows
    assert read_labels(tmp_path / "out.gz") == rows


def test_unisign_labels_truncated(tmp_path):
    path = tmp_path / "labels.dev"
    with gzip.open(path, "wb") as f:
        pickle.dump({"a": {"name": "a", "gloss": [], "text": "t"}}, f)
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="labels.dev: unreadable or truncated pickle"):
        read_unisign_labels(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected a dict"):
        read_unisign_labels(plain)


def test_manifest_roundtrip_keeps_extra_keys(tmp_path):
    rows = [
        {
            "id": "a",
            "signer": "01",
            "sentence": "s1",
            "gloss": "g",
            "text": "t",
            "veiled": True,
            "nmm": [{"kind": "question", "frames": [3, 9], "joints": [40, 41]}],
        },
        {"id": "b", "signer": None, "sentence": None, "gloss": "", "text": "ü"},
    ]
    path = tmp_path / "m" / "manifest.jsonl"
    write_manifest(path, rows)
    assert read_manifest(path) == rows
    assert read_labels(path) == rows
    assert not (tmp_path / "m" / "manifest.jsonl.tmp").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"id": "a", "signer": "1", "sentence": "1", "gloss": "", "text": ""}\n{oops\n',
            r":2: not a JSON",
        ),
        ('{"id": "a", "signer": "1", "gloss": "", "text": ""}\n', r"id 'a'.*\['sentence'\]"),
        ('{"id": "a", "signer": 1, "sentence": "1", "gloss": "", "text": ""}\n', "signer must be"),
        ("[1, 2]\n", "expected a JSON object"),
    ],
)
def test_manifest_errors(tmp_path, text, message):
    path = tmp_path / "manifest.jsonl"
    path.write_text(text, "utf-8")
    with pytest.raises(ValueError, match=message) as err:
        read_manifest(path)
    assert "manifest.jsonl" in str(err.value)


def test_validate_rows_rejects_non_string_gloss():
    with pytest.raises(ValueError, match="gloss must be a string"):
        validate_rows([{"id": "a", "signer": None, "sentence": None, "gloss": ["x"], "text": ""}])


def test_coverage_reports_ids():
    rows = [{"id": i} for i in ("a", "b", "c")]
    coverage = check_coverage(rows, ["b", "c", "d", "e"])
    assert coverage.without_poses == ["a"] and coverage.without_rows == ["d", "e"]
    assert not coverage.ok
    report = coverage.report(limit=1)
    assert "1 manifest rows without poses: a" in report
    assert "2 poses without manifest rows: d, ... (+1)" in report
    assert check_coverage(rows, ["a", "b", "c"]).ok
