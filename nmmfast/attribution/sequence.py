"""Integrated Gradients of a pose→text model's F = Σ_t log p(y_t | y_<t, x).

`SequenceAttributor` picks the target (the model's own decoded output by default, or the
reference), lifts the model's stop-gradients for the pass (forward values unchanged) and
attributes F, or each token's log-probability on its own, with the batch engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nmmfast.attribution.calibration import fastest_rows
from nmmfast.attribution.integrated_gradients import IGResult, IntegratedGradients
from nmmfast.attribution.quadrature import valid_steps

__all__ = ["SequenceAttributor", "SequenceResult"]

TARGET_SOURCES = ("decoded", "reference", "ids")


@dataclass
class SequenceResult:
    """Attribution of N samples' target sequences.

    ig: the engine's result; with `per_token`, outputs are the target positions: attributions
        [L, T_i, J, C] per sample, delta / f_input / f_baseline / total [N, L] (0 past a
        sample's last token), joint [N, L, J], region [N, L, R]; else the sequence sum.
    target_ids: per sample [L_i] int64 (ending with </s>); target_tokens: their strings;
    target_text: the decoded target strings; target_source: "decoded", "reference" or "ids";
    stop_gradient_lifted: whether the model's stop-gradients were lifted for the pass.
    """

    ig: IGResult
    target_ids: list[torch.Tensor]
    target_tokens: list[list[str]]
    target_text: list[str]
    target_source: str
    per_token: bool
    stop_gradient_lifted: bool

    @property
    def attributions(self) -> list[torch.Tensor] | torch.Tensor:
        return self.ig.attributions

    @property
    def delta(self) -> torch.Tensor:
        return self.ig.delta

    def token_lengths(self) -> list[int]:
        return [int(ids.numel()) for ids in self.target_ids]


class SequenceAttributor:
    """Attribute a pose→text model's target log-probability to its input poses.

    model: a `nmmfast.model.UniSignModel`-like module with `sequence_log_prob(poses, mask,
        target_ids) -> [B]`, `token_log_probs(...) -> [B, L]`, `generate(poses, mask, ...)`,
        `tokenize_targets(texts)`, and optionally `stop_gradient_lifted()` and `config.layout`.
    tokenizer: turns ids into token strings (default `model.tokenizer`).
    layout: joints → regions (default the model's `config.layout`).
    lift_stop_gradient: lift the model's stop-gradients during attribution (default True):
        they cut gradient paths whose forward values still depend on the input, so
        completeness could not close with them in place.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        layout: Any = None,
        lift_stop_gradient: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if layout is None:
            layout = getattr(getattr(model, "config", None), "layout", None)
        self.layout = layout
        self.lift_stop_gradient = bool(lift_stop_gradient)
        self.pad_id = int(getattr(self.tokenizer, "pad_token_id", 0) or 0)

    # ---- targets ------------------------------------------------------------------------------
    def device(self) -> torch.device:
        """Where the model's parameters live (CPU for a model without any)."""
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    @torch.no_grad()
    def decode_targets(
        self,
        poses: Sequence[torch.Tensor],
        *,
        num_beams: int = 4,
        max_new_tokens: int = 100,
        batch_size: int = 16,
    ) -> list[torch.Tensor]:
        """The model's own outputs: per sample [L_i] ids ending with </s> (beam search)."""
        device = self.device()
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        order = sorted(range(len(poses)), key=lambda n: -poses[n].shape[0])
        targets: list[torch.Tensor] = [torch.empty(0)] * len(poses)
        try:
            for start in range(0, len(order), batch_size):
                group = order[start : start + batch_size]
                batch, mask = _pad([poses[n] for n in group], device)
                ids = self.model.generate(
                    batch, mask, num_beams=num_beams, max_new_tokens=max_new_tokens
                )
                for row, n in enumerate(group):
                    targets[n] = self._trim(ids[row, 1:])  # drop the decoder start token
        finally:
            self.model.train(was_training)
        return targets

    def encode_targets(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Reference strings -> per sample [L_i] ids ending with </s>."""
        ids = self.model.tokenize_targets(list(texts))
        return [self._trim(row) for row in ids]

    def _trim(self, ids: torch.Tensor) -> torch.Tensor:
        """Up to the first </s> (kept), else up to the last non-padding id."""
        ids = ids.detach().long().cpu()
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None:
            hits = torch.nonzero(ids == int(eos)).flatten()
            if hits.numel():
                return ids[: int(hits[0]) + 1]
        keep = (ids != self.pad_id) & (ids != -100)
        last = int(torch.nonzero(keep).max()) + 1 if bool(keep.any()) else 0
        return ids[:last]

    def _tokens(self, ids: torch.Tensor) -> list[str]:
        tok = self.tokenizer
        if tok is None:
            return [str(i) for i in ids.tolist()]
        if hasattr(tok, "convert_ids_to_tokens"):
            return list(tok.convert_ids_to_tokens(ids.tolist()))
        vocab = getattr(tok, "vocab", None)
        if isinstance(vocab, list):
            return [vocab[i] if 0 <= i < len(vocab) else str(i) for i in ids.tolist()]
        return [tok.decode([i]) for i in ids.tolist()]

    def _text(self, ids: torch.Tensor) -> str:
        if self.tokenizer is None:
            return " ".join(str(i) for i in ids.tolist())
        return self.tokenizer.batch_decode([ids.tolist()], skip_special_tokens=True)[0].strip()

    # ---- attribution --------------------------------------------------------------------------
    def attribute(
        self,
        poses: Sequence[torch.Tensor],
        targets: Sequence[str] | Sequence[torch.Tensor] | None = None,
        baselines: Any = None,
        *,
        n_steps: int = 50,
        method: str = "gausslegendre",
        per_token: bool = False,
        batch_rows: int | None = None,
        memory_budget: int | None = None,
        tolerance: float | None = None,
        max_steps: int = 512,
        num_beams: int = 4,
        max_new_tokens: int = 100,
        return_convergence_delta: bool = True,
    ) -> SequenceResult:
        """Integrated Gradients of Σ_t log p(y_t | y_<t, x) (or of each term with `per_token`).

        Args:
            poses: N normalised samples [T_i, J, 3] (float32 for the model's precision).
            targets: None (decode each sample with beam search: the model's own output),
                N reference strings, or N id tensors [L_i] (ending with </s>).
            baselines, n_steps, method, batch_rows, memory_budget, tolerance, max_steps,
                return_convergence_delta: as `IntegratedGradients.attribute`.
            per_token: attribute every target token's log-probability on its own (one forward
                per step point, a batched backward over the tokens); each token has its delta.
                With `tolerance`, a sample's whole rule is refined (Simpson and trapezoid
                n → 2n−1 points, Gauss–Legendre n → 2n) until every token of it has
                |delta| <= tolerance · |F(x) − F(b)| of that token (or |delta| <= 1e-4 nats,
                for tokens whose log-probability hardly moves), or `max_steps` is reached;
                `ig.converged` says which samples got there.
            num_beams, max_new_tokens: decoding settings for targets=None.
        """
        poses = list(poses)
        if not poses:
            raise ValueError("poses holds no samples")
        if targets is None:
            source = "decoded"
            target_ids = self.decode_targets(
                poses, num_beams=num_beams, max_new_tokens=max_new_tokens
            )
        else:
            targets = list(targets)
            if len(targets) != len(poses):
                raise ValueError(
                    f"targets has {len(targets)} entries but poses has {len(poses)} samples"
                )
            if all(isinstance(t, str) for t in targets):
                source = "reference"
                target_ids = self.encode_targets(targets)
            elif all(isinstance(t, torch.Tensor) for t in targets):
                source = "ids"
                target_ids = [self._trim(t.view(-1)) for t in targets]
            else:
                raise TypeError("targets must be None, N strings or N id tensors")
        for n, ids in enumerate(target_ids):
            if ids.numel() == 0:
                raise ValueError(f"sample {n}: the target sequence is empty")
        longest = max(ids.numel() for ids in target_ids)
        device = self.device()
        padded = torch.full((len(poses), longest), self.pad_id, dtype=torch.long)
        for n, ids in enumerate(target_ids):
            padded[n, : ids.numel()] = ids
        padded = padded.to(device)
        poses = [p.to(device) for p in poses]
        model = self.model

        def forward(
            x: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor, ids: torch.Tensor
        ) -> torch.Tensor:
            if per_token:
                return model.token_log_probs(x, mask, ids)
            return model.sequence_log_prob(x, mask, ids)

        engine = IntegratedGradients(forward, model=model, layout=self.layout)
        lifted = self.lift_stop_gradient and hasattr(model, "stop_gradient_lifted")
        context = model.stop_gradient_lifted() if lifted else contextlib.nullcontext()
        with context:
            if per_token and tolerance is not None:
                result = self._per_token_refined(
                    engine,
                    poses,
                    baselines,
                    padded,
                    target_ids,
                    n_steps=n_steps,
                    method=method,
                    batch_rows=batch_rows,
                    memory_budget=memory_budget,
                    tolerance=tolerance,
                    max_steps=max_steps,
                )
            else:
                result = engine.attribute(
                    poses,
                    baselines,
                    additional_forward_args=(padded,),
                    n_steps=n_steps,
                    method=method,
                    batch_rows=batch_rows,
                    memory_budget=memory_budget,
                    tolerance=tolerance,
                    max_steps=max_steps,
                    return_convergence_delta=return_convergence_delta,
                    per_output=per_token,
                )
        return SequenceResult(
            ig=result,
            target_ids=target_ids,
            target_tokens=[self._tokens(ids) for ids in target_ids],
            target_text=[self._text(ids) for ids in target_ids],
            target_source=source,
            per_token=bool(per_token),
            stop_gradient_lifted=lifted,
        )

    @staticmethod
    def _per_token_refined(
        engine: IntegratedGradients,
        poses: list[torch.Tensor],
        baselines: Any,
        padded: torch.Tensor,
        target_ids: list[torch.Tensor],
        *,
        n_steps: int,
        method: str,
        batch_rows: int | None,
        memory_budget: int | None,
        tolerance: float,
        max_steps: int,
    ) -> IGResult:
        """Per-token attribution, each sample's rule refined until every token's completeness
        holds (see `attribute`); the rows of samples that needed more points are replaced."""
        if tolerance <= 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        per_sample = (
            list(baselines)
            if isinstance(baselines, Sequence) and not isinstance(baselines, (str, bytes))
            else None
        )
        lengths = torch.tensor([ids.numel() for ids in target_ids])
        steps = valid_steps(method, n_steps)
        pending = list(range(len(poses)))
        result: IGResult | None = None
        while True:
            chosen = [poses[n] for n in pending]
            part = engine.attribute(
                chosen,
                [per_sample[n] for n in pending] if per_sample is not None else baselines,
                additional_forward_args=(padded[pending],),
                n_steps=steps,
                method=method,
                batch_rows=batch_rows,
                memory_budget=memory_budget,
                per_output=True,
            )
            gap = (part.f_input - part.f_baseline).abs()
            real = torch.arange(part.delta.shape[1])[None, :] < lengths[pending][:, None]
            ok = (part.delta.abs() <= tolerance * gap) | (part.delta.abs() <= 1e-4) | ~real
            met = ok.all(dim=1)
            part.n_steps[:] = steps
            part.converged[:] = met
            result = part if result is None else _replace_rows(result, part, pending)
            finer = {"simpson": 2 * steps - 1, "trapezoid": 2 * steps - 1}.get(
                method, 2 * steps if method == "gausslegendre" else None
            )
            if finer is None or met.all() or finer > max_steps:
                return result
            pending = [n for n, done in zip(pending, met.tolist(), strict=True) if not done]
            steps = finer

    def calibrate(
        self,
        sample: torch.Tensor,
        target: str | torch.Tensor | None = None,
        candidates: Sequence[int] = (4, 8, 16, 32),
        *,
        n_steps: int = 16,
        method: str = "gausslegendre",
        per_token: bool = False,
        repeats: int = 1,
    ) -> int:
        """The rows per batch, among `candidates`, that attribute `sample` fastest here.

        For CPUs, where the best batch is small and depends on the model: one untimed warm-up
        call, then one timed `attribute` call of `sample` ([T, J, 3]) per candidate. `target`
        as in `attribute` (None: decoded greedily once, outside the timing). `n_steps` becomes
        the method's nearest valid count at or above it (`quadrature.valid_steps`).
        """
        if target is None:
            target = self.decode_targets([sample], num_beams=1, max_new_tokens=100)[0]
        return fastest_rows(
            lambda rows: self.attribute(
                [sample],
                [target],
                n_steps=valid_steps(method, n_steps),
                method=method,
                per_token=per_token,
                batch_rows=rows,
                return_convergence_delta=False,
            ),
            candidates,
            device=sample.device,
            repeats=repeats,
        )


def _replace_rows(result: IGResult, part: IGResult, rows: Sequence[int]) -> IGResult:
    """`result` with the samples `rows` replaced by those of `part` (the same samples attributed
    again with more points)."""
    index = torch.as_tensor(list(rows), dtype=torch.long)
    for name in ("delta", "f_input", "f_baseline", "total", "n_steps", "converged"):
        getattr(result, name)[index] = getattr(part, name)
    for name in ("joint", "region"):
        mine, theirs = getattr(result, name), getattr(part, name)
        mine.abs[index] = theirs.abs
        mine.signed[index] = theirs.signed
    attributions = result.attributions
    if not isinstance(attributions, list):
        raise TypeError("per-token refinement needs the samples as a list")
    for k, n in enumerate(rows):
        attributions[n] = part.attributions[k]
    return result


def _pad(poses: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad by repeating each sample's last frame; mask [B, T] True on real frames."""
    longest = max(p.shape[0] for p in poses)
    batch = torch.empty((len(poses), longest, *poses[0].shape[1:]), dtype=poses[0].dtype)
    mask = torch.zeros((len(poses), longest), dtype=torch.bool)
    for row, p in enumerate(poses):
        batch[row, : p.shape[0]] = p.detach().cpu()
        batch[row, p.shape[0] :] = p[-1].detach().cpu()
        mask[row, : p.shape[0]] = True
    return batch.to(device), mask.to(device)
