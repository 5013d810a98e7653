"""Training of the pose→text model for CSLR (gloss targets) or SLT (sentence targets).

Uni-Sign's recipe: AdamW (lr 3e-4, wd 1e-4 except biases and norms, eps 1e-9), cosine decay to 0
without warmup, gradient clipping 1.0, label smoothing 0.2, bf16 autocast on GPU; gradient
accumulation; atomic checkpoint every epoch with exact resume; best weights by dev WER (CSLR) or
BLEU-4 (SLT); JSON-lines log; DDP under torchrun.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nmmfast.data.dataset import (
    BucketBatchSampler,
    Corpus,
    PoseDataset,
    add_skip_bad_argument,
    collate,
    skipped_bad_line,
    target_of,
)
from nmmfast.errors import fraction, positive_float, positive_int
from nmmfast.model.checkpoint import read_checkpoint, weights_sha256

__all__ = [
    "TASK_METRIC",
    "configure_parser",
    "make_optimizer",
    "run_cli",
    "train",
    "warm_start",
    "weights_sha256",
]

# Dev metric that picks the best epoch: (name in nmmfast.metrics.score, higher is better).
TASK_METRIC = {"cslr": ("wer", False), "slt": ("bleu4", True)}
LAST, BEST, RUN_FILE, LOG_FILE = "last.pt", "best.pt", "run.json", "log.jsonl"


def make_optimizer(
    model: nn.Module, lr: float = 3e-4, weight_decay: float = 1e-4, eps: float = 1e-9
) -> torch.optim.AdamW:
    """AdamW with timm's grouping: 1-D parameters (biases, norms, the part bias) get no decay."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.dim() <= 1 else decay).append(param)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        eps=eps,
    )


def cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from the base lr to 0 over `total_steps` optimizer steps, no warmup."""
    total = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    )


def _rng_state() -> dict[str, Any]:
    # Plain tensors and tuples only, so checkpoints load with torch.load(weights_only=True).
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_best(model: nn.Module, epoch: int, dev: dict[str, Any], run: Path) -> None:
    _atomic_save({"model": model.state_dict(), "epoch": epoch, "dev": _json_safe(dev)}, run / BEST)


class _Distributed:
    """torchrun environment (WORLD_SIZE, RANK, LOCAL_RANK), or a single process."""

    def __init__(self, device: str | None) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device is None:
            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.started = False
        if self.world_size > 1 and not torch.distributed.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            # rank 0 decodes the dev split while the others wait at a broadcast; with a large
            # model and dev set that can outlast the default timeout (10 min for NCCL)
            torch.distributed.init_process_group(backend, timeout=datetime.timedelta(hours=2))
            self.started = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world_size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def average_batch_norm_statistics(self, model: nn.Module) -> None:
        """Average BatchNorm running statistics over ranks (DDP keeps them rank-local)."""
        if self.world_size == 1:
            return
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                for stat in (module.running_mean, module.running_var):
                    torch.distributed.all_reduce(stat)
                    stat /= self.world_size

    def close(self) -> None:
        if self.started:
            torch.distributed.destroy_process_group()


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def warm_start(model: nn.Module, source: str | os.PathLike) -> list[str]:
    """Copy the weights of a trained run into `model` (same architecture; e.g. SLT from CSLR).

    `source` is a run directory (its best.pt, else last.pt) or a checkpoint file inside one.
    Embedding rows are matched by token when both models use word-level vocabularies, so a
    model with another vocabulary (gloss vs sentence targets) keeps every shared token's row
    (exact match, else case-insensitive) and starts the others fresh. Returns the tokens that
    started fresh. Any other difference is an error that names the tensors.
    """
    from nmmfast.model.unisign import load_model

    path = Path(source)
    run = path if path.is_dir() else path.parent
    if path.is_dir():
        path = next((run / name for name in (BEST, LAST) if (run / name).is_file()), run / BEST)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no checkpoint to warm-start from ({BEST} or {LAST})")
    trained = load_model(run, path)
    if trained.config.to_dict() != model.config.to_dict():
        raise ValueError(
            f"{path}: trained with config {trained.config.name!r}, which differs "
            f"from this model's ({model.config.name!r}); cannot warm-start"
        )
    own, theirs = model.state_dict(), trained.state_dict()
    vocab_tensors = {
        model.text_model.get_input_embeddings().weight.data_ptr(),
        model.text_model.get_output_embeddings().weight.data_ptr(),
    }
    vocab_keys = {k for k, v in own.items() if v.data_ptr() in vocab_tensors}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    wrong = sorted(
        k for k in set(own) & set(theirs) - vocab_keys if own[k].shape != theirs[k].shape
    )
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: cannot warm-start: missing {missing}, unexpected "
            f"{unexpected}, shapes differ {wrong}"
        )
    ours_vocab = getattr(model.tokenizer, "token_to_id", None)
    their_vocab = getattr(trained.tokenizer, "token_to_id", None)
    fresh: list[str] = []
    state = {k: v for k, v in theirs.items() if k not in vocab_keys}
    if ours_vocab is not None and their_vocab is not None:
        # glosses are conventionally upper-case words: "FRIEND" starts "friend" when no exact
        # match exists
        folded: dict[str, int] = {}
        for token, j in their_vocab.items():
            folded.setdefault(token.casefold(), j)
        pairs, fresh = [], []
        for token, i in ours_vocab.items():
            j = their_vocab.get(token, folded.get(token.casefold()))
            if j is None:
                fresh.append(token)
            else:
                pairs.append((i, j))
        rows = torch.tensor([i for i, _ in pairs], dtype=torch.long)
        sources = torch.tensor([j for _, j in pairs], dtype=torch.long)
        for key in vocab_keys:
            table = own[key].clone()
            table[rows] = theirs[key][sources].to(table.dtype)
            state[key] = table
    elif all(own[k].shape == theirs[k].shape for k in vocab_keys):
        state.update({k: theirs[k] for k in vocab_keys})
    else:
        raise ValueError(
            f"{path}: the vocabularies differ and are not word-level; cannot match embedding rows"
        )
    model.load_state_dict(state)
    return fresh


def _build_or_load_model(
    run: Path,
    config: str,
    task: str,
    train_targets: list[str],
    text_model: str | None,
    resume: bool,
    overrides: dict[str, Any],
) -> Any:
    """The run's model: rebuilt from its description when resuming, else built from `config`
    with `overrides` (max_frames, layout, prompt_language) and described in `run`."""
    import dataclasses

    from nmmfast.model import CONFIGS, WordTokenizer, build_model, save_model
    from nmmfast.model.unisign import CONFIG_FILE, PROMPT_TEMPLATE, model_from_description

    if resume and (run / CONFIG_FILE).is_file() and (run / LAST).is_file():
        # the weights come from last.pt; without it (stopped before the first epoch ended) the
        # model is built afresh below, pretrained text model included
        model = model_from_description(run)
        if model.config.name != config:
            raise ValueError(
                f"{run / LAST}: checkpoint from config {model.config.name!r}, but config "
                f"{config!r} was asked for; resume with --config {model.config.name} or train "
                f"into a new --out"
            )
        return model
    cfg = CONFIGS.get(config)
    if cfg is None:
        raise ValueError(f"unknown config {config!r}; known: {sorted(CONFIGS)}")
    cfg = dataclasses.replace(cfg, **overrides)
    tokenizer = None
    if cfg.text is not None:
        prompt = PROMPT_TEMPLATE.format(lang=cfg.prompt_language)
        tokenizer = WordTokenizer.build([prompt, *train_targets])
    model = build_model(cfg, text_model=text_model, tokenizer=tokenizer)
    save_model(model, run, weights=False)
    return model


def train(
    corpus: str | os.PathLike,
    partition: str,
    task: str,
    out: str | os.PathLike,
    *,
    config: str = "tiny",
    epochs: int = 20,
    batch_size: int = 8,
    accum: int = 1,
    lr: float = 3e-4,
    weight_decay: float = 1e-4,
    clip: float = 1.0,
    label_smoothing: float | None = None,
    seed: int = 42,
    resume: bool = False,
    text_model: str | None = None,
    dev_beam: int = 4,
    max_new_tokens: int = 100,
    device: str | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    precision: str = "auto",
    init_from: str | os.PathLike | None = None,
    dev_from: int = 1,
    max_frames: int | None = None,
    layout: str | None = None,
    prompt_language: str | None = None,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Train a model on `partition`'s train split, select on its dev split; mirrors `nmmfast train`.

    Writes into `out`: run.json (arguments), model_config.json + tokenizer/ (architecture),
    last.pt (full training state after every epoch), best.pt (weights of the best dev epoch),
    log.jsonl. `resume` continues from last.pt exactly (same result as an uninterrupted run).
    `max_steps` stops after that many optimizer steps in total (for tests and smoke runs).
    `precision`: "auto" (the recipe: bf16 autocast on GPU, fp32 on CPU), "fp32", or "bf16"
    (autocast on any device; on CPUs with native bf16, e.g. AMX, about 2x faster).
    `init_from`: a trained run (directory or checkpoint) whose weights start this one, as
    Uni-Sign fine-tunes from earlier stages (`warm_start`); ignored when resuming.
    `dev_from`: first epoch (1-based) scored on dev; earlier epochs skip dev decoding and are
    never picked as best (under cosine decay the late epochs win; saves decoding time).
    `max_frames`: frames fed per sample (random sorted frames in training, spread uniformly on
    dev), default the config's (256 as Uni-Sign; 64 for `tiny`); kept in the run's model
    config, so decoding, attribution and probes of the run feed the same number.
    `layout` (skeleton layout, default the config's `unisign69`) and `prompt_language` (the
    language named in the prompt, default English) are kept there too.
    `skip_bad`: leave out samples with non-finite poses (listed) instead of stopping.
    Returns a summary: epochs run, best epoch and dev score, skipped samples, seconds.
    """
    from nmmfast.decode import predict
    from nmmfast.metrics import score

    if task not in TASK_METRIC:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_METRIC)}")
    if accum < 1 or batch_size < 1 or epochs < 1:
        raise ValueError("epochs, batch_size and accum must be >= 1")
    if not 1 <= dev_from <= epochs:
        raise ValueError(f"dev_from must be in 1..epochs ({epochs}), got {dev_from}")
    if label_smoothing is not None and not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    dist = _Distributed(device)
    run = Path(out)
    try:
        if resume and not (run / LAST).exists() and not (run / RUN_FILE).exists():
            raise FileNotFoundError(
                f"{run}: no run to resume (neither {LAST} nor {RUN_FILE}); check the path, "
                f"or drop --resume to start one"
            )
        if (run / LAST).exists() and not resume:  # on every rank: none waits at the barrier
            raise FileExistsError(
                f"{run}: holds a training run already; pass --resume to continue it or "
                f"choose a new --out"
            )
        if dist.main:
            run.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

        data = Corpus.open(corpus)
        split = data.partition(partition)
        train_targets = [target_of(data.rows[i], task) for i in split["train"] if i in data.rows]
        model = None
        if dist.main:
            overrides = {
                "max_frames": max_frames,
                "layout": layout,
                "prompt_language": prompt_language,
            }
            overrides = {k: v for k, v in overrides.items() if v is not None}
            model = _build_or_load_model(
                run, config, task, train_targets, text_model, resume, overrides
            )
            if init_from is not None and not (resume and (run / LAST).is_file()):
                warm_start(model, init_from)
        dist.barrier()
        if not dist.main:
            from nmmfast.model.unisign import model_from_description

            model = model_from_description(run)
        model.to(dist.device)  # DDP copies rank 0's initial weights to the other ranks
        args_record = {
            "corpus": str(corpus),
            "partition": partition,
            "task": task,
            "config": config,
            "epochs": epochs,
            "batch_size": batch_size,
            "accum": accum,
            "lr": lr,
            "weight_decay": weight_decay,
            "clip": clip,
            "seed": seed,
            "dev_beam": dev_beam,
            "world_size": dist.world_size,
            "precision": precision,
            "init_from": None if init_from is None else str(init_from),
            "dev_from": dev_from,
            "max_frames": model.config.max_frames if max_frames is None else max_frames,
            "layout": model.config.layout if layout is None else layout,
            "prompt_language": model.config.prompt_language
            if prompt_language is None
            else prompt_language,
            "label_smoothing": model.config.label_smoothing
            if label_smoothing is None
            else label_smoothing,
            "skip_bad": skip_bad,
        }
        train_set = PoseDataset(
            data,
            split["train"],
            task,
            layout=model.config.layout,
            max_frames=model.config.max_frames,
            train=True,
            seed=seed,
            skip_bad=skip_bad,
        )
        dev_set = PoseDataset(
            data,
            split["dev"],
            task,
            layout=model.config.layout,
            max_frames=model.config.max_frames,
            skip_bad=skip_bad,
        )
        if len(train_set) == 0:
            raise ValueError(f"{corpus}: partition {partition!r} has no usable training samples")
        sampler = BucketBatchSampler(
            train_set.lengths,
            batch_size,
            shuffle=True,
            seed=seed,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
        steps_per_epoch = math.ceil(len(sampler) / accum)
        optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay)
        scheduler = cosine_schedule(optimizer, steps_per_epoch * epochs)
        metric, higher_better = TASK_METRIC[task]
        best = {"epoch": None, metric: None}
        start_epoch, step = 0, 0

        if resume and (run / LAST).is_file():
            state = read_checkpoint(run / LAST)
            saved = state["args"]
            for key in (
                "task",
                "partition",
                "epochs",
                "batch_size",
                "accum",
                "world_size",
                "lr",
                "label_smoothing",
                "seed",
                "clip",
                "weight_decay",
                "precision",
                "dev_beam",
                "dev_from",
                "max_frames",
                "layout",
                "prompt_language",
                "skip_bad",
            ):
                if key in saved and saved[key] != args_record[key]:
                    raise ValueError(
                        f"{run / LAST}: run was started with {key}={saved[key]!r}, now "
                        f"{args_record[key]!r}; exact resume needs the same settings"
                    )
            if not state.get("epoch_complete", True):
                raise ValueError(
                    f"{run / LAST}: the run was stopped by max_steps inside epoch "
                    f"{state['epoch']}, so it cannot continue exactly; train into a new --out"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, step, best = state["epoch"], state["step"], state["best"]
            _set_rng_state(state["rng"][dist.rank])
        elif dist.main:
            (run / RUN_FILE).write_text(json.dumps(args_record, indent=1))
            if (run / LOG_FILE).exists():
                (run / LOG_FILE).unlink()
        if dist.main:
            _log(
                run / LOG_FILE,
                {
                    "event": "start",
                    "resume_epoch": start_epoch,
                    "train_samples": len(train_set),
                    "dev_samples": len(dev_set),
                    "skipped_train": dict(train_set.skipped),
                    "skipped_dev": dict(dev_set.skipped),
                    "parameters": model.count_parameters(),
                },
            )
            for name, dataset in (("train", train_set), ("dev", dev_set)):
                if dataset.skipped:
                    print(
                        f"nmmfast train: skipped {sum(dataset.skipped.values())} {name} samples: "
                        f"{dict(dataset.skipped)}",
                        file=sys.stderr,
                    )
                left_out = skipped_bad_line(dataset.skipped_ids)
                if left_out:
                    print(f"nmmfast train: {name}: {left_out}", file=sys.stderr)

        ddp_model = model
        if dist.world_size > 1:
            if dist.device.type == "cuda":  # as Uni-Sign; CPU ranks average stats per epoch
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ddp_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
            )
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
        use_bf16 = precision == "bf16" or (precision == "auto" and dist.device.type == "cuda")
        autocast = (
            torch.autocast(dist.device.type, dtype=torch.bfloat16)
            if use_bf16
            else contextlib.nullcontext()
        )
        smoothing = args_record["label_smoothing"]
        started = time.perf_counter()
        epochs_run = 0
        epoch_complete = True
        for epoch in range(start_epoch, epochs):
            if max_steps is not None and step >= max_steps:
                break
            model.train()
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            epoch_loss, epoch_batches, epoch_samples = 0.0, 0, 0
            epoch_start = time.perf_counter()
            batches: Iterator = iter(loader)
            bar = None
            if progress and dist.main:
                from tqdm import tqdm

                bar = tqdm(
                    total=len(sampler),
                    desc=f"epoch {epoch + 1}/{epochs}",
                    unit="batch",
                    leave=False,
                    file=sys.stderr,
                )
            optimizer.zero_grad(set_to_none=True)
            for index, batch in enumerate(batches):
                batch = batch.to(dist.device)
                targets = model.tokenize_targets(batch.targets)
                boundary = (index + 1) % accum == 0 or index + 1 == len(sampler)
                sync = (
                    contextlib.nullcontext()
                    if boundary or dist.world_size == 1
                    else ddp_model.no_sync()
                )
                with sync:
                    with autocast:
                        loss = ddp_model(
                            batch.poses, batch.mask, targets, label_smoothing=smoothing
                        )
                    (loss / accum).backward()
                epoch_loss += float(loss.detach())
                epoch_batches += 1
                epoch_samples += len(batch.ids)
                if boundary:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                rate = (
                    epoch_samples * dist.world_size / max(time.perf_counter() - epoch_start, 1e-9)
                )
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}", samples_s=f"{rate:.1f}")
                if max_steps is not None and step >= max_steps:
                    epoch_complete = index + 1 == len(sampler)
                    break
            if bar is not None:
                bar.close()
            epochs_run += 1
            train_loss = epoch_loss / max(epoch_batches, 1)
            if dist.device.type != "cuda":
                dist.average_batch_norm_statistics(model)

            dev_scores: dict[str, Any] = {}
            improved = False
            scored = epoch + 1 >= dev_from
            if dist.main and scored:
                if len(dev_set):
                    predictions = predict(
                        model,
                        dev_set,
                        batch_size=max(batch_size, 16),
                        num_beams=dev_beam,
                        max_new_tokens=max_new_tokens,
                        device=dist.device,
                    )
                    hyps = [predictions[i] for i in dev_set.sample_ids]
                    dev_scores = score(
                        hyps, dev_set.targets, task=task, train_targets=train_targets
                    )
                value = dev_scores.get(metric)
                if best[metric] is None or value is None:
                    improved = best["epoch"] is None
                else:
                    improved = value > best[metric] if higher_better else value < best[metric]
                if improved:
                    best = {"epoch": epoch + 1, metric: value}
                    _save_best(model, epoch + 1, dev_scores, run)
            best = dist.broadcast(best)
            rng_states = dist.gather(_rng_state())
            if dist.main:
                _atomic_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "epoch_complete": epoch_complete,
                        "step": step,
                        "best": best,
                        "rng": rng_states,
                        "args": args_record,
                        "config": model.config.to_dict(),
                    },
                    run / LAST,
                )
                record = {
                    "event": "epoch",
                    "epoch": epoch + 1,
                    "step": step,
                    "train_loss": train_loss,
                    "lr": scheduler.get_last_lr()[0],
                    "samples_per_s": epoch_samples
                    * dist.world_size
                    / max(time.perf_counter() - epoch_start, 1e-9),
                    "seconds": time.perf_counter() - epoch_start,
                    "dev": _json_safe(dev_scores),
                    "best_epoch": best["epoch"],
                }
                _log(run / LOG_FILE, record)
                if progress:
                    shown = dev_scores.get(metric)
                    shown = "-" if shown is None else f"{shown:.2f}"
                    print(
                        f"epoch {epoch + 1}/{epochs}: loss {train_loss:.3f}, dev {metric} {shown}"
                        f"{' (best)' if improved else ''}",
                        file=sys.stderr,
                    )
            dist.barrier()
        if dist.main and best["epoch"] is None and epochs_run:  # stopped before dev_from
            best = {"epoch": start_epoch + epochs_run, metric: None}
            _save_best(model, best["epoch"], {}, run)
        summary = {
            "run": str(run),
            "epochs_run": epochs_run,
            "step": step,
            "best": best,
            "train_samples": len(train_set),
            "dev_samples": len(dev_set),
            "skipped": {"train": dict(train_set.skipped), "dev": dict(dev_set.skipped)},
            "seconds": time.perf_counter() - started,
            "weights_sha256": weights_sha256(model),
        }
        if dist.main:
            _log(run / LOG_FILE, {"event": "end", **summary})
        return summary
    finally:
        dist.close()


