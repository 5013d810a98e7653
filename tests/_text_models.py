"""Tiny text-model directories saved as users have them: config.json (its own
`tie_word_embeddings`), weights, and a SentencePiece `spiece.model` trained here with its
tokenizer_config.json.

KINDS: an MT5 with an untied head (as every mT5 and Uni-Sign checkpoint), a T5 with tied
embeddings, a T5 with an untied head (T5 v1.1 style).
"""

from __future__ import annotations

import io
import json
import random

import torch

WORDS = (
    "man woman child teacher happy sad tired apple house school car water book find see go "
    "come want not very is the a we you they today tomorrow yesterday eat drink read where"
).split()
PROMPT_WORDS = "Translate sign language video to English :".split()
KINDS = ("mt5-untied", "t5-tied", "t5-untied")


def sentencepiece_model(extra_sentences: list[str] = ()) -> bytes:
    """A SentencePiece unigram model (pad 0, eos 1, unk 2, as mT5's) trained on random
    sentences of WORDS, the prompt and `extra_sentences`."""
    import sentencepiece

    rng = random.Random(0)
    sentences = [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(400)]
    sentences += [" ".join(PROMPT_WORDS)] * 5 + list(extra_sentences)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=96,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def save_text_model(directory, kind: str, spiece: bytes) -> None:
    """Save a tiny text model of `kind` (KINDS) with the tokenizer as a user's directory."""
    from transformers import (
        MT5Config,
        MT5ForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    (directory / "spiece.model").write_bytes(spiece)
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0})
    )
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(directory)))
    sizes = dict(
        vocab_size=vocab,
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_decoder_layers=1,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
    )
    tied = kind == "t5-tied"
    torch.manual_seed(KINDS.index(kind))
    if kind.startswith("mt5"):
        text_model = MT5ForConditionalGeneration(MT5Config(tie_word_embeddings=tied, **sizes))
    else:
        text_model = T5ForConditionalGeneration(T5Config(tie_word_embeddings=tied, **sizes))
    if not tied:
        head = torch.nn.Parameter(torch.randn(vocab, 32) * 0.5)
        text_model.lm_head.weight = head
    text_model.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config["tie_word_embeddings"] = tied  # as the checkpoint's own config.json says
    (directory / "config.json").write_text(json.dumps(config))
