"""A generated SynNMM corpus held in memory (`Corpus`: poses, manifest rows and the corpus-level
ground truth) and `write_corpus`, which stores it as a pose store, a manifest and `synnmm.json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmmfast.data.synth.body import Signer
from nmmfast.data.synth.language import Lexicon, Sentence
from nmmfast.data.synth.plan import SOURCE

__all__ = ["Corpus", "write_corpus"]


@dataclass
class Corpus:
    """A generated corpus held in memory.

    poses[i] is sample i's raw pose, [T_i, 133, 3] float32 (x / width, y / height, score);
    rows[i] its manifest row (id, signer, sentence, gloss, text, frames, fps, width, height,
    source, handedness, veiled, veil_kind, veil_mode, nmm, signs, repetition).
    """

    poses: list[np.ndarray]
    rows: list[dict[str, Any]]
    lexicon: Lexicon
    sentences: list[Sentence]
    signers: list[Signer]
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def ids(self) -> list[str]:
        return [row["id"] for row in self.rows]

    def records(self) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
        """(id, raw [T, 133, 3] float32, store metadata) per sample, for `PoseStore.extend`."""
        for raw, row in zip(self.poses, self.rows, strict=True):
            meta = {k: row[k] for k in ("signer", "sentence", "fps", "width", "height", "source")}
            yield row["id"], raw, meta

    def describe(self) -> dict[str, Any]:
        """Corpus-level ground truth: settings, lexicon, sentences and signers (JSON-ready)."""
        return {
            "source": SOURCE,
            "settings": self.settings,
            "lexicon": [asdict(g) for g in self.lexicon.glosses],
            "sentences": [
                {
                    "sentence": f"{s.index + 1:04d}",
                    "gloss": s.gloss,
                    "roles": list(s.roles),
                    "text": s.text(),
                }
                for s in self.sentences
            ],
            "signers": [s.describe() for s in self.signers],
        }


def write_corpus(corpus: Corpus, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write `corpus` as `<out_dir>/poses/` (a PoseStore), `<out_dir>/manifest.jsonl` and
    `<out_dir>/synnmm.json` (settings, lexicon, sentences, signers). Returns `out_dir`."""
    from nmmfast.data import PoseStore
    from nmmfast.data.annotations import write_manifest

    out = Path(out_dir)
    poses_dir = out / "poses"
    if poses_dir.exists() and any(poses_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{poses_dir} already holds a pose store; pass overwrite=True")
        import shutil

        shutil.rmtree(poses_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = PoseStore.create(poses_dir)
    store.extend(corpus.records())
    write_manifest(out / "manifest.jsonl", corpus.rows)
    (out / "synnmm.json").write_text(json.dumps(corpus.describe(), indent=1) + "\n")
    return out
