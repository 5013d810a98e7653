"""The batching engine behind `IntegratedGradients`: (sample, step point) rows in batches.

`Engine` packs the rows of many samples into length-bucketed batches built by
`nmmfast.kernels.ig_scale`, runs one forward and backward per batch, folds the gradients with
`ig_reduce` and keeps each sample's attributions, F values and sums. Methods and adaptive
strategies (`refinement`) drive it through its public methods only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from nmmfast.attribution.calibration import RowsTuner
from nmmfast.attribution.inputs import Samples, slice_baseline
from nmmfast.attribution.quadrature import Rule
from nmmfast.kernels import IgReduceResult, ig_reduce, ig_scale

__all__ = ["BUCKET_RATIO", "GPU_MEMORY_SHARE", "Engine", "Sums"]

# A sample joins a batch only if it has at least this share of the batch's longest frames:
# padded frames cost as much as real ones, so a sample's rows are at most 15 % padding.
BUCKET_RATIO = 0.85
# Share of the free GPU memory a batch may use when `memory_budget` is not given.
GPU_MEMORY_SHARE = 0.5


class Sums(NamedTuple):
    """Per-sample sums on the host, float64: [N, J], [N, J], [N, R], [N, R], [N] (with a
    [K] axis after N for per-output runs)."""

    joint_abs: torch.Tensor
    joint_signed: torch.Tensor
    region_abs: torch.Tensor
    region_signed: torch.Tensor
    total: torch.Tensor


class Engine:
    """One attribution's state: each sample's accumulated attributions, F values and sums.

    Samples are addressed by their sorted position i (longest first; `order[i]` is the
    original index). The public interface, all a method or adaptive strategy needs:

    - `accumulate(active, rule, keep=..., endpoints=...)`: add the weighted gradient rows of a
      quadrature rule for the samples `active`, the old sums scaled by `keep` (0: afresh);
    - `point_values({i: [α, ...]})`: F, dF/dα and the per-point attributions ∂F/∂x·(x − b) of
      each sample at its own points, for strategies that combine points themselves;
    - `set_result(i, attributions, f_input=..., f_baseline=...)`: store such a combination;
    - `f_values()`, `sums()`, `attributions()`: the results in the original order;
      `stats`: batches and rows run so far; `tuned_rows`: the CPU tuner's rows per batch.

    forward: forward_func(scaled [B, T, J, C], mask [B, T], rows [B], *extra) -> [B] or [B, K].
    samples: the packed inputs (`inputs.prepare_samples`). regions: [J] int64 on the samples'
    device. target: None, an int or [N] int64 choosing a column of [B, K] outputs. batch_rows:
    fixed rows per batch, else `tuner` on CPU or `memory_budget` (bytes) on CUDA.
    per_output: attribute each of the K outputs on its own.
    """

    def __init__(
        self,
        *,
        forward: Callable,
        tuner: RowsTuner | None = None,
        samples: Samples,
        regions: torch.Tensor,
        n_regions: int,
        target: torch.Tensor | int | None,
        extra: tuple,
        batch_rows: int | None,
        memory_budget: int | None,
        out_dtype: torch.dtype,
        per_output: bool = False,
    ) -> None:
        self._forward = forward
        self._tuner = tuner
        self._per_output = per_output
        self._samples = samples
        self._regions = regions
        self._regions_host = regions.cpu()  # ig_reduce validates on the host: no device sync
        self._n_regions = n_regions
        self._target = target
        self._extra = extra
        self._batch_rows = batch_rows
        self._memory_budget = memory_budget
        self._out_dtype = out_dtype
        n = len(samples.lengths)
        self.order = samples.order.tolist()
        # [K, F, J, C] in sorted packed order (K = 1 unless per_output); allocated at the first
        # forward, which tells K
        self._attr: torch.Tensor | None = None
        # per sorted position: kernel sums of a sample whose attribution came from one batch
        self._kernel_sums: dict[int, tuple[torch.Tensor, ...]] = {}
        self._f_input: dict[int, torch.Tensor] = {}
        self._f_baseline: dict[int, torch.Tensor] = {}
        self.stats = {"batches": 0, "grad_rows": 0, "forward_only_rows": 0, "samples": n}
        self._bytes_per_row_frame: float | None = None
        # the step batch and its mask, reused by every batch (grown when a batch needs more):
        # reused pages are already mapped, where fresh ones fault in on their first write
        self._scaled_buffer = torch.empty(0, dtype=out_dtype, device=samples.device)
        self._mask_buffer = torch.empty(0, dtype=torch.bool, device=samples.device)
        self._reduce_buffer = torch.empty(0, dtype=samples.dtype, device=samples.device)

    @property
    def n_samples(self) -> int:
        return len(self.order)

    @property
    def tuned_rows(self) -> int | None:
        """Rows per batch as the CPU tuner has them now (None with a fixed size or on CUDA)."""
        return None if self._tuner is None else self._tuner.rows

    # ---- batching -----------------------------------------------------------------------------
    def _rows_for(self, t_max: int) -> int:
        if self._batch_rows is not None:
            return self._batch_rows
        if self._tuner is not None:
            return self._tuner.rows
        if self._bytes_per_row_frame is None:
            self._bytes_per_row_frame = self._probe_memory()
        budget = self._memory_budget
        if budget is None:
            free, _ = torch.cuda.mem_get_info(self._samples.device)
            budget = int(free * GPU_MEMORY_SHARE)
        return max(1, int(budget // (self._bytes_per_row_frame * max(t_max, 1))))

    def _probe_memory(self) -> float:
        """Peak bytes per (row x frame) of a forward+backward on two rows of the longest sample."""
        dev = self._samples.device
        length = self._samples.offsets[1] - self._samples.offsets[0]
        packed = self._samples.packed[: self._samples.offsets[1]]
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        scaled, mask = ig_scale(
            packed,
            [0, length],
            torch.tensor([0.5, 1.0], dtype=torch.float64),
            slice_baseline(self._samples.baseline, 0, length),
            out_dtype=self._out_dtype,
        )
        scaled.requires_grad_(True)
        rows = torch.full((2,), self.order[0], dtype=torch.int64, device=dev)
        with torch.enable_grad():
            out = self._call(scaled, mask, rows)
            torch.autograd.grad(out.sum(), scaled)
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
        return max(float(peak) / (2 * length), 1.0)

    def accumulate(self, active: list[int], rule: Rule, *, keep: float, endpoints: bool) -> None:
        """Add `rule`'s weighted gradient rows for the samples at sorted positions `active`,
        after scaling what they hold by `keep` (0: afresh; a nesting refinement's ratio of step
        widths). `endpoints`: also evaluate F at α = 0 and 1 where the rule has no point there
        (forward-only rows, several samples per batch)."""
        points, weights = rule.points, rule.weights
        if endpoints:
            # α = 0 / 1 off the grid: forward-only rows, many samples per batch
            missing = [a for a in (0.0, 1.0) if not bool((points == a).any())]
            if missing:
                ends = torch.tensor(missing, dtype=torch.float64)
                position = 0
                while position < len(active):
                    i = active[position]
                    per_batch = self._rows_for(self._length(i)) // len(missing)
                    group = self._bucket(active, position, per_batch)
                    # a batch has room for fewer rows than endpoints: one α at a time
                    for alphas in [ends] if per_batch else ends.split(1):
                        self._batch(group, alphas, torch.zeros_like(alphas), whole=False)
                    position += len(group)
        m = points.numel()
        for i in active:
            a, b = self._samples.offsets[i], self._samples.offsets[i + 1]
            if self._attr is None:
                continue
            if keep == 0.0:
                self._attr[:, a:b].zero_()
            elif keep != 1.0:
                self._attr[:, a:b].mul_(keep)
            self._kernel_sums.pop(i, None)
        position = 0
        while position < len(active):
            longest = self._length(active[position])
            rows = self._rows_for(longest)
            if self._tuner is not None:
                # tuned sizes stop at one sample's rule: the tuner compares batches of the
                # longest samples, and a batch packing several samples would be timed on
                # other lengths (per frame, attention costs more on longer clips)
                rows = min(rows, m)
            if m <= rows:
                group = self._bucket(active, position, rows // m)
                self._batch(group, points, weights, whole=keep == 0.0)
            else:
                # equal chunks (50 points at 16 rows: 13+13+12+12, not 16+16+16+2)
                chunks = -(-m // rows)
                bounds = [(c * m) // chunks for c in range(chunks + 1)]
                for start, end in zip(bounds[:-1], bounds[1:], strict=True):
                    self._batch(
                        active[position : position + 1],
                        points[start:end],
                        weights[start:end],
                        whole=False,
                    )
                group = active[position : position + 1]
            position += len(group)

    def _length(self, i: int) -> int:
        return self._samples.offsets[i + 1] - self._samples.offsets[i]

    def _step_batch(self, rows: int, t_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scaled [rows, t_max, J, C], mask [rows, t_max]): views of the reused buffers."""
        joints, channels = self._samples.packed.shape[1:]
        need = rows * t_max * joints * channels
        if self._scaled_buffer.numel() < need:
            self._scaled_buffer = self._scaled_buffer.new_empty(need)
        if self._mask_buffer.numel() < rows * t_max:
            self._mask_buffer = self._mask_buffer.new_empty(rows * t_max)
        scaled = self._scaled_buffer[:need].view(rows, t_max, joints, channels)
        return scaled, self._mask_buffer[: rows * t_max].view(rows, t_max)

    def _reduce_out(self, frames: int, n_samples: int, attributions: torch.Tensor | None = None):
        """ig_reduce outputs for `n_samples` samples of `frames` packed frames: `attributions`
        when given (a slice of the result), else a view of the reused buffer; fresh sums."""
        joints, channels = self._samples.packed.shape[1:]
        if attributions is None:
            need = frames * joints * channels
            if self._reduce_buffer.numel() < need:
                self._reduce_buffer = self._reduce_buffer.new_empty(need)
            attributions = self._reduce_buffer[:need].view(frames, joints, channels)
        like = dict(dtype=self._samples.packed.dtype, device=self._samples.device)
        return IgReduceResult(
            attributions,
            torch.empty(n_samples, joints, **like),
            torch.empty(n_samples, joints, **like),
            torch.empty(n_samples, self._n_regions, **like),
            torch.empty(n_samples, self._n_regions, **like),
            torch.empty(n_samples, **like),
        )

    def _bucket(self, active: list[int], position: int, size: int) -> list[int]:
        """Up to `size` samples from `active[position:]` (longest first) whose lengths are
        within BUCKET_RATIO of the first one's, so padding stays small."""
        longest = self._length(active[position])
        group = [active[position]]
        for i in active[position + 1 : position + max(1, size)]:
            if self._length(i) < BUCKET_RATIO * longest:
                break
            group.append(i)
        return group

    def _batch(
        self, group: list[int], points: torch.Tensor, weights: torch.Tensor, *, whole: bool
    ) -> None:
        s = self._samples
        dev = s.device
        contiguous = group == list(range(group[0], group[0] + len(group)))
        if contiguous:
            a, b = s.offsets[group[0]], s.offsets[group[-1] + 1]
            packed = s.packed[a:b]
            baseline = slice_baseline(s.baseline, a, b)
            offsets = [o - a for o in s.offsets[group[0] : group[-1] + 2]]
        else:
            ranges = [(s.offsets[i], s.offsets[i + 1]) for i in group]
            packed = torch.cat([s.packed[a:b] for a, b in ranges])
            baseline = s.baseline
            if baseline is not None and baseline.dim() == 3:
                baseline = torch.cat([baseline[a:b] for a, b in ranges])
            offsets = [0]
            for a, b in ranges:
                offsets.append(offsets[-1] + b - a)
        m = points.numel()
        t_max = max(offsets[k + 1] - offsets[k] for k in range(len(group)))
        scaled, mask = ig_scale(
            packed,
            offsets,
            points,
            baseline,
            t_max=t_max,
            out_dtype=self._out_dtype,
            out=self._step_batch(len(group) * m, t_max),
            check_finite=False,
        )
        rows = torch.tensor([self.order[i] for i in group], dtype=torch.int64)
        rows = rows.repeat_interleave(m).to(dev, non_blocking=True)
        needs_grad = bool((weights != 0).any())
        if needs_grad:
            out, grads = self._gradient_pass(scaled, mask, rows, real_frames=m * offsets[-1])
            nonfinite = torch.zeros(1, dtype=torch.int32, device=dev)
            # a whole rule for samples stored side by side: the kernel writes the result in place
            in_place = whole and contiguous
            for output, grad in enumerate(grads):
                target = None
                if in_place:
                    first, last = s.offsets[group[0]], s.offsets[group[-1] + 1]
                    target = self._attr[output, first:last]
                red = ig_reduce(
                    grad,
                    packed,
                    offsets,
                    weights,
                    baseline,
                    region_of_joint=self._regions_host,
                    n_regions=self._n_regions,
                    out=self._reduce_out(offsets[-1], len(group), target),
                    check_finite=False,
                    nonfinite=nonfinite,
                )
                if not in_place:
                    for k, i in enumerate(group):
                        a, b = s.offsets[i], s.offsets[i + 1]
                        self._attr[output, a:b] += red.attributions[offsets[k] : offsets[k + 1]]
            if int(nonfinite.item()):  # the batch's one host sync
                self._raise_nonfinite(
                    {i: self._attr[:, s.offsets[i] : s.offsets[i + 1]] for i in group}
                )
            if whole and not self._per_output:
                for k, i in enumerate(group):
                    self._kernel_sums[i] = (
                        red.joint_abs[k],
                        red.joint_signed[k],
                        red.region_abs[k],
                        red.region_signed[k],
                        red.total[k],
                    )
        else:
            self.stats["batches"] += 1
            self.stats["forward_only_rows"] += scaled.shape[0]
            with torch.no_grad():
                out = self._call(scaled, mask, rows)
            self._allocate(out)
        values = out.detach().view(len(group), m, -1)
        for where, store in ((0.0, self._f_baseline), (1.0, self._f_input)):
            hit = torch.nonzero(points == where).flatten()
            if hit.numel():
                for k, i in enumerate(group):
                    # a copy: forward_func's output may be a view of the reused step batch
                    store[i] = values[k, int(hit[0])].clone()

    # ---- single points (`refinement.refine_panels`) -------------------------------------------
    def point_values(
        self, requests: dict[int, list[float]]
    ) -> dict[int, tuple[list[float], list[float], list[torch.Tensor]]]:
        """Each sample at its own points (sorted position -> α list): F, dF/dα and
        ∂F/∂x·(x − b) [K, T, J, C] per point. Rows of samples of similar length share batches."""
        s = self._samples
        rows = [(i, alpha) for i in sorted(requests) for alpha in requests[i]]
        found: dict[int, tuple[list, list, list]] = {i: ([], [], []) for i in requests}
        one = torch.ones(1, dtype=torch.float64)
        start = 0
        while start < len(rows):
            longest = self._length(rows[start][0])
            cap = self._rows_for(longest)
            end = start + 1
            while (
                end < len(rows)
                and end - start < cap
                and self._length(rows[end][0]) >= BUCKET_RATIO * longest
            ):
                end += 1
            segments: list[tuple[int, list[float]]] = []
            for i, alpha in rows[start:end]:
                if segments and segments[-1][0] == i:
                    segments[-1][1].append(alpha)
                else:
                    segments.append((i, [alpha]))
            scaled, mask = self._step_batch(end - start, longest)
            row = 0
            for i, alphas in segments:
                a, b = s.offsets[i], s.offsets[i + 1]
                ig_scale(
                    s.packed[a:b],
                    [0, b - a],
                    torch.tensor(alphas, dtype=torch.float64),
                    slice_baseline(s.baseline, a, b),
                    t_max=longest,
                    out_dtype=self._out_dtype,
                    out=(scaled[row : row + len(alphas)], mask[row : row + len(alphas)]),
                    check_finite=False,
                )
                row += len(alphas)
            row_ids = torch.tensor([self.order[i] for i, _ in rows[start:end]], dtype=torch.int64)
            real = sum(self._length(i) for i, _ in rows[start:end])
            out, (grad,) = self._gradient_pass(
                scaled, mask, row_ids.to(s.device, non_blocking=True), real_frames=real
            )
            slopes = []
            row = 0
            nonfinite = torch.zeros(1, dtype=torch.int32, device=s.device)
            for i, alphas in segments:
                a, b = s.offsets[i], s.offsets[i + 1]
                for _ in alphas:
                    red = ig_reduce(
                        grad[row : row + 1],
                        s.packed[a:b],
                        [0, b - a],
                        one,
                        slice_baseline(s.baseline, a, b),
                        region_of_joint=self._regions_host,
                        n_regions=self._n_regions,
                        check_finite=False,
                        nonfinite=nonfinite,
                    )
                    found[i][2].append(red.attributions[None])
                    slopes.append(red.total[0])
                    row += 1
            # one host copy per batch: F and dF/dα of every row, and the finiteness flag
            host = torch.cat([
                out.detach().double(), torch.stack(slopes).double(), nonfinite.double()
            ]).cpu()
            if host[-1]:
                self._raise_nonfinite({i: torch.stack(found[i][2]) for i, _ in segments})
            host = host[:-1].view(2, -1)
            row = 0
            for i, alphas in segments:
                found[i][0].extend(host[0, row : row + len(alphas)].tolist())
                found[i][1].extend(host[1, row : row + len(alphas)].tolist())
                row += len(alphas)
            start = end
        return found

    def set_result(
        self, i: int, attributions: torch.Tensor, *, f_input: float, f_baseline: float
    ) -> None:
        """Sample i's attributions [K, T, J, C] and F values, combined by the caller from
        `point_values`."""
        a, b = self._samples.offsets[i], self._samples.offsets[i + 1]
        self._attr[:, a:b] = attributions
        self._kernel_sums.pop(i, None)
        like = dict(dtype=torch.float64, device=self._samples.device)
        self._f_input[i] = torch.tensor([f_input], **like)
        self._f_baseline[i] = torch.tensor([f_baseline], **like)

    def _gradient_pass(
        self, scaled: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, *, real_frames: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One batch forward and backward: F of the rows and d F / d scaled (per output).
        `real_frames`: the batch's unpadded (row x frame) count, for the rows tuner."""
        self.stats["batches"] += 1
        self.stats["grad_rows"] += scaled.shape[0]
        rows_setting = None if self._tuner is None else self._tuner.rows
        began = time.perf_counter()
        scaled.requires_grad_(True)
        with torch.enable_grad():
            out = self._call(scaled, mask, rows)
            grads = self._gradients(out, scaled)
        if rows_setting is not None:
            self._tuner.record(rows_setting, time.perf_counter() - began, real_frames)
        self._allocate(out)
        return out, grads

    def _raise_nonfinite(self, attributions: dict[int, torch.Tensor]) -> None:
        """attributions: sorted position -> what the batch computed for that sample."""
        bad = [i for i, attr in attributions.items() if not bool(torch.isfinite(attr).all())]
        samples = sorted(int(self.order[i]) for i in bad or attributions)
        raise ValueError(
            f"IntegratedGradients: the attributions of samples {samples} came out NaN or inf: "
            f"forward_func's output or its gradient is not finite at some step point"
        )

    def _allocate(self, out: torch.Tensor) -> None:
        outputs = out.shape[1] if self._per_output else 1
        if self._attr is None:
            self._attr = self._samples.packed.new_zeros((outputs, *self._samples.packed.shape))
        elif self._attr.shape[0] != outputs:
            raise ValueError(
                f"forward_func returned {outputs} outputs per row, earlier batches "
                f"{self._attr.shape[0]}"
            )

    def _gradients(self, out: torch.Tensor, scaled: torch.Tensor) -> list[torch.Tensor]:
        """d out / d scaled: one [B, T, J, C] (of Σ rows) or, per output, K of them."""
        if not self._per_output:
            return list(torch.autograd.grad(out.sum(), scaled))
        outputs = out.shape[1]
        # one backward per output, batched through vmap where every op supports it
        seeds = torch.eye(outputs, dtype=out.dtype, device=out.device)[:, None, :]
        seeds = seeds.expand(outputs, out.shape[0], outputs)
        try:
            (grads,) = torch.autograd.grad(
                out, scaled, seeds, retain_graph=True, is_grads_batched=True
            )
            return list(grads.unbind(0))
        except RuntimeError:
            return [
                torch.autograd.grad(out[:, k].sum(), scaled, retain_graph=k + 1 < outputs)[0]
                for k in range(outputs)
            ]

    def _call(self, scaled: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        n_samples = len(self.order)
        args = tuple(
            arg[rows]
            if isinstance(arg, torch.Tensor) and arg.dim() and arg.shape[0] == n_samples
            else arg
            for arg in self._extra
        )
        out = self._forward(scaled, mask, rows, *args)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"forward_func must return a tensor, got {type(out).__name__}")
        batch = scaled.shape[0]
        if self._per_output:
            if out.dim() != 2 or out.shape[0] != batch:
                raise ValueError(
                    f"forward_func must return [B, K] = [{batch}, K] with per_output=True, got "
                    f"shape {tuple(out.shape)}"
                )
            return out
        if out.dim() == 2 and self._target is not None:
            if isinstance(self._target, int):
                out = out[:, self._target]
            else:
                out = out.gather(1, self._target.to(out.device)[rows].view(-1, 1))[:, 0]
        elif out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (batch,):
            raise ValueError(
                f"forward_func must return one value per row, [B]=[{batch}] (or [B, K] with "
                f"target), got shape {tuple(out.shape)}"
            )
        return out

    # ---- results ------------------------------------------------------------------------------
    def f_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """F(x), F(b) [N] (or [N, K]) float64 in the original order (NaN where not evaluated)."""
        shape = (len(self.order), self._attr.shape[0])
        found = []
        for store in (self._f_input, self._f_baseline):
            values = torch.full(shape, float("nan"), dtype=torch.float64)
            if store:
                keys = list(store)
                values[torch.tensor([self.order[i] for i in keys])] = (
                    torch.stack([store[i] for i in keys]).double().cpu()
                )
            found.append(values if self._per_output else values[:, 0])
        return found[0], found[1]

    def sums(self) -> Sums:
        """Per-sample joint / region / total sums in the original order, on the host."""
        s = self._samples
        n = len(self.order)
        outputs, joints = self._attr.shape[0], s.packed.shape[1]
        one_hot = torch.nn.functional.one_hot(self._regions, self._n_regions).to(s.packed.dtype)
        like = dict(dtype=s.packed.dtype, device=s.device)
        joint_abs = torch.zeros(n, outputs, joints, **like)
        joint_signed = torch.zeros_like(joint_abs)
        region_abs = torch.zeros(n, outputs, self._n_regions, **like)
        region_signed = torch.zeros_like(region_abs)
        total = torch.zeros(n, outputs, **like)
        for i in range(n):
            if i in self._kernel_sums:
                ja, js, ra, rs, tot = (t[None] for t in self._kernel_sums[i])
            else:
                attr = self._attr[:, s.offsets[i] : s.offsets[i + 1]]  # [K, T, J, C]
                ja, js = attr.abs().sum(dim=(1, 3)), attr.sum(dim=(1, 3))
                ra, rs, tot = ja @ one_hot, js @ one_hot, js.sum(1)
            joint_abs[i], joint_signed[i], region_abs[i], region_signed[i], total[i] = (
                ja,
                js,
                ra,
                rs,
                tot,
            )
        order = torch.tensor(self.order, dtype=torch.int64, device=s.device)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(n, device=s.device)
        parts = [
            t[inverse].double().cpu()
            for t in (joint_abs, joint_signed, region_abs, region_signed, total)
        ]
        if not self._per_output:
            parts = [t[:, 0] for t in parts]
        return Sums(*parts)

    def attributions(self) -> list[torch.Tensor] | torch.Tensor:
        s = self._samples
        per_sample: list[torch.Tensor] = [torch.empty(0)] * len(self.order)
        attr = self._attr if self._per_output else self._attr[0]
        frames = 1 if self._per_output else 0  # the frame axis of `attr`
        for i, original in enumerate(self.order):
            start, length = s.offsets[i], s.offsets[i + 1] - s.offsets[i]
            per_sample[original] = attr.narrow(frames, start, length)
        if s.padded_to is None:
            return per_sample
        shape = list(attr.shape)
        shape[frames] = s.padded_to
        out = attr.new_zeros(len(per_sample), *shape)
        for n, sample in enumerate(per_sample):
            out[n].narrow(frames, 0, sample.shape[frames]).copy_(sample)
        return out