def _json_safe(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if isinstance(v, (int, float, str, type(None)))}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, metavar="DIR", help="corpus directory")
    parser.add_argument("--partition", required=True, help="partition name (control, si, us)")
    parser.add_argument("--task", required=True, choices=sorted(TASK_METRIC))
    parser.add_argument("--config", default="tiny", help="model config (tiny, unisign-base)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="samples per micro-batch and rank"
    )
    parser.add_argument("--accum", type=positive_int, default=1, help="gradient accumulation steps")
    parser.add_argument("--lr", type=positive_float, default=3e-4)
    parser.add_argument(
        "--label-smoothing",
        type=fraction,
        help="label smoothing of the cross-entropy (default: the config's; Uni-Sign's 0.2)",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        help="frames fed per sample (default: the config's; Uni-Sign's 256, tiny's 64)",
    )
    parser.add_argument(
        "--layout", help="skeleton layout (default: the config's, unisign69; or nmm87)"
    )
    parser.add_argument("--prompt-language", help="language named in the prompt (default: English)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt exactly")
    parser.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from a trained run's weights (e.g. SLT from the same partition's CSLR run)",
    )
    parser.add_argument("--text-model", metavar="DIR", help="local mT5/T5 directory (unisign-base)")
    parser.add_argument("--dev-beam", type=positive_int, default=4, help="beam for dev decoding")
    parser.add_argument(
        "--dev-from",
        type=positive_int,
        default=1,
        help="first epoch scored on dev (default 1: every one)",
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="auto: bf16 autocast on GPU, fp32 on CPU (default)",
    )
    add_skip_bad_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    summary = train(
        args.corpus,
        args.partition,
        args.task,
        args.out,
        config=args.config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        accum=args.accum,
        lr=args.lr,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        resume=args.resume,
        text_model=args.text_model,
        dev_beam=args.dev_beam,
        device=args.device,
        progress=not args.no_progress,
        precision=args.precision,
        init_from=args.init_from,
        dev_from=args.dev_from,
        max_frames=args.max_frames,
        layout=args.layout,
        prompt_language=args.prompt_language,
        skip_bad=args.skip_bad,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
