"""Decoding throughput: batched, length-bucketed beam search vs one-sample-at-a-time `generate`.

Runs a trained run (`--run`, with `--corpus`/`--partition`) or, by default, an untrained tiny
model on a freshly generated SynNMM test split. Checks that both ways produce the same strings,
then prints sentences/s and the ratio. Usage: python benchmarks/bench_decode.py [--quick]
"""

from __future__ import annotations

import argparse
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


def one_at_a_time(model, dataset: PoseDataset, beam: int, max_new_tokens: int) -> dict[str, str]:
    out = {}
    with torch.no_grad():
        for index in range(len(dataset)):
            batch = collate([dataset[index]])
            ids = model.generate(
                batch.poses, batch.mask, num_beams=beam, max_new_tokens=max_new_tokens
            )
            out[batch.ids[0]] = model.decode(ids)[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="training run directory (default: untrained tiny model)")
    parser.add_argument("--corpus", help="corpus directory (with --run)")
    parser.add_argument("--partition", default="control")
    parser.add_argument("--samples", type=int, default=64, help="test samples to decode")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
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
        else:
            corpus, run = _untrained_run(Path(tmp), max(40, args.samples * 4))
            weights = None
        model = load_model(run, weights=weights)
        data = Corpus.open(corpus)
        ids = data.partition(args.partition)["test"][: args.samples]
        task = "slt"
        dataset = PoseDataset(
            data, ids, task, layout=model.config.layout, max_frames=model.config.max_frames
        )

        began = time.perf_counter()
        batched = predict(
            model,
            dataset,
            batch_size=args.batch_size,
            num_beams=args.beam,
            max_new_tokens=args.max_new_tokens,
        )
        batched_s = time.perf_counter() - began
        began = time.perf_counter()
        single = one_at_a_time(model, dataset, args.beam, args.max_new_tokens)
        single_s = time.perf_counter() - began
    agree = sum(batched[i] == single[i] for i in single) / max(len(single), 1)
    print(f"agreement batched vs one-at-a-time: {agree:.1%} of {len(single)} sentences")
    if agree < 0.95:
        print("FAILED: batched decoding changes the output", file=sys.stderr)
        return 1
    n = len(single)
    print(f"one at a time      {n / single_s:8.2f} sentences/s")
    print(
        f"batched, bucketed  {n / batched_s:8.2f} sentences/s  (batch {args.batch_size}, "
        f"beam {args.beam}, {torch.get_num_threads()} threads)"
    )
    print(f"ratio {single_s / batched_s:.2f}x")
    if args.json:
        summary = [
            {
                "claim": f"beam-{args.beam} decoding, batched + bucketed vs one at a time",
                "ours": f"{n / batched_s:.2f} sentences/s",
                "peer": f"{n / single_s:.2f} sentences/s",
                "ratio": single_s / batched_s,
                "goal": "faster",
            }
        ]
        args.json.write_text(json.dumps({"benchmark": "decode", "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
