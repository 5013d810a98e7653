"""Integrated Gradients kernels on packed ragged poses: the `ig_scale` / `ig_reduce` wrappers.

`ig_scale` builds the (sample x step point) input batch in one pass; `ig_reduce` folds the step
gradients back into attributions plus per-joint, per-region and completeness sums in one pass. Both
take NumPy arrays or torch tensors (CPU, or CUDA on the tensor's current stream) and return the kind
they were given. The plain-PyTorch definitions they must match live in `nmmfast.kernels._reference`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from nmmfast import _native

_C = _native._C

_POSE_DTYPES = {torch.float32: _C.DType.float32, torch.float64: _C.DType.float64}
_STORAGE_DTYPES = {
    torch.float32: _C.DType.float32,
    torch.float64: _C.DType.float64,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
}
_DTYPE_NAMES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
}


class IgReduceResult(NamedTuple):
    """Outputs of `ig_reduce`; arrays of the kind (NumPy / torch) and device the inputs were."""

    attributions: Any  # [total_frames, J, C]
    joint_abs: Any  # [N, J]
    joint_signed: Any  # [N, J]
    region_abs: Any  # [N, R]
    region_signed: Any  # [N, R]
    total: Any  # [N]


def ig_scale(
    packed: Any,
    offsets: Any,
    alphas: Any,
    baseline: Any = None,
    *,
    t_max: int | None = None,
    out_dtype: Any = None,
    out: tuple[Any, Any] | None = None,
    check_finite: bool = True,
) -> tuple[Any, Any]:
    """Build the Integrated Gradients step batch for N ragged samples and m step points.

    Args:
        packed: [total_frames, J, C] float32 (or float64) poses, N samples stored back to back.
        offsets: [N + 1] integer; sample n is frames offsets[n]..offsets[n+1]-1. Host memory is
            best (a CUDA tensor is copied to the host to validate it).
        alphas: [m] (shared) or [N, m] (per sample) step points.
        baseline: None (zero pose), [J, C] (one pose for every frame) or [total_frames, J, C]
            (packed like `packed`).
        t_max: padded length of the output (default: the longest sample; shorter is an error).
        out_dtype: dtype of `scaled`: float32, float16, bfloat16 or float64 (default: packed's).
        out: optional preallocated (scaled, mask), contiguous, of the shapes below.
        check_finite: raise ValueError when an input holds NaN or inf. On CUDA this costs one
            device sync; pass False to skip it and check the results instead.

    Returns:
        scaled: [N * m, t_max, J, C]; row n*m+k on frame t < len_n is
            baseline_n[t] + alphas[n, k] * (x_n[t] - baseline_n[t]); frames t >= len_n repeat
            the last real frame.
        mask: [N * m, t_max] bool, True on real frames.
    """
    is_numpy = isinstance(packed, np.ndarray)
    packed_t = _pose_tensor(packed, "packed", "ig_scale")
    device = packed_t.device
    host_offsets = _host_offsets(offsets, packed_t.shape[0], "ig_scale")
    n_samples = host_offsets.numel() - 1
    joints, channels = packed_t.shape[1], packed_t.shape[2]
    lengths = host_offsets.diff()
    longest = int(lengths.max()) if n_samples else 0
    if t_max is None:
        t_max = longest
    elif int(t_max) < longest:
        raise ValueError(
            f"ig_scale: t_max={t_max} is shorter than the longest sample ({longest} frames)"
        )
    t_max = int(t_max)
    alphas_t, per_sample = _step_vector(alphas, "alphas", n_samples, packed_t, "ig_scale")
    n_steps = alphas_t.shape[-1]
    baseline_t, baseline_kind = _baseline(baseline, packed_t, "ig_scale")
    dtype = packed_t.dtype if out_dtype is None else _resolve_dtype(out_dtype)
    if is_numpy and dtype == torch.bfloat16:
        raise ValueError("ig_scale: out_dtype=bfloat16 needs torch inputs (NumPy has no bfloat16)")

    shape = (n_samples * n_steps, t_max, joints, channels)
    if out is None:
        scaled = torch.empty(shape, dtype=dtype, device=device)
        mask = torch.empty(shape[:2], dtype=torch.bool, device=device)
    else:
        scaled, mask = (_tensor(o, f"out[{i}]", "ig_scale") for i, o in enumerate(out))
        _check_out(scaled, "out[0] (scaled)", shape, dtype, device)
        _check_out(mask, "out[1] (mask)", shape[:2], torch.bool, device)
    flag = torch.zeros(1, dtype=torch.int32, device=device)

    offsets_dev = _device_offsets(host_offsets, device)
    params = _C.IgScaleParams()
    params.packed = packed_t.data_ptr()
    params.offsets = offsets_dev.data_ptr()
    params.alphas = alphas_t.data_ptr()
    params.baseline = baseline_t.data_ptr() if baseline_t is not None else 0
    params.scaled = scaled.data_ptr()
    params.mask = mask.data_ptr()
    params.nonfinite = flag.data_ptr()
    params.n_samples, params.n_steps, params.t_max = n_samples, n_steps, t_max
    params.joints, params.channels = joints, channels
    params.alphas_per_sample = per_sample
    params.baseline_kind = baseline_kind
    params.pose_dtype = _POSE_DTYPES[packed_t.dtype]
    params.out_dtype = _STORAGE_DTYPES[dtype]
    _set_device(params, device)
    _C.ig_scale(params)
    if check_finite and scaled.numel() and int(flag.item()):
        _raise_nonfinite("ig_scale", packed=packed_t, alphas=alphas_t, baseline=baseline_t)
    if is_numpy:
        return scaled.numpy(), mask.numpy()
    return scaled, mask


def ig_reduce(
    grads: Any,
    packed: Any,
    offsets: Any,
    weights: Any,
    baseline: Any = None,
    *,
    region_of_joint: Any,
    n_regions: int | None = None,
    out: IgReduceResult | None = None,
    check_finite: bool = True,
    nonfinite: torch.Tensor | None = None,
) -> IgReduceResult:
    """Fold step gradients into Integrated Gradients attributions and their sums, in one pass.

    Args:
        grads: [N * m, t_max, J, C] float32, float16, bfloat16 or float64: the gradient of the
            attributed output with respect to each row of `ig_scale`'s batch (row n*m+k).
        packed, offsets, baseline: as given to `ig_scale`.
        weights: [m] or [N, m] quadrature weights of the step points.
        region_of_joint: [J] integer region index of every joint.
        n_regions: R (default: max(region_of_joint) + 1).
        out: optional preallocated IgReduceResult of torch tensors (contiguous, packed's dtype
            and device, the shapes below) that the kernel overwrites and returns, so a caller
            running many batches writes into memory it already holds (fresh allocations pay a
            page fault on the first write of every page; reused pages do not).
        check_finite: raise ValueError when an attribution comes out NaN or inf (a host sync
            on CUDA).
        nonfinite: instead, an int32 [1] tensor on packed's device that the kernel sets to 1
            when an attribution is NaN or inf and otherwise leaves alone, so a caller can check
            many calls with one host sync (pass check_finite=False with it).

    Returns:
        IgReduceResult with `attributions` [total_frames, J, C] packed like `packed`
        ((x - baseline) * sum_k w_k grads_k), `joint_abs` / `joint_signed` [N, J] (sum of |attr| /
        attr over frames and channels), `region_abs` / `region_signed` [N, R] and `total` [N]
        (sum of every attribution of the sample; completeness compares it with F(x) - F(b)).
        Accumulation is float32 for float32 poses, float64 for float64 poses.
    """
    is_numpy = isinstance(packed, np.ndarray)
    packed_t = _pose_tensor(packed, "packed", "ig_reduce")
    device = packed_t.device
    host_offsets = _host_offsets(offsets, packed_t.shape[0], "ig_reduce")
    n_samples = host_offsets.numel() - 1
    total_frames, joints, channels = packed_t.shape
    grads_t = _tensor(grads, "grads", "ig_reduce")
    if grads_t.dim() != 4:
        raise ValueError(
            f"ig_reduce: grads must be [N*m, t_max, J, C], got shape {tuple(grads_t.shape)}"
        )
    if grads_t.dtype not in _STORAGE_DTYPES:
        raise ValueError(
            f"ig_reduce: grads must be float32/float16/bfloat16/float64, got {grads_t.dtype}"
        )
    if grads_t.device != device:
        raise ValueError(f"ig_reduce: grads is on {grads_t.device} but packed is on {device}")
    if tuple(grads_t.shape[2:]) != (joints, channels):
        raise ValueError(
            f"ig_reduce: grads has J, C = {tuple(grads_t.shape[2:])} but packed has "
            f"{(joints, channels)}"
        )
    weights_t, per_sample = _step_vector(weights, "weights", n_samples, packed_t, "ig_reduce")
    n_steps = weights_t.shape[-1]
    if grads_t.shape[0] != n_samples * n_steps:
        raise ValueError(
            f"ig_reduce: grads has {grads_t.shape[0]} rows but N * m = {n_samples} * {n_steps} "
            f"= {n_samples * n_steps}"
        )
    t_max = grads_t.shape[1]
    longest = int(host_offsets.diff().max()) if n_samples else 0
    if t_max < longest:
        raise ValueError(
            f"ig_reduce: grads has t_max={t_max} < the longest sample ({longest} frames)"
        )
    grads_t = grads_t.contiguous()
    baseline_t, baseline_kind = _baseline(baseline, packed_t, "ig_reduce")
    regions = _tensor(region_of_joint, "region_of_joint", "ig_reduce")
    if regions.dim() != 1 or regions.shape[0] != joints or regions.dtype.is_floating_point:
        raise ValueError(
            f"ig_reduce: region_of_joint must be an integer vector of length J={joints}, got "
            f"{regions.dtype} of shape {tuple(regions.shape)}"
        )
    regions_host = regions.detach().to("cpu", torch.int64)
    if joints and int(regions_host.min()) < 0:
        raise ValueError("ig_reduce: region_of_joint has a negative region index")
    needed = int(regions_host.max()) + 1 if joints else 0
    n_regions = needed if n_regions is None else int(n_regions)
    if n_regions < needed:
        raise ValueError(
            f"ig_reduce: region_of_joint uses region {needed - 1} but n_regions={n_regions}"
        )

    shapes = IgReduceResult(
        attributions=(total_frames, joints, channels),
        joint_abs=(n_samples, joints),
        joint_signed=(n_samples, joints),
        region_abs=(n_samples, n_regions),
        region_signed=(n_samples, n_regions),
        total=(n_samples,),
    )
    if out is None:
        result = IgReduceResult(
            *(torch.empty(shape, dtype=packed_t.dtype, device=device) for shape in shapes)
        )
    else:
        if is_numpy or not isinstance(out, IgReduceResult):
            raise TypeError("ig_reduce: out must be an IgReduceResult of torch tensors")
        for name, shape in zip(IgReduceResult._fields, shapes, strict=True):
            tensor = getattr(out, name)
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"ig_reduce: out.{name} must be a torch tensor")
            _check_out(tensor, f"out.{name}", shape, packed_t.dtype, device, op="ig_reduce")
        result = out
    if nonfinite is None:
        flag = torch.zeros(1, dtype=torch.int32, device=device)
    elif nonfinite.dtype != torch.int32 or nonfinite.numel() != 1 or nonfinite.device != device:
        raise ValueError(
            f"ig_reduce: nonfinite must be an int32 tensor of one element on {device}, got "
            f"{nonfinite.dtype} {tuple(nonfinite.shape)} on {nonfinite.device}"
        )
    else:
        flag = nonfinite
    if n_samples:
        regions_dev = regions_host.to(device, non_blocking=True)
        offsets_dev = _device_offsets(host_offsets, device)
        params = _C.IgReduceParams()
        params.grads = grads_t.data_ptr()
        params.packed = packed_t.data_ptr()
        params.offsets = offsets_dev.data_ptr()
        params.weights = weights_t.data_ptr()
        params.baseline = baseline_t.data_ptr() if baseline_t is not None else 0
        params.region_of_joint = regions_dev.data_ptr()
        for name in result._fields:
            setattr(params, name, getattr(result, name).data_ptr())
        params.nonfinite = flag.data_ptr()
        params.n_samples, params.total_frames = n_samples, total_frames
        params.n_steps, params.t_max = n_steps, t_max
        params.joints, params.channels, params.n_regions = joints, channels, n_regions
        params.weights_per_sample = per_sample
        params.baseline_kind = baseline_kind
        params.pose_dtype = _POSE_DTYPES[packed_t.dtype]
        params.grad_dtype = _STORAGE_DTYPES[grads_t.dtype]
        _set_device(params, device)
        _C.ig_reduce(params)
        if check_finite and int(flag.item()):
            _raise_nonfinite(
                "ig_reduce", grads=grads_t, packed=packed_t, weights=weights_t, baseline=baseline_t
            )
    if is_numpy:
        return IgReduceResult(*(t.numpy() for t in result))
    return result


# --- validation and conversion -------------------------------------------------------------------


def _tensor(value: Any, name: str, op: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise ValueError(f"{op}: {name} has unsupported NumPy dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple, int, float)):
        return torch.as_tensor(value)
    raise TypeError(
        f"{op}: {name} must be a NumPy array or a torch tensor, got {type(value).__name__}"
    )


def _pose_tensor(value: Any, name: str, op: str) -> torch.Tensor:
    tensor = _tensor(value, name, op)
    if tensor.dim() != 3:
        raise ValueError(
            f"{op}: {name} must be [total_frames, J, C], got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype not in _POSE_DTYPES:
        raise ValueError(f"{op}: {name} must be float32 or float64, got {tensor.dtype}")
    return tensor.contiguous()


def _host_offsets(offsets: Any, total_frames: int, op: str) -> torch.Tensor:
    tensor = _tensor(offsets, "offsets", op)
    if (
        tensor.dim() != 1
        or tensor.numel() < 1
        or tensor.dtype.is_floating_point
        or tensor.dtype == torch.bool
    ):
        raise ValueError(
            f"{op}: offsets must be an integer vector [N + 1], got {tensor.dtype} of shape "
            f"{tuple(tensor.shape)}"
        )
    host = tensor.to("cpu", torch.int64).contiguous()
    if int(host[0]) != 0:
        raise ValueError(f"{op}: offsets[0] must be 0, got {int(host[0])}")
    lengths = host.diff()
    if lengths.numel():
        bad = torch.nonzero(lengths <= 0).flatten()
        if bad.numel():
            n = int(bad[0])
            kind = (
                "zero-length" if int(lengths[n]) == 0 else "negative-length (offsets not monotone)"
            )
            raise ValueError(
                f"{op}: offsets give sample {n} a {kind} range [{int(host[n])}, {int(host[n + 1])})"
            )
    if int(host[-1]) != total_frames:
        raise ValueError(
            f"{op}: offsets[-1] = {int(host[-1])} but packed holds {total_frames} frames"
        )
    return host


def _device_offsets(host_offsets: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cpu":
        return host_offsets
    return host_offsets.to(device, non_blocking=True)


def _step_vector(
    value: Any, name: str, n_samples: int, packed: torch.Tensor, op: str
) -> tuple[torch.Tensor, bool]:
    tensor = _tensor(value, name, op)
    if tensor.dim() == 1:
        per_sample = False
    elif tensor.dim() == 2:
        if tensor.shape[0] != n_samples:
            raise ValueError(
                f"{op}: {name} is [N, m] with N={tensor.shape[0]} but offsets describe "
                f"{n_samples} samples"
            )
        per_sample = True
    else:
        raise ValueError(f"{op}: {name} must be [m] or [N, m], got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] < 1:
        raise ValueError(f"{op}: {name} needs at least one step point")
    return tensor.to(packed.device, packed.dtype).contiguous(), per_sample


def _baseline(value: Any, packed: torch.Tensor, op: str) -> tuple[torch.Tensor | None, Any]:
    if value is None:
        return None, _C.BaselineKind.zero
    tensor = _tensor(value, "baseline", op)
    if tensor.device != packed.device:
        raise ValueError(f"{op}: baseline is on {tensor.device} but packed is on {packed.device}")
    if tuple(tensor.shape) == tuple(packed.shape[1:]):
        kind = _C.BaselineKind.shared
    elif tuple(tensor.shape) == tuple(packed.shape):
        kind = _C.BaselineKind.packed
    else:
        raise ValueError(
            f"{op}: baseline must be None, [J, C]={tuple(packed.shape[1:])} or packed like "
            f"`packed` {tuple(packed.shape)}, got shape {tuple(tensor.shape)}"
        )
    return tensor.to(packed.dtype).contiguous(), kind


def _resolve_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
        resolved = _DTYPE_NAMES.get(name)
    if resolved not in _STORAGE_DTYPES:
        raise ValueError(f"out_dtype must be float32, float16, bfloat16 or float64, got {dtype!r}")
    return resolved


def _check_out(
    tensor: torch.Tensor,
    name: str,
    shape: tuple,
    dtype: torch.dtype,
    device: torch.device,
    *,
    op: str = "ig_scale",
) -> None:
    if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype or tensor.device != device:
        raise ValueError(
            f"{op}: {name} must be {tuple(shape)} {dtype} on {device}, got "
            f"{tuple(tensor.shape)} {tensor.dtype} on {tensor.device}"
        )
    if not tensor.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous")


def _set_device(params: Any, device: torch.device) -> None:
    if device.type == "cpu":
        params.device = -1
        params.num_threads = torch.get_num_threads()
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        params.device = index
        params.stream = torch.cuda.current_stream(index).cuda_stream
    else:
        raise ValueError(f"nmmfast kernels run on CPU or CUDA tensors, got device {device}")


def _raise_nonfinite(op: str, **arguments: torch.Tensor | None) -> None:
    for name, tensor in arguments.items():
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{op}: {name} contains NaN or inf")
    raise ValueError(f"{op}: the result overflowed to inf (inputs are finite)")
