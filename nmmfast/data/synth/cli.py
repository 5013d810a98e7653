"""`nmmfast synth`: generate SynNMM with the command line's settings, write it, and print what was
planted and how long it took.
"""

from __future__ import annotations

import argparse
import time

from nmmfast.data.synth.body import VEIL_KINDS, Signer
from nmmfast.data.synth.corpus import write_corpus
from nmmfast.data.synth.generate import generate
from nmmfast.data.synth.plan import NMM_TYPES

__all__ = ["configure_parser", "run_cli"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (poses/, manifest.jsonl)")
    parser.add_argument("--samples", type=int, default=2000, help="number of clips (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--signers", type=int, default=16, help="number of signers (default 16)")
    parser.add_argument("--veiled", type=int, default=4, help="veiled signers (default 4)")
    parser.add_argument(
        "--veil",
        default="mistrack",
        help="how a veiled face is mistracked: mistrack (a whole face in a wrong place, size or "
        "orientation, moving smoothly; default), noise (points scattered over the head anew "
        "every frame), or both comma-separated (mistrack,noise: the veiled signers alternate)",
    )
    parser.add_argument(
        "--left-handed", type=int, default=3, help="left-handed signers (default 3)"
    )
    parser.add_argument("--glosses", type=int, default=64, help="lexicon size (default 64)")
    parser.add_argument(
        "--sentences", type=int, default=240, help="distinct sentences (default 240)"
    )
    parser.add_argument("--question-rate", type=float, default=0.3)
    parser.add_argument("--negation-rate", type=float, default=0.3)
    parser.add_argument("--intensifier-rate", type=float, default=0.35)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus")


def _veil_summary(signers: list[Signer]) -> str:
    counts = {k: sum(s.veil_kind == k for s in signers) for k in VEIL_KINDS}
    kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return f"{sum(s.veiled for s in signers)} veiled" + (f": {kinds}" if kinds else "")


def run_cli(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    corpus = generate(
        args.samples,
        args.seed,
        n_signers=args.signers,
        n_veiled=args.veiled,
        veil=args.veil,
        n_left_handed=args.left_handed,
        n_glosses=args.glosses,
        n_sentences=args.sentences,
        question_rate=args.question_rate,
        negation_rate=args.negation_rate,
        intensifier_rate=args.intensifier_rate,
    )
    generated = time.perf_counter() - began
    out = write_corpus(corpus, args.out, overwrite=args.overwrite)
    total = time.perf_counter() - began
    frames = sum(row["frames"] for row in corpus.rows)
    marked = {
        t: sum(any(m["type"] == t for m in row["nmm"]) for row in corpus.rows) for t in NMM_TYPES
    }
    print(
        f"SynNMM seed {args.seed}: {len(corpus)} clips, {frames} frames, "
        f"{len(corpus.signers)} signers ({_veil_summary(corpus.signers)}), "
        f"{len(corpus.lexicon)} glosses, "
        f"{len(corpus.sentences)} sentences"
    )
    print("clips with " + ", ".join(f"{t} {n}" for t, n in marked.items()))
    print(f"generated in {generated:.2f} s, written to {out} in {total - generated:.2f} s")
    return 0
