"""`nmmfast probe {tracking,counterfactual,identity}`: run one probe on a corpus (split) and write
its result as JSON, atomically."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from nmmfast._io import atomic_write_text, file_sha256
from nmmfast.errors import positive_int

__all__ = ["configure_parser", "run_cli", "write_json"]


def _finite(value: Any) -> Any:
    """NaN and infinities as null, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a probe result as JSON (NaN as null) via a temporary file and `os.replace`."""
    text = json.dumps(_finite(result), indent=1, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "probe", choices=["tracking", "counterfactual", "identity"], help="which probe to run"
    )
    parser.add_argument(
        "--corpus",
        required=True,
        metavar="DIR",
        help="corpus directory (poses/, manifest.jsonl, partitions/)",
    )
    parser.add_argument(
        "--partition", help="partition name (control, si, us); default: every sample of the corpus"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "dev", "test"],
        help="split of --partition (default test)",
    )
    parser.add_argument(
        "--run", metavar="RUN_DIR", help="training run (counterfactual and identity need one)"
    )
    parser.add_argument(
        "--checkpoint",
        default="best",
        choices=["best", "last"],
        help="weights of the run (default best)",
    )
    parser.add_argument("--out", required=True, metavar="FILE.json", help="result file")
    parser.add_argument("--limit", type=int, help="probe only the first N samples")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="frames fed to the model per sample (default the model's)",
    )
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument(
        "--template",
        default="builtin",
        choices=["builtin", "corpus"],
        help="canonical face: built in, or estimated from the probed samples",
    )
    tracking.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="frame score above which a face is incoherent (default 0.3)",
    )
    tracking.add_argument(
        "--terms",
        default=None,
        help="comma-separated terms whose largest is the frame score "
        "(default shape,placement,jitter)",
    )
    tracking.add_argument(
        "--frame-scores", action="store_true", help="also write every frame's score"
    )
    counterfactual = parser.add_argument_group("counterfactual")
    counterfactual.add_argument(
        "--regions",
        default=None,
        help="comma-separated regions (default none,face,head,face+head,hands,body,all)",
    )
    counterfactual.add_argument(
        "--mode",
        default="signer_mean",
        choices=["signer_mean", "clip_mean", "zero"],
        help="neutral version of a region: the signer's mean pose over "
        "the split (default), the clip's mean, or undetected",
    )
    counterfactual.add_argument(
        "--beam", type=positive_int, default=4, help="beam width (default 4)"
    )
    counterfactual.add_argument("--max-new-tokens", type=positive_int, default=100)
    identity = parser.add_argument_group("identity")
    identity.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _ids(args: argparse.Namespace, rows: dict[str, Any], store: Any) -> list[str]:
    if args.partition:
        from nmmfast.data.partitions import load_partition

        ids = list(load_partition(args.corpus, args.partition)[args.split])
    else:
        ids = [i for i in rows if i in store] if rows else list(store.ids())
    return ids[: args.limit] if args.limit else ids


def _file_digest(path: Path) -> str:
    """First 12 hex digits of the file's SHA-256 (names the weights in the signature)."""
    return file_sha256(path)[:12]


def _load_run(args: argparse.Namespace) -> tuple[Any, str, str]:
    """(model on its device, task, device) of --run."""
    from nmmfast.model import load_run

    if not args.run:
        raise SystemExit(f"nmmfast probe {args.probe}: needs --run RUN_DIR (a training run)")
    try:
        model, meta, device = load_run(args.run, args.checkpoint, args.device)
    except FileNotFoundError as error:
        raise SystemExit(f"nmmfast probe: {error}") from None
    return model, meta.get("task", "slt"), device


def run_cli(args: argparse.Namespace) -> int:
    from nmmfast.data.dataset import Corpus

    began = time.perf_counter()
    corpus = Corpus.open(args.corpus)
    ids = _ids(args, corpus.rows, corpus.store)
    where = f"{args.partition}/{args.split}" if args.partition else "all samples"
    settings = {
        "corpus": str(args.corpus),
        "partition": args.partition,
        "split": args.split if args.partition else None,
    }
    if args.probe == "tracking":
        from nmmfast.probes.tracking import FLAG_THRESHOLD, TERMS, tracking_report

        result = tracking_report(
            corpus.store,
            ids,
            corpus.rows,
            template=args.template,
            threshold=FLAG_THRESHOLD if args.threshold is None else args.threshold,
            terms=args.terms.split(",") if args.terms else TERMS,
            frame_scores=args.frame_scores,
        )
        line = f"{result['overall']['flagged_samples']}/{len(ids)} samples flagged"
        kinds = result.get("auroc_by_kind", {})
        if len(kinds) == 1:
            blocks = {f"veiled ({next(iter(kinds))})": result["auroc"]}
        else:
            blocks = {"veiled": result.get("auroc", {}), **kinds}
        for name, auc in blocks.items():
            if auc.get("frames") is not None and auc.get("samples") is not None:
                line += f", {name} AUROC frames {auc['frames']:.3f} samples {auc['samples']:.3f}"
    elif args.probe == "counterfactual":
        from nmmfast.probes.counterfactual import DEFAULT_REGIONS, counterfactual_probe

        model, task, device = _load_run(args)
        regions = args.regions.split(",") if args.regions else list(DEFAULT_REGIONS)
        result = counterfactual_probe(
            model,
            corpus,
            ids,
            task=task,
            regions=regions,
            mode=args.mode,
            batch_size=args.batch_size,
            num_beams=args.beam,
            max_new_tokens=args.max_new_tokens,
            max_frames=args.max_frames,
            device=device,
            progress=not args.no_progress,
        )
        line = ", ".join(
            f"{r} {v['change_rate']:.2f}"
            for r, v in result["regions"].items()
            if v["change_rate"] is not None
        )
        line = f"{result['n']} samples; output changed: {line}"
    else:
        from nmmfast.probes.identity import identity_probe

        model, task, device = _load_run(args)
        result = identity_probe(
            model,
            corpus,
            ids,
            task=task,
            folds=args.folds,
            batch_size=args.batch_size,
            max_frames=args.max_frames,
            device=device,
            progress=not args.no_progress,
        )
        line = ", ".join(f"{r} {v['accuracy']:.2f}" for r, v in result["regions"].items())
        line = f"signer accuracy (chance {result['chance']:.2f}): {line}"
    if args.probe != "tracking":
        digest = _file_digest(Path(args.run) / f"{args.checkpoint}.pt")
        settings.update(run=str(args.run), checkpoint=args.checkpoint, checkpoint_sha256=digest)
        result["settings"]["signature"] += f"|checkpoint:{args.checkpoint}.{digest}"
    where_signature = f"|corpus:{Path(args.corpus).name}|partition:{args.partition or 'all'}"
    if args.partition:
        where_signature += f"|split:{args.split}"
    if args.limit:
        where_signature += f"|limit:{args.limit}"
    result["settings"]["signature"] += where_signature
    result["settings"].update(settings)
    write_json(result, args.out)
    elapsed = time.perf_counter() - began
    print(f"probe {args.probe} on {where}: {line} ({elapsed:.1f} s) -> {args.out}", file=sys.stderr)
    return 0
