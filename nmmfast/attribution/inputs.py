"""What `IntegratedGradients.attribute` accepts, checked and normalised before any pass.

Turns ragged or padded inputs and their baselines into one packed, longest-first `Samples`,
and checks the settings that do not belong to the quadrature rule (targets, rows per batch,
regions); error messages name the argument, the sample and the expected shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Samples",
    "batch_rows_setting",
    "forward_args",
    "prepare_samples",
    "region_vector",
    "resolve_regions",
    "slice_baseline",
    "target_tensor",
]


@dataclass
class Samples:
    """The inputs as one packed [F, J, C] tensor, sorted longest first."""

    packed: torch.Tensor  # [F, J, C] in sorted order
    offsets: list[int]  # [N + 1] in sorted order
    order: torch.Tensor  # [N] sorted position -> original index
    baseline: torch.Tensor | None  # None, [J, C], or [F, J, C] in sorted order
    lengths: list[int]  # [N] original order
    padded_to: int | None  # T when the inputs were one [N, T, J, C] tensor
    device: torch.device
    dtype: torch.dtype


def resolve_regions(
    layout: Any, region_of_joint: Any, region_names: Sequence[str] | None
) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    """(region of each joint [J] int64 on the host or None for one region, region names) from
    a layout (name or object) or an explicit vector; default one region "all"."""
    if layout is not None and region_of_joint is not None:
        raise ValueError("give either layout or region_of_joint, not both")
    if layout is not None:
        from nmmfast.skeleton import get_layout

        layout = get_layout(layout)
        region_of_joint = layout.region_of_joint
        region_names = tuple(layout.regions) if region_names is None else region_names
    regions = None if region_of_joint is None else torch.as_tensor(region_of_joint).long().cpu()
    if regions is not None and regions.dim() != 1:
        raise ValueError(f"region_of_joint must be a [J] vector, got shape {tuple(regions.shape)}")
    if region_names is None:
        count = 1 if regions is None else int(regions.max()) + 1
        region_names = ("all",) if count == 1 else tuple(f"region{i}" for i in range(count))
    region_names = tuple(region_names)
    if regions is not None and int(regions.max()) >= len(region_names):
        raise ValueError(
            f"region_of_joint uses region {int(regions.max())} but only "
            f"{len(region_names)} region_names were given"
        )
    return regions, region_names


def region_vector(region_of_joint: torch.Tensor | None, joints: int) -> torch.Tensor:
    """[J] int64: the region of each of the inputs' `joints` joints (all 0 without regions)."""
    if region_of_joint is None:
        return torch.zeros(joints, dtype=torch.int64)
    if region_of_joint.numel() != joints:
        raise ValueError(
            f"region_of_joint has {region_of_joint.numel()} joints but the inputs have "
            f"J={joints}"
        )
    return region_of_joint


def batch_rows_setting(internal_batch_size: Any, batch_rows: Any) -> int | None:
    """Rows per forward pass from captum's name and ours (one setting), or None (automatic)."""
    if internal_batch_size is not None and batch_rows is not None:
        if int(internal_batch_size) != int(batch_rows):
            raise ValueError(
                f"internal_batch_size={internal_batch_size} and batch_rows={batch_rows} "
                "differ; they are the same setting"
            )
    rows = batch_rows if batch_rows is not None else internal_batch_size
    if rows is None:
        return None
    if isinstance(rows, bool) or int(rows) < 1:
        raise ValueError(f"batch_rows must be a positive int, got {rows!r}")
    return int(rows)


def forward_args(args: Any) -> tuple:
    """`additional_forward_args` as a tuple (None: none)."""
    if args is None:
        return ()
    return args if isinstance(args, tuple) else (args,)


def target_tensor(target: Any, n_samples: int) -> torch.Tensor | int | None:
    """`target` as None, one int, or [N] int64."""
    if target is None or isinstance(target, int):
        return target
    tensor = torch.as_tensor(target)
    if tensor.dim() == 0:
        return int(tensor)
    if tensor.dim() != 1 or tensor.numel() != n_samples or tensor.dtype.is_floating_point:
        raise ValueError(
            f"target must be None, an int or N={n_samples} ints, got {tensor.dtype} of shape "
            f"{tuple(tensor.shape)}"
        )
    return tensor.long()


def slice_baseline(baseline: torch.Tensor | None, a: int, b: int) -> torch.Tensor | None:
    """The baseline of packed frames a:b (a [J, C] or absent baseline is shared by all)."""
    if baseline is None or baseline.dim() == 2:
        return baseline
    return baseline[a:b]


