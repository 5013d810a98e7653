"""`nmmfast attribute`: Integrated Gradients over a partition's split, streamed to disk.

Each sample's result is written atomically to `OUT/samples/<id>.npz` as soon as its batch is done,
so an interrupted job resumes without recomputing finished samples; ranks (`torchrun` or
--rank/--world-size) take every W-th sample, and the last rank to finish merges the shares.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmmfast._io import write_json_atomic
from nmmfast.attribution.baselines import (
    BASELINES,
    baselines_for,
    mean_pose,
    mean_pose_sha256,
)
from nmmfast.attribution.quadrature import METHODS, quadrature
from nmmfast.attribution.sequence import SequenceAttributor
from nmmfast.attribution.shares import CHANNELS
from nmmfast.attribution.summary import JOB_FILE, SAMPLES_DIR, VOLATILE_SETTINGS, summarize
from nmmfast.data.dataset import add_skip_bad_argument, skipped_bad_line
from nmmfast.errors import UserError, positive_float, positive_int
from nmmfast.model.checkpoint import weights_sha256
from nmmfast.skeleton import get_layout

__all__ = [
    "JobMismatch",
    "attribute_partition",
    "configure_parser",
    "run_attribution",
    "run_cli",
]

STOP_GRADIENTS = ("lift", "keep")


def _sample_file(out: Path, sample_id: str) -> Path:
    safe = sample_id.replace(os.sep, "__").replace("/", "__")
    return out / SAMPLES_DIR / f"{safe}.npz"


def _write_sample(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # not *.npz: a file left by a crash before the rename must not pass for a result
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def _shard(ids: Sequence[str], rank: int, world_size: int) -> list[str]:
    return [sample_id for k, sample_id in enumerate(ids) if k % world_size == rank]


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


# what a resumed job must share with the job that started it, besides the settings: a different
# value means different numbers, so the finished samples would mix two jobs
_IDENTITY = {
    "weights_sha256": "the model's weights changed",
    "samples_sha256": "the corpus' poses or targets of these samples changed",
}


class JobMismatch(UserError, ValueError):
    """A job directory holds a job started with other settings, weights or samples."""


def _check_job(out: Path, settings: dict[str, Any]) -> None:
    """Write job.json, or check that an existing one describes the same job."""
    path = out / JOB_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise UserError(f"{path}: unreadable job file ({error})") from None
        for key, value in settings.items():
            if key in VOLATILE_SETTINGS or previous.get(key) == value:
                continue
            if key in _IDENTITY:
                was = previous.get(key)
                reason = _IDENTITY[key] if was else f"the job recorded no {key}"
                raise JobMismatch(
                    f"{path}: {reason} since this job started ({key} {str(was)[:12]} -> "
                    f"{str(value)[:12]}); resuming would mix two jobs' samples: use another "
                    f"--out (or delete it) to start a new job"
                )
            raise JobMismatch(
                f"{path}: this directory holds a job with {key}={previous.get(key)!r}, not "
                f"{value!r}; use another --out (or delete it) to start a new job"
            )
        return
    write_json_atomic(path, settings)


def run_attribution(
    model: Any,
    corpus: Any,
    partition: str,
    out: str | os.PathLike,
    *,
    task: str,
    split: str = "test",
    target: str = "decoded",
    method: str = "gausslegendre",
    n_steps: int = 50,
    tolerance: float | None = None,
    max_steps: int = 512,
    per_token: bool = False,
    batch_rows: int | None = None,
    samples_per_call: int = 8,
    max_frames: int | None = None,
    num_beams: int = 4,
    max_new_tokens: int = 100,
    rank: int | None = None,
    world_size: int | None = None,
    save_attributions: bool = False,
    limit: int | None = None,
    max_samples: int | None = None,
    top: int = 10,
    progress: bool = False,
    skip_bad: bool = False,
    stop_gradients: str = "lift",
    baseline: str = "zero",
    channels: str = "all",
    extra_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Attribute every sample of `split` of `partition` with `model`; write results under `out`.

    corpus: a corpus directory or an open `nmmfast.data.dataset.Corpus`. target: "decoded"
    (the model's own beam-search output) or "reference". `max_samples` attributes only the
    split's first that many samples (part of the job's definition); `limit` stops after that
    many new samples (the rest is done on the next call). `skip_bad` leaves out samples with
    non-finite poses (listed in the done file) instead of stopping. job.json records the
    settings with the sha256 of the weights and of the samples read; a resumed job must match
    them all, or it is refused with the difference named. `stop_gradients`: "lift" (default:
    the model's `.detach()` on body-context paths removed for the pass, forward unchanged, so
    completeness holds) or "keep" (the model as it is, as the reference study attributed it;
    the detached paths then make Σ attr ≠ ΔF). `baseline`: one of `baselines.BASELINES`.
    `channels`: what the summary's headline shares count ("all" or "coords").
    Returns {"computed", "skipped_existing", "shard", "left_out", "summary" (None until every
    rank is done)}.
    """
    from nmmfast.data.dataset import Corpus, PoseDataset

    if target not in ("decoded", "reference"):
        raise ValueError(f"target must be 'decoded' or 'reference', got {target!r}")
    # refuses a method or steps the rule cannot take, before any file is written
    quadrature(method, n_steps)
    if samples_per_call < 1:
        raise ValueError(f"samples_per_call must be >= 1, got {samples_per_call}")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    if max_steps < n_steps:
        raise ValueError(f"max_steps ({max_steps}) must be >= n_steps ({n_steps})")
    if stop_gradients not in STOP_GRADIENTS:
        raise ValueError(f"stop_gradients must be one of {STOP_GRADIENTS}, got {stop_gradients!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    rank, world_size = _rank_and_world(rank, world_size)
    out = Path(out)
    data = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
    ids = data.partition(partition)[split]
    if max_samples is not None:
        ids = ids[: max(0, int(max_samples))]
    layout = model.config.layout
    max_frames = int(max_frames or model.config.max_frames)
    settings = {
        "partition": partition,
        "split": split,
        "task": task,
        "target": target,
        "method": method,
        "n_steps": n_steps,
        "tolerance": tolerance,
        "max_steps": max_steps,
        "per_token": per_token,
        "max_frames": max_frames,
        "max_samples": max_samples,
        "num_beams": num_beams,
        "max_new_tokens": max_new_tokens,
        "layout": layout,
        "corpus": str(Path(data.path).resolve()),
        "rank": rank,
        "world_size": world_size,
        "batch_rows": batch_rows,
        "samples_per_call": samples_per_call,
        "limit": limit,
        "stop_gradients": stop_gradients,
        "baseline": baseline,
        "channels": channels,
        "skip_bad": skip_bad,
        "weights_sha256": weights_sha256(model),
        "samples_sha256": data.samples_sha256(ids, task),
        **(extra_settings or {}),
    }
    dataset = PoseDataset(
        data,
        _shard(ids, rank, world_size),
        task,
        layout=layout,
        max_frames=max_frames,
        skip_bad=skip_bad,
    )
    mean = None
    if baseline == "mean-pose":
        train_set = PoseDataset(
            data,
            data.partition(partition)["train"],
            task,
            layout=layout,
            max_frames=max_frames,
            skip_bad=skip_bad,
        )
        mean = mean_pose(train_set)
        settings["baseline_sha256"] = mean_pose_sha256(mean)
    (out / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    _check_job(out, settings)
    pending = [
        k
        for k, sample_id in enumerate(dataset.sample_ids)
        if not _sample_file(out, sample_id).is_file()
    ]
    existing = len(dataset) - len(pending)
    if limit is not None:
        pending = pending[: max(0, int(limit))]
    pending.sort(key=lambda k: -dataset.lengths[k])  # similar lengths share engine calls
    attributor = SequenceAttributor(model, lift_stop_gradient=stop_gradients == "lift")
    on_cpu = attributor.device().type == "cpu"
    if batch_rows is None and len(pending) > samples_per_call and on_cpu:
        # CPUs: the fastest batch is small and model dependent; a few seconds of calibration
        # on the longest pending sample pay off over the job
        _, longest, text = dataset[pending[0]]
        batch_rows = attributor.calibrate(
            longest,
            None if target == "decoded" else text,
            n_steps=min(n_steps, 16),
            method=method,
            per_token=per_token,
        )
    regions = torch.as_tensor(np.asarray(get_layout(layout).region_of_joint), dtype=torch.int64)
    one_hot = torch.nn.functional.one_hot(regions, int(regions.max()) + 1).float()
    chunks = [pending[i : i + samples_per_call] for i in range(0, len(pending), samples_per_call)]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"attribute rank {rank}", unit="call", leave=False)
    computed = 0
    for chunk in chunks:
        items = [dataset[k] for k in chunk]
        poses = [poses for _, poses, _ in items]
        targets = None if target == "decoded" else [text for _, _, text in items]
        res = attributor.attribute(
            poses,
            targets,
            baselines_for(baseline, poses, mean),
            n_steps=n_steps,
            method=method,
            per_token=per_token,
            batch_rows=batch_rows,
            tolerance=tolerance,
            max_steps=max_steps,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
        )
        for row, (sample_id, _, reference) in enumerate(items):
            arrays = _sample_arrays(res, row, one_hot, per_token, save_attributions)
            meta = {
                "id": sample_id,
                "reference": reference,
                "target": res.target_text[row],
                "tokens": res.target_tokens[row],
            }
            arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
            _write_sample(_sample_file(out, sample_id), arrays)
            computed += 1
    skipped = {reason: list(v) for reason, v in dataset.skipped_ids.items()}
    done = computed + existing == len(dataset)
    if done:
        write_json_atomic(
            out / f"done-{rank}-of-{world_size}.json", {"samples": len(dataset), "skipped": skipped}
        )
    finished = all((out / f"done-{r}-of-{world_size}.json").is_file() for r in range(world_size))
    summary = summarize(out, top=top, channels=channels) if finished else None
    return {
        "computed": computed,
        "batch_rows": batch_rows,
        "skipped_existing": existing,
        "shard": len(dataset),
        "left_out": dict(dataset.skipped_ids),
        "summary": summary,
    }


def _sample_arrays(
    res: Any, row: int, one_hot: torch.Tensor, per_token: bool, save_attributions: bool
) -> dict[str, np.ndarray]:
    ig = res.ig
    attr = ig.attributions[row].detach().float().cpu()  # [T, J, C] or [L, T, J, C]
    length = res.token_lengths()[row]
    arrays: dict[str, np.ndarray] = {}
    if per_token:
        tokens = attr[:length]
        arrays["token_region_abs"] = (tokens.abs().sum(-1) @ one_hot).sum(1).numpy()
        arrays["token_delta"] = ig.delta[row, :length].numpy()
        arrays["token_f_input"] = ig.f_input[row, :length].numpy()
        arrays["token_f_baseline"] = ig.f_baseline[row, :length].numpy()
        attr = tokens.sum(0)
        f_input = float(ig.f_input[row, :length].sum())
        f_baseline = float(ig.f_baseline[row, :length].sum())
        total = float(ig.total[row, :length].sum())
        delta = total - (f_input - f_baseline)
        # |Σ over tokens| per joint: the engine's sums are per token, so they are not it
        joint_abs = attr.abs().sum(dim=(0, 2)).double()
        joint_signed = attr.sum(dim=(0, 2)).double()
        region_abs, region_signed = joint_abs @ one_hot.double(), joint_signed @ one_hot.double()
    else:
        f_input, f_baseline = float(ig.f_input[row]), float(ig.f_baseline[row])
        total, delta = float(ig.total[row]), float(ig.delta[row])
        joint_abs, joint_signed = ig.joint.abs[row], ig.joint.signed[row]
        region_abs, region_signed = ig.region.abs[row], ig.region.signed[row]
    arrays.update(
        joint_abs=joint_abs.numpy(),
        joint_abs_coords=attr[..., :2].abs().sum(dim=(0, 2)).double().numpy(),
        joint_signed=joint_signed.numpy(),
        region_abs=region_abs.numpy(),
        region_signed=region_signed.numpy(),
        frame_region_abs=(attr.abs().sum(-1) @ one_hot).numpy(),
        total=np.float64(total),
        delta=np.float64(delta),
        f_input=np.float64(f_input),
        f_baseline=np.float64(f_baseline),
        n_steps=np.int64(ig.n_steps[row]),
        converged=np.bool_(ig.converged[row]),
        target_ids=res.target_ids[row].numpy(),
    )
    if save_attributions:
        arrays["attributions"] = attr.numpy()
    return arrays


def attribute_partition(
    run: str | os.PathLike,
    corpus: str | os.PathLike,
    partition: str,
    out: str | os.PathLike,
    *,
    checkpoint: str = "best",
    device: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`run_attribution` with a training run's weights (RUN/best.pt or last.pt) and task."""
    from nmmfast.model import load_run

    model, meta, device = load_run(run, checkpoint, device)
    extra = {"run": str(run), "checkpoint": checkpoint, "device": device}
    return run_attribution(
        model, corpus, partition, out, task=meta["task"], extra_settings=extra, **options
    )


def add_setting_arguments(
    parser: argparse.ArgumentParser, *, channels_default: str | None = "all"
) -> None:
    """`--stop-gradients`, `--baseline` and `--channels`: the settings of the reference study
    and beyond it, on `attribute`, `study` and `demo`. `channels_default` None: the job's own
    (so `--summarize-only` keeps what the job was started with unless told otherwise)."""
    parser.add_argument(
        "--stop-gradients",
        default="lift",
        choices=STOP_GRADIENTS,
        help="lift (default): remove the model's stop-gradients on body-context paths for the "
        "pass, so completeness holds; keep: attribute the model as it is, as the reference "
        "study did",
    )
    parser.add_argument(
        "--baseline",
        default="zero",
        choices=BASELINES,
        help="zero (default, the reference study's); mean-pose: the training split's mean "
        "pose with the clip's confidences; keep-confidence: zero coordinates, the clip's "
        "confidences",
    )
    parser.add_argument(
        "--channels",
        default=channels_default,
        choices=CHANNELS,
        help="what the headline shares count: all (default) or coords (x, y only); the "
        "coords/confidence split is always shown",
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="training run directory")
    parser.add_argument("--corpus", required=True, metavar="DIR", help="corpus directory")
    parser.add_argument("--partition", required=True, help="partition name (control, si, us)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--out", required=True, metavar="DIR", help="job directory (resumable)")
    parser.add_argument(
        "--target",
        default="decoded",
        choices=["decoded", "reference"],
        help="attribute the model's own output (default) or the reference",
    )
    parser.add_argument("--method", default="gausslegendre", choices=list(METHODS))
    parser.add_argument(
        "--steps", type=positive_int, default=50, help="step points (start, if adaptive)"
    )
    parser.add_argument(
        "--tolerance",
        type=positive_float,
        help="adaptive steps until |delta| <= tolerance * |F(x) - F(b)| "
        "(best with --method simpson --steps 5: bisects the panels that need it)",
    )
    parser.add_argument("--max-steps", type=positive_int, default=512)
    parser.add_argument(
        "--per-token",
        action="store_true",
        help="also attribute each target token (per-token region shares)",
    )
    parser.add_argument(
        "--batch-rows", type=positive_int, help="rows per forward pass (default: auto)"
    )
    parser.add_argument("--samples-per-call", type=positive_int, default=8)
    parser.add_argument(
        "--max-frames", type=positive_int, help="frames per sample (default: the model's)"
    )
    parser.add_argument(
        "--beam", type=positive_int, default=4, help="beam width for decoded targets"
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=100)
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--rank", type=int, help="this shard (default: $RANK or 0)")
    parser.add_argument(
        "--world-size", type=positive_int, help="shards (default: $WORLD_SIZE or 1)"
    )
    parser.add_argument(
        "--max-samples", type=positive_int, help="attribute only the split's first N samples"
    )
    parser.add_argument(
        "--limit", type=positive_int, help="stop after this many new samples (resumable)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=10, help="joints per region in the table"
    )
    parser.add_argument(
        "--save-attributions",
        action="store_true",
        help="keep each sample's full [T, J, C] attributions",
    )
    parser.add_argument(
        "--summarize-only",
        action="store_true",
        help="only merge the finished sample files of --out",
    )
    add_setting_arguments(parser, channels_default=None)
    add_skip_bad_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    if args.summarize_only:
        summary = summarize(args.out, top=args.top, channels=args.channels)
        print(Path(args.out, "table.md").read_text(encoding="utf-8"), end="")
        print(f"completeness: {summary['completeness']}", file=sys.stderr)
        return 0
    result = attribute_partition(
        args.run,
        args.corpus,
        args.partition,
        args.out,
        checkpoint=args.checkpoint,
        device=args.device,
        split=args.split,
        target=args.target,
        method=args.method,
        n_steps=args.steps,
        tolerance=args.tolerance,
        max_steps=args.max_steps,
        per_token=args.per_token,
        batch_rows=args.batch_rows,
        samples_per_call=args.samples_per_call,
        max_frames=args.max_frames,
        num_beams=args.beam,
        max_new_tokens=args.max_new_tokens,
        rank=args.rank,
        world_size=args.world_size,
        save_attributions=args.save_attributions,
        limit=args.limit,
        max_samples=args.max_samples,
        top=args.top,
        progress=not args.no_progress,
        skip_bad=args.skip_bad,
        stop_gradients=args.stop_gradients,
        baseline=args.baseline,
        channels=args.channels or "all",
    )
    left_out = skipped_bad_line(result["left_out"])
    if left_out:
        print(left_out, file=sys.stderr)
    elapsed = time.perf_counter() - began
    print(
        f"attributed {result['computed']} samples ({result['skipped_existing']} already done) "
        f"of {result['shard']} in this shard in {elapsed:.1f} s -> {args.out}",
        file=sys.stderr,
    )
    if result["summary"] is not None:
        print(Path(args.out, "table.md").read_text(encoding="utf-8"), end="")
        print(f"completeness: {result['summary']['completeness']}", file=sys.stderr)
    return 0
