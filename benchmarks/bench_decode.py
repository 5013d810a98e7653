"""Decoding throughput: batched, length-bucketed beam search vs one-sample-at-a-time `generate`.

Runs a trained run (`--run`, with `--corpus`/`--partition`) or, by default, an untrained tiny
model on a freshly generated SynNMM test split. The batched path (`nmmfast.decode.predict`) runs
the pose encoder with its batch norms folded; it is timed against two one-at-a-time peers, one
with the batch norms as trained and one with them folded, so the printout separates the speed-up
of folding from that of batching and bucketing. Before the speeds it prints, for each peer, the
share of samples whose decoded string is identical to the batched one, and fails when a share is
below `--min-identical` (default 100 %). Usage: python benchmarks/bench_decode.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from nmmfast.data.dataset import Corpus, PoseDataset, collate
from nmmfast.decode import predict


def _untrained_run(workdir: Path, samples: int) -> tuple[Path, Path]:
    from nmmfast.data.annotations import read_manifest
    from nmmfast.data.partitions import make_partitions, write_partitions
    from nmmfast.data.synth import generate, write_corpus
    from nmmfast.model import WordTokenizer, build_model, save_model

    corpus = workdir / "corpus"
    write_corpus(generate(samples, 0), corpus)
    rows = read_manifest(corpus / "manifest.jsonl")
    write_partitions(corpus, make_partitions(rows, 0))
    torch.manual_seed(0)
    tokenizer = WordTokenizer.build([r["text"] for r in rows])
    run = workdir / "run"
    save_model(build_model("tiny", tokenizer=tokenizer), run)
    return corpus, run


def one_at_a_time(
    model, dataset: PoseDataset, beam: int, max_new_tokens: int, *, fold: bool = False
) -> dict[str, str]:
    """Each sample alone through `model.generate`; `fold`: within `model.batch_norm_folded()`."""
    out = {}
    folded = model.batch_norm_folded() if fold else contextlib.nullcontext()
    with torch.no_grad(), folded:
        for index in range(len(dataset)):
            batch = collate([dataset[index]])
            ids = model.generate(
                batch.poses, batch.mask, num_beams=beam, max_new_tokens=max_new_tokens
            )
            out[batch.ids[0]] = model.decode(ids)[0]
    return out


def _identical(ours: dict[str, str], peer: dict[str, str]) -> int:
    return sum(ours[i] == peer[i] for i in peer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="training run directory (default: untrained tiny model)")
    parser.add_argument("--corpus", help="corpus directory (with --run)")
    parser.add_argument("--partition", default="control")
    parser.add_argument("--samples", type=int, default=64, help="test samples to decode")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument(
        "--max-new-tokens", type=int, default=100, help="default 100, as `nmmfast decode`"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--min-identical",
        type=float,
        default=1.0,
        help="least share of samples decoded to the identical string by the batched path and "
        "each one-at-a-time peer (default 1.0: all)",
    )
    parser.add_argument("--quick", action="store_true", help="16 samples, < 30 s")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.samples = 16
    from nmmfast.model import load_model

    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            corpus, run = Path(args.corpus), Path(args.run)
            weights = run / "best.pt" if (run / "best.pt").exists() else None
            source = f"run {run}"
        else:
            corpus, run = _untrained_run(Path(tmp), max(40, args.samples * 4))
            weights = None
            source = "untrained tiny model"
        model = load_model(run, weights=weights)
        data = Corpus.open(corpus)
        ids = data.partition(args.partition)["test"][: args.samples]
        task = "slt"
        dataset = PoseDataset(
            data, ids, task, layout=model.config.layout, max_frames=model.config.max_frames
        )
        settings = dict(num_beams=args.beam, max_new_tokens=args.max_new_tokens)
        # untimed warm-up on one sample, so no path pays the first call's setup
        predict(
            model,
            PoseDataset(
                data, ids[:1], task, layout=model.config.layout, max_frames=model.config.max_frames
            ),
            batch_size=1,
            **settings,
        )

        began = time.perf_counter()
        batched = predict(model, dataset, batch_size=args.batch_size, **settings)
        batched_s = time.perf_counter() - began
        began = time.perf_counter()
        folded = one_at_a_time(model, dataset, args.beam, args.max_new_tokens, fold=True)
        folded_s = time.perf_counter() - began
        began = time.perf_counter()
        single = one_at_a_time(model, dataset, args.beam, args.max_new_tokens)
        single_s = time.perf_counter() - began
    n = len(single)
    print(
        f"{source}: {n} test samples, beam {args.beam}, max_new_tokens {args.max_new_tokens}, "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    outputs = list(batched.values())
    print(
        f"batched outputs: {len(set(outputs))} distinct, "
        f"{sum(not text for text in outputs)} empty, of {n}"
    )
    print(f"identical decoded strings, batched vs peer (required: >= {args.min_identical:.0%}):")
    failed = False
    for name, peer in (("one at a time", single), ("one at a time, batch norms folded", folded)):
        same = _identical(batched, peer)
        share = same / max(n, 1)
        failed |= share < args.min_identical
        print(f"  {name:35s} {same}/{n} ({share:.1%})")
    if failed:
        print("FAILED: batched decoding changes the output", file=sys.stderr)
        return 1
    print(f"one at a time                      {n / single_s:8.2f} sentences/s")
    print(f"one at a time, batch norms folded  {n / folded_s:8.2f} sentences/s")
    print(f"batched, bucketed (folded)         {n / batched_s:8.2f} sentences/s")
    print(f"ratio vs one at a time:         {single_s / batched_s:6.2f}x (folding and batching)")
    print(f"ratio vs one at a time, folded: {folded_s / batched_s:6.2f}x (batching, bucketing)")
    print(f"folding alone, one at a time:   {single_s / folded_s:6.2f}x")
    if args.json:
        setting = f"beam-{args.beam}, max_new_tokens {args.max_new_tokens} decoding"
        summary = [
            {
                "claim": f"{setting}, batched + bucketed + folded vs one at a time",
                "ours": f"{n / batched_s:.2f} sentences/s",
                "peer": f"{n / single_s:.2f} sentences/s",
                "ratio": single_s / batched_s,
                "goal": "faster",
            },
            {
                "claim": f"{setting}, batched + bucketed vs one at a time, both folded",
                "ours": f"{n / batched_s:.2f} sentences/s",
                "peer": f"{n / folded_s:.2f} sentences/s",
                "ratio": folded_s / batched_s,
                "goal": "faster",
            },
        ]
        args.json.write_text(json.dumps({"benchmark": "decode", "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
