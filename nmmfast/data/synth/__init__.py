"""SynNMM: the generated corpus of raw COCO-WholeBody pose sequences with planted ground truth
(signers, parametric signs, sentences, non-manual markers that change the text but not the glosses).
`generate` builds it in memory (deterministic by seed), `write_corpus` stores it, `nmmfast synth`
runs both.

Modules: `language` (lexicon, sentences, text), `body` (signers and keypoint geometry), `plan`
(each clip's timeline, markers and manifest row), `motion` (per-frame parameters), `render`
(keypoints as an estimator reports them), `generate`, `corpus` (`Corpus`, `write_corpus`), `cli`.
"""

from __future__ import annotations

from nmmfast.data.synth.body import MISTRACK_MODES, VEIL_KINDS, Signer
from nmmfast.data.synth.cli import configure_parser, run_cli
from nmmfast.data.synth.corpus import Corpus, write_corpus
from nmmfast.data.synth.generate import generate
from nmmfast.data.synth.language import Lexicon, Sentence
from nmmfast.data.synth.plan import NMM_TYPES, SOURCE, SamplePlan

__all__ = [
    "MISTRACK_MODES",
    "NMM_TYPES",
    "SOURCE",
    "VEIL_KINDS",
    "Corpus",
    "Lexicon",
    "SamplePlan",
    "Sentence",
    "Signer",
    "configure_parser",
    "generate",
    "run_cli",
    "write_corpus",
]