def prepare_samples(inputs: Any, baselines: Any, mask: torch.Tensor | None) -> Samples:
    """Check `inputs` (list of [T_i, J, C] or [N, T, J, C] with `mask` [N, T] bool) and
    `baselines`, and pack them longest first."""
    padded_to = None
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() != 4:
            raise ValueError(
                f"inputs must be a list of [T, J, C] tensors or one [N, T, J, C] tensor, got shape "
                f"{tuple(inputs.shape)}"
            )
        padded_to = inputs.shape[1]
        if mask is None:
            lengths = [padded_to] * inputs.shape[0]
        else:
            lengths = _mask_lengths(mask, inputs.shape[:2])
        samples = [
            _check_pose(inputs[n, : lengths[n]], f"inputs[{n}]") for n in range(len(lengths))
        ]
    else:
        if mask is not None:
            raise ValueError("mask is only for one padded [N, T, J, C] inputs tensor")
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise TypeError(
                f"inputs must be a list of [T, J, C] tensors or one [N, T, J, C] tensor, got "
                f"{type(inputs).__name__}"
            )
        samples = [_check_pose(x, f"inputs[{n}]") for n, x in enumerate(inputs)]
        lengths = [x.shape[0] for x in samples]
    if not samples:
        raise ValueError("inputs holds no samples")
    first = samples[0]
    for n, x in enumerate(samples):
        if x.shape[1:] != first.shape[1:] or x.dtype != first.dtype or x.device != first.device:
            raise ValueError(
                f"inputs[{n}] is {tuple(x.shape)} {x.dtype} on {x.device} but inputs[0] is "
                f"{tuple(first.shape)} {first.dtype} on {first.device}: J, C, dtype and device "
                "must agree"
            )
    if not bool(torch.isfinite(torch.cat([x.flatten() for x in samples])).all()):
        bad = next(n for n, x in enumerate(samples) if not bool(torch.isfinite(x).all()))
        raise ValueError(f"inputs[{bad}] contains NaN or inf")
    order = sorted(range(len(samples)), key=lambda n: -lengths[n])  # stable, longest first
    packed = torch.cat([samples[n] for n in order]).contiguous()
    offsets = [0]
    for n in order:
        offsets.append(offsets[-1] + lengths[n])
    baseline = _prepare_baseline(baselines, samples, lengths, order, padded_to)
    return Samples(
        packed=packed,
        offsets=offsets,
        order=torch.tensor(order, dtype=torch.int64),
        baseline=baseline,
        lengths=lengths,
        padded_to=padded_to,
        device=first.device,
        dtype=first.dtype,
    )


def _check_pose(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must be [T, J, C], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has zero frames")
    return x.detach()


def _mask_lengths(mask: torch.Tensor, shape: torch.Size) -> list[int]:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != shape:
        raise ValueError(f"mask must be a [N, T]={tuple(shape)} bool tensor")
    mask = mask.cpu()
    lengths = mask.sum(1).tolist()
    for n, length in enumerate(lengths):
        if length == 0:
            raise ValueError(f"mask gives sample {n} zero real frames")
        if not bool(mask[n, :length].all()):
            raise ValueError(f"mask of sample {n} is not a prefix of real frames")
    return [int(v) for v in lengths]


def _prepare_baseline(
    baselines: Any,
    samples: list[torch.Tensor],
    lengths: list[int],
    order: list[int],
    padded_to: int | None,
) -> torch.Tensor | None:
    first = samples[0]
    like = dict(dtype=first.dtype, device=first.device)
    if baselines is None:
        return None
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        if baselines == 0:
            return None
        return torch.full(first.shape[1:], float(baselines), **like)
    if isinstance(baselines, torch.Tensor):
        if baselines.dim() == 0:
            return (
                None
                if float(baselines) == 0
                else torch.full(first.shape[1:], float(baselines), **like)
            )
        if tuple(baselines.shape) == tuple(first.shape[1:]):
            _finite(baselines, "baselines")
            return baselines.detach().to(**like).contiguous()
        if baselines.dim() == 4:
            if (
                padded_to is None
                or baselines.shape[:2] != (len(samples), padded_to)
                or (baselines.shape[2:] != first.shape[1:])
            ):
                raise ValueError(
                    f"baselines of shape {tuple(baselines.shape)} do not match the inputs "
                    f"(N={len(samples)}, T={padded_to}, J, C={tuple(first.shape[1:])})"
                )
            per_sample = [baselines[n, : lengths[n]] for n in range(len(samples))]
        else:
            raise ValueError(
                f"baselines must be None, a number, [J, C]={tuple(first.shape[1:])} or shaped "
                f"like the inputs, got shape {tuple(baselines.shape)}"
            )
    elif isinstance(baselines, Sequence) and not isinstance(baselines, (str, bytes)):
        if len(baselines) != len(samples):
            raise ValueError(
                f"baselines has {len(baselines)} entries but inputs has {len(samples)} samples"
            )
        per_sample = list(baselines)
    else:
        raise TypeError(f"baselines must be None, a number or tensors, got {type(baselines)}")
    for n, b in enumerate(per_sample):
        if not isinstance(b, torch.Tensor) or tuple(b.shape) != tuple(samples[n].shape):
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(
                f"baselines[{n}] must match inputs[{n}] {tuple(samples[n].shape)}, got {shape}"
            )
        _finite(b, f"baselines[{n}]")
    return torch.cat([per_sample[n].detach().to(**like) for n in order]).contiguous()


def _finite(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
