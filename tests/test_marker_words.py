"""The marker-word probe's parts: reading a word list, matching words in a reference, mapping
them to the target tokens of the real tiny tokenizers (SentencePiece and word-level), and the
shares of marker tokens against the other tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _text_models import sentencepiece_model

from nmmfast.errors import UserError
from nmmfast.model.tokenizer import WordTokenizer
from nmmfast.probes.marker_words import (
    REGIONS,
    marker_spans,
    marker_token_positions,
    marker_token_shares,
    read_marker_words,
    target_encoder,
)


@pytest.fixture(scope="module")
def spiece_tokenizer(tmp_path_factory):
    """The tiny SentencePiece tokenizer of the text-model tests, loaded as users load theirs."""
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("spiece")
    (directory / "spiece.model").write_bytes(sentencepiece_model())
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0})
    )
    return AutoTokenizer.from_pretrained(str(directory))


def test_word_list_entries_comments_and_case(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(
        "# question words\nWhere\n\nwhat   # inline comment\n  does NOT \nDON'T-KNOW\nwhere\n"
    )
    assert read_marker_words(path) == ("where", "what", "does not", "don't know")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("# only a comment\n\n", "no marker words"),
        ("", "no marker words"),
        ("not\nnot, never\n", "line 2: 'not, never' is not a word or phrase"),
        ("what?\n", "line 1: 'what?' is not a word or phrase"),
        ("---\n", "line 1: '---' is not a word or phrase"),
    ],
)
def test_bad_word_lists_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(UserError) as error:
        read_marker_words(path)
    assert str(error.value).startswith(f"{path}: ") and problem in str(error.value)


def test_unreadable_word_lists_name_the_file(tmp_path):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00not")
    with pytest.raises(UserError, match="binary.txt: not a UTF-8 text file"):
        read_marker_words(tmp_path / "binary.txt")
    with pytest.raises(UserError, match="absent.txt: no such marker-word file"):
        read_marker_words(tmp_path / "absent.txt")
    with pytest.raises(UserError, match="cannot read"):
        read_marker_words(tmp_path)


def test_spans_are_whole_words_any_case_and_phrases():
    text = "Does he NOT know? Nothing is not-known; does not"
    spans = marker_spans(text, ("not", "does not", "know"))
    assert [(entry, text[a:b]) for entry, a, b in spans] == [
        ("not", "NOT"),
        ("know", "know"),  # "known" is another word
        ("not", "not"),  # hyphens separate words; "Nothing" is no match
        ("does not", "does not"),
        ("not", "not"),
    ]
    assert marker_spans(text, ("nothing is",)) == [("nothing is", 18, 28)]
    assert marker_spans("", ("not",)) == []


def _pieces(tokenizer, ids, positions):
    return [tokenizer.convert_ids_to_tokens(ids[p]) for p in positions]


def test_sentencepiece_words_to_tokens(spiece_tokenizer):
    tok = spiece_tokenizer
    encode = target_encoder(tok, max_length=50)
    text = "yesterday the teacher did not eat, nothing? Zebra not"
    ids = encode([text])[0]
    assert ids == tok([text])["input_ids"][0][:-1]  # the model's targets without </s>
    # the test's premises: "did" is not in the vocabulary as one piece, "Zebra" not at all
    did = tok.convert_ids_to_tokens(encode(["did"])[0])
    assert len(did) > 1 and did[0] == "▁", did
    assert tok.unk_token_id in encode(["Zebra"])[0]

    positions = marker_token_positions(text, ("did", "not", "zebra", "where"), encode)
    assert set(positions) == {"did", "not", "zebra"}  # "where" is absent from the text
    # every piece of a split word, the lone "▁" included; nothing of its neighbours
    assert _pieces(tok, ids, positions["did"]) == did
    assert _pieces(tok, ids, positions["not"]) == ["▁not", "▁not"]  # not "nothing"
    zebra = _pieces(tok, ids, positions["zebra"])
    assert zebra[0] == "▁" and "<unk>" in zebra and len(zebra) == len(encode(["Zebra"])[0])
    # the positions are in the sentence's own tokenisation, consecutive per word
    first_not = positions["not"][0]
    assert positions["did"] == list(range(positions["did"][0], first_not))
    # a phrase takes both words' tokens
    phrase = marker_token_positions(text, ("did not",), encode)["did not"]
    assert phrase == [*positions["did"], first_not]


def test_truncated_words_lose_their_tokens(spiece_tokenizer):
    encode = target_encoder(spiece_tokenizer, max_length=4)  # 3 tokens + </s>
    positions = marker_token_positions("the man did not eat", ("not", "man"), encode)
    assert positions["man"] == [1] and positions["not"] == []


def test_word_tokenizer_words_to_tokens():
    tok = WordTokenizer.build(["Did they not ? happy nothing"])
    encode = target_encoder(tok)
    text = "Did they not? NOT-happy nothing"
    ids = encode([text])[0]
    positions = marker_token_positions(text, ("did", "not", "happy"), encode)
    words = [tok.vocab[i] for i in ids]
    assert [words[p] for p in positions["did"]] == ["Did"]
    assert [words[p] for p in positions["not"]] == ["not", "<unk>"]  # "NOT" is unknown
    assert [words[p] for p in positions["happy"]] == ["happy"]


def test_marker_token_shares_pool_tokens_and_leave_out_eos():
    def token(**values):
        row = [0.0] * len(REGIONS)
        for name, value in values.items():
            row[REGIONS.index(name)] = value
        return row

    records = [
        {  # tokens: marker (face 3, hands 1), other (hands 4), </s> (face 100: left out)
            "token_region_abs": [token(face=3, hands=1), token(hands=4), token(face=100)],
            "positions": {"not": [0]},
            "eos": 2,
        },
        {  # marker word of two tokens (head 1, body 1 / head 2), other (body 2, face 2)
            "token_region_abs": [token(body=2, face=2), token(head=1, body=1), token(head=2)],
            "positions": {"where": [1, 2]},
            "eos": None,
        },
    ]
    result = marker_token_shares(records, seed=0, resamples=200)
    marker, other = result["marker"], result["other"]
    assert (marker["samples"], marker["tokens"]) == (2, 3)
    assert (other["samples"], other["tokens"]) == (2, 2)
    # marker pool: face 3, head 3, hands 1, body 1 (of 8); other: face 2, hands 4, body 2 (of 8)
    assert marker["shares"] == pytest.approx(
        {"face": 37.5, "head": 37.5, "face+head": 75.0, "hands": 12.5, "body": 12.5}
    )
    assert other["shares"] == pytest.approx(
        {"face": 25.0, "head": 0.0, "face+head": 25.0, "hands": 50.0, "body": 25.0}
    )
    assert result["by_word"]["not"]["shares"]["face"] == pytest.approx(75.0)
    assert (result["by_word"]["where"]["samples"], result["by_word"]["where"]["tokens"]) == (1, 2)
    difference = result["face_head_difference"]
    assert difference["value"] == pytest.approx(50.0) and difference["samples"] == 2
    low, high = difference["ci95"]
    assert low <= high and np.isfinite([low, high]).all()
