"""Word-level tokenizer for the `tiny` config: one id per word or punctuation mark of the corpus.

It mimics the slice of the Hugging Face tokenizer interface the model uses (`__call__` with
padding/truncation, `batch_decode`, `pad_token_id`, `eos_token_id`, `save_pretrained`), so the
model treats it and an mT5 tokenizer alike. Saved as one JSON file next to the model.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["WordTokenizer"]

_TOKEN_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|\S", re.UNICODE)
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_NO_SPACE_AFTER = re.compile(r"([(\[{]) ")
FILE_NAME = "word_tokenizer.json"


class WordTokenizer:
    """Case-preserving word/punctuation vocabulary with <pad>=0, </s>=1, <unk>=2."""

    pad_token = "<pad>"
    eos_token = "</s>"
    unk_token = "<unk>"

    def __init__(self, vocab: Sequence[str]) -> None:
        specials = [self.pad_token, self.eos_token, self.unk_token]
        if list(vocab[:3]) != specials:
            raise ValueError(f"WordTokenizer: the vocabulary must start with {specials}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("WordTokenizer: the vocabulary has duplicate entries")
        self.vocab = list(vocab)
        self.token_to_id = {tok: i for i, tok in enumerate(self.vocab)}
        self.pad_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2

    @staticmethod
    def split(text: str) -> list[str]:
        """Words (letters/digits, inner apostrophes) and single punctuation marks."""
        return _TOKEN_RE.findall(text)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> WordTokenizer:
        """Vocabulary of every token seen at least `min_count` times, most frequent first."""
        counts = Counter(tok for text in texts for tok in cls.split(text))
        words = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([cls.pad_token, cls.eos_token, cls.unk_token, *words])

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, add_eos: bool = True) -> list[int]:
        ids = [self.token_to_id.get(tok, self.unk_token_id) for tok in self.split(text)]
        return [*ids, self.eos_token_id] if add_eos else ids

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: bool | str = "longest",
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
    ) -> dict[str, Any]:
        """HF-style batch encoding: {"input_ids", "attention_mask"}; </s> kept when truncating."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        rows = []
        for text in batch:
            ids = self.encode(text)
            if truncation and max_length is not None and len(ids) > max_length:
                ids = [*ids[: max_length - 1], self.eos_token_id]
            rows.append(ids)
        if padding and rows:
            width = max(len(r) for r in rows)
            masks = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
            rows = [r + [self.pad_token_id] * (width - len(r)) for r in rows]
        else:
            masks = [[1] * len(r) for r in rows]
        if return_tensors == "pt":
            return {
                "input_ids": torch.tensor(rows, dtype=torch.long),
                "attention_mask": torch.tensor(masks, dtype=torch.long),
            }
        return {"input_ids": rows, "attention_mask": masks}

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        words = []
        for i in ids:
            if skip_special_tokens and i in (self.pad_token_id, self.eos_token_id):
                continue
            words.append(self.vocab[i] if 0 <= i < len(self.vocab) else self.unk_token)
        text = " ".join(words)
        return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", text))

    def batch_decode(
        self, sequences: Sequence[Sequence[int]] | torch.Tensor, skip_special_tokens: bool = True
    ) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / FILE_NAME).write_text(json.dumps({"vocab": self.vocab}, ensure_ascii=False))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> WordTokenizer:
        path = Path(directory) / FILE_NAME
        try:
            return cls(json.loads(path.read_text())["vocab"])
        except FileNotFoundError:
            raise FileNotFoundError(f"WordTokenizer: no {FILE_NAME} in {directory}") from None
