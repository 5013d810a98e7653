"""Decoding: beam search over a split, batched and length-bucketed, written as JSON Lines.

`predict` decodes a `PoseDataset` with a model (pose encoder in PyTorch, ONNX Runtime or
TensorRT); `decode` does it for a training run's best weights on a corpus partition and writes rows
{"id", "prediction", "reference", "task"} in the split's order (skipped samples: prediction null).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nmmfast._io import atomic_write_text
from nmmfast.data.dataset import (
    NON_FINITE,
    BucketBatchSampler,
    Corpus,
    PoseDataset,
    add_skip_bad_argument,
    collate,
    skipped_bad_line,
    target_of,
)
from nmmfast.errors import positive_int

__all__ = [
    "ENCODER_BACKENDS",
    "PoseEncoderSession",
    "configure_parser",
    "decode",
    "predict",
    "run_cli",
]


class PoseEncoderSession:
    """The exported pose encoder (`nmmfast export`) run by an `nmmfast.runtime` session:
    (poses, mask) -> embeddings, like `UniSignModel.pose_embeddings`. backend "onnxruntime"
    loads the ONNX; "tensorrt" builds an engine from it on first use (cached) whose profile spans
    1..`max_batch` samples and 1..`max_frames` frames."""

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "onnxruntime",
        device: str = "cpu",
        *,
        max_batch: int = 16,
        max_frames: int = 256,
        fp16: bool = False,
    ) -> None:
        from nmmfast.runtime import open_session

        options: dict[str, Any] = {}
        if backend == "tensorrt":
            options = {
                "fp16": fp16,
                "max_batch": max_batch,
                "opt_batch": max_batch,
                "axes": {"frames": (1, max_frames, max_frames)},
            }
        self.session = open_session(path, backend, device, **options)
        self.path = Path(path)

    def __call__(self, poses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        outputs = self.session.run(
            {"poses": poses.detach().cpu().float().numpy(), "mask": mask.detach().cpu().numpy()}
        )
        return torch.from_numpy(outputs["embeddings"])


@torch.no_grad()
def predict(
    model: Any,
    dataset: PoseDataset,
    *,
    batch_size: int = 16,
    num_beams: int = 4,
    max_new_tokens: int = 100,
    device: str | torch.device = "cpu",
    encoder: Any = None,
    progress: bool = False,
) -> dict[str, str]:
    """Decode every sample of `dataset`: id -> prediction string.

    Batches hold samples of similar length (little padding); with the model's pad-invariant
    encoder the result does not depend on batch size. `encoder` replaces the PyTorch pose
    encoder (e.g. `PoseEncoderSession`); it maps (poses, mask) to [B, T, d_model]. The PyTorch
    encoder runs with its batch norms folded where the model offers it (same outputs).
    """
    model.eval()
    sampler = BucketBatchSampler(dataset.lengths, batch_size)
    predictions: dict[str, str] = {}
    batches = list(sampler)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="decode", unit="batch", leave=False)
    folded = (
        model.batch_norm_folded()
        if encoder is None and hasattr(model, "batch_norm_folded")
        else contextlib.nullcontext()
    )
    with folded:
        for indices in batches:
            batch = collate([dataset[i] for i in indices]).to(device)
            embeddings = None
            if encoder is not None:
                embeddings = encoder(batch.poses, batch.mask).to(device)
            ids = model.generate(
                batch.poses,
                batch.mask,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                pose_embeddings=embeddings,
            )
            for sample_id, text in zip(batch.ids, model.decode(ids), strict=True):
                predictions[sample_id] = text
    return predictions


ENCODER_BACKENDS = ("torch", "onnxruntime", "tensorrt")


def decode(
    run: str | os.PathLike,
    corpus: str | os.PathLike,
    partition: str,
    *,
    split: str = "test",
    out: str | os.PathLike | None = None,
    beam: int = 4,
    max_new_tokens: int = 100,
    batch_size: int = 16,
    checkpoint: str = "best",
    encoder_backend: str = "torch",
    onnx_model: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = False,
    skip_bad: bool = False,
) -> list[dict[str, Any]]:
    """Decode `split` of `partition` with a run's weights; write JSON Lines to `out` if given.

    skip_bad: samples with non-finite poses get a null prediction and a "skipped" reason instead
    of stopping the decode (see `PoseDataset`).

    encoder_backend "onnxruntime" (CPU) or "tensorrt" (CUDA, where TensorRT is installed) runs
    the pose encoder from `onnx_model` (default RUN/pose_encoder.onnx, made by
    `nmmfast export`); the text model stays in PyTorch.
    """
    from nmmfast.model import load_run

    run = Path(run)
    model, meta, device = load_run(run, checkpoint, device)
    task = meta["task"]
    if encoder_backend not in ENCODER_BACKENDS:
        raise ValueError(
            f"encoder_backend must be one of {ENCODER_BACKENDS}, got {encoder_backend!r}"
        )
    encoder = None
    if encoder_backend != "torch":
        # ONNX Runtime runs the encoder on the CPU; TensorRT needs a GPU whatever `device` is
        on_gpu = device if device.startswith("cuda") else "cuda"
        encoder = PoseEncoderSession(
            onnx_model or run / "pose_encoder.onnx",
            encoder_backend,
            "cpu" if encoder_backend == "onnxruntime" else on_gpu,
            max_batch=batch_size,
            max_frames=model.config.max_frames,
        )
    data = Corpus.open(corpus)
    ids = data.partition(partition)[split]
    dataset = PoseDataset(
        data,
        ids,
        task,
        layout=model.config.layout,
        max_frames=model.config.max_frames,
        skip_bad=skip_bad,
    )
    predictions = predict(
        model,
        dataset,
        batch_size=batch_size,
        num_beams=beam,
        max_new_tokens=max_new_tokens,
        device=device,
        encoder=encoder,
        progress=progress,
    )
    skipped = {i: reason for reason, items in dataset.skipped_ids.items() for i in items}
    rows = []
    for sample_id in ids:
        reference = target_of(data.rows[sample_id], task) if sample_id in data.rows else ""
        row: dict[str, Any] = {
            "id": sample_id,
            "prediction": predictions.get(sample_id),
            "reference": reference,
            "task": task,
        }
        if sample_id in skipped:
            row["skipped"] = skipped[sample_id]
        rows.append(row)
    if out is not None:
        atomic_write_text(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="training run directory")
    parser.add_argument("--corpus", required=True, metavar="DIR", help="corpus directory")
    parser.add_argument("--partition", required=True, help="partition name (control, si, us)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--out", required=True, metavar="predictions.jsonl")
    parser.add_argument("--beam", type=positive_int, default=4, help="beam width (default 4)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=100)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--encoder-backend", default="torch", choices=ENCODER_BACKENDS)
    parser.add_argument(
        "--onnx-model",
        metavar="FILE.onnx",
        help="pose encoder ONNX (default RUN_DIR/pose_encoder.onnx)",
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_skip_bad_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    rows = decode(
        args.run,
        args.corpus,
        args.partition,
        split=args.split,
        out=args.out,
        beam=args.beam,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        checkpoint=args.checkpoint,
        encoder_backend=args.encoder_backend,
        onnx_model=args.onnx_model,
        device=args.device,
        progress=not args.no_progress,
        skip_bad=args.skip_bad,
    )
    left_out = skipped_bad_line(
        {NON_FINITE: [r["id"] for r in rows if r.get("skipped") == NON_FINITE]}
    )
    if left_out:
        print(left_out, file=sys.stderr)
    decoded = sum(r["prediction"] is not None for r in rows)
    elapsed = time.perf_counter() - start
    print(
        f"decoded {decoded}/{len(rows)} samples of {args.partition}/{args.split} "
        f"in {elapsed:.1f} s -> {args.out}",
        file=sys.stderr,
    )
    return 0
