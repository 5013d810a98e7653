"""A run directory from a user's Uni-Sign checkpoint: `nmmfast convert-checkpoint`.

Uni-Sign saves `{'model': state_dict}` (a bare state dict and a `module.` prefix from DDP occur
too). The converted run holds what a run from `nmmfast train` holds for the commands that read
one (`decode`, `attribute`, `probe`, `study`): `model_config.json` + `tokenizer/` (architecture,
`save_model`), `best.pt` (the weights, under our key names) and `run.json` (task, source file and
its SHA-256, text model, layout, prompt language, frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nmmfast._io import file_sha256, write_json_atomic
from nmmfast.errors import UserError
from nmmfast.model.checkpoint import load_unisign_checkpoint, read_checkpoint
from nmmfast.study import TASKS

__all__ = ["convert_checkpoint", "read_unisign_state"]


def read_unisign_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a Uni-Sign checkpoint file: `{'model': sd}` or a bare `sd`, a `module.`
    prefix removed. Tensors only, loaded with `weights_only=True` (no code runs). Raises
    `UserError` naming the file when it is missing, not a PyTorch file, or holds no state dict."""
    path = Path(path)
    loaded = read_checkpoint(path)
    state = loaded.get("model", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise UserError(f"{path}: holds no state dict (expected {{'model': state_dict}} or one)")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(state):
        others = sorted(k for k in state if k not in tensors)[:5]
        raise UserError(f"{path}: state dict entries that are not tensors, e.g. {others}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    text_model: str | os.PathLike,
    task: str,
    out: str | os.PathLike,
    *,
    layout: str = "unisign69",
    prompt_language: str = "English",
    max_frames: int | None = None,
) -> dict[str, Any]:
    """Write a run directory at `out` from a Uni-Sign checkpoint and a local mT5 directory.

    The checkpoint must fit exactly (`load_unisign_checkpoint`, strict): a key without a
    counterpart, a model key left unfilled or a shape that does not fit the text model or the
    layout raises `UserError` listing them. `out` must not hold a run already. Returns run.json's
    contents.
    """
    from nmmfast.model.unisign import CONFIGS, build_model, save_model
    from nmmfast.train import BEST as BEST_FILE
    from nmmfast.train import RUN_FILE

    if task not in TASKS:
        raise UserError(f"task must be one of {TASKS}, got {task!r}")
    if max_frames is not None and max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {max_frames}")
    out = Path(out)
    if (out / RUN_FILE).exists() or (out / BEST_FILE).exists():
        raise UserError(f"{out}: holds a run already; convert into a new directory")
    text_dir = Path(text_model)
    if not (text_dir / "config.json").is_file():
        raise UserError(f"{text_dir}: not a text model directory (no config.json)")
    source = Path(checkpoint)
    state = read_unisign_state(source)
    config = dataclasses.replace(
        CONFIGS["unisign-base"],
        layout=layout,
        prompt_language=prompt_language,
        **({} if max_frames is None else {"max_frames": max_frames}),
    )
    model = build_model(config, text_model=text_dir)
    try:
        load_unisign_checkpoint(state, model)
    except ValueError as error:
        raise UserError(f"{source}: {error}") from None
    record = {
        "task": task,
        "config": config.name,
        "converted_from": str(source.resolve()),
        "source_sha256": file_sha256(source),
        "text_model": str(text_dir.resolve()),
        "layout": layout,
        "prompt_language": prompt_language,
        "max_frames": config.max_frames,
    }
    save_model(model, out, weights=False)
    tmp = out / f".{BEST_FILE}.tmp"
    torch.save({"model": model.state_dict(), "converted_from": record["source_sha256"]}, tmp)
    os.replace(tmp, out / BEST_FILE)
    write_json_atomic(out / RUN_FILE, record)
    return record


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="Uni-Sign checkpoint ({'model': sd})")
    parser.add_argument(
        "--text-model", required=True, metavar="DIR", help="local mT5/T5 directory it was built on"
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="what the model outputs")
    parser.add_argument("--out", required=True, metavar="RUN", help="new run directory")
    parser.add_argument(
        "--layout", default="unisign69", help="skeleton layout (unisign69 default, nmm87)"
    )
    parser.add_argument(
        "--prompt-language", default="English", help="language named in the prompt (English)"
    )
    parser.add_argument("--max-frames", type=int, help="frames fed per clip (default 256)")


def run_cli(args: argparse.Namespace) -> int:
    record = convert_checkpoint(
        args.checkpoint,
        args.text_model,
        args.task,
        args.out,
        layout=args.layout,
        prompt_language=args.prompt_language,
        max_frames=args.max_frames,
    )
    print(
        f"wrote run {args.out}: {record['task']} model from {args.checkpoint} "
        f"(sha256 {record['source_sha256'][:12]}), text model {args.text_model}"
    )
    return 0
