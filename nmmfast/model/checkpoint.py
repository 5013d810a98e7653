"""Load original Uni-Sign checkpoints (`{'model': state_dict}`) into `UniSignModel`.

Key map, Uni-Sign → nmmfast (mode ∈ body | left | right | face_all; left and right are aliases
of one hand module in both models, so both keys must agree):
    proj_linear.<mode>.*                        → pose_encoder.input_proj.<group>.*
    gcn_modules.<mode>.layer<i>_0.<block>       → pose_encoder.spatial.<group>.blocks.<i>.<block'>
    fusion_gcn_modules.<mode>.layer0_<j>.<blk>  → pose_encoder.temporal.<group>.blocks.<j>.<block'>
    part_para                                   → pose_encoder.part_bias
    pose_proj.*                                 → pose_encoder.proj.*
    mt5_model.*                                 → text_model.*
inside a block: gcn.conv.* (1×1 Conv2d, weight squeezed to 2-D) → gcn.conv.*, gcn.A → gcn.A,
gcn.bn.* → gcn.bn.*, tcn.0.* → tcn_conv.*, tcn.1.* → tcn_bn.*, residual.0.* (1×1 Conv2d,
squeezed) → residual_conv.*, residual.1.* → residual_bn.*; group = body | hand | face.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nmmfast.errors import UserError
from nmmfast.model.text_head import untie_where_state_differs

__all__ = ["load_unisign_checkpoint", "map_unisign_key", "read_checkpoint", "weights_sha256"]

_GROUP = {"body": "body", "left": "hand", "right": "hand", "face_all": "face"}
_BLOCK_PARTS = {
    "gcn.conv.": "gcn.conv.",
    "gcn.A": "gcn.A",
    "gcn.bn.": "gcn.bn.",
    "tcn.0.": "tcn_conv.",
    "tcn.1.": "tcn_bn.",
    "residual.0.": "residual_conv.",
    "residual.1.": "residual_bn.",
}
_CHAIN = re.compile(r"^(gcn_modules|fusion_gcn_modules)\.(\w+?)\.layer(\d+)_(\d+)\.(.+)$")
_PROJ = re.compile(r"^proj_linear\.(\w+?)\.(weight|bias)$")
_SQUEEZED = re.compile(r"\.(gcn\.conv|residual_conv)\.weight$")


def map_unisign_key(key: str) -> str | None:
    """Our key for one Uni-Sign state-dict key, or None when the key has no counterpart."""
    if key.startswith("module."):
        key = key[len("module.") :]
    if key.startswith("mt5_model."):
        return "text_model." + key[len("mt5_model.") :]
    if key == "part_para":
        return "pose_encoder.part_bias"
    if key.startswith("pose_proj."):
        return "pose_encoder.proj." + key[len("pose_proj.") :]
    match = _PROJ.match(key)
    if match and match.group(1) in _GROUP:
        return f"pose_encoder.input_proj.{_GROUP[match.group(1)]}.{match.group(2)}"
    match = _CHAIN.match(key)
    if match and match.group(2) in _GROUP:
        chain, mode, i, j, rest = match.groups()
        if chain == "gcn_modules":
            if j != "0":
                return None
            name, index = "spatial", i
        else:
            if i != "0":
                return None
            name, index = "temporal", j
        for theirs, ours in _BLOCK_PARTS.items():
            if rest == theirs or (theirs.endswith(".") and rest.startswith(theirs)):
                suffix = rest[len(theirs) :]
                return f"pose_encoder.{name}.{_GROUP[mode]}.blocks.{index}.{ours}{suffix}"
    return None


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order: the bitwise identity of a
    model's weights, whatever file they came from."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU: tensors and plain containers only, so
    a downloaded checkpoint can run no code. Raises `UserError` naming the file when it is
    missing, empty, truncated, not a PyTorch checkpoint, or holds other objects."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        raise UserError(f"{path}: empty checkpoint file")
    archive = head == b"PK\x03\x04"  # what torch.save writes (since PyTorch 1.6)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not archive:
            raise UserError(f"{path}: not a PyTorch checkpoint") from None
        raise UserError(
            f"{path}: holds objects other than tensors and plain containers; nmmfast loads "
            f"checkpoints as data only and runs no code from them"
        ) from None
    except Exception as error:  # torch raises RuntimeError, EOFError, IndexError, ...
        if archive:
            raise UserError(
                f"{path}: truncated or damaged checkpoint ({type(error).__name__})"
            ) from None
        raise UserError(f"{path}: not a PyTorch checkpoint") from None


def load_unisign_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any],
    model: nn.Module,
    strict: bool = True,
) -> dict[str, list[str]]:
    """Load a Uni-Sign checkpoint into `model` (a `UniSignModel`) through the key map above.

    Accepts a path to `{'model': state_dict}` (or a bare state dict) or the mapping itself.
    Strict by default: any checkpoint key without a counterpart, any model key left unfilled,
    a shape mismatch or disagreeing hand aliases raise ValueError listing them. Returns
    {"unmatched": [...], "missing": [...]} (both empty when strict).
    """
    if isinstance(path_or_state_dict, Mapping):
        state = path_or_state_dict
        source = "state dict"
    else:
        source = str(path_or_state_dict)
        state = read_checkpoint(source)
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    ours = model.state_dict()
    # Parameters reachable under several names (tied embeddings) need only one of them.
    owner: dict[int, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        owner.setdefault(id(tensor), name)
    alias_of = {name: owner[id(t)] for name, t in model.state_dict(keep_vars=True).items()}

    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched: list[str] = []
    problems: list[str] = []
    for key, value in state.items():
        target = map_unisign_key(key)
        if target is None or target not in ours:
            unmatched.append(key)
            continue
        if _SQUEEZED.search(target) and value.dim() == 4:
            value = value.reshape(value.shape[0], value.shape[1])
        if tuple(value.shape) != tuple(ours[target].shape):
            problems.append(
                f"{key} -> {target}: shape {tuple(value.shape)}, "
                f"expected {tuple(ours[target].shape)}"
            )
            continue
        if target in mapped:
            if not torch.equal(mapped[target], value):
                problems.append(f"{origin[target]} and {key} both map to {target} but differ")
            continue
        mapped[target] = value
        origin[target] = key
    filled = {alias_of[name] for name in mapped}
    missing = [name for name in ours if alias_of[name] not in filled]
    if problems or (strict and (unmatched or missing)):
        lines = [f"load_unisign_checkpoint: {source} does not fit the model"]
        lines += [f"  {p}" for p in problems]
        if unmatched:
            lines.append(f"  checkpoint keys with no counterpart ({len(unmatched)}):")
            lines += [f"    {k}" for k in unmatched]
        if missing:
            lines.append(f"  model keys not in the checkpoint ({len(missing)}):")
            lines += [f"    {k}" for k in missing]
        raise ValueError("\n".join(lines))
    untie_where_state_differs(model, mapped)
    model.load_state_dict(mapped, strict=False)
    return {"unmatched": unmatched, "missing": missing}
